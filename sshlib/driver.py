"""What every front-end does with the core, minus the I/O: one copy for sync and aio.

A front-end (sshlib.sync with threads, sshlib.aio with asyncio) owns the
socket, the clock and the waiting; everything else it would otherwise repeat
lives here: answering the core's handshake questions (host key, signature,
keyboard-interactive, banner), routing connection events to channel objects,
per-channel buffers and exit bookkeeping, window credit, global request
tickets, and turning an exit status into an `ExitError`.

Nothing here blocks or waits, and this module imports no threading or
asyncio: a front-end subclasses `Channel` (to wake its waiters in `wake()`)
and `Driver` (to build its channels and serve forwarded agent channels), and
calls these methods with whatever lock it needs held.
"""

from __future__ import annotations

import logging
from collections import deque

from .algorithms import Algorithms
from .config import ClientConfig
from .errors import (
    ChannelClosedError,
    ChannelOpenError,
    ConnectionLost,
    ExitError,
    ExitMissingError,
    HostKeyError,
    SSHError,
)
from .keys import PublicKey
from .messages import OPEN_ADMINISTRATIVELY_PROHIBITED
from .protocol import events as ev
from .protocol.client import AGENT_REQ_OPENSSH, ClientConnection

log = logging.getLogger("sshlib.client")

AGENT_CHANNEL = "auth-agent@openssh.com"
#: Forwarded-agent channel kinds we accept: OpenSSH's and RFC 9987's (OpenSSH >= 10.3).
AGENT_CHANNELS = frozenset({AGENT_CHANNEL, "agent-connect"})
STDERR_KEEP = 64 * 1024  # bytes of stderr kept for ExitError by run()/output()
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


class Channel:
    """One channel's state as the application sees it: buffers, EOF, exit, replies.

    The driver's dispatcher calls the ``on_*`` methods; each ends with
    `wake()`, which the front-end overrides to wake whoever waits on it.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.id = -1
        self.opened = False
        self.open_error: SSHError | None = None
        self.buffers: tuple[deque[bytes], deque[bytes]] = (deque(), deque())
        self.buffered = [0, 0]
        self.eof = False
        self.closed = False
        self.error: SSHError | None = None
        self.request_results: dict[int, bool] = {}
        self.requests_sent = 0
        self.requests_answered = 0
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str] | None = None
        self.eof_sent = False

    def wake(self) -> None:
        """Something changed: the front-end wakes its waiters."""

    # --- from the dispatcher ----------------------------------------------------------
    def on_opened(self) -> None:
        self.opened = True
        self.wake()

    def on_open_failed(self, reason: int, description: str) -> None:
        self.open_error = ChannelOpenError(reason, description)
        self.closed = True
        self.wake()

    def on_data(self, data: bytes, stderr: bool) -> None:
        index = 1 if stderr else 0
        self.buffers[index].append(data)
        self.buffered[index] += len(data)
        self.wake()

    def on_reply(self, success: bool) -> None:
        self.request_results[self.requests_answered] = success
        self.requests_answered += 1
        self.wake()

    def on_close(self, error: SSHError | None = None) -> None:
        self.closed = True
        self.eof = True
        if error is not None and self.error is None:
            self.error = error
        self.wake()

    # --- predicates and results for waiters ----------------------------------------------
    def open_settled(self) -> bool:
        return self.opened or self.closed

    def check_open_result(self) -> None:
        if self.open_error is not None:
            raise self.open_error
        if not self.opened:
            raise self.error or ChannelClosedError("channel closed while opening")

    def readable(self, index: int) -> bool:
        return bool(self.buffers[index]) or self.eof

    def output_ready(self) -> bool:
        return bool(self.buffers[0] or self.buffers[1]) or self.closed

    def take(self, index: int, size: int) -> bytes:
        """Up to `size` buffered bytes of stream `index`; b"" at EOF, raise if it ended badly.

        The caller returns the window with `Driver.consume(channel, len(result))`.
        """
        buf = self.buffers[index]
        chunks: list[bytes] = []
        taken = 0
        while buf and taken < size:
            chunk = buf.popleft()
            if taken + len(chunk) > size:
                keep = size - taken
                buf.appendleft(chunk[keep:])
                chunk = chunk[:keep]
            chunks.append(chunk)
            taken += len(chunk)
        self.buffered[index] -= taken
        if not taken and self.error is not None:
            raise self.error
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def take_all(self) -> tuple[list[bytes], list[bytes], int]:
        """Everything buffered on both streams: (stdout chunks, stderr chunks, byte count)."""
        taken = self.buffered[0] + self.buffered[1]
        out, err = list(self.buffers[0]), list(self.buffers[1])
        for index in (0, 1):
            self.buffers[index].clear()
            self.buffered[index] = 0
        return out, err, taken

    def reply_settled(self, ticket: int) -> bool:
        return ticket in self.request_results or self.closed

    def reply_result(self, ticket: int, name: str) -> bool:
        if ticket not in self.request_results:
            raise self.error or ChannelClosedError(f"channel closed before {name!r} replied")
        return self.request_results.pop(ticket)

    def raise_for_exit(self, stderr: bytes = b"") -> None:
        """After the channel closed: raise ExitError unless the program exited 0."""
        if self.exit_signal is not None:
            signal, _, message = self.exit_signal
            raise ExitError(self.exit_status, signal, message, stderr)
        if self.exit_status is None:
            if self.error is not None:
                raise self.error
            raise ExitMissingError("the session ended without an exit status")
        if self.exit_status != 0:
            raise ExitError(self.exit_status, None, "", stderr)


class OutputCollector:
    """The sinks behind output()/run()/combined_output(): stdout kept, a bounded stderr tail."""

    def __init__(self, keep_stdout: bool, merge: bool) -> None:
        self._keep_stdout = keep_stdout
        self._merge = merge
        self.out: list[bytes] = []
        self._err: deque[bytes] = deque()
        self._err_size = 0

    def feed(self, out: list[bytes], err: list[bytes]) -> None:
        if self._keep_stdout:
            self.out.extend(out)
        if self._merge:
            self.out.extend(err)
            return
        for chunk in err:
            self._err.append(chunk)
            self._err_size += len(chunk)
            while self._err_size - len(self._err[0]) > STDERR_KEEP:
                self._err_size -= len(self._err.popleft())

    @property
    def stdout(self) -> bytes:
        return b"".join(self.out)

    @property
    def stderr_tail(self) -> bytes:
        return b"".join(self._err)[-STDERR_KEEP:]


class Driver:
    """The connection as front-ends see it: the core plus channel and request bookkeeping."""

    def __init__(self, core: ClientConnection, config: ClientConfig, hostname: str,
                 port: int) -> None:
        self.core = core
        self.config = config
        self.hostname = hostname
        self.port = port
        self.channels: dict[int, Channel] = {}
        self.error: SSHError | None = None
        self.closed_by_us = False
        self.agent_target: object | None = None
        self.global_replies: list[tuple[bool, bytes]] = []
        self.global_sent = 0
        self.algorithms: Algorithms | None = None
        self.kex_count = 0

    # --- hooks for the front-end ---------------------------------------------------------------
    def make_channel(self, kind: str) -> Channel:
        """A new front-end channel object (for server-opened channels)."""
        return Channel(kind)

    def start_agent_channel(self, channel: Channel) -> None:
        """Serve an accepted forwarded-agent channel (either name) from `agent_target`."""

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
                ch.eof = True
                ch.wake()
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
                ch.exit_status = event.status
        elif isinstance(event, ev.ExitSignalReceived):
            if ch is not None:
                ch.exit_signal = (event.signal, event.core_dumped, event.message)
        elif isinstance(event, ev.ChannelClosed):
            if ch is not None:
                del self.channels[event.channel]
                ch.on_close()
        elif isinstance(event, ev.ChannelOpenRequested):
            self._on_channel_open_requested(event)
        elif isinstance(event, ev.GlobalRequestReplied):
            self.global_replies.append((event.success, event.data))
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

    def _on_channel_open_requested(self, event: ev.ChannelOpenRequested) -> None:
        """Accept forwarded agent channels when asked to; refuse everything else."""
        connection = self.core.connection
        if event.kind in AGENT_CHANNELS and self.agent_target is not None:
            channel = self.make_channel(event.kind)
            channel.id = connection.accept_channel(event.sender_channel, event.kind,
                                                   event.initial_window, event.max_packet)
            channel.opened = True
            self.channels[channel.id] = channel
            log.debug("accepted forwarded agent channel %d (%s)", channel.id, event.kind)
            self.start_agent_channel(channel)
            return
        log.info("refusing %s channel opened by the server", event.kind)
        connection.reject_channel(event.sender_channel, OPEN_ADMINISTRATIVELY_PROHIBITED,
                                  f"{event.kind} channels are not accepted")

    # --- commands from the application -------------------------------------------
    def check_alive(self) -> None:
        if self.error is not None:
            raise self.error

    def open_channel(self, channel: Channel, extra: bytes = b"") -> None:
        self.check_alive()
        channel.id = self.core.connection.open_channel(channel.kind, extra)
        self.channels[channel.id] = channel

    def abandon(self, channel: Channel) -> None:
        """The opener gave up waiting: close the channel if the server confirms it later."""
        self.channels.pop(channel.id, None)

    def consume(self, channel: Channel, count: int) -> None:
        """The application took `count` bytes: give the window back (in batches)."""
        if count and not channel.closed:
            self.core.connection.consume(channel.id, count)

    def check_writable(self, channel: Channel) -> None:
        self.check_alive()
        if channel.eof_sent or channel.closed:
            raise ChannelClosedError("channel input is closed")

    def can_write(self, channel: Channel) -> bool:
        return (channel.closed or self.error is not None
                or self.core.connection.window_available(channel.id) > 0)

    def send_some(self, channel: Channel, view: memoryview, stderr: bool) -> int:
        """After can_write(): hand what the window allows to the core; return the count."""
        self.check_alive()
        if channel.closed:
            raise ChannelClosedError("channel closed by the server")
        return self.core.connection.send_data(channel.id, view[:WRITE_CHUNK], stderr)

    def channel_request(self, channel: Channel, name: str, payload: bytes,
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

    def send_eof(self, channel: Channel) -> bool:
        """Send EOF once; False if there was nothing to do."""
        if channel.eof_sent or channel.closed:
            return False
        channel.eof_sent = True
        self.core.connection.send_eof(channel.id)
        return True

    def close_channel(self, channel: Channel) -> bool:
        if self.core.closed:
            return False
        self.core.connection.close_channel(channel.id)
        return True

    def global_request(self, name: str, payload: bytes, want_reply: bool) -> int:
        """Send a global request; returns the reply ticket (-1 without want_reply)."""
        self.check_alive()
        self.core.connection.global_request(name, payload, want_reply)
        if not want_reply:
            return -1
        ticket = self.global_sent
        self.global_sent += 1
        return ticket

    def global_settled(self, ticket: int) -> bool:
        return len(self.global_replies) > ticket or self.error is not None

    def global_result(self, ticket: int) -> tuple[bool, bytes]:
        if len(self.global_replies) <= ticket:
            self.check_alive()
        return self.global_replies[ticket]

    def rekey(self) -> None:
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
        key = self._core.host_key
        assert key is not None
        return key

    @property
    def server_version(self) -> str:
        return (self._core.server_version or b"").decode("ascii", "replace")

    @property
    def session_id(self) -> bytes:
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
