"""The threaded front-end: `dial()` and `Client` (Go's ssh.Dial / ssh.NewClientConn).

The calling thread runs the handshake and authentication itself (so user
callbacks run in the caller's thread); afterwards one reader thread per
connection feeds the core.  A single lock guards the core; sending happens
outside it under a separate lock, so a blocked send never stops the
reader from draining its input.  A Client runs over any `Transport`: a
socket, a Stream of another Client (a jump host) or a ProxyCommand.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

from ..config import ClientConfig
from ..driver import (
    ChannelOpenHandler,
    ConnectionFacts,
    OpenRequest,
    proxy_command_line,
    split_address,
)
from ..errors import ConnectionLost, RequestDeniedError, SSHError, Timeout
from ..protocol.client import ClientConnection
from .channel import ChannelIO, SessionChannelIO, ThreadDriver, deadline_after, remaining
from .forward import ClientForwarding
from .stream import Listener, NewChannel, Stream
from .transport import ChannelTransport, ProcessTransport, SocketTransport, Transport

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("sshlib.client")

TICK_SECONDS = 30.0
SEND_TIMEOUT = 60.0
RECV_SIZE = 256 * 1024
ABANDON_FLUSH = 1.0  # seconds to send the CHANNEL_CLOSE of an open given up just as it came


def dial(network: str, addr: str, config: ClientConfig, *, via: Client | None = None,
         proxy_command: str | None = None) -> Client:
    """Connect to addr ("host:port"), run the handshake and authenticate.

    `via=` another Client reaches addr through it (direct-tcpip, like ssh -J;
    chains work: `via` may itself have been dialed via another client).
    `proxy_command=` runs that command (OpenSSH tokens %h %p %r %n %%) and
    speaks SSH over its stdin/stdout, like ssh's ProxyCommand.
    config.timeout bounds connect + handshake + authentication.
    """
    if network not in ("tcp", "tcp4", "tcp6"):
        raise ValueError(f"unsupported network {network!r}; use 'tcp'")
    if via is not None and proxy_command is not None:
        raise ValueError("give via= or proxy_command=, not both")
    host, port = split_address(addr)
    deadline = deadline_after(config.timeout)
    if via is not None:
        stream = via.dial("tcp", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                          timeout=config.timeout)
        try:
            return Client(stream, config, addr=(host, port), timeout=_left(deadline))
        except BaseException:
            stream.close()
            raise
    if proxy_command is not None:
        line = proxy_command_line(proxy_command, host, port, config.user)
        return Client(ProcessTransport(line), config, addr=(host, port), timeout=config.timeout)
    family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}.get(network, 0)
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
        return Client(sock, config, addr=(host, port), timeout=_left(deadline))
    if isinstance(last_error, socket.timeout):
        raise Timeout(f"timed out connecting to {addr}")
    raise ConnectionLost(f"cannot connect to {addr}: {last_error}")


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.001, deadline - time.monotonic())


class Client(ConnectionFacts, ClientForwarding):
    """An authenticated SSH connection over a socket, a Stream or another Transport.

    `Client(bastion.dial("tcp", "target:22"), cfg, addr=("target", 22))` runs SSH
    inside a channel of `bastion` (Go's NewClientConn over Client.Dial).  The
    client owns what it runs over and closes it with itself.
    """

    def __init__(self, sock: socket.socket | Stream | Transport, config: ClientConfig, *,
                 addr: tuple[str, int] | str | None = None,
                 timeout: float | None = None) -> None:
        if addr is None:
            if not isinstance(sock, socket.socket):
                raise ValueError("addr= is required for a Client over a stream")
            peer = sock.getpeername()
            addr = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else (str(peer), 22)
        elif isinstance(addr, str):
            addr = split_address(addr)
        self.hostname, self.port = addr
        self.config = config = config.for_host(self.hostname, self.port)
        if isinstance(sock, socket.socket):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (socketpair in tests, Unix sockets)
            transport: Transport = SocketTransport(sock)
        elif isinstance(sock, Stream):
            transport = ChannelTransport(sock.channel)
        else:
            transport = sock
        self._transport = transport
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._out = memoryview(b"")  # bytes taken from the core, not yet sent (send lock)
        self._core = ClientConnection(config, rng=os.urandom, now=time.monotonic())
        self._driver: ThreadDriver = ThreadDriver(self._core, config, self.hostname, self.port,
                                                  self._lock, self._flush)
        self._closed_event = threading.Event()
        self._listeners: list[Listener] = []
        if timeout is None:
            timeout = config.timeout
        try:
            self._handshake(deadline_after(timeout))
        except BaseException:
            self._abort()
            raise
        transport.start_streaming(config.window_size // 4)
        self._reader = threading.Thread(target=self._read_loop, name=f"sshlib-reader-{addr}",
                                        daemon=True)
        self._reader.start()

    # --- handshake in the calling thread ------------------------------------------
    def _handshake(self, deadline: float | None) -> None:
        core = self._core
        self._send_handshake(deadline)
        while not core.authenticated:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(f"timed out during SSH handshake with {self.hostname}")
            try:
                data = self._transport.receive(left)
            except OSError as exc:
                raise ConnectionLost(f"connection to {self.hostname} failed: {exc}") from exc
            if data is None:
                continue
            pending = core.receive_data(data)
            while pending:
                pending.extend(self._driver.handshake_event(pending.pop(0)))
            self._send_handshake(deadline)
            if core.error is not None:
                raise core.error

    def _send_handshake(self, deadline: float | None) -> None:
        try:
            self._flush(deadline if deadline is not None else time.monotonic() + SEND_TIMEOUT)
        except Timeout:
            raise Timeout(f"timed out during SSH handshake with {self.hostname}") from None
        except ConnectionLost:
            if self._core.error is None:
                raise

    def _abort(self) -> None:
        try:
            self._transport.close()
        except OSError:
            pass

    # --- reader thread ---------------------------------------------------------------
    def _read_loop(self) -> None:
        core = self._core
        dispatch_all = self._driver.dispatch_all
        receive = self._transport.receive
        every = core.tick_interval(TICK_SECONDS)  # sooner than 30 s with keepalives on
        next_tick = time.monotonic() + every
        try:
            while True:
                try:
                    data = receive(every)
                except (OSError, SSHError) as exc:
                    with self._lock:
                        dispatch_all(core.connection_lost(
                            ConnectionLost(f"connection to {self.hostname} failed: {exc}")))
                    break
                if data is not None:
                    with self._lock:
                        dispatch_all(core.receive_data(data))
                    self._flush_nowait()
                    if core.closed:
                        break
                # Time-based work (rekey interval) also runs during a long busy transfer.
                now = time.monotonic()
                if data is None or now >= next_tick:
                    with self._lock:
                        dispatch_all(core.tick(now))
                    self._flush_nowait()
                    next_tick = now + every
                    if core.closed:  # e.g. the server stopped answering keepalives
                        break
        except BaseException as exc:  # a bug must not leave waiters hanging forever
            log.exception("internal error in the reader thread")
            with self._lock:
                dispatch_all(core.connection_lost(SSHError(f"internal error: {exc!r}")))
        finally:
            try:  # the DISCONNECT must go out before we close
                self._flush(time.monotonic() + 5)
            except SSHError:
                pass
            self._transport.shutdown()
            self._transport.close()
            self._closed_event.set()

    # --- sending -----------------------------------------------------------------------
    def _flush_nowait(self) -> None:
        """The reader's send: only if no application thread is sending already."""
        try:
            self._flush(None, blocking=False)
        except SSHError:
            pass

    def _flush(self, deadline: float | None = None, blocking: bool = True) -> None:
        """Send whatever the core has queued, in order, outside the core lock.

        With a deadline: Timeout if TCP (or another sender) holds us up past it;
        what was not sent stays queued for the next flush.  Without one a peer
        that reads nothing for SEND_TIMEOUT seconds ends the connection.
        """
        while True:
            if blocking:
                wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._send_lock.acquire(timeout=wait):
                    raise Timeout("timed out waiting to send (the peer is not reading)")
            elif not self._send_lock.acquire(blocking=False):
                return
            try:
                self._send_queued(deadline)
            finally:
                self._send_lock.release()
            with self._lock:
                if not self._core.has_data_to_send():
                    return

    def _send_queued(self, deadline: float | None) -> None:  # send lock held
        limit = deadline if deadline is not None else time.monotonic() + SEND_TIMEOUT
        send = self._transport.send
        while True:
            if not self._out:
                with self._lock:  # a view: this loop sends it all before taking the next
                    data = self._core.data_to_send_view()
                if not data:
                    return
                self._out = memoryview(data)
            try:
                sent = send(self._out, limit)
            except Timeout:
                if deadline is not None:
                    raise
                error: SSHError = ConnectionLost(
                    f"{self.hostname} has read nothing for {SEND_TIMEOUT:.0f} s")
            except (OSError, SSHError) as exc:
                error = ConnectionLost(f"sending to {self.hostname} failed: {exc}")
            else:
                self._out = self._out[sent:]
                continue
            self._out = memoryview(b"")
            with self._lock:
                self._driver.dispatch_all(self._core.connection_lost(error))
            raise error

    def _check_alive(self) -> None:
        self._driver.check_alive()

    # --- public API ------------------------------------------------------------------
    def new_session(self, timeout: float | None = None) -> Session:
        """Open a session channel (exec, shell or subsystem)."""
        channel = SessionChannelIO(self._driver)
        self._open(channel, b"", timeout)
        return Session(channel)

    def sftp(self, timeout: float | None = 30) -> SFTPClient:
        """Start an SFTP session (see docs/sftp.md); use it as a context manager."""
        return SFTPClient.start(self, timeout)

    def open_channel(self, kind: str, extra: bytes = b"",
                     timeout: float | None = None) -> ChannelIO:
        """Open a channel of any kind with raw type-specific `extra` data."""
        channel = ChannelIO(self._driver, kind)
        self._open(channel, extra, timeout)
        return channel

    def _open(self, channel: ChannelIO, extra: bytes, timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        with self._lock:
            self._driver.open_channel(channel, extra)
        self._flush(deadline)
        try:
            channel.wait_open(None if deadline is None else deadline - time.monotonic())
        except BaseException:  # Timeout or an interrupt: as sshlib.aio's AioChannel.wait_open
            with self._lock:
                state = channel.give_up_opening(
                    Timeout(f"gave up opening the {channel.kind} channel"))
                if state != "ended":
                    self._driver.abandon(channel)
                close = state == "confirmed" and self._driver.close_channel(channel)
            if close:
                try:
                    self._flush(time.monotonic() + ABANDON_FLUSH)
                except SSHError:
                    pass
            raise

    def dial(self, network: str, address: str, timeout: float | None = None) -> Stream:
        """A connection from the server to `address` (Go's Client.Dial) as a Stream.

        network "tcp": address "host:port" (direct-tcpip); "unix": a socket path on the
        server (direct-streamlocal@openssh.com).  ChannelOpenError if the server
        refuses (forwarding disabled, connect failed), Timeout after `timeout`.
        The stream's own timeout starts as None (blocking).
        """
        kind, extra = self._driver.dial_payload(network, address)
        return Stream(self.open_channel(kind, extra, timeout))

    def listen(self, network: str, address: str, timeout: float | None = 30) -> Listener:
        """Ask the server to listen on `address` and pass us its connections (Go's Listen).

        network "tcp": "host:port" (tcpip-forward; port 0 lets the server choose,
        `.address` has the real port); "unix": a socket path on the server
        (streamlocal-forward@openssh.com).  RequestDeniedError if the server refuses.
        """
        listener = Listener(self._driver, network, address,
                            lambda t: self._cancel_forward(listener, t))
        driver = self._driver
        deadline = deadline_after(timeout)
        with self._lock:
            ticket = driver.request_forward(network, address, listener)
        self._flush(deadline)
        with driver.connection_cond:
            while not driver.global_settled(ticket):
                driver.connection_cond.wait(remaining(deadline, f"the server to listen on "
                                                                f"{address}"))
            ok, _ = driver.global_result(ticket)
        if not ok:
            raise RequestDeniedError(f"server refused to listen on {network} {address}")
        self._listeners.append(listener)
        return listener

    def _cancel_forward(self, listener: Listener, timeout: float | None) -> None:
        self._listeners = [ln for ln in self._listeners if ln is not listener]
        driver = self._driver
        deadline = deadline_after(timeout)
        with self._lock:
            ticket = driver.cancel_forward(listener)
        self._flush(deadline)
        with driver.connection_cond:
            while not driver.global_settled(ticket):
                driver.connection_cond.wait(remaining(deadline, "the forward to be cancelled"))
            ok, _ = driver.global_result(ticket)
        if not ok:
            log.info("server refused to cancel the forward %s", listener.address)

    def handle_channel_open(self, kind: str,
                            handler: Callable[[NewChannel], None] | None) -> None:
        """Serve server-opened channels of `kind` (Go's HandleChannelOpen); None removes.

        handler(new_channel) runs in the reader thread with the connection lock
        held: it must call new_channel.accept() (a Stream) or .reject() at once and
        hand the stream to another thread.  Kinds without a handler are refused.
        """
        registered: ChannelOpenHandler | None = None
        if handler is not None:
            def registered(request: OpenRequest) -> None:
                handler(NewChannel(request))
        with self._lock:
            self._driver.handle_channel_open(kind, registered)

    def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True,
                       timeout: float | None = None) -> tuple[bool, bytes]:
        """Send a global request; (success, reply data), Timeout after `timeout`."""
        deadline = deadline_after(timeout)
        driver = self._driver
        with self._lock:
            ticket = driver.global_request(name, payload, want_reply)
        self._flush(deadline)
        if ticket < 0:
            return True, b""
        with driver.connection_cond:
            while not driver.global_settled(ticket):
                driver.connection_cond.wait(remaining(deadline, f"reply to {name!r}"))
            return driver.global_result(ticket)

    def forward_agent(self, target: object) -> None:
        """Serve the server's agent channels from `target` (endpoint string or AgentClient).

        Sessions then ask for forwarding with session.request_agent_forwarding().
        Each forwarded channel opens its own connection to the local agent.
        """
        from .agentfwd import register_agent_forwarding

        with self._lock:
            register_agent_forwarding(self._driver, target)

    def send_keepalive(self, timeout: float | None = None) -> None:
        """Ask the server for a reply (OpenSSH's keepalive@openssh.com) to prove it is alive."""
        self.global_request("keepalive@openssh.com", timeout=timeout)

    def rekey(self, timeout: float | None = None) -> None:
        """Start a new key exchange now (returns once KEXINIT is sent; Timeout after timeout)."""
        with self._lock:
            self._driver.rekey()
        self._flush(deadline_after(timeout))

    def close(self) -> None:
        """Send DISCONNECT and close the transport; every stream and listener ends with it."""
        self._close_forwarders()  # forward_local/remote/dynamic: their local sockets too
        with self._lock:
            self._driver.close()
        try:
            self._flush(time.monotonic() + 5)
        except SSHError:
            pass
        finally:
            self._transport.shutdown()
            if threading.current_thread() is not self._reader:
                self._reader.join(5)
            self._transport.close()

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


from .session import Session  # noqa: E402  (Session needs Client's module loaded first)
from .sftp import SFTPClient  # noqa: E402
