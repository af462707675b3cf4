"""Channels as asyncio streams: `Stream` (read/write like asyncio's pair) and `Listener`.

A `Stream` is one plain channel with the methods of both asyncio.StreamReader
(read, readexactly, readline, readuntil, at_eof, ``async for line``) and
asyncio.StreamWriter (write, writelines, drain, write_eof, can_write_eof,
close, is_closing, wait_closed, get_extra_info, transport), so
`client.open_connection()` can return it as both halves and code written for
asyncio.open_connection runs unchanged.  write() buffers like StreamWriter:
the bytes go out as the channel window allows, and `drain()` waits until
they have (Timeout after `timeout`).  Reads that time out keep what they
had read for the next call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from ..driver import ListenerBase, NewChannelBase, StreamFacts
from ..errors import ChannelClosedError, SSHError, Timeout
from .channel import LINE_LIMIT, AioChannel, AioDriver, deadline_after

log = logging.getLogger("sshlib.stream")

__all__ = ["Stream", "Listener", "NewChannel"]


class _Transport:
    """What `writer.transport` offers code that expects an asyncio transport."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream

    def abort(self) -> None:
        self._stream.close()

    def close(self) -> None:
        self._stream.close()

    def is_closing(self) -> bool:
        return self._stream.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._stream.get_extra_info(name, default)


class Stream(StreamFacts):
    """A bidirectional byte stream over one SSH channel for asyncio code."""

    _channel: AioChannel

    def __init__(self, channel: AioChannel) -> None:
        self._channel = channel
        self._pending: deque[memoryview] = deque()
        self._eof_wanted = False
        self._close_wanted = False
        channel.on_wake = self._pump

    @property
    def channel(self) -> AioChannel:
        """The underlying channel."""
        return self._channel

    @property
    def transport(self) -> _Transport:
        """A transport-like handle (abort/close/is_closing/get_extra_info) for asyncio code."""
        return _Transport(self)

    # --- reading (asyncio.StreamReader) --------------------------------------------------
    async def read(self, n: int = -1, timeout: float | None = None) -> bytes:
        """Up to `n` bytes as soon as some arrived (all until EOF if n < 0); b"" at EOF."""
        if n == 0:
            return b""
        return await self._channel.read(0, n, timeout)

    async def readexactly(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly `n` bytes; asyncio.IncompleteReadError-compatible EOFError if EOF first."""
        data = await self._channel.readexactly(0, n, timeout)
        if len(data) < n:
            raise asyncio.IncompleteReadError(data, n)
        return data

    async def readline(self, timeout: float | None = None) -> bytes:
        """One line including b"\\n", what is left at EOF, or 1 MiB of a longer line."""
        return await self._channel.readline(0, timeout)

    async def readuntil(self, separator: bytes = b"\n", timeout: float | None = None) -> bytes:
        """Bytes through `separator`; IncompleteReadError at EOF, LimitOverrunError when
        it is not within 1 MiB (or half the window).  On Timeout nothing is consumed.
        """
        channel = self._channel
        deadline = deadline_after(timeout)
        # Waiting without consuming holds back the window: give up before it is full.
        limit = min(LINE_LIMIT, channel.link.config.window_size // 2)
        while True:
            end = channel.find(0, separator, limit)
            if end >= 0:
                return await channel.read(0, end, None)
            if channel.buffered[0] >= limit:
                raise asyncio.LimitOverrunError(f"{separator!r} not found in {limit} bytes",
                                                limit)
            if channel.eof:
                raise asyncio.IncompleteReadError(await channel.read(0, -1, None), None)

            def grown(size: int = channel.buffered[0]) -> bool:
                return channel.buffered[0] != size or channel.eof
            await channel.wait(grown, deadline, f"{separator!r} in the stream")

    def at_eof(self) -> bool:
        """True when the peer sent EOF and everything buffered was read."""
        return self._channel.eof and not self._channel.buffers[0]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[bytes]:
        while line := await self.readline():
            yield line

    # --- writing (asyncio.StreamWriter) -----------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue `data`; it goes out as the window allows.  Await drain() for back-pressure."""
        channel = self._channel
        channel.link.check_writable(channel)
        if self._eof_wanted or self._close_wanted:
            raise ChannelClosedError("stream is closing")
        if data:
            self._pending.append(memoryview(bytes(data)))
            self._pump()

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        """write() each chunk in order."""
        for chunk in data:
            self.write(chunk)

    def _pump(self) -> None:
        """Hand queued bytes to the core as far as the window allows (never waits)."""
        channel = self._channel
        link = channel.link
        sent_any = False
        while self._pending and not channel.closed and link.error is None:
            if not link.can_write(channel) or channel.closed:
                break
            view = self._pending[0]
            sent = link.send_some(channel, view, False)
            if sent == 0:
                break
            sent_any = True
            if sent == len(view):
                self._pending.popleft()
            else:
                self._pending[0] = view[sent:]
        if not self._pending and not channel.closed:
            if self._eof_wanted and link.send_eof(channel):
                sent_any = True
            if self._close_wanted and link.close_channel(channel):
                sent_any = True
        if sent_any:
            link.flush()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until written data went out to the transport; Timeout after `timeout`."""
        channel = self._channel
        deadline = deadline_after(timeout)
        await channel.wait(lambda: not self._pending or channel.closed, deadline,
                            "the channel window")
        if self._pending:
            raise channel.error or ChannelClosedError("channel closed with data unsent")
        await channel.link.drain(deadline)

    def can_write_eof(self) -> bool:
        """Always True: a channel can send EOF and keep receiving."""
        return True

    def write_eof(self) -> None:
        """Send EOF after the queued data: the far end reads end of stream."""
        self._eof_wanted = True
        self._pump()

    def close(self) -> None:
        """Close after the queued data went out (never blocks); safe to call again."""
        if self._channel.id < 0:
            return
        self._close_wanted = True
        self._pump()

    def is_closing(self) -> bool:
        """True after close() or once the channel closed."""
        return self._close_wanted or self._channel.closed

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the far end closed the channel too."""
        await self._channel.wait_closed(timeout)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """"peername" is the forwarded connection's origin where the server gave one."""
        if name == "peername":
            return self._channel.origin or default
        if name == "channel":
            return self._channel
        return default

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.aio.Stream {self.kind} channel {self._channel.id}>"


class NewChannel(NewChannelBase):
    """A channel the server wants to open, as handle_channel_open() handlers get it.

    The handler runs inside the reader task: call `accept()` (a Stream) or
    `reject()` right away and start a task for the stream; never await in it.
    """

    def accept(self) -> Stream:
        """Confirm the channel; the Stream is open at once."""
        channel = self._request.accept()
        assert isinstance(channel, AioChannel)
        return Stream(channel)


class Listener(ListenerBase):
    """Connections to a remote forward: ``await accept()``, ``async for``, ``await close()``."""

    _link: AioDriver
    _cancel: Callable[[float | None], Awaitable[None]]

    async def accept(self, timeout: float | None = None) -> Stream:
        """The next connection; Timeout if none came in time, SSHError once closed."""
        link = self._link

        def ready() -> bool:
            return bool(self.pending) or self.closed or link.error is not None
        await link.waiters.wait_until(ready, deadline_after(timeout), "a forwarded connection")
        if self.pending:
            channel = self.pending.popleft()
            assert isinstance(channel, AioChannel)
            return Stream(channel)
        if self.closed:
            raise ChannelClosedError("listener is closed")
        link.check_alive()
        raise ChannelClosedError("listener is closed")

    def __aiter__(self) -> AsyncIterator[Stream]:
        return self._connections()

    async def _connections(self) -> AsyncIterator[Stream]:
        while True:
            try:
                yield await self.accept()
            except Timeout:
                raise
            except SSHError:
                if self.closed or self._link.error is not None:
                    return
                raise

    async def close(self, timeout: float | None = 10) -> None:
        """Cancel the forward on the server and refuse what is still queued."""
        if not self._mark_closed():
            return
        self._link.flush()
        if self._link.error is None:
            try:
                await self._cancel(timeout)
            except SSHError as exc:
                log.info("cancelling forward %s failed: %s", self.address, exc)

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<sshlib.aio.Listener {self.network} {self.address}>"
