"""The client connection core: bytes in, events and bytes out.

It stacks the layers the way Go's x/crypto/ssh does (version exchange ->
packets -> handshake -> userauth -> connection) and dispatches incoming
messages by number range: 1-19 transport, 20-49 key exchange, 50-79 user
auth, 80-127 connection.  Errors never escape `receive_data`: they end the
connection with a `ConnectionTerminated` event carrying a typed error, after
queueing a DISCONNECT for the peer where one is due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .. import algorithms as algs
from .. import messages as m
from ..config import ClientConfig
from ..errors import (
    AuthError,
    ConnectionLost,
    DecodeError,
    DisconnectError,
    HostKeyError,
    KexError,
    ProtocolError,
    SSHError,
)
from ..keys import PublicKey
from ..wire import Reader, Writer
from .connection import Connection
from .events import AuthSucceeded, ConnectionTerminated, Event, KexCompleted
from .handshake import Handshake
from .packets import PacketLayer
from .rand import Random
from .userauth import UserAuth
from .version import CLIENT_VERSION, VersionExchange

log = logging.getLogger("sshlib.client")

_TRANSPORT_OK_DURING_KEX = frozenset({m.MSG_DISCONNECT, m.MSG_IGNORE, m.MSG_UNIMPLEMENTED,
                                      m.MSG_DEBUG})
# Numbers RFC 4250 assigns in the user auth and connection ranges; anything else there
# gets UNIMPLEMENTED (RFC 4253 11.4), as OpenSSH does.
#: Agent forwarding, as OpenSSH always named it and as RFC 9987 names it.
AGENT_REQ_OPENSSH = "auth-agent-req@openssh.com"
AGENT_REQ = "agent-req"
EXT_AGENT_FORWARD = "agent-forward"
_ASSIGNED_AUTH_CONN = frozenset({50, 51, 52, 53, 60, 61, 80, 81, 82, *range(90, 101)})


class ClientConnection:
    """One SSH client connection, free of I/O."""

    def __init__(self, config: ClientConfig, *, rng: Random, now: float,
                 client_version: bytes | None = None) -> None:
        self.config = config
        self._rng = rng
        self._now = now
        if client_version is None:
            client_version = (config.client_version.encode("ascii") if config.client_version
                              else CLIENT_VERSION)
        self.client_version = client_version
        self._version = VersionExchange()
        self._packets = PacketLayer(rng)
        self._handshake: Handshake | None = None
        self._userauth: UserAuth | None = None
        self.connection = Connection(self._send, config.window_size, config.max_packet_size,
                                     send_parts=self._send)
        self.server_sig_algs: list[str] | None = None
        #: The server advertised publickey-hostbound@openssh.com in EXT_INFO.
        self.server_hostbound = False
        #: The server's EXT_INFO said "agent-forward" (RFC 9987; OpenSSH >= 10.3).
        self.server_agent_forward = False
        self.authenticated = False
        self.error: SSHError | None = None
        self.closed = False
        self._events: list[Event] = []
        self._greeting = client_version + b"\r\n"
        # Keepalive (ClientConfig.keepalive_interval): bytes arrived since the last tick,
        # when the next keepalive is due, and how many went unanswered.
        self._heard = False
        self._keepalive_due: float | None = None
        self._keepalives_unanswered = 0

    # --- front-end plumbing ----------------------------------------------------
    def data_to_send(self) -> bytes:
        """Take every byte queued for the peer (the version line first); b"" when none.

        The caller must write them in order before the next call's bytes.  Never raises.
        """
        data = self._packets.data_to_send()
        if self._greeting:
            data, self._greeting = self._greeting + data, b""
        return data

    def data_to_send_view(self) -> bytes | memoryview:
        """As data_to_send(), but packets come as a view of the core's output buffer (no
        copy), valid until the next data_to_send_view() call: send it all before then."""
        if self._greeting:
            return self.data_to_send()
        return self._packets.data_to_send_view()

    def has_data_to_send(self) -> bool:
        """True when `data_to_send()` would return bytes (cheap; a sender's loop test)."""
        return bool(self._greeting) or self._packets.has_data_to_send()

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; b"" means the peer closed the stream."""
        if self.closed:
            return []
        self._heard = True
        try:
            if not data:
                raise ConnectionLost("the server closed the connection")
            if self._handshake is None:
                rest = self._version.feed(data)
                if rest is None:
                    return []
                self._start_handshake()
                data = rest
            self._packets.feed(data)
            self._process()
        except SSHError as exc:
            self._fail(exc)
        return self._take_events()

    def tick(self, now: float) -> list[Event]:
        """Tell the core the time; it may start a time-based rekey or send a keepalive.

        With ClientConfig.keepalive_interval set, a server silent for that
        long is asked for a reply (keepalive@openssh.com); after
        keepalive_count_max unanswered asks the connection ends with
        ConnectionLost.  Call at least every `tick_interval()` seconds.
        """
        self._now = now
        if self._handshake is not None and not self.closed:
            self._handshake.now = now
            try:
                self._maybe_rekey()
                self._keepalive(now)
            except SSHError as exc:
                self._fail(exc)
        return self._take_events()

    def tick_interval(self, default: float) -> float:
        """How often the front-end should call tick(): `default`, or sooner for keepalives."""
        interval = self.config.keepalive_interval
        return default if interval is None else min(default, max(0.05, interval / 4))

    def _keepalive(self, now: float) -> None:
        interval = self.config.keepalive_interval
        if interval is None or not self.authenticated:
            return
        if self._heard or self._keepalive_due is None:
            self._heard = False
            self._keepalives_unanswered = 0
            self._keepalive_due = now + interval
            return
        if now < self._keepalive_due:
            return
        count = self.config.keepalive_count_max
        if self._keepalives_unanswered >= count:
            silent = interval * (count + 1)
            raise ConnectionLost(f"the server did not answer {count} keepalives: no data for "
                                 f"about {silent:g} s (keepalive_interval {interval:g} s)")
        self._keepalives_unanswered += 1
        self._keepalive_due = now + interval
        log.debug("server silent for %g s: keepalive %d of %d", interval,
                  self._keepalives_unanswered, count)
        self.connection.global_request("keepalive@openssh.com", internal=True)

    def close(self, description: str = "closed by application") -> None:
        """Send DISCONNECT (if we can) and stop; no events follow."""
        if self.closed:
            return
        if self._handshake is not None:
            self._send_disconnect(m.DISCONNECT_BY_APPLICATION, description)
        self.closed = True

    def connection_lost(self, error: SSHError | None = None) -> list[Event]:
        """The stream ended or failed: end the connection with `error` (ConnectionLost by default).

        Returns the ConnectionTerminated event (and the channels' ends follow from it in the
        driver); [] if the connection had already ended.
        """
        if not self.closed:
            self._fail(error or ConnectionLost("connection lost"))
        return self._take_events()

    # --- answers to the core's questions ------------------------------------------
    def accept_host_key(self) -> list[Event]:
        """Answer HostKeyVerificationRequested with yes: NEWKEYS goes out and processing resumes.

        Returns the events that the buffered input yields.  Call it only after that event
        (otherwise the connection ends with ProtocolError, also before any key exchange began);
        errors end the connection as events.  After the connection ended it does nothing.
        """
        if self.closed:
            return self._take_events()
        try:
            if self._handshake is None:
                raise ProtocolError("no host key is awaiting verification (no key exchange yet)")
            self._handshake.accept_host_key()
            self._process()
        except SSHError as exc:
            self._fail(exc)
        return self._take_events()

    def reject_host_key(self, error: HostKeyError) -> list[Event]:
        """Answer HostKeyVerificationRequested with no: end the connection with `error`.

        Queues DISCONNECT (host key not verifiable) for the peer; returns the
        ConnectionTerminated event carrying `error`.
        """
        self._fail(error)
        return self._take_events()

    def provide_signature(self, signature: bytes) -> list[Event]:
        """Answer SignatureRequested with the signer's signature blob; returns the events that
        follow.

        Outside a pending signature request the connection ends with ProtocolError (as an event).
        """
        return self._auth_answer(lambda ua: ua.provide_signature(signature))

    def signature_failed(self) -> list[Event]:
        """Answer SignatureRequested with "could not sign": authentication moves on to the next
        key/method.

        When nothing is left the events end the connection with AuthError.
        """
        return self._auth_answer(lambda ua: self._events.extend(ua.signature_failed()))

    def answer_prompts(self, answers: Sequence[str]) -> list[Event]:
        """Answer PromptsRequested (keyboard-interactive): one answer per prompt, in order.

        Returns the events that follow; outside pending prompts the connection ends with
        ProtocolError.
        """
        return self._auth_answer(lambda ua: ua.answer_prompts(list(answers)))

    def _auth_answer(self, action: object) -> list[Event]:
        if self.closed:
            return self._take_events()
        try:
            if self._userauth is None:
                raise ProtocolError("authentication has not started")
            action(self._userauth)  # type: ignore[operator]
        except SSHError as exc:
            self._fail(exc)
        return self._take_events()

    # --- state -------------------------------------------------------------------
    @property
    def algorithms(self) -> algs.Algorithms | None:
        """The algorithms of the last completed key exchange; None before the first completes."""
        return self._handshake.algorithms if self._handshake else None

    @property
    def session_id(self) -> bytes | None:
        """The exchange hash of the first key exchange (fixed for the connection); None before it.
        """
        return self._handshake.session_id if self._handshake else None

    @property
    def session_signature(self) -> bytes:
        """The host key's signature over the session id (first key exchange), or b""."""
        return self._handshake.session_signature if self._handshake else b""

    @property
    def host_key(self) -> PublicKey | None:
        """The server's host key from the first key exchange; None before it.

        Its signature is checked; whether to trust it is the front-end's call (`accept_host_key`).
        """
        return self._handshake.host_key if self._handshake else None

    @property
    def server_version(self) -> bytes | None:
        """The server's identification line without CR LF; None until it arrived."""
        return self._version.server_version

    @property
    def agent_request_name(self) -> str:
        """The channel request that asks for agent forwarding on this connection.

        RFC 9987's ``agent-req`` when the server advertised ``agent-forward`` in
        EXT_INFO (OpenSSH >= 10.3), else ``auth-agent-req@openssh.com``; the
        server then opens ``agent-connect`` or ``auth-agent@openssh.com`` channels.
        """
        return AGENT_REQ if self.server_agent_forward else AGENT_REQ_OPENSSH

    @property
    def bytes_received(self) -> int:
        """Wire bytes of all packets received so far (after the version line)."""
        return self._packets.total_bytes_in

    @property
    def bytes_sent(self) -> int:
        """Wire bytes of all packets queued for sending so far (after the version line)."""
        return self._packets.total_bytes_out

    @property
    def kex_in_progress(self) -> bool:
        """True from either side's KEXINIT until both NEWKEYS (our own non-kex messages wait
        meanwhile).
        """
        return self._handshake is not None and self._handshake.in_progress

    def send_ignore(self, data: bytes = b"") -> None:
        """Queue an SSH_MSG_IGNORE carrying `data` (traffic padding, or a cheap keepalive).

        Raises the connection's error after it ended, ProtocolError before the version exchange.
        """
        self._send(Writer(m.MSG_IGNORE).string(data).getvalue())

    def start_rekey(self) -> None:
        """Start a key exchange now (the server may also ask for one at any time)."""
        if self._handshake is None or not self._handshake.first_kex_done:
            raise ProtocolError("cannot rekey before the first key exchange")
        self._handshake.start_kex()

    # --- internals -----------------------------------------------------------------
    def _send(self, payload: bytes | memoryview, head: bytes = b"") -> None:
        if self.closed:
            raise self.error or ConnectionLost("connection closed")
        if self._handshake is None:
            raise ProtocolError("cannot send before the version exchange")
        self._handshake.send(payload, head)
        if self._handshake.needs_rekey():
            self._handshake.start_kex()

    def _start_handshake(self) -> None:
        server_version = self._version.server_version
        assert server_version is not None
        log.debug("server version %s", server_version.decode("ascii", "replace"))
        self._handshake = Handshake(self.config, self._packets, self._rng, self.client_version,
                                    server_version, self._now)
        self._handshake.start_kex()

    def _process(self) -> None:
        hs = self._handshake
        assert hs is not None
        packets = self._packets
        events = self._events
        while not self.closed and not hs.awaiting_host_key_verdict:
            item = packets.next_payload()
            if item is None:
                break
            seq, payload = item
            if not payload:
                raise DecodeError("empty packet payload")
            msg_type = payload[0]
            if msg_type == m.MSG_CHANNEL_DATA and self.authenticated and not hs.receiving_kex:
                events.extend(self.connection.handle(msg_type, payload))  # hot path
                continue
            self._dispatch(hs, seq, msg_type, payload)
        self._maybe_rekey()

    def _dispatch(self, hs: Handshake, seq: int, msg_type: int, payload: bytes) -> None:
        events = self._events
        if msg_type == m.MSG_DISCONNECT:
            # Always allowed, even inside a strict initial key exchange (OpenSSH's packet.c
            # handles it before the strict-KEX check too): a server that gives up during
            # the exchange says why, and the caller must get that reason, not a KEX error.
            r = Reader(payload, 1)
            reason = r.uint32()
            description = r.text()
            raise DisconnectError(reason, description[:1024])
        is_kex = m.MSG_KEXINIT <= msg_type <= m.MSG_KEX_LAST
        if not hs.first_kex_done:
            if not hs.receiving_kex and msg_type != m.MSG_KEXINIT:
                hs.packets_before_kexinit += 1
            if hs.strict_initial and not is_kex and hs.receiving_kex:
                raise KexError(f"strict KEX: unexpected {m.name(msg_type)} during the initial "
                               f"key exchange")
        if is_kex:
            for event in hs.handle(msg_type, payload):
                events.append(event)
                if isinstance(event, KexCompleted) and event.first:
                    self._start_userauth()
            return
        if hs.receiving_kex and msg_type not in _TRANSPORT_OK_DURING_KEX:
            raise ProtocolError(f"unexpected {m.name(msg_type)} during key exchange")
        if msg_type == m.MSG_IGNORE:
            return
        if msg_type == m.MSG_DEBUG:
            r = Reader(payload, 1)
            r.boolean()
            log.debug("server debug message: %s", r.text()[:1024])
            return
        if msg_type == m.MSG_UNIMPLEMENTED:
            log.warning("server did not implement our packet %d", Reader(payload, 1).uint32())
            return
        if msg_type == m.MSG_EXT_INFO:
            self._on_ext_info(payload)
            return
        if 50 <= msg_type <= 127 and msg_type not in _ASSIGNED_AUTH_CONN:
            log.debug("replying UNIMPLEMENTED to unassigned message type %d", msg_type)
            self._send(Writer(m.MSG_UNIMPLEMENTED).uint32(seq).getvalue())
            return
        if m.MSG_SERVICE_REQUEST <= msg_type <= m.MSG_SERVICE_ACCEPT or 50 <= msg_type <= 79:
            if self._userauth is None or self.authenticated:
                raise ProtocolError(f"unexpected {m.name(msg_type)}")
            for event in self._userauth.handle(msg_type, payload):
                events.append(event)
                if isinstance(event, AuthSucceeded):
                    self.authenticated = True
                    hs.start_delayed_compression()
            return
        if 80 <= msg_type <= 127:
            if not self.authenticated:
                raise ProtocolError(f"{m.name(msg_type)} before authentication completed")
            events.extend(self.connection.handle(msg_type, payload))
            return
        log.debug("replying UNIMPLEMENTED to message type %d", msg_type)
        self._send(Writer(m.MSG_UNIMPLEMENTED).uint32(seq).getvalue())

    def _start_userauth(self) -> None:
        hs = self._handshake
        assert hs is not None and hs.session_id is not None
        rsa_sha1 = algs.INSECURE_HOSTKEY_SSH_RSA in (self.config.host_key_algorithms or ())
        assert hs.host_key is not None
        self._userauth = UserAuth(self.config.user, list(self.config.auth), self._send,
                                  lambda: self.server_sig_algs, rsa_sha1,
                                  host_key_blob=hs.host_key.blob,
                                  session_signature=hs.session_signature,
                                  hostbound=lambda: self.server_hostbound)
        self._userauth.start(hs.session_id)

    def _on_ext_info(self, payload: bytes) -> None:
        r = Reader(payload, 1)
        count = r.uint32()
        if count > 64:
            raise DecodeError(f"EXT_INFO with {count} extensions")
        for _ in range(count):
            name = r.text(256)
            value = r.string(65536)
            if name == "server-sig-algs":
                self.server_sig_algs = value.decode("ascii", "replace").split(",")
                log.debug("server-sig-algs: %s", ",".join(self.server_sig_algs))
            elif name == "publickey-hostbound@openssh.com" and value == b"0":
                self.server_hostbound = True
            elif name == EXT_AGENT_FORWARD and value == b"0":  # version "0", as OpenSSH checks
                self.server_agent_forward = True
                log.debug("server speaks the RFC 9987 agent-forwarding names")
        r.check_end()

    def _maybe_rekey(self) -> None:
        hs = self._handshake
        if hs is not None and hs.needs_rekey():
            log.info("starting rekey")
            hs.start_kex()

    def _send_disconnect(self, reason: int, description: str) -> None:
        try:
            self._packets.send(Writer(m.MSG_DISCONNECT).uint32(reason).string(description)
                               .string("").getvalue())
        except Exception:  # best effort: we are going away anyway
            log.debug("could not queue DISCONNECT", exc_info=True)

    def _fail(self, error: SSHError) -> None:
        if self.closed:
            return
        if self._handshake is not None and not isinstance(error, (DisconnectError,
                                                                  ConnectionLost)):
            if isinstance(error, AuthError):
                reason = m.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE
            elif isinstance(error, HostKeyError):
                reason = m.DISCONNECT_HOST_KEY_NOT_VERIFIABLE
            elif isinstance(error, ProtocolError):
                reason = error.disconnect_reason
            else:
                reason = m.DISCONNECT_BY_APPLICATION
            self._send_disconnect(reason, str(error)[:200])
        log.debug("connection terminated: %s", error)
        self.closed = True
        self.error = error
        self._events.append(ConnectionTerminated(error))

    def _take_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events
