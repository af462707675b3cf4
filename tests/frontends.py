"""Run the same tests against both front-ends: the `frontend` fixture and the aio adapter.

`frontend.dial(addr, cfg)` and `frontend.client(sock, cfg, addr=..., timeout=...)`
return a client with the threaded API.  For "aio" that client is a thin
adapter: each call submits the real sshlib.aio coroutine to an event loop
running in a background thread and waits for it, so concurrency in a test
(threads) becomes concurrency of tasks on one loop.  Nothing falls back to
the sync front-end.  Errors the loop reports (a task exception nobody
retrieved, a callback that raised) fail the test that caused them.

Import the fixture in a test module with ``from frontends import frontend_fixture``.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import sshlib
import sshlib.aio

T = TypeVar("T")

FRONTENDS = ["sync", "aio"]


class SyncFrontend:
    name = "sync"

    def dial(self, addr: str, config: sshlib.ClientConfig) -> Any:
        return sshlib.dial("tcp", addr, config)

    def client(self, sock: Any, config: sshlib.ClientConfig, *,
               addr: tuple[str, int], timeout: float | None = None) -> Any:
        """A client over a socket or a Stream of another client."""
        return sshlib.Client(sock, config, addr=addr, timeout=timeout)

    def dial_via(self, addr: str, config: sshlib.ClientConfig, via: Any) -> Any:
        return sshlib.dial("tcp", addr, config, via=via)

    def dial_proxy(self, addr: str, config: sshlib.ClientConfig, command: str) -> Any:
        return sshlib.dial("tcp", addr, config, proxy_command=command)

    def check(self) -> None:
        pass


class AioFrontend:
    """sshlib.aio behind sync-shaped calls; one event loop thread for the whole run."""

    name = "aio"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self.loop_errors: list[str] = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio-frontend",
                                        daemon=True)
        self._thread.start()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.loop_errors.append(f"{context.get('message')}: {context.get('exception')!r}")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def dial(self, addr: str, config: sshlib.ClientConfig) -> AioClient:
        async def go() -> sshlib.aio.Client:
            return await sshlib.aio.dial("tcp", addr, config)
        return AioClient(self, self.run(go()))

    def client(self, sock: Any, config: sshlib.ClientConfig, *,
               addr: tuple[str, int], timeout: float | None = None) -> AioClient:
        """A client over a socket or over a Stream (AioStream) of another client."""
        if isinstance(sock, AioStream):
            stream = sock.aio

            async def over() -> sshlib.aio.Client:
                return await sshlib.aio.client_over(stream, stream, config, addr=addr,
                                                    timeout=timeout)
            return AioClient(self, self.run(over()))
        # A dup: the test (FakeServer) may close its socket object while the loop uses ours.
        own = sock.dup()

        async def go() -> sshlib.aio.Client:
            try:
                reader, writer = await asyncio.open_connection(sock=own)
            except BaseException:
                own.close()
                raise
            return await sshlib.aio.client_over(reader, writer, config, addr=addr,
                                                timeout=timeout)
        return AioClient(self, self.run(go()))

    def dial_via(self, addr: str, config: sshlib.ClientConfig, via: AioClient) -> AioClient:
        async def go() -> sshlib.aio.Client:
            return await sshlib.aio.dial("tcp", addr, config, via=via.aio)
        return AioClient(self, self.run(go()))

    def dial_proxy(self, addr: str, config: sshlib.ClientConfig, command: str) -> AioClient:
        async def go() -> sshlib.aio.Client:
            return await sshlib.aio.dial("tcp", addr, config, proxy_command=command)
        return AioClient(self, self.run(go()))

    def check(self) -> None:
        errors, self.loop_errors[:] = list(self.loop_errors), []
        assert not errors, errors


class AioClient:
    """The sync Client's API over an sshlib.aio.Client."""

    def __init__(self, frontend: AioFrontend, client: sshlib.aio.Client) -> None:
        self._fe = frontend
        self.aio = client

    def __getattr__(self, name: str) -> Any:  # algorithms, kex_count, host_key, ...
        return getattr(self.aio, name)

    def new_session(self, timeout: float | None = None) -> AioSession:
        async def go() -> sshlib.aio.Session:
            return await self.aio.new_session(timeout)
        return AioSession(self._fe, self._fe.run(go()))

    def open_channel(self, kind: str, extra: bytes = b"", timeout: float | None = None) -> Any:
        return self._fe.run(self.aio.open_channel(kind, extra, timeout))

    def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True,
                       timeout: float | None = None) -> tuple[bool, bytes]:
        return self._fe.run(self.aio.global_request(name, payload, want_reply, timeout))

    def send_keepalive(self, timeout: float | None = None) -> None:
        self._fe.run(self.aio.send_keepalive(timeout))

    def rekey(self, timeout: float | None = None) -> None:
        self._fe.run(self.aio.rekey(timeout))

    def forward_agent(self, target: object) -> None:
        self.aio.forward_agent(target)

    def dial(self, network: str, address: str, timeout: float | None = None) -> AioStream:
        return AioStream(self._fe, self._fe.run(self.aio.dial(network, address, timeout)))

    def listen(self, network: str, address: str, timeout: float | None = 30) -> AioListener:
        return AioListener(self._fe, self._fe.run(self.aio.listen(network, address, timeout)))

    def handle_channel_open(self, kind: str, handler: Any) -> None:
        fe = self._fe

        def wrapped(new_channel: Any) -> None:  # runs on the loop; hand adapters to the test
            handler(AioNewChannel(fe, new_channel))
        self.aio.handle_channel_open(kind, None if handler is None else wrapped)

    def close(self) -> None:
        self._fe.run(self.aio.close())

    # forwarders (issue 10): the sync shape over sshlib.aio's coroutines
    def forward_local(self, listen: Any, target: Any, **kw: Any) -> AioForwarder:
        return AioForwarder(self._fe, self._fe.run(self.aio.forward_local(listen, target, **kw)))

    def forward_remote(self, listen: Any, target: Any, **kw: Any) -> AioForwarder:
        return AioForwarder(self._fe, self._fe.run(self.aio.forward_remote(listen, target, **kw)))

    def forward_dynamic(self, listen: Any, **kw: Any) -> AioForwarder:
        return AioForwarder(self._fe, self._fe.run(self.aio.forward_dynamic(listen, **kw)))

    def wait(self, timeout: float | None = None) -> sshlib.SSHError | None:
        return self._fe.run(self.aio.wait(timeout))

    def __enter__(self) -> AioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AioSession:
    """The sync Session's API over an sshlib.aio.Session."""

    def __init__(self, frontend: AioFrontend, session: sshlib.aio.Session) -> None:
        self._fe = frontend
        self.aio = session
        self.stdin = AioWriter(frontend, session.stdin)
        self.stdout = AioReader(frontend, session.stdout)
        self.stderr = AioReader(frontend, session.stderr)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aio, name)
        if not callable(attr):
            return attr  # exit_status, exit_signal
        fe = self._fe

        def call(*args: Any, **kwargs: Any) -> Any:
            return fe.run(attr(*args, **kwargs))
        return call

    def __enter__(self) -> AioSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._fe.run(self.aio.close())


class AioReader:
    def __init__(self, frontend: AioFrontend, reader: sshlib.aio.ChannelReader) -> None:
        self._fe = frontend
        self._reader = reader

    def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        return self._fe.run(self._reader.read(size, timeout))

    def readline(self, timeout: float | None = None) -> bytes:
        return self._fe.run(self._reader.readline(timeout))

    def readexactly(self, size: int, timeout: float | None = None) -> bytes:
        return self._fe.run(self._reader.readexactly(size, timeout))

    def lines(self, timeout: float | None = None) -> Iterator[bytes]:
        while line := self.readline(timeout):
            yield line


class AioWriter:
    def __init__(self, frontend: AioFrontend, writer: sshlib.aio.ChannelWriter) -> None:
        self._fe = frontend
        self._writer = writer

    def write(self, data: bytes | bytearray | memoryview, timeout: float | None = None) -> int:
        return self._fe.run(self._writer.write(data, timeout))

    def close(self, timeout: float | None = None) -> None:
        self._fe.run(self._writer.close(timeout))

    def drain(self, timeout: float | None = None) -> None:
        self._fe.run(self._writer.drain(timeout))


class AioStream:
    """The sync Stream's API over an sshlib.aio.Stream."""

    def __init__(self, frontend: AioFrontend, stream: sshlib.aio.Stream) -> None:
        self._fe = frontend
        self.aio = stream
        self._timeout: float | None = None

    @property
    def origin(self) -> Any:
        return self.aio.origin

    @property
    def closed(self) -> bool:
        return self.aio.is_closing()

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def recv(self, size: int = 65536) -> bytes:
        return self._fe.run(self.aio.read(size, self._timeout))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        async def go() -> None:
            self.aio.write(data)
            await self.aio.drain(self._timeout)
        self._fe.run(go())

    def shutdown_write(self) -> None:
        self._fe.loop.call_soon_threadsafe(self.aio.write_eof)

    def close(self) -> None:
        async def go() -> None:
            self.aio.close()
        self._fe.run(go())

    def makefile(self, mode: str = "rb") -> Any:
        raw = _AdapterIO(self)
        if "r" in mode and "w" in mode:
            return io.BufferedRWPair(raw, raw)
        return io.BufferedReader(raw) if "r" in mode else io.BufferedWriter(raw)

    def __enter__(self) -> AioStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _AdapterIO(io.RawIOBase):
    def __init__(self, stream: AioStream) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.recv(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        return self._stream.send(bytes(data))


class AioListener:
    def __init__(self, frontend: AioFrontend, listener: sshlib.aio.Listener) -> None:
        self._fe = frontend
        self.aio = listener

    @property
    def address(self) -> Any:
        return self.aio.address

    def accept(self, timeout: float | None = None) -> AioStream:
        return AioStream(self._fe, self._fe.run(self.aio.accept(timeout)))

    def __iter__(self) -> Iterator[AioStream]:
        while True:
            try:
                yield self.accept()
            except sshlib.Timeout:
                raise
            except sshlib.SSHError:
                return

    def close(self) -> None:
        self._fe.run(self.aio.close())


class AioNewChannel:
    def __init__(self, frontend: AioFrontend, new_channel: Any) -> None:
        self._fe = frontend
        self.aio = new_channel
        self.kind = new_channel.kind
        self.payload = new_channel.payload

    def accept(self) -> AioStream:
        return AioStream(self._fe, self.aio.accept())

    def reject(self, reason: int = 1, message: str = "") -> None:
        self.aio.reject(reason, message)


class AioForwarder:
    """A sync-shaped handle on an sshlib.aio forwarder (address, active, closed, close)."""

    def __init__(self, frontend: AioFrontend, forwarder: Any) -> None:
        self._fe = frontend
        self.aio = forwarder

    def __getattr__(self, name: str) -> Any:  # address, active, closed
        return getattr(self.aio, name)

    def close(self) -> None:
        self._fe.run(self.aio.close())

    def __enter__(self) -> AioForwarder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_instances: dict[str, Any] = {}


def get_frontend(name: str) -> Any:
    if name not in _instances:
        _instances[name] = SyncFrontend() if name == "sync" else AioFrontend()
    return _instances[name]


@pytest.fixture(name="frontend", params=FRONTENDS)
def frontend_fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The front-end under test ("sync" or "aio"), with the threaded API either way."""
    fe = get_frontend(request.param)
    yield fe
    fe.check()
