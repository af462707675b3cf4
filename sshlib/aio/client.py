"""The asyncio front-end: `dial()`, `client_over()` and `Client`.

The same core and driver as sshlib.sync; only the I/O differs.  The dialling
task runs the handshake (signers run in a worker thread via
asyncio.to_thread, so an agent round trip never stalls the loop); afterwards
one reader task per connection feeds the core.  The reader writes what the
core queues without waiting; application writes wait for the transport to
drain (back-pressure), so a peer that stops reading slows writers down and
never the reader.  Time-based rekeys come from a loop.call_later tick.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from .. import proxyproc
from ..config import ClientConfig
from ..driver import (
    ChannelOpenHandler,
    ConnectionFacts,
    Driver,
    OpenRequest,
    proxy_command_line,
    split_address,
)
from ..errors import ConnectionLost, RequestDeniedError, SSHError, Timeout
from ..protocol import events as ev
from ..protocol.client import ClientConnection
from .channel import AioChannel, AioDriver, deadline_after
from .forward import ClientForwarding
from .sockstream import open_socket_stream
from .stream import Listener, NewChannel, Stream

log = logging.getLogger("sshlib.aio")

RECV_SIZE = 256 * 1024
TICK_SECONDS = 30.0
CLOSE_TIMEOUT = 5.0

T = TypeVar("T")


async def with_timeout(coro: Coroutine[Any, Any, T], timeout: float | None, what: str) -> T:
    """Await `coro`, raising sshlib.Timeout (not asyncio's) after `timeout` seconds.

    On Python 3.11+ this uses asyncio.timeout(), on 3.10 an equivalent scope:
    wait_for() can swallow a cancellation that arrives just as the awaited work
    finishes (fixed in 3.12), and a cancelled dial() must never hand back a live
    connection.
    """
    if timeout is None:
        return await coro
    if sys.version_info >= (3, 11):
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await coro
        except TimeoutError:
            if scope.expired():
                raise Timeout(f"timed out {what}") from None
            raise
    # 3.10: no asyncio.timeout(), and wait_for() has the race above; cancel this task
    # ourselves when the time is up, so the work runs in the caller's task as on 3.11+.
    # (3.10 has no Task.uncancel(): a cancellation from outside in the same loop
    # iteration as the expiry is reported as Timeout.)
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()
    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await coro
    except asyncio.CancelledError:
        if expired:
            raise Timeout(f"timed out {what}") from None
        raise
    finally:
        handle.cancel()


class ByteReader(Protocol):
    """The reading half a Client runs over (a SocketStream, asyncio.StreamReader, a Stream)."""

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes; b"" at end of stream; OSError or SSHError when the stream fails."""


class ByteWriter(Protocol):
    """The writing half a Client runs over (a SocketStream, asyncio.StreamWriter, a Stream)."""

    @property
    def transport(self) -> Any:
        """The asyncio transport; the Client calls its `abort()` to drop a failed connection."""

    def write(self, data: bytes) -> None:
        """Queue bytes without blocking (back-pressure is left to `drain`)."""

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""

    def is_closing(self) -> bool:
        """True once closing began; the Client then stops writing."""

    def can_write_eof(self) -> bool:
        """True when `write_eof()` is supported (a half-close is possible)."""

    def write_eof(self) -> None:
        """Half-close: tell the peer no more bytes come."""

    def close(self) -> None:
        """Start closing the stream (does not wait; see `wait_closed`)."""

    async def wait_closed(self) -> None:
        """Wait until the stream closed (the Client bounds this with a timeout, then aborts)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information as asyncio's ("peername" is used for the peer address)."""


class _Dial:
    """What dial() returns: await it for a Client, or use it with ``async with``."""

    def __init__(self, network: str, addr: str, config: ClientConfig, via: Client | None,
                 proxy_command: str | None) -> None:
        if network not in ("tcp", "tcp4", "tcp6"):
            raise ValueError(f"unsupported network {network!r}; use 'tcp'")
        if via is not None and proxy_command is not None:
            raise ValueError("give via= or proxy_command=, not both")
        self._network = network
        self._addr = addr
        self._config = config
        self._via = via
        self._proxy_command = proxy_command
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._connect()
        return self._client

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()

    async def _connect(self) -> Client:
        host, port = split_address(self._addr)
        if self._via is not None:
            return await self._connect_via(self._via, host, port)
        if self._proxy_command is not None:
            return await self._connect_proxy(self._proxy_command, host, port)
        family = {"tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}.get(self._network, 0)
        config = self._config
        deadline = deadline_after(config.timeout)
        try:
            stream = await with_timeout(open_socket_stream(host, port, family=family),
                                        config.timeout, f"connecting to {self._addr}")
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {self._addr}: {exc}") from exc
        loop = asyncio.get_running_loop()
        left = None if deadline is None else max(0.001, deadline - loop.time())
        return await client_over(stream, stream, config, addr=(host, port), timeout=left)

    async def _connect_via(self, via: Client, host: str, port: int) -> Client:
        config = self._config
        deadline = deadline_after(config.timeout)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        stream = await via.dial("tcp", target, timeout=config.timeout)
        loop = asyncio.get_running_loop()
        left = None if deadline is None else max(0.001, deadline - loop.time())
        return await client_over(stream, stream, config, addr=(host, port), timeout=left)

    async def _connect_proxy(self, command: str, host: str, port: int) -> Client:
        config = self._config
        line = proxy_command_line(command, host, port, config.user)
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_shell(
                line, stdin=theirs.fileno(), stdout=theirs.fileno(), start_new_session=True)
        except OSError as exc:
            ours.close()
            raise ConnectionLost(f"cannot start proxy command {line!r}: {exc}") from exc
        finally:
            theirs.close()
        try:
            stream = await open_socket_stream(sock=ours)
        except BaseException:
            ours.close()
            process.kill()
            raise
        try:
            client = await client_over(stream, stream, config, addr=(host, port))
        except BaseException:
            await reap_proxy_command(process)
            raise
        client.own(lambda: reap_proxy_command(process))
        return client


async def reap_proxy_command(process: asyncio.subprocess.Process) -> None:
    """End a proxy command after its socket or pipes closed, quickly and bounded (about 0.7 s
    at most): 0.2 s to exit by itself, then SIGTERM, then SIGKILL to its process group
    (sshlib.proxyproc).  The command is reaped."""
    for how, wait in proxyproc.STEPS:
        if how is not None:
            if process.returncode is not None:
                return
            log.debug("proxy command (pid %d) still runs: %s", process.pid, how)
            proxyproc.send(process, how)
        try:
            await asyncio.wait_for(process.wait(), wait)
            return
        except asyncio.TimeoutError:
            continue
    log.warning("proxy command (pid %d) did not exit even after SIGKILL", process.pid)


def dial(network: str, addr: str, config: ClientConfig, *, via: Client | None = None,
         proxy_command: str | None = None) -> _Dial:
    """Connect to addr ("host:port"), run the handshake and authenticate.

    ``client = await dial(...)`` or ``async with dial(...) as client:``.
    `via=` another Client reaches addr through it (direct-tcpip, like ssh -J;
    chains work); `proxy_command=` runs that command (OpenSSH tokens %h %p %r
    %n %%) and speaks SSH over its stdin/stdout, like ssh's ProxyCommand.
    config.timeout bounds connect + handshake + authentication.
    """
    return _Dial(network, addr, config, via, proxy_command)


async def client_over(reader: ByteReader, writer: ByteWriter,
                      config: ClientConfig, *, addr: tuple[str, int] | str | None = None,
                      timeout: float | None = None,
                      client_class: type[Client] | None = None) -> Client:
    """An authenticated Client over an existing asyncio stream pair, or a Stream twice.

    ``client_over(stream, stream, cfg, addr=("target", 22))`` runs SSH inside a
    channel of another client.  The client owns the stream from now on: it closes
    the writer when the connection ends, also when this call fails or is cancelled.
    `client_class` (a Client subclass taking the same arguments) builds it.
    """
    if addr is None:
        peer = writer.get_extra_info("peername")
        addr = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else (str(peer), 22)
    elif isinstance(addr, str):
        addr = split_address(addr)
    client = (client_class or Client)(reader, writer, config, addr)
    if timeout is None:
        timeout = config.timeout
    try:
        await with_timeout(client._handshake(), timeout,
                           f"during SSH handshake with {client.hostname}")
    except BaseException:
        client._abort()
        raise
    client._start()
    return client


class Client(ConnectionFacts, ClientForwarding):
    """An authenticated SSH connection on an asyncio stream; build it with dial()/client_over()."""

    def __init__(self, reader: ByteReader, writer: ByteWriter,
                 config: ClientConfig, addr: tuple[str, int]) -> None:
        self.hostname, self.port = addr
        self.config = config = config.for_host(self.hostname, self.port)
        self._reader = reader
        self._writer = writer
        self._core = ClientConnection(config, rng=os.urandom, now=time.monotonic())
        self._driver: AioDriver = AioDriver(self._core, config, self.hostname, self.port,
                                            self._flush, self._drain, self._spawn)
        self._waiters = self._driver.waiters  # global replies and the end of the connection
        self._reader_task: asyncio.Task[None] | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished = False
        self._listeners: list[Listener] = []
        self._cleanups: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._cleanup_tasks: list[asyncio.Task[None]] = []

    # --- handshake in the dialling task ---------------------------------------------------
    async def _handshake(self) -> None:
        core = self._core
        driver = self._driver
        self._flush()
        while not core.authenticated:
            try:
                data = await self._reader.read(RECV_SIZE)
            except (OSError, SSHError) as exc:
                raise ConnectionLost(f"connection to {self.hostname} failed: {exc}") from exc
            pending = core.receive_data(data)
            while pending:
                event = pending.pop(0)
                if isinstance(event, ev.SignatureRequested):  # may be an agent: off the loop
                    signature = await asyncio.to_thread(Driver.sign, event)
                    pending.extend(driver.signature_answer(signature))
                else:
                    pending.extend(driver.handshake_event(event))
            self._flush()
            if core.error is not None:
                raise core.error
            await self._drain()

    def _abort(self) -> None:
        """Drop the transport at once (failed or cancelled handshake)."""
        self._finished = True
        self._writer.transport.abort()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._reader_task = loop.create_task(self._read_loop(),
                                             name=f"sshlib-reader-{self.hostname}")
        self._tick_handle = loop.call_later(self._core.tick_interval(TICK_SECONDS), self._tick)

    # --- reader task ----------------------------------------------------------------------
    async def _read_loop(self) -> None:
        core = self._core
        reader = self._reader
        dispatch_all = self._driver.dispatch_all
        try:
            while True:
                try:
                    data = await reader.read(RECV_SIZE)
                except (OSError, SSHError) as exc:
                    dispatch_all(core.connection_lost(
                        ConnectionLost(f"connection to {self.hostname} failed: {exc}")))
                    break
                dispatch_all(core.receive_data(data))
                self._flush()
                if core.closed:
                    break
        except asyncio.CancelledError:
            dispatch_all(core.connection_lost(ConnectionLost("reader task cancelled")))
            raise
        except BaseException as exc:  # a bug must not leave waiters hanging forever
            log.exception("internal error in the reader task")
            dispatch_all(core.connection_lost(SSHError(f"internal error: {exc!r}")))
        finally:
            self._flush()  # the DISCONNECT goes out before the transport closes
            self._finish()

    def _finish(self) -> None:
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        if not self._finished:
            self._finished = True
            writer = self._writer
            try:
                if writer.can_write_eof() and not writer.is_closing():
                    writer.write_eof()  # tells the peer even if someone else holds a dup'd fd
            except (OSError, RuntimeError, SSHError):
                pass
            writer.close()
            loop = asyncio.get_running_loop()
            self._cleanup_tasks = [loop.create_task(cleanup()) for cleanup in self._cleanups]
            self._cleanups = []
        self._waiters.wake()

    def _tick(self) -> None:
        if self._core.closed:
            return
        self._driver.dispatch_all(self._core.tick(time.monotonic()))
        self._flush()
        if self._core.closed:  # e.g. the server stopped answering keepalives
            self._writer.transport.abort()  # the reader task sees EOF and finishes
            return
        self._tick_handle = asyncio.get_running_loop().call_later(
            self._core.tick_interval(TICK_SECONDS), self._tick)

    # --- sending ------------------------------------------------------------------------
    def _flush(self) -> None:
        """Hand whatever the core has queued to the transport (never waits)."""
        data = self._core.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _drain(self, deadline: float | None = None) -> None:
        """Wait while the transport's buffer is above its high-water mark (until deadline)."""
        try:
            if deadline is None:
                await self._writer.drain()
            else:
                left = deadline - asyncio.get_running_loop().time()
                await with_timeout(self._writer.drain(), max(0.0, left),
                                   f"sending to {self.hostname} (the peer is not reading)")
        except Timeout:
            raise
        except OSError as exc:
            self._driver.check_alive()
            raise ConnectionLost(f"sending to {self.hostname} failed: {exc}") from exc

    def _spawn(self, work: Awaitable[None]) -> None:
        """Run a helper task owned by this client (cancelled by close())."""
        async def run() -> None:
            await work
        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- public API -----------------------------------------------------------------------
    def new_session(self, timeout: float | None = None) -> Session:
        """A session; its channel opens on first use, on ``await`` or on ``async with``."""
        return Session(self._driver, timeout)

    def sftp(self, timeout: float | None = 30) -> SFTPOpener:
        """An SFTP session: ``async with client.sftp() as sftp`` (see docs/sftp.md)."""
        return SFTPOpener(self, timeout)

    async def open_channel(self, kind: str, extra: bytes = b"",
                           timeout: float | None = None) -> AioChannel:
        """Open a channel of any kind; sessions use new_session()."""
        channel = AioChannel(self._driver, kind)
        self._driver.open_channel(channel, extra)
        self._flush()
        await channel.wait_open(timeout)
        return channel

    async def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True,
                             timeout: float | None = None) -> tuple[bool, bytes]:
        """Send a global request; (success, reply data), Timeout after `timeout`."""
        driver = self._driver
        ticket = driver.global_request(name, payload, want_reply)
        self._flush()
        if ticket < 0:
            await self._drain()
            return True, b""
        await self._waiters.wait_until(lambda: driver.global_settled(ticket),
                                       deadline_after(timeout), f"reply to {name!r}")
        return driver.global_result(ticket)

    def forward_agent(self, target: object) -> None:
        """Serve the server's agent channels from `target` (endpoint string or AgentClient).

        Sessions then ask for forwarding with ``await session.request_agent_forwarding()``.
        Agent I/O runs in worker threads (some agent transports only have blocking calls).
        """
        from .agentfwd import register_agent_forwarding

        register_agent_forwarding(self._driver, target)

    async def send_keepalive(self, timeout: float | None = None) -> None:
        """Ask the server for a reply (OpenSSH's keepalive@openssh.com) to prove it is alive."""
        await self.global_request("keepalive@openssh.com", timeout=timeout)

    async def rekey(self, timeout: float | None = None) -> None:
        """Start a new key exchange now (returns once KEXINIT is sent; Timeout after timeout)."""
        self._driver.rekey()
        self._flush()
        await self._drain(deadline_after(timeout))

    async def close(self) -> None:
        """Send DISCONNECT and close the transport; safe to call more than once."""
        await self._close_forwarders()  # forward_local/remote/dynamic: their local sockets too
        if self._driver.close():
            self._flush()
        for helper in list(self._tasks):
            helper.cancel()
        task = self._reader_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # we were cancelled ourselves
                    raise
        self._finish()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)
        except (asyncio.TimeoutError, OSError, SSHError):
            self._writer.transport.abort()
        for cleanup in self._cleanup_tasks:
            await cleanup

    def own(self, cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `cleanup()` once the connection has ended (a proxy command's process)."""
        self._cleanups.append(cleanup)

    # --- streams ---------------------------------------------------------------------------
    async def dial(self, network: str, address: str, timeout: float | None = None) -> Stream:
        """A connection from the server to `address` (Go's Client.Dial) as a Stream.

        network "tcp": address "host:port" (direct-tcpip); "unix": a socket path on the
        server (direct-streamlocal@openssh.com).  ChannelOpenError if the server
        refuses, Timeout after `timeout`.
        """
        kind, extra = self._driver.dial_payload(network, address)
        return Stream(await self.open_channel(kind, extra, timeout))

    async def open_connection(self, host: str, port: int, timeout: float | None = None
                              ) -> tuple[Stream, Stream]:
        """(reader, writer) like asyncio.open_connection, connected from the server.

        Both are the same Stream, which has StreamReader's and StreamWriter's methods.
        """
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        stream = await self.dial("tcp", target, timeout)
        return stream, stream

    async def listen(self, network: str, address: str, timeout: float | None = 30) -> Listener:
        """Ask the server to listen on `address` and pass us its connections (Go's Listen).

        network "tcp": "host:port" (tcpip-forward; port 0 lets the server choose,
        `.address` has the real port); "unix": a socket path on the server
        (streamlocal-forward@openssh.com).  RequestDeniedError if the server refuses.
        """
        driver = self._driver
        listener = Listener(driver, network, address,
                            lambda t: self._cancel_forward(listener, t))
        ticket = driver.request_forward(network, address, listener)
        self._flush()
        await self._waiters.wait_until(lambda: driver.global_settled(ticket),
                                       deadline_after(timeout),
                                       f"the server to listen on {address}")
        ok, _ = driver.global_result(ticket)
        if not ok:
            raise RequestDeniedError(f"server refused to listen on {network} {address}")
        self._listeners.append(listener)
        return listener

    async def _cancel_forward(self, listener: Listener, timeout: float | None) -> None:
        self._listeners = [ln for ln in self._listeners if ln is not listener]
        driver = self._driver
        ticket = driver.cancel_forward(listener)
        self._flush()
        await self._waiters.wait_until(lambda: driver.global_settled(ticket),
                                       deadline_after(timeout), "the forward to be cancelled")
        ok, _ = driver.global_result(ticket)
        if not ok:
            log.info("server refused to cancel the forward %s", listener.address)

    def handle_channel_open(self, kind: str,
                            handler: Callable[[NewChannel], None] | None) -> None:
        """Serve server-opened channels of `kind` (Go's HandleChannelOpen); None removes.

        handler(new_channel) runs inside the reader task: it must call
        new_channel.accept() (a Stream) or .reject() at once and start a task for
        the stream, never await.  Kinds without a handler are refused.
        """
        registered: ChannelOpenHandler | None = None
        if handler is not None:
            def registered(request: OpenRequest) -> None:
                handler(NewChannel(request))
        self._driver.handle_channel_open(kind, registered)

    async def wait(self, timeout: float | None = None) -> SSHError | None:
        """Wait until the connection ends; return why (None after close())."""
        task = self._reader_task
        await self._waiters.wait_until(lambda: task is None or task.done() or self._finished,
                                       deadline_after(timeout), "the connection to end")
        return self._driver.ended_because()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<sshlib.aio.Client {self.hostname}:{self.port}>"


from .session import Session  # noqa: E402  (Session needs Client's module loaded first)
from .sftp import SFTPOpener  # noqa: E402  (sftp imports this module)
