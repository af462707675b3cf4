"""The socket under an asyncio Client: one asyncio.Protocol as its ByteReader and ByteWriter.

asyncio.StreamReader copies every received byte into its buffer and out
again, and pauses the socket whenever 2 x its limit waits unread.  The
Client reads whole chunks and feeds them to the core at once, so this
protocol keeps the chunks the transport received and hands them out as
they are: no copy, and back-pressure only past `limit` unread bytes.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

__all__ = ["SocketStream", "open_socket_stream", "STREAM_LIMIT"]

#: Unread bytes at which reading from the socket pauses (resumes below half).
STREAM_LIMIT = 1024 * 1024


class SocketStream(asyncio.Protocol):
    """A connected socket as `read()` + StreamWriter's methods, for one reader task.

    Read errors (a reset, for example) are raised by `read()` as the OSError
    the transport reported; `drain()` raises ConnectionResetError once the
    connection is lost, as StreamWriter's does.
    """

    def __init__(self, limit: int = STREAM_LIMIT) -> None:
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._lost = False
        self._paused_reading = False
        self._paused_writing = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None

    # --- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The transport is ours (called by the loop)."""
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        """Keep the chunk for read(); pause the socket past the limit."""
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake_reader()
        if self._buffered > self._limit and not self._paused_reading and self._transport:
            try:
                self._transport.pause_reading()
                self._paused_reading = True
            except (NotImplementedError, RuntimeError):
                pass

    def eof_received(self) -> bool:
        """The peer half-closed: read() returns b"" after the buffered bytes; we may still write."""
        self._eof = True
        self._wake_reader()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket closed: wake the reader (with `exc`, if any) and every drain()."""
        self._lost = True
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake_reader()
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        """The transport's buffer passed its high-water mark: drain() waits."""
        self._paused_writing = True

    def resume_writing(self) -> None:
        """The buffer went below its low-water mark: release drain()."""
        self._paused_writing = False
        while self._drain_waiters:
            waiter = self._drain_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet (at most about `limit` plus one receive)."""
        return self._buffered

    # --- ByteReader -------------------------------------------------------------------------
    async def read(self, n: int = -1) -> bytes:
        """The next received bytes, at most `n` (all buffered if n < 0); b"" at end of stream.

        One reader at a time (the Client's reader task); OSError if the connection failed.
        """
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            waiter = asyncio.get_running_loop().create_future()
            self._read_waiter = waiter
            await waiter
        if n < 0:
            data = b"".join(self._chunks)
            self._chunks.clear()
        else:
            data = self._chunks.popleft()
            if len(data) > n:  # only then is anything copied
                self._chunks.appendleft(data[n:])
                data = data[:n]
        self._buffered -= len(data)
        if self._paused_reading and self._buffered <= self._limit // 2 and self._transport:
            self._paused_reading = False
            try:
                self._transport.resume_reading()
            except (NotImplementedError, RuntimeError):
                pass
        return data

    # --- ByteWriter -------------------------------------------------------------------------
    @property
    def transport(self) -> asyncio.Transport:
        """The asyncio transport (the Client aborts it to drop a failed connection)."""
        assert self._transport is not None
        return self._transport

    def write(self, data: bytes) -> None:
        """Queue bytes on the transport (never blocks; see drain())."""
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark."""
        if self._lost:
            raise ConnectionResetError("connection lost")
        if not self._paused_writing:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self._lost:
            raise ConnectionResetError("connection lost")

    def is_closing(self) -> bool:
        """True once the transport is closing or closed."""
        return self.transport.is_closing()

    def can_write_eof(self) -> bool:
        """True when the transport can half-close."""
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        """Half-close the socket."""
        self.transport.write_eof()

    def close(self) -> None:
        """Start closing the transport."""
        self.transport.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is lost (the caller bounds this)."""
        await asyncio.shield(self._closed)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As the transport's get_extra_info ("peername", "socket", ...)."""
        return self.transport.get_extra_info(name, default)


async def open_socket_stream(host: str | None = None, port: int | None = None, *,
                             family: int = 0, local_addr: tuple[str, int] | None = None,
                             sock: socket.socket | None = None) -> SocketStream:
    """Connect (TCP to host:port, or over an already connected `sock`) as a SocketStream.

    OSError when the connection fails; the caller bounds the wait.
    """
    loop = asyncio.get_running_loop()
    if sock is not None:
        _, protocol = await loop.create_connection(SocketStream, sock=sock)
    elif host is not None and port is not None:
        _, protocol = await loop.create_connection(SocketStream, host, port, family=family,
                                                   local_addr=local_addr)
    else:
        raise ValueError("give host and port, or sock")
    return protocol
