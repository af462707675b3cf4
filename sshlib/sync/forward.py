"""Port forwarders of the threaded front-end: ssh -L, -R and -D.

A forwarder copies bytes between local sockets and SSH channel streams.  It
knows nothing of the Client: it is built from a callable that opens a stream
(`forward_local`, `forward_dynamic`) or from a listener that yields accepted
streams (`forward_remote`), so the Client methods only construct them.

Each forwarded connection is a `Pump`: two threads, one per direction.  EOF
one way is passed on as a half-close (shutdown_write / SHUT_WR) and the other
way keeps flowing; the connection is torn down when both directions have
ended, or at once when either fails.  Each direction holds at most one chunk
in flight: a local program that never reads leaves the data in the channel's
receive buffer, which is bounded by the SSH window, so the server stops
sending instead of our memory growing.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, TypeVar

from ..errors import ForwardingError, SocksError, SSHError, Timeout
from ..forwardspec import Endpoint, Spec, dial_args, parse_listen, parse_target
from ..localsock import ForwarderBase, ForwarderSet, bind_local, local_address, unix_socket
from ..socks import SocksHandshake, socks_reply_code

__all__ = ["StreamLike", "ListenerLike", "Pump", "Forwarder", "LocalForwarder",
           "RemoteForwarder", "DynamicForwarder", "ClientForwarding", "connect_local"]

log = logging.getLogger("sshlib.forward")

CHUNK = 256 * 1024  # most bytes per local recv (Python allocates this much per call)
DOWN_CHUNK = 1 << 20  # most bytes taken from the channel per local send (no preallocation)
SOCKS_READ = 1024  # a SOCKS request is a few hundred bytes at most
SOCKS_TIMEOUT = 30.0  # seconds a SOCKS client may take to send its request
CONNECT_TIMEOUT = 30.0  # seconds to reach a local target of forward_remote
CLOSE_WAIT = 5.0  # seconds close() waits for the forwarder's threads
OPEN_TIMEOUT = 30.0  # default seconds to open a channel (or a remote listener)

_REGISTRY_LOCK = threading.Lock()  # guards making each Client's ForwarderSet


class StreamLike(Protocol):
    """What a forwarder needs of a channel stream (sshlib.Stream is one)."""

    def sendall(self, data: bytes) -> None:
        """Send all of `data` (blocks while the peer's window is full)."""
    def recv(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at EOF."""
    def shutdown_write(self) -> None:
        """Half-close: no more data this way."""
    def close(self) -> None:
        """Close both directions."""


class ListenerLike(Protocol):
    """What forward_remote needs of a listener: accept() raises SSHError once it is closed."""

    @property
    def address(self) -> object:
        """What the server bound: (host, port) or a socket path."""
    def accept(self, timeout: float | None = None) -> StreamLike:
        """The next connection the server forwards; Timeout after `timeout` s."""
    def close(self) -> None:
        """Cancel the forward on the server; pending accept() calls raise SSHError."""


F = TypeVar("F", bound="Forwarder")


def _quiet(action: Callable[[], object]) -> None:
    try:
        action()
    except (OSError, SSHError):
        pass


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class Workers:
    """Threads that run a forwarder's jobs, kept idle a while for the next connection.

    A forwarded connection needs two threads; starting them costs more than
    the rest of a short connection's setup, so finished workers wait up to
    IDLE_SECONDS for another job before they exit.  Thread-safe.
    """

    IDLE_SECONDS = 2.0

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Callable[[], None]] = deque()
        self._idle = 0
        self._busy = 0
        self._closed = False
        self._mine = threading.local()  # .worker is True in our threads

    def submit(self, job: Callable[[], None]) -> None:
        with self._cond:
            self._busy += 1
            if self._idle > len(self._jobs):  # an idle worker takes it
                self._jobs.append(job)
                self._cond.notify()
                return
        threading.Thread(target=self._work, args=(job,), name=self.name, daemon=True).start()

    def _work(self, job: Callable[[], None] | None) -> None:
        self._mine.worker = True
        while job is not None:
            try:
                job()
            except BaseException:
                log.exception("%s: forwarded connection failed", self.name)
            job = None
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()  # wait_idle()
                self._idle += 1
                deadline = time.monotonic() + self.IDLE_SECONDS
                while not self._jobs and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._idle -= 1
                if self._jobs:
                    job = self._jobs.popleft()

    def close(self, timeout: float) -> None:
        """Let idle workers exit; wait up to `timeout` s for running jobs to finish."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            ourselves = 1 if getattr(self._mine, "worker", False) else 0  # a job closing us
            while self._busy > ourselves:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)


class Pump:
    """One forwarded connection: a local socket and a stream, copied both ways.

    run() copies local -> stream in the calling thread and stream -> local in
    a second thread, and returns when both are done and both ends are closed.
    abort() (any thread) ends it at once.
    """

    def __init__(self, sock: socket.socket, stream: StreamLike, first: bytes = b"",
                 spawn: Callable[[Callable[[], None]], None] | None = None) -> None:
        self.sock = sock
        self._spawn = spawn
        self.stream = stream
        self._first = first
        self._lock = threading.Lock()
        self._running = 2
        self.done = threading.Event()

    def run(self) -> None:
        """Copy both ways until both directions ended (runs in a worker thread)."""
        if self._spawn is not None:
            self._spawn(self._down)
        else:
            threading.Thread(target=self._down, name="sshlib-forward-down", daemon=True).start()
        self._up()
        self.done.wait()

    def abort(self) -> None:
        """End the connection now from any thread: both blocked copies wake and stop."""
        _shutdown(self.sock, socket.SHUT_RDWR)  # wakes a recv/sendall in either thread
        _quiet(self.stream.close)  # wakes a recv/sendall on the stream

    def _up(self) -> None:
        sock, stream = self.sock, self.stream
        try:
            if self._first:
                stream.sendall(self._first)
            while data := sock.recv(CHUNK):
                stream.sendall(data)
            stream.shutdown_write()
        except (OSError, SSHError) as exc:
            log.debug("forwarded connection, local -> channel: %s", exc)
            self.abort()
        finally:
            self._finish()

    def _down(self) -> None:
        sock, stream = self.sock, self.stream
        try:
            while data := stream.recv(DOWN_CHUNK):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            if getattr(stream, "closed", False):  # closed, not just EOF: nothing more to send
                _shutdown(sock, socket.SHUT_RD)
        except (OSError, SSHError) as exc:
            log.debug("forwarded connection, channel -> local: %s", exc)
            self.abort()
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            _quiet(self.stream.close)
            self.sock.close()
            self.done.set()


class Forwarder(ForwarderBase):
    """What every forwarder shares: the connections it serves, close(), a with-block.

    close() stops accepting, ends every forwarded connection and waits (up to
    a few seconds) for their threads; it is safe to call more than once and
    from any thread.  Thread-safe.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._pumps: set[Pump] = set()
        self._workers = Workers(f"sshlib-{name}")
        self._accepter: threading.Thread | None = None

    @property
    def active(self) -> int:
        """Forwarded connections open right now."""
        with self._lock:
            return len(self._socks)

    def _start(self, loop: Callable[[], None]) -> None:
        self._accepter = threading.Thread(target=self._accept_loop, args=(loop,),
                                          name=f"sshlib-{self.name}", daemon=True)
        self._accepter.start()

    def _accept_loop(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException:  # a bug: log it and stop, never hang close()
            log.exception("%s: accept loop failed", self.name)
        finally:
            self.close()

    def _spawn(self, work: Callable[[], None]) -> None:
        """Run `work` in a worker thread (each forwarded connection has one)."""
        if not self._closed:
            self._workers.submit(work)

    def _own(self, sock: socket.socket) -> bool:
        """Track a local socket until it is closed; False (and closed) if we are closing."""
        with self._lock:
            if not self._closed:
                self._socks.add(sock)
                return True
        sock.close()
        return False

    def _disown(self, sock: socket.socket) -> None:
        sock.close()
        with self._lock:
            self._socks.discard(sock)

    def _pump(self, sock: socket.socket, stream: StreamLike, first: bytes = b"") -> None:
        pump = Pump(sock, stream, first, self._workers.submit)
        with self._lock:
            if self._closed:
                pump.abort()
            self._pumps.add(pump)
        try:
            pump.run()
        finally:
            with self._lock:
                self._pumps.discard(pump)

    def _stop_accepting(self) -> None:
        """Close the listening side (subclasses)."""

    def close(self) -> None:
        """Stop listening and end every forwarded connection; idempotent, from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            socks, pumps = list(self._socks), list(self._pumps)
        self._stop_accepting()
        for sock in socks:
            _shutdown(sock, socket.SHUT_RDWR)
        for pump in pumps:
            pump.abort()
        deadline = time.monotonic() + CLOSE_WAIT
        if self._accepter is not None and self._accepter is not threading.current_thread():
            self._accepter.join(CLOSE_WAIT)
        self._workers.close(max(0.0, deadline - time.monotonic()))
        self._closed_now()

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --- local listening sockets ---------------------------------------------------------------

def connect_local(endpoint: Endpoint, timeout: float | None = CONNECT_TIMEOUT) -> socket.socket:
    """A socket connected to `endpoint` (forward_remote's target); ForwardingError if not."""
    try:
        if endpoint.is_unix:
            sock = unix_socket()
            try:
                sock.settimeout(timeout)
                sock.connect(endpoint.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        return sock
    except OSError as exc:
        raise ForwardingError(f"cannot connect to {endpoint}: {exc}") from exc


class _ListeningForwarder(Forwarder):
    """A forwarder that accepts on a local socket (-L and -D)."""

    def __init__(self, name: str, listen: Endpoint) -> None:
        super().__init__(name)
        self.listen = listen
        self._server = bind_local(listen)
        self._address = local_address(self._server, listen)
        self._wake_r, self._wake_w = socket.socketpair()

    @property
    def address(self) -> object:
        return self._address

    def _accept_connections(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._server, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed:
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, _ = self._server.accept()
                    except OSError as exc:
                        if self._closed:
                            return
                        log.info("%s: accept failed: %s", self.name, exc)
                        continue
                    conn.setblocking(True)
                    if conn.family != getattr(socket, "AF_UNIX", None):
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if self._own(conn):
                        self._spawn(lambda c=conn: self._handle_and_close(c))  # type: ignore[misc]

    def _handle_and_close(self, sock: socket.socket) -> None:
        try:
            self._handle(sock)
        finally:
            self._disown(sock)

    def _handle(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def _stop_accepting(self) -> None:
        _quiet(lambda: self._wake_w.send(b"x"))
        if self._accepter is not None and self._accepter is not threading.current_thread():
            self._accepter.join(CLOSE_WAIT)
        self._server.close()
        self._wake_r.close()
        self._wake_w.close()
        if self.listen.is_unix:
            _quiet(lambda: os.unlink(self.listen.path))


class LocalForwarder(_ListeningForwarder):
    """ssh -L: each local connection gets a new stream from `open_stream()`.

    `address` is the bound local address ((host, port) with the real port
    when 0 was asked for, or the Unix socket path).  A connection whose stream
    cannot be opened (the server refused, the connection ended) is closed and
    logged; the forwarder keeps listening.
    """

    def __init__(self, listen: Endpoint, open_stream: Callable[[], StreamLike],
                 target: str = "") -> None:
        super().__init__(f"forward-local {listen} -> {target}", listen)
        self._open = open_stream
        self._start(self._accept_connections)

    def _handle(self, sock: socket.socket) -> None:
        try:
            stream = self._open()
        except SSHError as exc:
            log.info("%s: %s", self.name, exc)
            return
        self._pump(sock, stream)


class DynamicForwarder(_ListeningForwarder):
    """ssh -D: a SOCKS4/4a/5 CONNECT server; each request opens `open_stream(host, port)`.

    A client that sends a malformed or unsupported request (BIND, UDP, only
    authentication methods) gets the protocol's refusal and is disconnected;
    a client that takes longer than SOCKS_TIMEOUT seconds for its request too.
    """

    def __init__(self, listen: Endpoint,
                 open_stream: Callable[[str, int], StreamLike]) -> None:
        super().__init__(f"forward-dynamic {listen}", listen)
        self._open = open_stream
        self._start(self._accept_connections)

    def _handle(self, sock: socket.socket) -> None:
        handshake = SocksHandshake()
        sock.settimeout(SOCKS_TIMEOUT)
        try:
            request = None
            while request is None:
                request = handshake.receive_data(sock.recv(SOCKS_READ))
                if out := handshake.data_to_send():
                    sock.sendall(out)
        except SocksError as exc:
            log.info("%s: %s", self.name, exc)
            if exc.reply:
                _send_quietly(sock, exc.reply)
            return
        except OSError as exc:  # includes the timeout
            log.info("%s: SOCKS client failed before its request: %s", self.name, exc)
            return
        try:
            stream = self._open(request.host, request.port)
        except SSHError as exc:
            log.info("%s: %s:%d: %s", self.name, request.host, request.port, exc)
            _send_quietly(sock, handshake.failure(socks_reply_code(exc)))
            return
        try:
            sock.sendall(handshake.success())
        except OSError:
            _quiet(stream.close)
            return
        sock.settimeout(None)
        self._pump(sock, stream, handshake.leftover)


class RemoteForwarder(Forwarder):
    """ssh -R: each stream the listener accepts is connected to the local `target`.

    `address` is what the server bound (the listener's address).  close()
    closes the listener, which cancels the forward on the server.
    """

    def __init__(self, listener: ListenerLike, target: Endpoint) -> None:
        super().__init__(f"forward-remote {listener.address!r} -> {target}")
        self._listener = listener
        self.target = target
        self._start(self._accept_streams)

    @property
    def address(self) -> object:
        return self._listener.address

    def _accept_streams(self) -> None:
        while not self._closed:
            try:
                stream = self._listener.accept()
            except Timeout:
                continue
            except SSHError as exc:
                if not self._closed:
                    log.info("%s: listener ended: %s", self.name, exc)
                return
            self._spawn(lambda st=stream: self._connect_and_pump(st))  # type: ignore[misc]

    def _connect_and_pump(self, stream: StreamLike) -> None:
        try:
            sock = connect_local(self.target)
        except ForwardingError as exc:
            log.info("%s: %s", self.name, exc)
            _quiet(stream.close)
            return
        if not self._own(sock):
            _quiet(stream.close)
            return
        try:
            self._pump(sock, stream)
        finally:
            self._disown(sock)

    def _stop_accepting(self) -> None:
        _quiet(self._listener.close)


class ClientForwarding:
    """forward_local / forward_remote / forward_dynamic of sshlib.Client (a mixin).

    They build on the Client's dial() and listen(); every forwarder a Client
    made closes with it, when it is closed and when the connection ends.
    """

    _forwarders: ForwarderSet | None = None

    def dial(self, network: str, address: str, timeout: float | None = None) -> StreamLike:
        """The Client's own dial() is what runs; this declares it for the mixin."""
        raise NotImplementedError  # sshlib.Client provides it

    def listen(self, network: str, address: str, timeout: float | None = 30) -> ListenerLike:
        """The Client's own listen() is what runs; this declares it for the mixin."""
        raise NotImplementedError  # sshlib.Client provides it

    def forward_local(self, listen: Spec, target: Spec, *,
                      timeout: float | None = OPEN_TIMEOUT) -> LocalForwarder:
        """ssh -L: listen locally and send each connection to `target` through the server.

        `listen` is "port", "host:port", "[v6]:port", "*:port" or "unix:/path"
        (a bare port means 127.0.0.1; port 0 picks a free one, see
        `fw.address`); `target` is "host:port" or "unix:/path" as the server
        sees it.  Each connection opens a direct-tcpip (or
        direct-streamlocal@openssh.com) channel, waiting up to `timeout`
        seconds; a refused open closes that local connection and is logged.
        Raises ValueError for a malformed spec, ForwardingError if the local
        address cannot be bound.
        """
        dest = parse_target(target)
        network, addr = dial_args(dest)
        return self._keep(LocalForwarder(
            parse_listen(listen), lambda: self.dial(network, addr, timeout=timeout), str(dest)))

    def forward_remote(self, server_listen: Spec, local_target: Spec, *,
                       timeout: float | None = OPEN_TIMEOUT) -> RemoteForwarder:
        """ssh -R: ask the server to listen and connect each connection to `local_target`.

        `server_listen` follows OpenSSH's -R rules: a bare port asks for
        "localhost"; "*:port" asks for every interface (honoured only with
        the server's GatewayPorts clientspecified/yes); port 0 lets the server
        choose (`fw.address` says what it bound).  Raises RequestDeniedError
        if the server refuses, within `timeout` seconds.  `local_target` is
        "host:port" or "unix:/path" on this machine.
        """
        network, addr = dial_args(parse_listen(server_listen, remote=True))
        dest = parse_target(local_target)
        return self._keep(RemoteForwarder(self.listen(network, addr, timeout=timeout), dest))

    def forward_dynamic(self, listen: Spec, *,
                        timeout: float | None = OPEN_TIMEOUT) -> DynamicForwarder:
        """ssh -D: a local SOCKS4, SOCKS4a and SOCKS5 proxy (CONNECT, no authentication).

        Each request opens a direct-tcpip channel to the host and port the
        SOCKS client asked for (names are resolved by the server, as with
        SOCKS4a and socks5h); a refused open gets a SOCKS refusal.  BIND,
        UDP ASSOCIATE and authentication-only clients are refused.
        """
        def open_stream(host: str, port: int) -> StreamLike:
            return self.dial(*dial_args(Endpoint("tcp", host, port)), timeout=timeout)

        return self._keep(DynamicForwarder(parse_listen(listen), open_stream))

    def wait(self, timeout: float | None = None) -> SSHError | None:
        """The Client's own wait() is what runs; this declares it for the mixin."""
        raise NotImplementedError  # sshlib.Client provides it

    def _keep(self, forwarder: F) -> F:
        with _REGISTRY_LOCK:
            first = self._forwarders is None
            if self._forwarders is None:
                self._forwarders = ForwarderSet()
        self._forwarders.add(forwarder)
        if first:  # when the connection ends (also on its own), its forwarders close
            threading.Thread(target=self._close_forwarders_at_end, daemon=True,
                             name="sshlib-forward-watch").start()
        return forwarder

    def _close_forwarders_at_end(self) -> None:
        try:
            self.wait()
        finally:
            self._close_forwarders()

    def _close_forwarders(self) -> None:
        """Close every forwarder this client made (Client.close calls it)."""
        for forwarder in self._forwarders.snapshot() if self._forwarders else ():
            assert isinstance(forwarder, Forwarder)
            forwarder.close()
