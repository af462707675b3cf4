"""The threaded front-end: `dial()` and `Client` (Go's ssh.Dial / ssh.NewClientConn).

The calling thread runs the handshake and authentication itself (so user
callbacks run in the caller's thread); afterwards one reader thread per
connection feeds the core.  A single lock guards the core; sending happens
outside it under a separate lock, so a blocked `sendall` never stops the
reader from draining the socket.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from types import TracebackType

from ..algorithms import Algorithms
from ..config import ClientConfig
from ..errors import ConnectionLost, HostKeyError, SSHError, Timeout
from ..keys import PublicKey
from ..messages import OPEN_ADMINISTRATIVELY_PROHIBITED
from ..protocol import events as ev
from ..protocol.client import ClientConnection
from .agentfwd import AGENT_CHANNEL, AgentForwarder
from .channel import ChannelIO, deadline_after, remaining

log = logging.getLogger("sshlib.client")

RECV_SIZE = 256 * 1024
TICK_SECONDS = 30.0
SEND_TIMEOUT = 60.0


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


def dial(network: str, addr: str, config: ClientConfig) -> Client:
    """Connect to addr ("host:port") over TCP, run the handshake and authenticate."""
    if network not in ("tcp", "tcp4", "tcp6"):
        raise ValueError(f"unsupported network {network!r}; use 'tcp'")
    host, port = split_address(addr)
    family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}.get(network, 0)
    deadline = deadline_after(config.timeout)
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ConnectionLost(f"cannot resolve {host!r}: {exc}") from exc
    last_error: OSError | None = None
    for af, kind, proto, _, sockaddr in infos:
        sock = socket.socket(af, kind, proto)
        try:
            sock.settimeout(config.timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
        return Client(sock, config, addr=(host, port), timeout=timeout)
    if isinstance(last_error, socket.timeout):
        raise Timeout(f"timed out connecting to {addr}")
    raise ConnectionLost(f"cannot connect to {addr}: {last_error}")


class Client:
    """An authenticated SSH connection over any connected stream socket."""

    def __init__(self, sock: socket.socket, config: ClientConfig, *,
                 addr: tuple[str, int] | str | None = None,
                 timeout: float | None = None) -> None:
        if addr is None:
            peer = sock.getpeername()
            addr = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else (str(peer), 22)
        elif isinstance(addr, str):
            addr = split_address(addr)
        self.hostname, self.port = addr
        self.config = config
        self._sock = sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._core = ClientConnection(config, rng=os.urandom, now=time.monotonic())
        self._channels: dict[int, ChannelIO] = {}
        self._error: SSHError | None = None
        self._closed_event = threading.Event()
        self._closed_by_us = False
        self._agent_forwarder: AgentForwarder | None = None
        self._global_replies: list[tuple[bool, bytes]] = []
        self._global_sent = 0
        self._global_cond = threading.Condition(self._lock)
        self.algorithms: Algorithms
        #: Key exchanges completed on this connection (1 after dial; more after rekeys).
        self.kex_count = 0
        if timeout is None:
            timeout = config.timeout
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (socketpair in tests, Unix sockets)
        try:
            self._handshake(deadline_after(timeout))
        except BaseException:
            self._abort()
            raise
        # Sends get a deadline so a peer that stops reading cannot block a writer (or the
        # reader's final DISCONNECT) forever; the reader uses select(), so recv never waits on it.
        sock.settimeout(max(config.timeout or 0, SEND_TIMEOUT))
        self._reader = threading.Thread(target=self._read_loop, name=f"sshlib-reader-{addr}",
                                        daemon=True)
        self._reader.start()

    # --- handshake in the calling thread ------------------------------------------
    def _handshake(self, deadline: float | None) -> None:
        core = self._core
        self._send_pending_blocking()
        while not core.authenticated:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Timeout(f"timed out during SSH handshake with {self.hostname}")
                self._sock.settimeout(left)
            try:
                data = self._sock.recv(RECV_SIZE)
            except TimeoutError:
                raise Timeout(f"timed out during SSH handshake with {self.hostname}") from None
            except OSError as exc:
                raise ConnectionLost(f"connection to {self.hostname} failed: {exc}") from exc
            pending = core.receive_data(data)
            while pending:
                event = pending.pop(0)
                pending.extend(self._handshake_event(event))
            self._send_pending_blocking()
            if core.error is not None:
                raise core.error

    def _handshake_event(self, event: ev.Event) -> list[ev.Event]:
        core = self._core
        if isinstance(event, ev.HostKeyVerificationRequested):
            try:
                self.config.host_key_callback(self.hostname, self.port, event.key)
            except HostKeyError as exc:
                return core.reject_host_key(exc)
            except Exception as exc:
                return core.reject_host_key(HostKeyError(f"host key callback failed: {exc}"))
            return core.accept_host_key()
        if isinstance(event, ev.SignatureRequested):
            try:
                signature = event.signer.sign(event.data, event.algorithm)
            except Exception as exc:
                log.info("signing with %s failed: %s", event.signer.public_key, exc)
                return core.signature_failed()
            return core.provide_signature(signature)
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
        if isinstance(event, ev.KexCompleted):
            self.algorithms = event.algorithms
            self.kex_count += 1
            return []
        if isinstance(event, ev.ConnectionTerminated):
            return []
        with self._lock:
            self._dispatch(event)
        return []

    def _send_pending_blocking(self) -> None:
        data = self._core.data_to_send()
        if data:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                if self._core.error is None:
                    raise ConnectionLost(f"sending to {self.hostname} failed: {exc}") from exc

    def _abort(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    # --- reader thread ---------------------------------------------------------------
    def _read_loop(self) -> None:
        sock = self._sock
        core = self._core
        try:
            while True:
                ready, _, _ = select.select([sock], [], [], TICK_SECONDS)
                if not ready:
                    with self._lock:
                        self._dispatch_all(core.tick(time.monotonic()))
                    self._flush(blocking=False)
                    continue
                try:
                    data = sock.recv(RECV_SIZE)
                except OSError as exc:
                    with self._lock:
                        self._dispatch_all(core.connection_lost(
                            ConnectionLost(f"connection to {self.hostname} failed: {exc}")))
                    break
                with self._lock:
                    self._dispatch_all(core.receive_data(data))
                self._flush(blocking=False)
                if core.closed:
                    break
        except BaseException as exc:  # a bug must not leave waiters hanging forever
            log.exception("internal error in the reader thread")
            with self._lock:
                self._dispatch_all(core.connection_lost(SSHError(f"internal error: {exc!r}")))
        finally:
            self._flush(blocking=True)  # the DISCONNECT must go out before we close
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self._closed_event.set()

    def _dispatch_all(self, events: list[ev.Event]) -> None:
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: ev.Event) -> None:
        """Route one event to whoever waits for it (lock held)."""
        if isinstance(event, ev.ChannelDataReceived):
            target = self._channels.get(event.channel)
            if target is not None:
                target.on_data(event.data, event.stderr)
            else:  # abandoned channel (opener timed out): drop, but keep the window honest
                self._core.connection.consume(event.channel, len(event.data))
            return
        ch = self._channels.get(getattr(event, "channel", -1))
        if isinstance(event, ev.ChannelWindowAdjusted):
            if ch is not None:
                ch.cond.notify_all()
        elif isinstance(event, ev.ChannelEOFReceived):
            if ch is not None:
                ch.eof = True
                ch.cond.notify_all()
        elif isinstance(event, ev.ChannelOpened):
            if ch is not None:
                ch.on_opened()
            else:  # its opener timed out and left: don't leak it on the server
                self._core.connection.close_channel(event.channel)
        elif isinstance(event, ev.ChannelOpenFailed):
            if ch is not None:
                del self._channels[event.channel]
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
                del self._channels[event.channel]
                ch.on_close()
        elif isinstance(event, ev.ChannelOpenRequested):
            self._on_channel_open_requested(event)
        elif isinstance(event, ev.GlobalRequestReplied):
            self._global_replies.append((event.success, event.data))
            self._global_cond.notify_all()
        elif isinstance(event, ev.KexCompleted):
            self.algorithms = event.algorithms
            self.kex_count += 1
        elif isinstance(event, ev.ConnectionTerminated):
            error = event.error or ConnectionLost("connection closed")
            self._error = error
            if event.error is not None:
                log.info("connection to %s ended: %s", self.hostname, error)
            for channel in list(self._channels.values()):
                channel.on_close(error)
            self._channels.clear()
            self._global_cond.notify_all()

    def _on_channel_open_requested(self, event: ev.ChannelOpenRequested) -> None:
        """Accept forwarded agent channels when asked to; refuse everything else (lock held)."""
        connection = self._core.connection
        if event.kind == AGENT_CHANNEL and self._agent_forwarder is not None:
            channel = ChannelIO(self, event.kind)
            channel.id = connection.accept_channel(event.sender_channel, event.kind,
                                                   event.initial_window, event.max_packet)
            channel.opened = True
            self._channels[channel.id] = channel
            log.debug("accepted forwarded agent channel %d", channel.id)
            self._agent_forwarder.start(channel)
            return
        log.info("refusing %s channel opened by the server", event.kind)
        connection.reject_channel(event.sender_channel, OPEN_ADMINISTRATIVELY_PROHIBITED,
                                  f"{event.kind} channels are not accepted")

    # --- sending -----------------------------------------------------------------------
    def _flush(self, blocking: bool = True) -> None:
        """Send whatever the core has queued, in order, outside the core lock."""
        while True:
            if not self._send_lock.acquire(blocking):
                return
            try:
                while True:
                    with self._lock:
                        data = self._core.data_to_send()
                    if not data:
                        break
                    try:
                        self._sock.sendall(data)
                    except OSError as exc:
                        with self._lock:
                            self._dispatch_all(self._core.connection_lost(
                                ConnectionLost(f"sending to {self.hostname} failed: {exc}")))
                        return
            finally:
                self._send_lock.release()
            with self._lock:
                if not self._core.has_data_to_send():
                    return

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error

    # --- public API ------------------------------------------------------------------
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

    def new_session(self, timeout: float | None = None) -> Session:
        """Open a session channel (exec, shell or subsystem)."""
        channel = self.open_channel("session", timeout=timeout)
        return Session(channel)

    def open_channel(self, kind: str, extra: bytes = b"",
                     timeout: float | None = None) -> ChannelIO:
        channel = ChannelIO(self, kind)
        with self._lock:
            self._check_alive()
            channel.id = self._core.connection.open_channel(kind, extra)
            self._channels[channel.id] = channel
        self._flush()
        try:
            channel.wait_open(timeout)
        except Timeout:
            with self._lock:  # the server may still confirm it later; close it then
                self._channels.pop(channel.id, None)
            raise
        return channel

    def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True,
                       timeout: float | None = None) -> tuple[bool, bytes]:
        deadline = deadline_after(timeout)
        with self._lock:
            self._check_alive()
            self._core.connection.global_request(name, payload, want_reply)
            ticket = self._global_sent
            if want_reply:
                self._global_sent += 1
        self._flush()
        if not want_reply:
            return True, b""
        with self._global_cond:
            while len(self._global_replies) <= ticket and self._error is None:
                self._global_cond.wait(remaining(deadline, f"reply to {name!r}"))
            if len(self._global_replies) <= ticket:
                self._check_alive()
            return self._global_replies[ticket]

    def forward_agent(self, target: object) -> None:
        """Serve the server's agent channels from `target` (endpoint string or AgentClient).

        Sessions then ask for forwarding with session.request_agent_forwarding().
        Each forwarded channel opens its own connection to the local agent.
        """
        forwarder = AgentForwarder(target)
        with self._lock:
            self._agent_forwarder = forwarder

    def send_keepalive(self, timeout: float | None = None) -> None:
        """Ask the server for a reply (OpenSSH's keepalive@openssh.com) to prove it is alive."""
        self.global_request("keepalive@openssh.com", timeout=timeout)

    def rekey(self) -> None:
        """Start a new key exchange now."""
        with self._lock:
            self._check_alive()
            self._core.start_rekey()
        self._flush()

    def close(self) -> None:
        """Send DISCONNECT and close the socket; safe to call more than once."""
        with self._lock:
            if self._error is None:
                self._closed_by_us = True
                self._core.close()
                self._error = ConnectionLost("connection closed by the application")
                for channel in list(self._channels.values()):
                    channel.on_close(self._error)
                self._channels.clear()
                self._global_cond.notify_all()
        try:
            self._flush(blocking=True)
        finally:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if threading.current_thread() is not self._reader:
                self._reader.join(5)
            self._sock.close()

    def wait(self, timeout: float | None = None) -> SSHError | None:
        """Block until the connection ends; return why (None after close())."""
        if not self._closed_event.wait(timeout):
            raise Timeout("timed out waiting for the connection to end")
        return None if self._closed_by_us else self._error

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.Client {self.hostname}:{self.port}>"


from .session import Session  # noqa: E402  (Session needs Client's module loaded first)
