"""A scripted fake SSH server for tests: real crypto, misbehaviour on demand.

sshd is a polite peer; to prove the client survives a hostile one we need a
server that does exactly what a test says, byte by byte.  `ServerSide` speaks
the server half of SSH (version line, KEXINIT, curve25519-sha256, NEWKEYS with
optional strict kex, aes-gcm packets, "none"/password/publickey auth, session
channels) through small steps a test can reorder, skip or replace with raw
bytes.  `FakeServer(script)` runs ``script(server_side)`` in a thread on one end
of a ``socket.socketpair()``; `CorePipe` connects a `ServerSide` straight to a
sans-IO `ClientConnection` for single-threaded (hypothesis) tests.

Independence: the packet framing, aes-gcm packet protection, the server side of
curve25519-sha256, the exchange hash and the key derivation are written here
from RFC 4253, RFC 5647/OpenSSH PROTOCOL and RFC 8731 directly on top of
`cryptography`/hashlib, *not* with sshlib's cipher/kex code, so a bug there
cannot cancel itself out.  Only host keys (generate, sign, parse a client's
public key) come from `sshlib.keys`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import sshlib
from sshlib import keys
from sshlib.protocol import events as ev
from sshlib.protocol.client import ClientConnection

DEFAULT_VERSION = b"SSH-2.0-FakeServer_0.1"
STRICT_SERVER = "kex-strict-s-v00@openssh.com"
STRICT_CLIENT = "kex-strict-c-v00@openssh.com"
KEX_NAME = "curve25519-sha256"

# Message numbers, spelled out here (RFC 4250 4.1) rather than imported from sshlib.
DISCONNECT, IGNORE, UNIMPLEMENTED, DEBUG = 1, 2, 3, 4
SERVICE_REQUEST, SERVICE_ACCEPT, EXT_INFO = 5, 6, 7
KEXINIT, NEWKEYS, KEX_ECDH_INIT, KEX_ECDH_REPLY = 20, 21, 30, 31
USERAUTH_REQUEST, USERAUTH_FAILURE, USERAUTH_SUCCESS, USERAUTH_BANNER = 50, 51, 52, 53
USERAUTH_PK_OK = 60
GLOBAL_REQUEST, REQUEST_SUCCESS, REQUEST_FAILURE = 80, 81, 82
CHANNEL_OPEN, CHANNEL_OPEN_CONFIRMATION, CHANNEL_OPEN_FAILURE = 90, 91, 92
CHANNEL_WINDOW_ADJUST, CHANNEL_DATA, CHANNEL_EXTENDED_DATA = 93, 94, 95
CHANNEL_EOF, CHANNEL_CLOSE, CHANNEL_REQUEST = 96, 97, 98
CHANNEL_SUCCESS, CHANNEL_FAILURE = 99, 100

_GCM_KEY_SIZES = {"aes128-gcm@openssh.com": 16, "aes256-gcm@openssh.com": 32}
_U32 = struct.Struct(">I")


# --- wire helpers (independent of sshlib.wire) ---------------------------------

def u32(value: int) -> bytes:
    return _U32.pack(value)


def sshstr(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return u32(len(value)) + value


def namelist(names: Iterable[str]) -> bytes:
    return sshstr(",".join(names))


def mpint_of(value: int) -> bytes:
    """Non-negative mpint (RFC 4251 5): minimal big-endian with a clear top bit."""
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big") if value else b""
    return sshstr(raw)


class Parser:
    """Minimal reader for what the client sends; AssertionError on malformed input."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, count: int) -> bytes:
        assert self.pos + count <= len(self.data), "client message truncated"
        out = self.data[self.pos:self.pos + count]
        self.pos += count
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def boolean(self) -> bool:
        return self.byte() != 0

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        return self.string().decode("utf-8")

    def names(self) -> list[str]:
        raw = self.string().decode("ascii")
        return raw.split(",") if raw else []

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def end(self) -> None:
        assert self.pos == len(self.data), "trailing bytes in client message"


# --- outcomes a script can run into ----------------------------------------------

class ClientGone(Exception):
    """The client closed the stream (or sent DISCONNECT): the script ends here, normally."""


class ClientDisconnected(ClientGone):
    """The client sent SSH_MSG_DISCONNECT where the script expected something else."""

    def __init__(self, reason: int, description: str) -> None:
        super().__init__(f"client sent DISCONNECT {reason}: {description}")
        self.reason = reason
        self.description = description


class ScriptTimeout(AssertionError):
    """The client sent nothing when the script expected it to (it hung, or the script is wrong)."""


# --- transports ------------------------------------------------------------------

class Pipe(Protocol):
    def send(self, data: bytes) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def close(self) -> None: ...


class SocketPipe:
    """The server end of a socketpair; every read is bounded by `timeout`."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        sock.settimeout(timeout)

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise ClientGone(f"send failed: {exc}") from exc

    def recv(self, size: int) -> bytes:
        try:
            data = self.sock.recv(size)
        except TimeoutError:
            raise ScriptTimeout("the client sent nothing within the timeout") from None
        except OSError as exc:
            raise ClientGone(f"recv failed: {exc}") from exc
        if not data:
            raise ClientGone("client closed the connection")
        return data

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class CorePipe:
    """Feeds a sans-IO `ClientConnection` directly; accepts its host key question.

    Every event the core produces is kept in `events` so a test can inspect
    what the client saw.  Single-threaded: if the script waits for bytes the
    client has no reason to send, that is a deadlock and raises ScriptTimeout.
    """

    def __init__(self, core: ClientConnection, accept_host_key: bool = True) -> None:
        self.core = core
        self.accept_host_key = accept_host_key
        self.events: list[ev.Event] = []
        self._pending = bytearray()
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ClientGone("pipe closed")
        self._absorb(self.core.receive_data(data))

    def _absorb(self, events: list[ev.Event]) -> None:
        queue = list(events)
        while queue:
            event = queue.pop(0)
            self.events.append(event)
            if isinstance(event, ev.HostKeyVerificationRequested) and self.accept_host_key:
                queue.extend(self.core.accept_host_key())

    def recv(self, size: int) -> bytes:
        if not self._pending:
            self._pending += self.core.data_to_send()
        if not self._pending:
            if self.core.closed or self.closed:
                raise ClientGone("client core closed")
            raise ScriptTimeout("the client core has nothing to send (deadlock)")
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def close(self) -> None:
        self.closed = True

    @property
    def error(self) -> sshlib.SSHError | None:
        """Why the core terminated, or None if it is still alive."""
        for event in self.events:
            if isinstance(event, ev.ConnectionTerminated):
                return event.error
        return None


# --- keys and channels ---------------------------------------------------------------

@dataclass
class _GCMDirection:
    """aes-gcm for one direction: 4-byte fixed IV part, 64-bit invocation counter."""

    aead: AESGCM
    fixed: bytes
    counter: int

    def nonce(self) -> bytes:
        nonce = self.fixed + self.counter.to_bytes(8, "big")
        self.counter = (self.counter + 1) % (1 << 64)
        return nonce


def derive(shared: bytes, exchange_hash: bytes, letter: bytes, session_id: bytes,
           length: int) -> bytes:
    """RFC 4253 7.2, written out again on purpose (see the module docstring)."""
    out = hashlib.sha256(shared + exchange_hash + letter + session_id).digest()
    while len(out) < length:
        out += hashlib.sha256(shared + exchange_hash + out).digest()
    return out[:length]


@dataclass
class Channel:
    """A channel as the server sees it."""

    client_id: int
    server_id: int
    kind: str
    client_window: int  # what we may still send
    client_max_packet: int
    extra: bytes = b""


@dataclass
class KexInitFields:
    kex: list[str]
    host_key: list[str]
    ciphers_c2s: list[str]
    ciphers_s2c: list[str]
    macs_c2s: list[str]
    macs_s2c: list[str]
    compression_c2s: list[str]
    compression_s2c: list[str]
    first_kex_follows: bool

    @classmethod
    def parse(cls, payload: bytes) -> KexInitFields:
        p = Parser(payload, 17)
        lists = [p.names() for _ in range(10)]
        follows = p.boolean()
        assert p.u32() == 0, "KEXINIT reserved field must be 0"
        p.end()
        return cls(lists[0], lists[1], lists[2], lists[3], lists[4], lists[5], lists[6],
                   lists[7], follows)


@dataclass
class _PendingKeys:
    shared: bytes
    exchange_hash: bytes
    c2s: str
    s2c: str
    host_key_blob: bytes


# --- the server ----------------------------------------------------------------------

class ServerSide:
    """The server half of one SSH connection, as a set of scriptable steps."""

    def __init__(self, pipe: Pipe, *, host_key: keys.PrivateKey | None = None,
                 version: bytes = DEFAULT_VERSION) -> None:
        self.pipe = pipe
        self.host_key = host_key or keys.generate_private_key("ssh-ed25519")
        self.version = version
        self.client_version: bytes | None = None
        self.session_id: bytes | None = None
        self.strict = False
        self.kex_count = 0
        self.seq_in = 0
        self.seq_out = 0
        self.last_sent_seq = -1
        self.bytes_sent = 0
        self.received: list[bytes] = []  # every payload the client sent, in order
        self.disconnect: tuple[int, str] | None = None  # the client's DISCONNECT, if any
        self.server_kexinit: bytes | None = None
        self.client_kexinit: bytes | None = None
        self.client_kexinit_fields: KexInitFields | None = None
        self._offered_strict = False
        self._pending: _PendingKeys | None = None
        self._out: _GCMDirection | None = None
        self._in: _GCMDirection | None = None
        self._next_out: _GCMDirection | None = None
        self._next_in: _GCMDirection | None = None
        self._buf = bytearray()
        self._next_channel_id = 1000
        self.closed = False
        #: When set (FakeServer(gated=True)), session_ready() waits for the test to open it.
        self.gate: threading.Event | None = None

    # --- raw bytes -------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        """Send bytes exactly as given: no framing, no encryption."""
        self.bytes_sent += len(data)
        self.pipe.send(data)

    def recv_exact(self, count: int) -> bytes:
        while len(self._buf) < count:
            self._buf += self.pipe.recv(max(count - len(self._buf), 65536))
        out = bytes(self._buf[:count])
        del self._buf[:count]
        return out

    def recv_line(self, limit: int = 255) -> bytes:
        """One line up to LF, without CR LF (for the client's identification)."""
        line = bytearray()
        while not line.endswith(b"\n"):
            line += self.recv_exact(1)
            assert len(line) <= limit, "client identification line too long"
        return bytes(line.rstrip(b"\r\n"))

    def close(self) -> None:
        """Close our end of the stream (the client sees EOF)."""
        if not self.closed:
            self.closed = True
            self.pipe.close()

    # --- version exchange --------------------------------------------------------
    def send_version(self, line: bytes | None = None) -> None:
        """Our identification line; CR LF is appended."""
        self.version = self.version if line is None else line
        self.send_raw(self.version + b"\r\n")

    def recv_version(self) -> bytes:
        line = self.recv_line()
        assert line.startswith(b"SSH-2.0-"), line
        self.client_version = line
        return line

    # --- packets -----------------------------------------------------------------
    def seal(self, payload: bytes, *, padding: bytes | None = None,
             padding_length: int | None = None, packet_length: int | None = None,
             flip_bit: int | None = None) -> bytes:
        """Frame (and, after NEWKEYS, encrypt) one packet; uses up a sequence number.

        The keyword arguments lie on purpose: `padding` replaces the padding
        bytes, `padding_length`/`packet_length` override just the header fields,
        `flip_bit` flips bit n of the finished wire bytes (negative counts from
        the end, so -1 is the last bit of the tag).
        """
        keys_out = self._out
        block, aadlen = (8, 0) if keys_out is None else (16, 4)
        if padding is None:
            count = block - (4 - aadlen + 1 + len(payload)) % block
            if count < 4:
                count += block
            padding = os.urandom(count)
        padlen = len(padding) if padding_length is None else padding_length
        plen = 1 + len(payload) + len(padding) if packet_length is None else packet_length
        header = u32(plen)
        body = bytes((padlen,)) + payload + padding
        wire = header + body if keys_out is None else header + keys_out.aead.encrypt(
            keys_out.nonce(), body, header)
        if flip_bit is not None:
            index = flip_bit if flip_bit >= 0 else len(wire) * 8 + flip_bit
            raw = bytearray(wire)
            raw[index // 8] ^= 0x80 >> (index % 8)
            wire = bytes(raw)
        self.last_sent_seq = self.seq_out
        self.seq_out = (self.seq_out + 1) & 0xFFFFFFFF
        return wire

    def send_payload(self, payload: bytes, **lies: Any) -> None:
        """Send one message with the current keys; see `seal` for the ways to lie."""
        self.send_raw(self.seal(payload, **lies))

    def recv_payload(self) -> bytes:
        """The client's next message, checked for correct framing."""
        head = self.recv_exact(4)
        plen = _U32.unpack(head)[0]
        assert plen <= 256 * 1024, f"client sent packet_length {plen}"
        if self._in is None:
            body = self.recv_exact(plen)
            assert (4 + plen) % 8 == 0, "client packet not aligned to 8"
        else:
            assert plen % 16 == 0, "client packet not aligned to 16"
            body = self._in.aead.decrypt(self._in.nonce(), self.recv_exact(plen + 16), head)
        padlen = body[0]
        assert 4 <= padlen < plen, f"client padding length {padlen}"
        payload = body[1:plen - padlen]
        self.seq_in = (self.seq_in + 1) & 0xFFFFFFFF
        self.received.append(payload)
        if payload[:1] == bytes((DISCONNECT,)):
            p = Parser(payload, 1)
            self.disconnect = (p.u32(), p.text())
        elif payload == bytes((NEWKEYS,)) and self._next_in is not None:
            # The client's next packet uses the new keys (RFC 4253 7.3).
            self._in, self._next_in = self._next_in, None
            if self.strict:
                self.seq_in = 0
            self.kex_count += 1
        return payload

    def recv_message(self, *types: int) -> bytes:
        """The next message of one of `types`, skipping IGNORE/DEBUG."""
        while True:
            payload = self.recv_payload()
            if payload[0] in types:
                return payload
            if payload[0] in (IGNORE, DEBUG):
                continue
            if payload[0] == DISCONNECT:
                assert self.disconnect is not None
                raise ClientDisconnected(*self.disconnect)
            raise AssertionError(f"expected message {types}, client sent {payload[0]}: "
                                 f"{payload[:64]!r}")

    def expect_disconnect(self) -> tuple[int, str]:
        """Read until the client's DISCONNECT; return (reason, description)."""
        while self.disconnect is None:
            self.recv_payload()
        return self.disconnect

    def drain(self) -> None:
        """Read (decrypting while we can) until the client closes the stream."""
        try:
            while True:
                self.recv_payload()
        except (ClientGone, ScriptTimeout):
            raise
        except Exception:  # we lost the framing (the script broke it): just read raw bytes
            while True:
                self.pipe.recv(65536)

    # --- key exchange ----------------------------------------------------------------
    def kexinit_payload(self, *, kex: Iterable[str] = (KEX_NAME,),
                        host_key: Iterable[str] | None = None,
                        ciphers: Iterable[str] = ("aes128-gcm@openssh.com",),
                        macs: Iterable[str] = ("hmac-sha2-256",),
                        compression: Iterable[str] = ("none",), strict: bool = True,
                        first_kex_follows: bool = False) -> bytes:
        kex = list(kex)
        if strict and self.kex_count == 0:
            kex.append(STRICT_SERVER)
        host_key = [self.host_key.public_key.key_type] if host_key is None else list(host_key)
        ciphers = list(ciphers)
        macs = list(macs)
        compression = list(compression)
        return b"".join((bytes((KEXINIT,)), os.urandom(16), namelist(kex), namelist(host_key),
                         namelist(ciphers), namelist(ciphers), namelist(macs), namelist(macs),
                         namelist(compression), namelist(compression), namelist([]),
                         namelist([]), bytes((first_kex_follows,)), u32(0)))

    def send_kexinit(self, **options: Any) -> bytes:
        """Send our KEXINIT (options as for `kexinit_payload`)."""
        payload = self.kexinit_payload(**options)
        self.server_kexinit = payload
        self._offered_strict = STRICT_SERVER in Parser(payload, 17).names()
        self.send_payload(payload)
        return payload

    def recv_kexinit(self) -> KexInitFields:
        """The client's KEXINIT (anything it sent before it is kept in `received`)."""
        while True:
            payload = self.recv_payload()
            if payload[0] == KEXINIT:
                break
            if payload[0] == DISCONNECT:
                assert self.disconnect is not None
                raise ClientDisconnected(*self.disconnect)
            assert self.kex_count > 0, f"client sent {payload[0]} before its first KEXINIT"
        self.client_kexinit = payload
        fields = KexInitFields.parse(payload)
        self.client_kexinit_fields = fields
        if self.kex_count == 0:
            self.strict = self._offered_strict and STRICT_CLIENT in fields.kex
        return fields

    def recv_kex_ecdh_init(self) -> bytes:
        """The client's ephemeral X25519 public value Q_C."""
        p = Parser(self.recv_message(KEX_ECDH_INIT), 1)
        q_c = p.string()
        p.end()
        return q_c

    def _choose_cipher(self, client: list[str], ours: list[str]) -> str:
        for name in client:
            if name in ours:
                assert name in _GCM_KEY_SIZES, f"fake server cannot do {name}"
                return name
        raise AssertionError(f"no common cipher: client {client}, server {ours}")

    def kex_reply(self, q_c: bytes, *, host_key: keys.PrivateKey | None = None,
                  sign_with: keys.PrivateKey | None = None, host_key_blob: bytes | None = None,
                  server_public: bytes | None = None, tamper_hash: bool = False,
                  signature: bytes | None = None, signature_algorithm: str | None = None) -> bytes:
        """SSH_MSG_KEX_ECDH_REPLY for curve25519-sha256 (RFC 8731, RFC 5656 4).

        H = SHA256(string V_C || string V_S || string I_C || string I_S ||
        string K_S || string Q_C || string Q_S || mpint K).  The keywords lie:
        another `host_key` (K_S and signer), `sign_with` a key that is not K_S,
        raw `host_key_blob`, a chosen `server_public` Q_S, a signature over a
        `tamper_hash`-ed H, or a raw `signature` blob.
        """
        assert self.client_version is not None and self.client_kexinit is not None
        assert self.server_kexinit is not None
        key = host_key or self.host_key
        blob = key.public_key.blob if host_key_blob is None else host_key_blob
        private = x25519.X25519PrivateKey.generate()
        q_s = private.public_key().public_bytes_raw() if server_public is None else server_public
        if len(q_c) == 32 and server_public is None:
            raw = private.exchange(x25519.X25519PublicKey.from_public_bytes(q_c))
        else:
            raw = os.urandom(32)
        shared = mpint_of(int.from_bytes(raw, "big"))
        exchange_hash = hashlib.sha256(b"".join((
            sshstr(self.client_version), sshstr(self.version), sshstr(self.client_kexinit),
            sshstr(self.server_kexinit), sshstr(blob), sshstr(q_c), sshstr(q_s),
            shared))).digest()
        signed = exchange_hash if not tamper_hash else bytes((exchange_hash[0] ^ 1,)) + \
            exchange_hash[1:]
        if signature is None:
            signer = sign_with or key
            algorithm = signature_algorithm or signer.public_key.signature_algorithms[0]
            signature = signer.sign(signed, algorithm)
        client = self.client_kexinit_fields
        assert client is not None
        ours = KexInitFields.parse(self.server_kexinit)
        self._pending = _PendingKeys(
            shared, exchange_hash,
            self._choose_cipher(client.ciphers_c2s, ours.ciphers_c2s),
            self._choose_cipher(client.ciphers_s2c, ours.ciphers_s2c), blob)
        self._install_pending()
        return bytes((KEX_ECDH_REPLY,)) + sshstr(blob) + sshstr(q_s) + sshstr(signature)

    def _install_pending(self) -> None:
        pending = self._pending
        assert pending is not None
        session_id = self.session_id or pending.exchange_hash

        def direction(cipher: str, iv_letter: bytes, key_letter: bytes) -> _GCMDirection:
            iv = derive(pending.shared, pending.exchange_hash, iv_letter, session_id, 12)
            key = derive(pending.shared, pending.exchange_hash, key_letter, session_id,
                         _GCM_KEY_SIZES[cipher])
            return _GCMDirection(AESGCM(key), iv[:4], int.from_bytes(iv[4:], "big"))

        self._next_in = direction(pending.c2s, b"A", b"C")
        self._next_out = direction(pending.s2c, b"B", b"D")

    def send_newkeys(self) -> None:
        """Send NEWKEYS and switch our outgoing direction to the new keys."""
        assert self._next_out is not None and self._pending is not None
        self.send_payload(bytes((NEWKEYS,)))
        self._out, self._next_out = self._next_out, None
        if self.session_id is None:
            self.session_id = self._pending.exchange_hash
        if self.strict:
            self.seq_out = 0

    def recv_newkeys(self) -> None:
        """Wait for the client's NEWKEYS and switch our incoming direction."""
        assert self._next_in is not None, "no key exchange in progress"
        payload = self.recv_message(NEWKEYS)
        assert payload == bytes((NEWKEYS,))  # recv_payload switched the keys

    def do_kex(self, *, initiate: bool = True, reply: dict[str, Any] | None = None,
               **kexinit_options: Any) -> None:
        """A whole curve25519-sha256 exchange: KEXINIT both ways, reply, NEWKEYS both ways.

        With initiate=False the client's KEXINIT is read first (a client rekey).
        `reply` holds keyword lies for `kex_reply`.
        """
        if initiate:
            self.send_kexinit(**kexinit_options)
            self.recv_kexinit()
        else:
            self.recv_kexinit()
            self.send_kexinit(**kexinit_options)
        self.finish_kex(**(reply or {}))

    def finish_kex(self, **reply: Any) -> None:
        """The rest of an exchange once both KEXINITs are out: reply, NEWKEYS both ways."""
        q_c = self.recv_kex_ecdh_init()
        self.send_payload(self.kex_reply(q_c, **reply))
        self.send_newkeys()
        self.recv_newkeys()

    def handshake(self, **kexinit_options: Any) -> None:
        """Version exchange plus the first key exchange (strict by default)."""
        self.send_version()
        self.recv_version()
        self.do_kex(**kexinit_options)

    # --- user authentication ---------------------------------------------------------
    def accept_service(self) -> None:
        p = Parser(self.recv_message(SERVICE_REQUEST), 1)
        assert p.text() == "ssh-userauth"
        self.send_payload(bytes((SERVICE_ACCEPT,)) + sshstr("ssh-userauth"))

    def accept_auth(self, allow: Iterable[str] = ("none",), *, password: str | None = None,
                    user: str | None = None) -> str:
        """Run ssh-userauth until a request with an allowed method succeeds; return the method.

        password: the one password accepted (None: any).  publickey requests get
        PK_OK and then must carry a signature that verifies over the session id.
        """
        allowed = list(allow)
        self.accept_service()
        while True:
            payload = self.recv_message(USERAUTH_REQUEST)
            p = Parser(payload, 1)
            got_user = p.text()
            assert p.text() == "ssh-connection"
            method = p.text()
            assert user is None or got_user == user, got_user
            ok = False
            if method in allowed and method == "none":
                ok = True
            elif method in allowed and method == "password":
                assert not p.boolean()
                ok = password is None or p.text() == password
            elif method in allowed and method == "publickey":
                signed = p.boolean()
                algorithm = p.text()
                blob = p.string()
                if not signed:
                    self.send_payload(bytes((USERAUTH_PK_OK,)) + sshstr(algorithm) + sshstr(blob))
                    continue
                body = payload[:p.pos]
                signature = p.string()
                assert self.session_id is not None
                public = keys.parse_public_key(blob)
                ok = public.verify(sshstr(self.session_id) + body, signature, algorithm)
            if ok:
                self.send_payload(bytes((USERAUTH_SUCCESS,)))
                return method
            self.send_payload(bytes((USERAUTH_FAILURE,)) +
                              namelist([m for m in allowed if m != "none"]) + b"\x00")

    # --- channels ----------------------------------------------------------------------
    def expect_channel_open(self, *, window: int = 1 << 20, max_packet: int = 32768,
                            confirm: bool = True) -> Channel:
        """Read the client's CHANNEL_OPEN and (by default) confirm it with this window."""
        p = Parser(self.recv_message(CHANNEL_OPEN), 1)
        kind = p.text()
        client_id = p.u32()
        client_window = p.u32()
        client_max = p.u32()
        channel = Channel(client_id, self._next_channel_id, kind, client_window, client_max,
                          p.rest())
        self._next_channel_id += 1
        if confirm:
            self.send_payload(bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(client_id) +
                              u32(channel.server_id) + u32(window) + u32(max_packet))
        return channel

    def expect_channel_request(self, name: str | None = None) -> tuple[str, bool, bytes]:
        """(request name, want_reply, request-specific data) of the next CHANNEL_REQUEST."""
        p = Parser(self.recv_message(CHANNEL_REQUEST), 1)
        p.u32()
        request = p.text()
        want_reply = p.boolean()
        assert name is None or request == name, f"expected {name!r}, got {request!r}"
        return request, want_reply, p.rest()

    def reply(self, channel: Channel, success: bool = True) -> None:
        kind = CHANNEL_SUCCESS if success else CHANNEL_FAILURE
        self.send_payload(bytes((kind,)) + u32(channel.client_id))

    def serve_session(self, *, window: int = 1 << 20, max_packet: int = 32768,
                      request: str = "exec") -> tuple[Channel, bytes]:
        """Accept a session channel and its exec (or shell/subsystem) request."""
        channel = self.expect_channel_open(window=window, max_packet=max_packet)
        assert channel.kind == "session"
        _, want_reply, data = self.expect_channel_request(request)
        if want_reply:
            self.reply(channel)
        return channel, data

    def session_ready(self, *, strict: bool = True, **serve: Any) -> Channel:
        """Handshake, "none" auth, and a session channel running one command.

        If the server is gated, wait for the test's go-ahead before returning,
        so that what the script does next meets a client that is idle.
        """
        self.handshake(strict=strict)
        self.accept_auth()
        channel = self.serve_session(**serve)[0]
        self.wait_gate()
        return channel

    def wait_gate(self) -> None:
        """Block until the test calls FakeServer.open_gate() (no-op when not gated)."""
        if self.gate is not None and not self.gate.wait(10):
            raise ScriptTimeout("the test never opened the gate")

    def send_data(self, channel: Channel, data: bytes, *, stderr: bool = False,
                  recipient: int | None = None) -> None:
        to = channel.client_id if recipient is None else recipient
        if stderr:
            self.send_payload(bytes((CHANNEL_EXTENDED_DATA,)) + u32(to) + u32(1) + sshstr(data))
        else:
            self.send_payload(bytes((CHANNEL_DATA,)) + u32(to) + sshstr(data))

    def send_exit_status(self, channel: Channel, status: int) -> None:
        self.send_payload(bytes((CHANNEL_REQUEST,)) + u32(channel.client_id) +
                          sshstr("exit-status") + b"\x00" + u32(status))

    def send_eof(self, channel: Channel) -> None:
        self.send_payload(bytes((CHANNEL_EOF,)) + u32(channel.client_id))

    def send_close(self, channel: Channel) -> None:
        self.send_payload(bytes((CHANNEL_CLOSE,)) + u32(channel.client_id))

    def finish_command(self, channel: Channel, status: int = 0) -> None:
        """exit-status, EOF, CLOSE; then wait for the client's CLOSE."""
        self.send_exit_status(channel, status)
        self.send_eof(channel)
        self.send_close(channel)
        self.recv_message(CHANNEL_CLOSE)

    def send_disconnect(self, reason: int = 11, description: str = "bye") -> None:
        self.send_payload(bytes((DISCONNECT,)) + u32(reason) + sshstr(description) + sshstr(""))


# --- the threaded harness ----------------------------------------------------------------

Script = Callable[[ServerSide], None]


class FakeServer:
    """Run ``script(server)`` in a thread on one end of a socketpair.

    After the script returns, the server keeps reading (recording the client's
    DISCONNECT) until the client closes its end.  A script that ends because
    the client went away is normal (`client_gone` says why); any other
    exception in the script is re-raised by `join()` / the ``with`` block so a
    wrong server never passes silently.
    """

    def __init__(self, script: Script, *, host_key: keys.PrivateKey | None = None,
                 version: bytes = DEFAULT_VERSION, timeout: float = 10.0,
                 gated: bool = False) -> None:
        self.client_sock, server_sock = socket.socketpair()
        self.server = ServerSide(SocketPipe(server_sock, timeout), host_key=host_key,
                                 version=version)
        self.server.gate = threading.Event() if gated else None
        self.error: BaseException | None = None
        self.client_gone: ClientGone | None = None
        self._script = script
        self._script_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fakeserver", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        server = self.server
        try:
            try:
                self._script(server)
            except ClientGone as exc:
                self.client_gone = exc
            except BaseException as exc:
                self.error = exc
            self._script_done.set()
            if self.error is None and not server.closed:
                server.drain()  # even after ClientGone: its DISCONNECT may still be buffered
        except ClientGone:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self._script_done.set()
            server.close()

    # --- convenience for tests ---------------------------------------------------------
    @property
    def host_key(self) -> keys.PublicKey:
        return self.server.host_key.public_key

    @property
    def disconnect(self) -> tuple[int, str] | None:
        """The DISCONNECT (reason, description) the client sent, if any."""
        return self.server.disconnect

    def config(self, **overrides: Any) -> sshlib.ClientConfig:
        options: dict[str, Any] = {"user": "tester",
                                   "host_key_callback": sshlib.fixed_host_key(self.host_key),
                                   "timeout": 5.0}
        options.update(overrides)
        return sshlib.ClientConfig(**options)

    def connect(self, timeout: float = 5.0, **overrides: Any) -> sshlib.Client:
        """sshlib.Client over our socketpair (handshake and auth run here)."""
        return sshlib.Client(self.client_sock, self.config(**overrides), addr=("fake", 22),
                             timeout=timeout)

    def open_gate(self) -> None:
        """Let a gated script go on (see ServerSide.session_ready)."""
        assert self.server.gate is not None, "FakeServer(gated=True) was not used"
        self.server.gate.set()

    def wait_script(self, timeout: float = 5.0) -> None:
        """Wait until the script has done all it meant to; fail if it could not."""
        if not self._script_done.wait(timeout):
            raise AssertionError("the fake server script did not finish in time")
        if self.error is not None:
            raise self.error
        if self.client_gone is not None:
            raise AssertionError(f"the client went away before the script finished: "
                                 f"{self.client_gone}")

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the script (and the drain after it); re-raise its failure."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("fake server script still running")
        if self.error is not None:
            raise self.error

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.server.gate is not None:
            self.server.gate.set()
        try:
            self.client_sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.client_sock.close()
        if exc_type is None:
            self.join()
        else:
            self._thread.join(10)


def run_core(script: Script, *, core: ClientConnection | None = None,
             config: sshlib.ClientConfig | None = None,
             host_key: keys.PrivateKey | None = None) -> tuple[ServerSide, CorePipe]:
    """Run a script against a sans-IO ClientConnection in this thread (no sockets)."""
    host_key = host_key or keys.generate_private_key("ssh-ed25519")
    if core is None:
        config = config or sshlib.ClientConfig(
            user="tester", host_key_callback=sshlib.fixed_host_key(host_key.public_key))
        core = ClientConnection(config, rng=os.urandom, now=0.0)
    pipe = CorePipe(core)
    server = ServerSide(pipe, host_key=host_key)
    script(server)
    return server, pipe

