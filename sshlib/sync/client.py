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
import socket
import threading
import time
from types import TracebackType

from ..config import ClientConfig
from ..driver import Channel, ConnectionFacts, Driver, split_address
from ..errors import ConnectionLost, SSHError, Timeout
from ..protocol.client import ClientConnection
from .agentfwd import AgentForwarder
from .channel import ChannelIO, deadline_after, remaining
from .receiver import BULK_LOWAT, RECV_SIZE, Receiver

log = logging.getLogger("sshlib.client")

TICK_SECONDS = 30.0
SEND_TIMEOUT = 60.0


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


class Client(ConnectionFacts):
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
        self.config = config = config.for_host(self.hostname, self.port)
        self._sock = sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._core = ClientConnection(config, rng=os.urandom, now=time.monotonic())
        self._driver = _ThreadDriver(self)
        self._closed_event = threading.Event()
        self._global_cond = threading.Condition(self._lock)
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
                pending.extend(self._driver.handshake_event(pending.pop(0)))
            self._send_pending_blocking()
            if core.error is not None:
                raise core.error

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
        dispatch_all = self._driver.dispatch_all
        receiver = Receiver(sock, min(BULK_LOWAT, self.config.window_size // 4))
        every = core.tick_interval(TICK_SECONDS)  # sooner than 30 s with keepalives on
        next_tick = time.monotonic() + every
        try:
            while True:
                try:
                    data = receiver.receive(every)
                except OSError as exc:
                    with self._lock:
                        dispatch_all(core.connection_lost(
                            ConnectionLost(f"connection to {self.hostname} failed: {exc}")))
                    break
                if data is not None:
                    with self._lock:
                        dispatch_all(core.receive_data(data))
                    self._flush(blocking=False)
                    if core.closed:
                        break
                # Time-based work (rekey interval) also runs during a long busy transfer.
                now = time.monotonic()
                if data is None or now >= next_tick:
                    with self._lock:
                        dispatch_all(core.tick(now))
                    self._flush(blocking=False)
                    next_tick = now + every
                    if core.closed:  # e.g. the server stopped answering keepalives
                        break
        except BaseException as exc:  # a bug must not leave waiters hanging forever
            log.exception("internal error in the reader thread")
            with self._lock:
                dispatch_all(core.connection_lost(SSHError(f"internal error: {exc!r}")))
        finally:
            self._flush(blocking=True)  # the DISCONNECT must go out before we close
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
            self._closed_event.set()

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
                            self._driver.dispatch_all(self._core.connection_lost(
                                ConnectionLost(f"sending to {self.hostname} failed: {exc}")))
                        return
            finally:
                self._send_lock.release()
            with self._lock:
                if not self._core.has_data_to_send():
                    return

    def _check_alive(self) -> None:
        self._driver.check_alive()

    # --- public API ------------------------------------------------------------------
    def new_session(self, timeout: float | None = None) -> Session:
        """Open a session channel (exec, shell or subsystem)."""
        channel = self.open_channel("session", timeout=timeout)
        return Session(channel)

    def open_channel(self, kind: str, extra: bytes = b"",
                     timeout: float | None = None) -> ChannelIO:
        channel = ChannelIO(self, kind)
        with self._lock:
            self._driver.open_channel(channel, extra)
        self._flush()
        try:
            channel.wait_open(timeout)
        except Timeout:
            with self._lock:  # the server may still confirm it later; close it then
                self._driver.abandon(channel)
            raise
        return channel

    def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True,
                       timeout: float | None = None) -> tuple[bool, bytes]:
        deadline = deadline_after(timeout)
        driver = self._driver
        with self._lock:
            ticket = driver.global_request(name, payload, want_reply)
        self._flush()
        if ticket < 0:
            return True, b""
        with self._global_cond:
            while not driver.global_settled(ticket):
                self._global_cond.wait(remaining(deadline, f"reply to {name!r}"))
            return driver.global_result(ticket)

    def forward_agent(self, target: object) -> None:
        """Serve the server's agent channels from `target` (endpoint string or AgentClient).

        Sessions then ask for forwarding with session.request_agent_forwarding().
        Each forwarded channel opens its own connection to the local agent.
        """
        forwarder = AgentForwarder(target)
        with self._lock:
            self._driver.agent_target = forwarder

    def send_keepalive(self, timeout: float | None = None) -> None:
        """Ask the server for a reply (OpenSSH's keepalive@openssh.com) to prove it is alive."""
        self.global_request("keepalive@openssh.com", timeout=timeout)

    def rekey(self) -> None:
        """Start a new key exchange now."""
        with self._lock:
            self._driver.rekey()
        self._flush()

    def close(self) -> None:
        """Send DISCONNECT and close the socket; safe to call more than once."""
        with self._lock:
            self._driver.close()
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
        return self._driver.ended_because()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.Client {self.hostname}:{self.port}>"


class _ThreadDriver(Driver):
    """The shared driver, waking threads through the client's conditions."""

    def __init__(self, client: Client) -> None:
        super().__init__(client._core, client.config, client.hostname, client.port)
        self._client = client

    def make_channel(self, kind: str) -> Channel:
        return ChannelIO(self._client, kind)

    def start_agent_channel(self, channel: Channel) -> None:
        assert isinstance(self.agent_target, AgentForwarder) and isinstance(channel, ChannelIO)
        self.agent_target.start(channel)

    def wake_connection(self) -> None:
        self._client._global_cond.notify_all()


from .session import Session  # noqa: E402  (Session needs Client's module loaded first)
