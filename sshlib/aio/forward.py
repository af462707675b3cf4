"""Port forwarders of the asyncio front-end: ssh -L, -R and -D.

The same forwarders as sshlib.sync.forward, as tasks on the running loop.
Each is built from a coroutine function that opens a stream (forward_local,
forward_dynamic) or from a listener that yields accepted streams
(forward_remote), so the Client methods only construct them.

Each forwarded connection is one task copying both ways: EOF one way is
passed on as a half-close (write_eof) and the other way keeps flowing; the
connection ends when both directions have, or at once when either fails.
Every write is followed by `drain()`, so a local program that never reads
leaves the data in the channel's receive buffer (bounded by the SSH window)
and the server stops sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, TypeVar

from ..errors import ForwardingError, SocksError, SSHError, Timeout
from ..forwardspec import Endpoint, Spec, dial_args, parse_listen, parse_target
from ..localsock import ForwarderBase, ForwarderSet, bind_local, local_address
from ..socks import SocksHandshake, socks_reply_code

__all__ = ["AioStreamLike", "AioListenerLike", "pump", "Forwarder", "LocalForwarder",
           "RemoteForwarder", "DynamicForwarder", "ClientForwarding", "open_local"]

log = logging.getLogger("sshlib.forward")

CHUNK = 256 * 1024
SOCKS_READ = 1024
SOCKS_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0
CLOSE_WAIT = 5.0
OPEN_TIMEOUT = 30.0


F = TypeVar("F", "LocalForwarder", "RemoteForwarder", "DynamicForwarder")


class AioStreamLike(Protocol):
    """What a forwarder needs of an asyncio channel stream (sshlib.aio's is one)."""

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes; b"" at EOF."""
    def write(self, data: bytes) -> None:
        """Queue `data`; drain() waits for window."""
    async def drain(self) -> None:
        """Wait until queued data fits the peer's window."""
    def write_eof(self) -> None:
        """Half-close: no more data this way."""
    def close(self) -> None:
        """Close both directions; never blocks."""


class AioListenerLike(Protocol):
    """What forward_remote needs of a listener: accept() raises SSHError once closed."""

    @property
    def address(self) -> object:
        """What the server bound: (host, port) or a socket path."""
    async def accept(self, timeout: float | None = None) -> AioStreamLike:
        """The next connection the server forwards; Timeout after `timeout` s."""
    async def close(self) -> None:
        """Cancel the forward on the server; pending accept() calls raise."""


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               stream: AioStreamLike, first: bytes = b"") -> None:
    """Copy local <-> stream until both directions end; closes both ends."""
    failed = False

    def abort(exc: BaseException, where: str) -> None:
        nonlocal failed
        log.debug("forwarded connection, %s: %s", where, exc)
        failed = True
        writer.transport.abort()
        with contextlib.suppress(OSError, SSHError):
            stream.close()

    async def up() -> None:
        try:
            if first:
                stream.write(first)
                await stream.drain()
            while data := await reader.read(CHUNK):
                stream.write(data)
                await stream.drain()
            stream.write_eof()
        except (OSError, SSHError) as exc:
            abort(exc, "local -> channel")

    async def down() -> None:
        try:
            while data := await stream.read(CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, SSHError) as exc:
            abort(exc, "channel -> local")

    try:
        await asyncio.gather(up(), down())
    finally:
        with contextlib.suppress(OSError, SSHError):
            stream.close()
        if failed:
            writer.transport.abort()
        else:
            writer.close()


async def open_local(endpoint: Endpoint, timeout: float | None = CONNECT_TIMEOUT
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to forward_remote's local target; ForwardingError if it cannot be reached."""
    try:
        if endpoint.is_unix:
            if sys.platform == "win32":
                raise ForwardingError("Unix sockets are not available on this platform")
            opening = asyncio.open_unix_connection(endpoint.path)
        else:
            opening = asyncio.open_connection(endpoint.host, endpoint.port)
        return await asyncio.wait_for(opening, timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ForwardingError(f"cannot connect to {endpoint}: {exc or 'timed out'}") from exc


class Forwarder(ForwarderBase):
    """What every asyncio forwarder shares: its connection tasks, close(), ``async with``.

    ``await fw.close()`` stops accepting, cancels every forwarded connection
    and waits (a few seconds at most) for them to end; safe to call twice.
    Use it from the loop that created the forwarder.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        """Forwarded connections open right now."""
        return len(self._tasks)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: forwarded connection failed", self.name)

    async def _stop_accepting(self) -> None:
        """Close the listening side (subclasses)."""

    async def close(self) -> None:
        """Stop listening, end every forwarded connection and wait for them; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._stop_accepting()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_WAIT)
        self._closed_now()

    async def __aenter__(self) -> Forwarder:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()



class _ListeningForwarder(Forwarder):
    """A forwarder that accepts on a local socket (-L and -D)."""

    def __init__(self, name: str, listen: Endpoint) -> None:
        super().__init__(name)
        self.listen = listen
        self._sock = bind_local(listen)
        self._address = local_address(self._sock, listen)
        self._server: asyncio.base_events.Server | None = None

    @property
    def address(self) -> object:
        return self._address

    async def start(self) -> None:
        """Start accepting (the Client's forward_* coroutine calls this)."""
        try:
            if self.listen.is_unix and sys.platform != "win32":
                self._server = await asyncio.start_unix_server(self._accepted, sock=self._sock)
            else:
                self._server = await asyncio.start_server(self._accepted, sock=self._sock)
        except BaseException:
            self._sock.close()
            raise

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.transport.abort()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._spawn(self._handle_and_close(reader, writer))

    async def _handle_and_close(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        finally:
            if not writer.is_closing():
                writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        self._sock.close()
        if self.listen.is_unix:
            with contextlib.suppress(OSError):
                os.unlink(self.listen.path)


class LocalForwarder(_ListeningForwarder):
    """ssh -L: each local connection gets a new stream from ``await open_stream()``.

    Build it with ``await sshlib.aio.Client.forward_local(...)``; `address`
    is the bound local address (the real port when 0 was asked for).
    """

    def __init__(self, listen: Endpoint, open_stream: Callable[[], Awaitable[AioStreamLike]],
                 target: str = "") -> None:
        super().__init__(f"forward-local {listen} -> {target}", listen)
        self._open = open_stream

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await self._open()
        except SSHError as exc:
            log.info("%s: %s", self.name, exc)
            return
        await pump(reader, writer, stream)


class DynamicForwarder(_ListeningForwarder):
    """ssh -D: a SOCKS4/4a/5 CONNECT server; each request opens ``await open_stream(host, port)``.

    Malformed or unsupported requests (BIND, UDP, only authentication methods)
    get the protocol's refusal and are disconnected, as are clients that take
    longer than SOCKS_TIMEOUT seconds for their request.
    """

    def __init__(self, listen: Endpoint,
                 open_stream: Callable[[str, int], Awaitable[AioStreamLike]]) -> None:
        super().__init__(f"forward-dynamic {listen}", listen)
        self._open = open_stream

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       handshake: SocksHandshake) -> None:
        while handshake.receive_data(await reader.read(SOCKS_READ)) is None:
            if out := handshake.data_to_send():  # the SOCKS5 method choice
                writer.write(out)
                await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handshake = SocksHandshake()
        try:
            await asyncio.wait_for(self._request(reader, writer, handshake), SOCKS_TIMEOUT)
        except SocksError as exc:
            log.info("%s: %s", self.name, exc)
            if exc.reply:
                writer.write(exc.reply)
                with contextlib.suppress(OSError):
                    await writer.drain()
            writer.close()
            return
        except (OSError, asyncio.TimeoutError) as exc:
            log.info("%s: SOCKS client failed before its request: %s", self.name, exc)
            return
        request = handshake.request
        assert request is not None
        try:
            stream = await self._open(request.host, request.port)
        except SSHError as exc:
            log.info("%s: %s:%d: %s", self.name, request.host, request.port, exc)
            writer.write(handshake.failure(socks_reply_code(exc)))
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()
            return
        writer.write(handshake.success())
        await pump(reader, writer, stream, handshake.leftover)


class RemoteForwarder(Forwarder):
    """ssh -R: each stream the listener accepts is connected to the local `target`.

    `address` is what the server bound; close() closes the listener, which
    cancels the forward on the server.
    """

    def __init__(self, listener: AioListenerLike, target: Endpoint) -> None:
        super().__init__(f"forward-remote {listener.address!r} -> {target}")
        self._listener = listener
        self.target = target
        self._accepter: asyncio.Task[None] | None = None

    @property
    def address(self) -> object:
        return self._listener.address

    async def start(self) -> None:
        """Start accepting (the Client's forward_* coroutine calls this)."""
        self._accepter = asyncio.ensure_future(self._accept_streams())

    async def _accept_streams(self) -> None:
        while not self._closed:
            try:
                stream = await self._listener.accept()
            except Timeout:
                continue
            except SSHError as exc:
                if not self._closed:
                    log.info("%s: listener ended: %s", self.name, exc)
                return
            self._spawn(self._connect_and_pump(stream))

    async def _connect_and_pump(self, stream: AioStreamLike) -> None:
        try:
            reader, writer = await open_local(self.target)
        except ForwardingError as exc:
            log.info("%s: %s", self.name, exc)
            stream.close()
            return
        await pump(reader, writer, stream)

    async def _stop_accepting(self) -> None:
        if self._accepter is not None and self._accepter is not asyncio.current_task():
            self._accepter.cancel()
            with contextlib.suppress(asyncio.CancelledError, SSHError):
                await self._accepter
        with contextlib.suppress(SSHError, OSError):
            await self._listener.close()


class ClientForwarding:
    """forward_local / forward_remote / forward_dynamic of sshlib.aio.Client (a mixin).

    The same calls as sshlib.Client's, as coroutines; they build on the
    Client's dial() and listen(); every forwarder a Client made closes with
    it, when it is closed and when the connection ends.  Each returns a started
    forwarder: ``fw.address``, ``await fw.close()``, or
    ``async with await client.forward_local(...) as fw``.
    """

    _forwarders: ForwarderSet | None = None
    _forward_watch: asyncio.Future[None] | None = None

    async def dial(self, network: str, address: str, timeout: float | None = None
                   ) -> AioStreamLike:
        """Open a channel stream to `address`; the Client's own dial() is what runs."""
        raise NotImplementedError  # sshlib.aio.Client provides it

    async def listen(self, network: str, address: str, timeout: float | None = 30
                     ) -> AioListenerLike:
        """Ask the server to listen at `address`; the Client's own listen() is what runs."""
        raise NotImplementedError  # sshlib.aio.Client provides it

    async def forward_local(self, listen: Spec, target: Spec, *,
                            timeout: float | None = OPEN_TIMEOUT) -> LocalForwarder:
        """ssh -L; the same rules, errors and timeout as sshlib.Client.forward_local."""
        dest = parse_target(target)
        network, addr = dial_args(dest)
        forwarder = LocalForwarder(parse_listen(listen),
                                   lambda: self.dial(network, addr, timeout=timeout), str(dest))
        return await self._keep(forwarder)

    async def forward_remote(self, server_listen: Spec, local_target: Spec, *,
                             timeout: float | None = OPEN_TIMEOUT) -> RemoteForwarder:
        """ssh -R; the same rules, errors and timeout as sshlib.Client.forward_remote."""
        network, addr = dial_args(parse_listen(server_listen, remote=True))
        dest = parse_target(local_target)
        listener = await self.listen(network, addr, timeout=timeout)
        return await self._keep(RemoteForwarder(listener, dest))

    async def forward_dynamic(self, listen: Spec, *,
                              timeout: float | None = OPEN_TIMEOUT) -> DynamicForwarder:
        """ssh -D (SOCKS4/4a/5 CONNECT); the same rules as sshlib.Client.forward_dynamic."""
        def open_stream(host: str, port: int) -> Awaitable[AioStreamLike]:
            return self.dial(*dial_args(Endpoint("tcp", host, port)), timeout=timeout)

        return await self._keep(DynamicForwarder(parse_listen(listen), open_stream))

    async def wait(self, timeout: float | None = None) -> SSHError | None:
        """Wait for the connection to end; the Client's own wait() is what runs."""
        raise NotImplementedError  # sshlib.aio.Client provides it

    async def _keep(self, forwarder: F) -> F:
        try:
            await forwarder.start()
        except BaseException:
            await forwarder.close()
            raise
        if self._forwarders is None:
            self._forwarders = ForwarderSet()
            # when the connection ends (also on its own), its forwarders close
            self._forward_watch = asyncio.ensure_future(self._close_forwarders_at_end())
        self._forwarders.add(forwarder)
        return forwarder

    async def _close_forwarders_at_end(self) -> None:
        try:
            await self.wait()
        finally:
            await self._close_forwarders()

    async def _close_forwarders(self) -> None:
        """Close every forwarder this client made (Client.close awaits it)."""
        for forwarder in self._forwarders.snapshot() if self._forwarders else ():
            assert isinstance(forwarder, Forwarder)
            await forwarder.close()
