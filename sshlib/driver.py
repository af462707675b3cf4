"""What every front-end does with the core, minus the I/O: one copy for sync and aio.

A front-end (sshlib.sync with threads, sshlib.aio with asyncio) owns the
socket, the clock and the waiting; everything else it would otherwise repeat
lives here: answering the core's handshake questions (host key, signature,
keyboard-interactive, banner), routing connection events to channel objects
(`sshlib.channelstate`), window credit, global request tickets, the registry
of handlers for channels the server opens (Go's HandleChannelOpen) and the
table of remote forwards those channels are matched against.

Nothing here blocks or waits, and this module imports no threading or
asyncio: a front-end subclasses `StreamChannel`/`SessionChannel` (to wake its
waiters in `wake()`) and `Driver` (to build its channels and to send what the
core queued, `flush()`), and calls these methods with whatever lock it needs
held.  Channels reach the connection only through that Driver interface.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .algorithms import Algorithms
from .channelstate import STDERR_KEEP, OutputCollector, SessionChannel, StreamChannel
from .config import ClientConfig
from .errors import (
    ChannelClosedError,
    ConnectionLost,
    DecodeError,
    HostKeyError,
    SSHError,
)
from .keys import PublicKey
from .messages import (
    OPEN_ADMINISTRATIVELY_PROHIBITED,
    OPEN_CONNECT_FAILED,
    OPEN_UNKNOWN_CHANNEL_TYPE,
)
from .protocol import events as ev
from .protocol import forwarding as fwd
from .protocol.client import AGENT_REQ_OPENSSH, ClientConnection

log = logging.getLogger("sshlib.client")

__all__ = ["Driver", "OpenRequest", "ChannelOpenHandler", "ForwardListener", "StreamChannel",
           "SessionChannel", "OutputCollector", "STDERR_KEEP", "ConnectionFacts",
           "split_address", "proxy_command_line", "Channel"]

Channel = StreamChannel  # the name front-ends used before the stream/session split
WRITE_CHUNK = 256 * 1024  # most bytes handed to the core per send_data call


def split_address(addr: str, default_port: int = 22) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 literal -> (host, port)."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if addr.count(":") == 1:
        host, _, port_text = addr.partition(":")
        return host, int(port_text)
    return addr, default_port


def proxy_command_line(command: str, host: str, port: int, user: str | None) -> str:
    """Expand OpenSSH's ProxyCommand tokens: %h host, %p port, %r user, %n host as given, %%."""
    values = {"h": host, "p": str(port), "r": user or "", "n": host, "%": "%"}
    out: list[str] = []
    i = 0
    while i < len(command):
        ch = command[i]
        if ch == "%" and i + 1 < len(command):
            token = command[i + 1]
            if token not in values:
                raise ValueError(f"unknown ProxyCommand token %{token} in {command!r}")
            out.append(values[token])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class OpenRequest:
    """A channel the server asks to open (Go's NewChannel); a handler answers it at once.

    `kind` and `payload` (the type-specific extra data) say what the server
    wants; call `accept()` (returns the front-end's channel, already open) or
    `reject(reason, message)`.  Unanswered requests are rejected when the
    handler returns.
    """

    def __init__(self, driver: Driver, event: ev.ChannelOpenRequested) -> None:
        self.kind = event.kind
        self.payload = event.payload
        self._driver = driver
        self._event = event
        self.answered = False
        #: The channel accept() opened, if it did.
        self.channel: StreamChannel | None = None

    def accept(self) -> StreamChannel:
        """Open the channel and return the front-end's channel object, already open.

        The handler must hand it on (to a listener, a bridge) at once: it runs in the
        reader with the connection lock held.  SSHError if the request was already answered.
        """
        if self.answered:
            raise SSHError("channel open request already answered")
        self.answered = True
        event = self._event
        driver = self._driver
        channel = driver.make_stream(event.kind)
        channel.id = driver.core.connection.accept_channel(
            event.sender_channel, event.kind, event.initial_window, event.max_packet)
        channel.opened = True
        driver.channels[channel.id] = channel
        log.debug("accepted %s channel %d opened by the server", event.kind, channel.id)
        self.channel = channel
        return channel

    def reject(self, reason: int = OPEN_ADMINISTRATIVELY_PROHIBITED, message: str = "") -> None:
        """Refuse the channel with an RFC 4254 reason code and a message for the server.

        An empty message names the channel kind.  Does nothing once the request was
        answered, so the dispatcher's own refusal after the handler returns is harmless.
        """
        if self.answered:
            return
        self.answered = True
        log.info("refusing %s channel opened by the server: %s", self.kind, message)
        self._driver.core.connection.reject_channel(
            self._event.sender_channel, reason, message or f"{self.kind} channels are not accepted")


#: A handler for one kind of server-opened channel; runs in the reader (thread or task)
#: with the connection lock held, so it must answer at once and never block.
ChannelOpenHandler = Callable[[OpenRequest], None]


class ForwardListener(Protocol):
    """What the driver hands connections of a remote forward to (a front-end listener)."""

    address: tuple[str, int] | str

    def deliver(self, channel: StreamChannel) -> None:
        """Take an accepted channel (reader context: must not block)."""


class Driver:
    """The connection as front-ends see it: the core plus channel and request bookkeeping."""

    def __init__(self, core: ClientConnection, config: ClientConfig, hostname: str,
                 port: int) -> None:
        self.core = core
        self.config = config
        self.hostname = hostname
        self.port = port
        self.channels: dict[int, StreamChannel] = {}
        self.error: SSHError | None = None
        self.closed_by_us = False
        self.open_handlers: dict[str, ChannelOpenHandler] = {}
        #: Remote forwards we asked for: ("tcp", address, port) or ("unix", path, 0).
        self.forwards: dict[tuple[str, str, int], ForwardListener] = {}
        self.handle_channel_open(fwd.FORWARDED_TCPIP, self._on_forwarded)
        self.handle_channel_open(fwd.FORWARDED_STREAMLOCAL, self._on_forwarded)
        self.global_replies: list[tuple[bool, bytes]] = []
        self.global_callbacks: dict[int, Callable[[bool, bytes], None]] = {}
        self.global_sent = 0
        self.algorithms: Algorithms | None = None
        self.kex_count = 0

    # --- hooks for the front-end ---------------------------------------------------------------
    def make_stream(self, kind: str) -> StreamChannel:
        """A new front-end stream channel object (for server-opened channels)."""
        return StreamChannel(kind)

    def flush(self) -> None:
        """Send what the core has queued (the front-end's I/O; takes no lock)."""

    def wake_connection(self) -> None:
        """A global reply arrived or the connection ended: wake connection-level waiters."""

    # --- handshake: the core's questions ---------------------------------------------------------
    @staticmethod
    def sign(event: ev.SignatureRequested) -> bytes | None:
        """Run the signer (a key file or an agent round trip); None if it failed.

        A signer that can bind an agent session (`bind_session`, as AgentSigner)
        is told the server's host key first (session-bind@openssh.com).
        """
        bind = getattr(event.signer, "bind_session", None)
        if callable(bind) and event.session_id:
            try:
                bind(event.host_key_blob, event.session_id, event.session_signature)
            except Exception as exc:  # agents without the extension: authenticate anyway
                log.debug("session-bind with %s failed: %s", event.signer.public_key, exc)
        try:
            signature: bytes = event.signer.sign(event.data, event.algorithm)
        except Exception as exc:
            log.info("signing with %s failed: %s", event.signer.public_key, exc)
            return None
        return signature

    def session_binding(self) -> tuple[bytes, bytes, bytes] | None:
        """(host key blob, session id, exchange signature) for an agent's session-bind."""
        core = self.core
        if core.host_key is None or not core.session_id:
            return None
        return core.host_key.blob, core.session_id, core.session_signature

    def signature_answer(self, signature: bytes | None) -> list[ev.Event]:
        """Hand a signature (None: signing failed, try the next key or method) to the core.

        Returns the events that follow.  For front-ends that run `sign()` apart from
        `handshake_event()`: aio runs it in a worker thread, as an agent round trip blocks.
        """
        if signature is None:
            return self.core.signature_failed()
        return self.core.provide_signature(signature)

    def handshake_event(self, event: ev.Event) -> list[ev.Event]:
        """Answer one event seen before authentication completed; returns follow-up events.

        SignatureRequested is signed right here; a front-end that must not block
        (aio) handles it itself with `sign()` elsewhere and `signature_answer()`.
        """
        core = self.core
        if isinstance(event, ev.HostKeyVerificationRequested):
            try:
                self.config.host_key_callback(self.hostname, self.port, event.key)
            except HostKeyError as exc:
                return core.reject_host_key(exc)
            except Exception as exc:
                return core.reject_host_key(HostKeyError(f"host key callback failed: {exc}"))
            return core.accept_host_key()
        if isinstance(event, ev.SignatureRequested):
            return self.signature_answer(self.sign(event))
        if isinstance(event, ev.PromptsRequested):
            answers = list(event.callback(event.name, event.instruction, list(event.prompts)))
            if len(answers) != len(event.prompts):
                raise ValueError(f"keyboard-interactive callback returned {len(answers)} "
                                 f"answers for {len(event.prompts)} prompts")
            return core.answer_prompts(answers)
        if isinstance(event, ev.AuthBannerReceived):
            if self.config.banner_callback is not None:
                self.config.banner_callback(event.message)
            else:
                log.info("server banner: %s", event.message.strip()[:2000])
            return []
        if isinstance(event, ev.ConnectionTerminated):
            return []  # the front-end raises core.error
        self.dispatch(event)
        return []

    # --- after authentication: routing events ------------------------------------
    def dispatch_all(self, events: list[ev.Event]) -> None:
        """Route every event the core returned, in order (see `dispatch`).

        Reader context, lock held: channel handlers and reply callbacks run here and must not block.
        """
        for event in events:
            self.dispatch(event)

    def dispatch(self, event: ev.Event) -> None:
        """Route one event to the channel or waiter it concerns."""
        if isinstance(event, ev.ChannelDataReceived):  # the hot path first
            target = self.channels.get(event.channel)
            if target is not None:
                target.on_data(event.data, event.stderr)
            else:  # abandoned channel (opener gave up): drop, but keep the window honest
                self.core.connection.consume(event.channel, len(event.data))
            return
        ch = self.channels.get(getattr(event, "channel", -1))
        if isinstance(event, ev.ChannelWindowAdjusted):
            if ch is not None:
                ch.wake()
        elif isinstance(event, ev.ChannelEOFReceived):
            if ch is not None:
                ch.on_eof()
        elif isinstance(event, ev.ChannelOpened):
            if ch is not None:
                ch.on_opened()
            else:  # its opener gave up and left: don't leak it on the server
                self.core.connection.close_channel(event.channel)
        elif isinstance(event, ev.ChannelOpenFailed):
            if ch is not None:
                del self.channels[event.channel]
                ch.on_open_failed(event.reason, event.description)
        elif isinstance(event, ev.ChannelRequestReplied):
            if ch is not None:
                ch.on_reply(event.success)
        elif isinstance(event, ev.ExitStatusReceived):
            if ch is not None:
                ch.on_exit_status(event.status)
        elif isinstance(event, ev.ExitSignalReceived):
            if ch is not None:
                ch.on_exit_signal(event.signal, event.core_dumped, event.message)
        elif isinstance(event, ev.ChannelClosed):
            if ch is not None:
                del self.channels[event.channel]
                ch.on_close()
        elif isinstance(event, ev.ChannelOpenRequested):
            self._on_channel_open_requested(event)
        elif isinstance(event, ev.GlobalRequestReplied):
            callback = self.global_callbacks.pop(len(self.global_replies), None)
            self.global_replies.append((event.success, event.data))
            if callback is not None:
                callback(event.success, event.data)
            self.wake_connection()
        elif isinstance(event, ev.KexCompleted):
            self.algorithms = event.algorithms
            self.kex_count += 1
        elif isinstance(event, ev.ConnectionTerminated):
            error = event.error or ConnectionLost("connection closed")
            if event.error is not None:
                log.info("connection to %s ended: %s", self.hostname, error)
            self._end(error)

    def _end(self, error: SSHError) -> None:
        self.error = error
        for channel in list(self.channels.values()):
            channel.on_close(error)
        self.channels.clear()
        self.wake_connection()

    def handle_channel_open(self, kind: str, handler: ChannelOpenHandler | None) -> None:
        """Register (or with None, remove) the handler for server-opened `kind` channels."""
        if handler is None:
            self.open_handlers.pop(kind, None)
        else:
            self.open_handlers[kind] = handler

    def _on_channel_open_requested(self, event: ev.ChannelOpenRequested) -> None:
        """Pass the request to the handler registered for its kind; refuse unknown kinds."""
        request = OpenRequest(self, event)
        handler = self.open_handlers.get(event.kind)
        if handler is None:
            request.reject(OPEN_UNKNOWN_CHANNEL_TYPE, f"unknown channel type {event.kind!r}")
            return
        try:
            handler(request)
        except Exception:  # a handler bug refuses this channel, not the connection
            log.exception("handler for %s channels failed", event.kind)
            if request.channel is not None:  # accepted, then failed: nobody would read it
                self.close_channel(request.channel)
            request.reject(OPEN_CONNECT_FAILED, "internal error in the client's handler")
        request.reject()

    def _on_forwarded(self, request: OpenRequest) -> None:
        """forwarded-tcpip / forwarded-streamlocal: only for forwards we asked for."""
        try:
            if request.kind == fwd.FORWARDED_TCPIP:
                info = fwd.parse_forwarded_tcpip(request.payload)
                listener = self.find_forward("tcp", info.address, info.port)
            else:
                info = fwd.parse_forwarded_streamlocal(request.payload)
                listener = self.find_forward("unix", info.address, 0)
        except DecodeError as exc:
            request.reject(OPEN_CONNECT_FAILED, f"malformed {request.kind} open: {exc}")
            return
        if listener is None:
            request.reject(OPEN_ADMINISTRATIVELY_PROHIBITED,
                           f"no forward was requested for {info.address}:{info.port}")
            return
        channel = request.accept()
        channel.origin = info.origin
        listener.deliver(channel)

    def find_forward(self, network: str, address: str, port: int) -> ForwardListener | None:
        """The listener of a forward; by port alone when the server renamed the address."""
        listener = self.forwards.get((network, address, port))
        if listener is None and network == "tcp":
            matches = [v for (n, _, p), v in self.forwards.items() if n == "tcp" and p == port]
            if len(matches) == 1:
                listener = matches[0]
        return listener

    # --- commands from the application -------------------------------------------
    def check_alive(self) -> None:
        """Raise the error that ended the connection (ConnectionLost after close()); else nothing.
        """
        if self.error is not None:
            raise self.error

    def open_channel(self, channel: StreamChannel, extra: bytes = b"") -> None:
        """Send CHANNEL_OPEN for `channel` and register it; the server's answer arrives later.

        The front-end waits for `channel.open_settled()` and then calls
        `channel.check_open_result()`.  Raises the connection's error once it has ended.
        """
        self.check_alive()
        channel.id = self.core.connection.open_channel(channel.kind, extra)
        self.channels[channel.id] = channel

    def abandon(self, channel: StreamChannel) -> None:
        """The opener gave up waiting: close the channel if the server confirms it later."""
        self.channels.pop(channel.id, None)

    def consume(self, channel: StreamChannel, count: int) -> None:
        """The application took `count` bytes: give the window back (in batches)."""
        if count and not channel.closed:
            self.core.connection.consume(channel.id, count)

    def set_window_size(self, channel: StreamChannel, size: int) -> None:
        """Grow the window the server may fill on `channel` to `size` bytes (never shrinks)."""
        if not channel.closed and self.error is None:
            self.core.connection.set_window_size(channel.id, size)

    def check_writable(self, channel: StreamChannel) -> None:
        """Raise before a write: the connection's error, or ChannelClosedError after EOF or close.
        """
        self.check_alive()
        if channel.eof_sent or channel.closed:
            raise ChannelClosedError("channel input is closed")

    def can_write(self, channel: StreamChannel) -> bool:
        """True when a writer waiting on `channel` should wake: window to send, or nothing more to
        wait for.

        True also once the channel or connection has closed, so the writer wakes and
        `send_some()` raises the reason.
        """
        return (channel.closed or self.error is not None
                or self.core.connection.window_available(channel.id) > 0)

    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        """After can_write(): hand what the window allows to the core; return the count."""
        self.check_alive()
        if channel.closed:
            raise ChannelClosedError("channel closed by the server")
        return self.core.connection.send_data(channel.id, view[:WRITE_CHUNK], stderr)

    def channel_request(self, channel: StreamChannel, name: str, payload: bytes,
                        want_reply: bool) -> int:
        """Send a channel request; returns the reply ticket (-1 without want_reply).

        The front-ends ask for agent forwarding as auth-agent-req@openssh.com; it goes
        out under the name this server speaks (core.agent_request_name, RFC 9987).
        """
        self.check_alive()
        if name == AGENT_REQ_OPENSSH:
            name = self.core.agent_request_name
        if channel.closed:
            raise ChannelClosedError(f"cannot send {name!r}: channel is closed")
        self.core.connection.send_request(channel.id, name, payload, want_reply)
        if not want_reply:
            return -1
        ticket = channel.requests_sent
        channel.requests_sent += 1
        return ticket

    def send_eof(self, channel: StreamChannel) -> bool:
        """Send EOF once; False if there was nothing to do."""
        if channel.eof_sent or channel.closed:
            return False
        channel.eof_sent = True
        self.core.connection.send_eof(channel.id)
        return True

    def close_channel(self, channel: StreamChannel) -> bool:
        """Queue CHANNEL_CLOSE (once; a channel not open yet is left alone); False if the connection
        is closed.

        The front-end flushes after True; the channel's waiters wake when the server's close
        arrives.
        """
        if self.core.closed:
            return False
        self.core.connection.close_channel(channel.id)
        return True

    def global_request(self, name: str, payload: bytes, want_reply: bool,
                       on_reply: Callable[[bool, bytes], None] | None = None) -> int:
        """Send a global request; returns the reply ticket (-1 without want_reply).

        `on_reply(success, data)` runs in the dispatcher as the reply arrives,
        before any later message is processed.
        """
        self.check_alive()
        self.core.connection.global_request(name, payload, want_reply)
        if not want_reply:
            return -1
        ticket = self.global_sent
        self.global_sent += 1
        if on_reply is not None:
            self.global_callbacks[ticket] = on_reply
        return ticket

    # --- forwarding ------------------------------------------------------------------
    @staticmethod
    def dial_payload(network: str, address: str) -> tuple[str, bytes]:
        """(channel kind, extra data) for dial("tcp", "host:port") / dial("unix", path)."""
        if network in ("tcp", "tcp4", "tcp6"):
            host, port = split_address(address, -1)
            if port < 0:
                raise ValueError(f"dial address {address!r} needs a port (host:port)")
            return fwd.DIRECT_TCPIP, fwd.direct_tcpip(host, port)
        if network == "unix":
            return fwd.DIRECT_STREAMLOCAL, fwd.direct_streamlocal(address)
        raise ValueError(f"unsupported network {network!r}; use 'tcp' or 'unix'")

    def request_forward(self, network: str, address: str, listener: ForwardListener) -> int:
        """Ask the server to listen (tcpip-forward / streamlocal-forward); returns the ticket.

        When the reply says yes, `listener.address` becomes what the server bound
        and the listener starts receiving connections, before anything after
        the reply is processed (so no early connection is refused).
        """
        if network in ("tcp", "tcp4", "tcp6"):
            host, port = split_address(address, 0)
            name, payload = fwd.TCPIP_FORWARD, fwd.tcpip_forward(host, port)

            def on_reply(success: bool, data: bytes) -> None:
                if success:
                    try:
                        bound = fwd.bound_port(data, port)
                    except (DecodeError, ValueError):
                        log.info("malformed tcpip-forward reply %r", data[:16])
                        return
                    listener.address = (host, bound)
                    self.forwards[("tcp", host, bound)] = listener
        elif network == "unix":
            name, payload = fwd.STREAMLOCAL_FORWARD, fwd.streamlocal_forward(address)

            def on_reply(success: bool, data: bytes) -> None:
                if success:
                    listener.address = address
                    self.forwards[("unix", address, 0)] = listener
        else:
            raise ValueError(f"unsupported network {network!r}; use 'tcp' or 'unix'")
        return self.global_request(name, payload, True, on_reply)

    def cancel_forward(self, listener: ForwardListener) -> int:
        """Stop routing the listener's connections and ask the server to stop listening."""
        for key, value in list(self.forwards.items()):
            if value is listener:
                del self.forwards[key]
        address = listener.address
        if isinstance(address, str):
            return self.global_request(fwd.CANCEL_STREAMLOCAL_FORWARD,
                                       fwd.streamlocal_forward(address), True)
        return self.global_request(fwd.CANCEL_TCPIP_FORWARD, fwd.tcpip_forward(*address), True)

    def global_settled(self, ticket: int) -> bool:
        """True once the reply for `ticket` arrived or the connection ended (a waiter's predicate).
        """
        return len(self.global_replies) > ticket or self.error is not None

    def global_result(self, ticket: int) -> tuple[bool, bytes]:
        """(success, reply data) for `ticket`, after `global_settled()`.

        Raises the connection's error if it ended before the reply came.
        """
        if len(self.global_replies) <= ticket:
            self.check_alive()
        return self.global_replies[ticket]

    def rekey(self) -> None:
        """Start a key exchange now (the core queues KEXINIT); raises the connection's error if it
        ended.

        Returns at once: the front-end flushes, and `kex_count` grows when the exchange completes.
        """
        self.check_alive()
        self.core.start_rekey()

    def close(self) -> bool:
        """Queue DISCONNECT and fail every waiter; False if the connection had already ended."""
        if self.error is not None:
            return False
        self.closed_by_us = True
        self.core.close()
        self._end(ConnectionLost("connection closed by the application"))
        return True

    def ended_because(self) -> SSHError | None:
        """What Client.wait() returns: None after our own close()."""
        return None if self.closed_by_us else self.error


class ConnectionFacts:
    """What a connected client can tell about itself, the same in every front-end."""

    _driver: Driver
    _core: ClientConnection

    @property
    def algorithms(self) -> Algorithms:
        """The algorithms of the current key exchange."""
        algorithms = self._driver.algorithms
        assert algorithms is not None
        return algorithms

    @property
    def kex_count(self) -> int:
        """Key exchanges completed on this connection (1 after dial; more after rekeys)."""
        return self._driver.kex_count

    @property
    def host_key(self) -> PublicKey:
        """The server's host key, as verified by the host key callback during the handshake."""
        key = self._core.host_key
        assert key is not None
        return key

    @property
    def server_version(self) -> str:
        """The server's identification line ("SSH-2.0-OpenSSH_9.6"), without CR LF."""
        return (self._core.server_version or b"").decode("ascii", "replace")

    @property
    def session_id(self) -> bytes:
        """The session identifier: the exchange hash of the first key exchange (it stays through
        rekeys).
        """
        return self._core.session_id or b""

    @property
    def bytes_sent(self) -> int:
        """Wire bytes of the SSH packets sent on this connection so far (after compression,
        encryption and MAC; the version line not included).  Counts, does not block."""
        return self._core.bytes_sent

    @property
    def bytes_received(self) -> int:
        """Wire bytes of the SSH packets received on this connection so far (as bytes_sent)."""
        return self._core.bytes_received


class StreamFacts:
    """What a front-end Stream tells about its channel, the same in every front-end."""

    _channel: StreamChannel

    @property
    def kind(self) -> str:
        """The channel type ("direct-tcpip", "forwarded-tcpip", ...)."""
        return self._channel.kind

    @property
    def origin(self) -> tuple[str, int] | None:
        """For accepted forwarded TCP connections: the (host, port) the server says connected."""
        return self._channel.origin


class NewChannelBase:
    """A server-opened channel as a handle_channel_open() handler gets it (Go's NewChannel).

    `kind` and `payload` (the type's extra data from CHANNEL_OPEN) say what the
    server wants; a front-end subclass adds `accept()` returning its Stream.
    """

    def __init__(self, request: OpenRequest) -> None:
        self._request = request
        self.kind = request.kind
        self.payload = request.payload

    def reject(self, reason: int = OPEN_ADMINISTRATIVELY_PROHIBITED, message: str = "") -> None:
        """Refuse with an RFC 4254 reason code (default: administratively prohibited)."""
        self._request.reject(reason, message)


class ListenerBase:
    """A remote forward's queue of accepted channels, the same in every front-end.

    The dispatcher calls `deliver()` (in the reader, lock held); the front-end
    subclass waits for `pending` and turns channels into Streams.
    """

    def __init__(self, link: Driver, network: str, address: tuple[str, int] | str,
                 cancel: Callable[[float | None], object]) -> None:
        self._link = link
        self.network = network
        #: What the server bound: (host, port) with the real port for "tcp", the path for "unix".
        self.address = address
        self._cancel = cancel
        self.pending: deque[StreamChannel] = deque()
        self.closed = False

    def deliver(self, channel: StreamChannel) -> None:
        if self.closed:
            self._link.close_channel(channel)
            return
        self.pending.append(channel)
        self._link.wake_connection()

    def _mark_closed(self) -> bool:
        """Stop taking connections and close the queued ones; False if already closed."""
        if self.closed:
            return False
        self.closed = True
        pending, self.pending = list(self.pending), deque()
        for channel in pending:
            self._link.close_channel(channel)
        self._link.wake_connection()
        return True
