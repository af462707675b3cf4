"""Key exchange orchestration: KEXINIT, NEWKEYS, strict KEX, rekeying.

The mathematics lives in `sshlib.kex`; this layer decides when a key exchange
happens, negotiates algorithms (RFC 4253 7.1), verifies the host key's
signature over the exchange hash, installs the new packet protection and holds
back our own non-kex messages while a key exchange is in flight (RFC 4253 7.1:
only transport-layer messages may be sent between KEXINIT and NEWKEYS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .. import algorithms as algs
from .. import cipher, compression, kex, keys
from .. import messages as m
from ..config import ClientConfig
from ..errors import KexError, ProtocolError
from ..wire import Reader, Writer
from .events import Event, HostKeyVerificationRequested, KexCompleted
from .packets import PacketLayer
from .rand import Random

log = logging.getLogger("sshlib.handshake")

MAC_IMPLICIT = "<implicit>"  # the MAC name reported for AEAD ciphers


@dataclass(frozen=True)
class KexInit:
    """A parsed KEXINIT message."""

    kex: list[str]
    host_key: list[str]
    cipher_c2s: list[str]
    cipher_s2c: list[str]
    mac_c2s: list[str]
    mac_s2c: list[str]
    compression_c2s: list[str]
    compression_s2c: list[str]
    first_kex_follows: bool

    @classmethod
    def parse(cls, payload: bytes) -> KexInit:
        """Decode a KEXINIT payload (message byte included); ProtocolError or DecodeError if
        malformed.
        """
        r = Reader(payload)
        if r.byte() != m.MSG_KEXINIT:
            raise ProtocolError("expected KEXINIT")
        r.raw(16)  # cookie
        lists = [r.name_list() for _ in range(10)]
        follows = r.boolean()
        r.uint32()  # reserved
        r.check_end()
        return cls(lists[0], lists[1], lists[2], lists[3], lists[4], lists[5], lists[6],
                   lists[7], follows)


class Handshake:
    """Runs the first key exchange and every rekey for one connection."""

    def __init__(self, config: ClientConfig, packets: PacketLayer, rng: Random,
                 client_version: bytes, server_version: bytes, now: float) -> None:
        self._config = config
        self._packets = packets
        self._rng = rng
        self._client_version = client_version
        self._server_version = server_version
        self.now = now
        self.last_kex_time = now
        self.session_id: bytes | None = None
        self.session_signature = b""
        self.algorithms: algs.Algorithms | None = None
        self.host_key: keys.PublicKey | None = None
        self.strict = False
        self.first_kex_done = False
        self.awaiting_host_key_verdict = False
        self.packets_before_kexinit = 0
        self._our_kexinit: bytes | None = None
        self._their_kexinit: bytes | None = None
        self._kex: kex.ClientKex | None = None
        self._ignore_next_kex_packet = False
        self._next_sealer: cipher.PacketSealer | None = None
        self._next_opener: cipher.PacketOpener | None = None
        self._next_algorithms: algs.Algorithms | None = None
        self._newkeys_sent = False
        self._queue: list[bytes] = []
        #: Set once USERAUTH_SUCCESS arrived: delayed compression applies from then on.
        self.authenticated = False

    # --- state queries used by the connection's dispatcher -------------------
    @property
    def in_progress(self) -> bool:
        """True from either side's KEXINIT until both NEWKEYS."""
        return self._our_kexinit is not None or self._their_kexinit is not None

    @property
    def receiving_kex(self) -> bool:
        """True while the server is mid-exchange: only kex messages may arrive."""
        return self._their_kexinit is not None

    @property
    def strict_initial(self) -> bool:
        """True during the first key exchange when both sides agreed on strict KEX.

        Then any non-kex message from the server is a KexError (Terrapin, CVE-2023-48795).
        """
        return self.strict and not self.first_kex_done

    def needs_rekey(self) -> bool:
        """True when the byte count or the time since the last exchange passed the config's limits.

        Never during an exchange or before the first one completed; uses `now` as last ticked.
        """
        if not self.first_kex_done or self.in_progress:
            return False
        p = self._packets
        return (p.bytes_in + p.bytes_out >= self._config.rekey_bytes
                or self.now - self.last_kex_time >= self._config.rekey_interval)

    # --- sending -------------------------------------------------------------
    def send(self, payload: bytes | memoryview, head: bytes = b"") -> None:
        """Send a non-kex message (`head` + `payload`) now, or hold it until our NEWKEYS is out."""
        if (self._our_kexinit is not None and not self._newkeys_sent
                and (head or payload)[0] > m.MSG_DEBUG):  # 1-4 may always go (RFC 4253 7.1)
            self._queue.append(b"".join((head, payload)))
        else:
            self._packets.send(payload, head)

    def start_kex(self) -> None:
        """Queue our KEXINIT unless one is already out; later non-kex sends wait for our NEWKEYS."""
        if self._our_kexinit is not None:
            return
        cfg = self._config
        kex_names = list(cfg.kex_algorithms or ())
        if not self.first_kex_done:
            kex_names += [algs.KEX_EXT_INFO_C, algs.KEX_STRICT_CLIENT]
        w = Writer(m.MSG_KEXINIT).raw(self._rng(16))
        w.name_list(kex_names).name_list(list(cfg.host_key_algorithms or ()))
        w.name_list(list(cfg.ciphers or ())).name_list(list(cfg.ciphers or ()))
        w.name_list(list(cfg.macs or ())).name_list(list(cfg.macs or ()))
        offered = compression.offered(cfg.compression)
        w.name_list(offered).name_list(offered)
        w.name_list([]).name_list([]).boolean(False).uint32(0)
        self._our_kexinit = w.getvalue()
        self._newkeys_sent = False
        self._packets.send(self._our_kexinit)
        log.debug("sent KEXINIT%s", "" if self.first_kex_done else " (initial)")

    # --- receiving -------------------------------------------------------------
    def handle(self, msg_type: int, payload: bytes) -> list[Event]:
        """Process one key exchange message (20-49); returns the events it yields.

        HostKeyVerificationRequested after the first exchange, KexCompleted at NEWKEYS.
        KexError when negotiation or the host key signature fails, or the host key changes
        in a rekey; ProtocolError for messages out of order.
        """
        if msg_type == m.MSG_KEXINIT:
            return self._on_kexinit(payload)
        if msg_type == m.MSG_NEWKEYS:
            return self._on_newkeys(payload)
        if m.MSG_KEX_FIRST <= msg_type <= m.MSG_KEX_LAST:
            return self._on_kex_message(payload)
        raise ProtocolError(f"unexpected {m.name(msg_type)} during key exchange")

    def _on_kexinit(self, payload: bytes) -> list[Event]:
        if self._their_kexinit is not None:
            raise ProtocolError("second KEXINIT received during a key exchange")
        theirs = KexInit.parse(payload)
        self._their_kexinit = payload
        if not self.first_kex_done:
            self.strict = algs.KEX_STRICT_SERVER in theirs.kex
            if self.strict and self.packets_before_kexinit:
                raise KexError("strict KEX: KEXINIT was not the first packet from the server")
        self.start_kex()
        assert self._our_kexinit is not None
        ours = KexInit.parse(self._our_kexinit)
        negotiated = self._negotiate(ours, theirs)
        self._next_algorithms = negotiated
        if theirs.first_kex_follows and (theirs.kex[:1] != [negotiated.kex]
                                         or theirs.host_key[:1] != [negotiated.host_key]):
            self._ignore_next_kex_packet = True
        log.debug("negotiated %s", negotiated)
        self._kex = kex.new_client_kex(
            negotiated.kex, rng=self._rng, client_version=self._client_version,
            server_version=self._server_version, client_kexinit=self._our_kexinit,
            server_kexinit=payload)
        for out in self._kex.start():
            self._packets.send(out)
        return []

    def _negotiate(self, ours: KexInit, theirs: KexInit) -> algs.Algorithms:
        pseudo = {algs.KEX_EXT_INFO_C, algs.KEX_STRICT_CLIENT}
        kex_name = algs.choose("key exchange", [k for k in ours.kex if k not in pseudo],
                               [k for k in theirs.kex if not k.startswith(("ext-info-",
                                                                            "kex-strict-"))])
        host_key = algs.choose("host key", ours.host_key, theirs.host_key)
        c2s = algs.choose("client-to-server cipher", ours.cipher_c2s, theirs.cipher_c2s)
        s2c = algs.choose("server-to-client cipher", ours.cipher_s2c, theirs.cipher_s2c)
        mac_c2s = (MAC_IMPLICIT if cipher.is_aead(c2s)
                   else algs.choose("client-to-server MAC", ours.mac_c2s, theirs.mac_c2s))
        mac_s2c = (MAC_IMPLICIT if cipher.is_aead(s2c)
                   else algs.choose("server-to-client MAC", ours.mac_s2c, theirs.mac_s2c))
        comp_c2s = algs.choose("client-to-server compression", ours.compression_c2s,
                               theirs.compression_c2s)
        comp_s2c = algs.choose("server-to-client compression", ours.compression_s2c,
                               theirs.compression_s2c)
        return algs.Algorithms(kex_name, host_key, c2s, s2c, mac_c2s, mac_s2c, comp_c2s, comp_s2c)

    def _on_kex_message(self, payload: bytes) -> list[Event]:
        if self._kex is None:
            raise ProtocolError(f"unexpected {m.name(payload[0])} outside a key exchange")
        if self._ignore_next_kex_packet:
            self._ignore_next_kex_packet = False
            log.debug("ignoring the server's wrongly guessed kex packet")
            return []
        outcome = self._kex.receive(payload)
        if isinstance(outcome, list):
            for out in outcome:
                self._packets.send(out)
            return []
        self._kex = None
        return self._finish_exchange(outcome)

    def _finish_exchange(self, result: kex.KexResult) -> list[Event]:
        negotiated = self._next_algorithms
        assert negotiated is not None
        try:
            host_key = keys.parse_public_key(result.host_key_blob)
        except Exception as exc:
            raise KexError(f"server sent an unusable host key: {exc}") from None
        if host_key.key_type != keys.key_type_for_algorithm(negotiated.host_key):
            raise KexError(f"server sent a {host_key.key_type} host key for the negotiated "
                           f"{negotiated.host_key} algorithm")
        if not host_key.verify(result.exchange_hash, result.signature, negotiated.host_key):
            raise KexError("host key signature over the exchange hash does not verify")
        if self.session_id is None:
            self.session_id = result.exchange_hash
            # The host key's signature over the session id, for agent session-bind.
            self.session_signature = result.signature
        self._install_keys(result, negotiated)
        if not self.first_kex_done:
            self.host_key = host_key
            self.awaiting_host_key_verdict = True
            return [HostKeyVerificationRequested(host_key)]
        assert self.host_key is not None
        if host_key.blob != self.host_key.blob:
            raise KexError("the server's host key changed during a rekey")
        self._send_newkeys()
        return []

    def _install_keys(self, result: kex.KexResult, negotiated: algs.Algorithms) -> None:
        session_id = self.session_id
        assert session_id is not None

        def derive(letter: bytes, length: int) -> bytes:
            if not length:
                return b""
            return kex.derive_key(result.hash_name, result.shared_secret,
                                  result.exchange_hash, letter, session_id, length)

        def mac_name(name: str) -> str | None:
            return None if name == MAC_IMPLICIT else name

        c2s_mac = mac_name(negotiated.mac_client_to_server)
        s2c_mac = mac_name(negotiated.mac_server_to_client)
        key_len, iv_len, mac_len = cipher.key_lengths(negotiated.cipher_client_to_server, c2s_mac)
        self._next_sealer = cipher.new_sealer(
            negotiated.cipher_client_to_server, c2s_mac, derive(b"C", key_len),
            derive(b"A", iv_len), derive(b"E", mac_len), self._rng)
        key_len, iv_len, mac_len = cipher.key_lengths(negotiated.cipher_server_to_client, s2c_mac)
        self._next_opener = cipher.new_opener(
            negotiated.cipher_server_to_client, s2c_mac, derive(b"D", key_len),
            derive(b"B", iv_len), derive(b"F", mac_len))

    def accept_host_key(self) -> None:
        """The front-end accepted the host key: send NEWKEYS and the messages held back.

        ProtocolError when no host key awaits a verdict.
        """
        if not self.awaiting_host_key_verdict:
            raise ProtocolError("no host key is awaiting verification")
        self.awaiting_host_key_verdict = False
        self._send_newkeys()

    def _send_newkeys(self) -> None:
        assert self._next_sealer is not None and self._next_algorithms is not None
        self._packets.send(bytes((m.MSG_NEWKEYS,)))
        self._packets.set_sealer(self._compressing(
            self._next_sealer, self._next_algorithms.compression_client_to_server, False),
            reset_seq=self.strict)
        self._next_sealer = None
        self._newkeys_sent = True
        queued, self._queue = self._queue, []
        for payload in queued:
            self._packets.send(payload)

    def _on_newkeys(self, payload: bytes) -> list[Event]:
        if len(payload) != 1:
            raise ProtocolError("NEWKEYS with trailing bytes")
        if self._next_opener is None or self._kex is not None or not self._newkeys_sent:
            raise ProtocolError("NEWKEYS before the key exchange finished")
        assert self._next_algorithms is not None
        self._packets.set_opener(self._decompressing(
            self._next_opener, self._next_algorithms.compression_server_to_client, False),
            reset_seq=self.strict)
        self._next_opener = None
        first = not self.first_kex_done
        self.first_kex_done = True
        self._our_kexinit = None
        self._their_kexinit = None
        self.algorithms = self._next_algorithms
        self.last_kex_time = self.now
        self._packets.reset_counters()
        assert self.algorithms is not None
        log.info("key exchange %s: %s, host key %s, cipher %s/%s",
                 "done" if first else "(rekey) done", self.algorithms.kex,
                 self.algorithms.host_key, self.algorithms.cipher_client_to_server,
                 self.algorithms.cipher_server_to_client)
        return [KexCompleted(self.algorithms, first)]

    # --- compression ---------------------------------------------------------------
    def _active(self, name: str, at_auth: bool, direction: str) -> compression.Method | None:
        """The method to start now: at NEWKEYS (at_auth False) or at USERAUTH_SUCCESS."""
        method = compression.method(name)
        if method is None:
            return None
        # zlib starts at NEWKEYS; zlib@openssh.com at USERAUTH_SUCCESS and, once
        # authenticated, again at every NEWKEYS (fresh streams, as OpenSSH does).
        starts = method.delayed if at_auth else not method.delayed or self.authenticated
        if not starts:
            return None
        log.debug("%s compression %s starts", direction, name)
        return method

    def _compressing(self, sealer: cipher.PacketSealer, name: str,
                     at_auth: bool) -> cipher.PacketSealer:
        method = self._active(name, at_auth, "outgoing")
        return sealer if method is None else compression.CompressingSealer(
            sealer, method.new_deflater())

    def _decompressing(self, opener: cipher.PacketOpener, name: str,
                       at_auth: bool) -> cipher.PacketOpener:
        method = self._active(name, at_auth, "incoming")
        return opener if method is None else compression.DecompressingOpener(
            opener, method.new_inflater())

    def start_delayed_compression(self) -> None:
        """USERAUTH_SUCCESS arrived: zlib@openssh.com starts with the next packet each way.

        Every later NEWKEYS starts fresh streams (as OpenSSH does).
        """
        if self.authenticated:
            return
        self.authenticated = True
        current = self.algorithms
        if current is None:
            return
        p = self._packets
        p.set_sealer(self._compressing(p.sealer, current.compression_client_to_server, True),
                     reset_seq=False)
        p.set_opener(self._decompressing(p.opener, current.compression_server_to_client, True),
                     reset_seq=False)
