"""Channels as sockets for threads: `Stream` (Go's net.Conn from Client.Dial) and `Listener`.

A `Stream` is one plain channel (direct-tcpip, direct-streamlocal, an
accepted forwarded connection, or any channel a handler accepted) with the
calls code written for a socket expects: sendall, recv, shutdown_write,
settimeout, makefile.  Timeouts raise `sshlib.Timeout`, which is a
`TimeoutError` like `socket.timeout`.  Streams are safe to use from two
threads at once (one reading, one writing).
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from ..driver import ListenerBase, NewChannelBase, StreamFacts
from ..errors import ChannelClosedError, ConnectionLost, SSHError, Timeout
from .channel import ChannelIO, ThreadDriver, deadline_after, remaining

log = logging.getLogger("sshlib.stream")

__all__ = ["Stream", "Listener", "NewChannel"]


class Stream(StreamFacts):
    """A bidirectional byte stream over one SSH channel, shaped like a socket."""

    _channel: ChannelIO

    def __init__(self, channel: ChannelIO, timeout: float | None = None) -> None:
        self._channel = channel
        self._timeout = timeout

    @property
    def channel(self) -> ChannelIO:
        """The underlying channel (for a Client running over this stream)."""
        return self._channel

    @property
    def closed(self) -> bool:
        """True once the channel is closed (by either side or with the connection)."""
        return self._channel.closed

    def settimeout(self, timeout: float | None) -> None:
        """Default timeout of recv/send/sendall (None: wait forever), as socket.settimeout."""
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        """The timeout settimeout() set (None: blocking)."""
        return self._timeout

    def recv(self, bufsize: int = 65536) -> bytes:
        """Up to `bufsize` bytes as soon as some arrived; b"" at end of stream.

        Raises Timeout after the stream's timeout, ConnectionLost/ChannelClosedError if the
        connection or channel ended abnormally.
        """
        if bufsize <= 0:
            return b""
        return self._channel.read(0, bufsize, self._timeout)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """recv() into a writable buffer; returns the count (0 at end of stream)."""
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[:len(data)] = data
        return len(data)

    def send(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the window takes now (waiting for some); returns the count."""
        view = memoryview(data).cast("B")
        if not view:
            return 0
        return self._channel.write_some(view, False, deadline_after(self._timeout))

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of `data`; Timeout if window or TCP back-pressure outlast the timeout."""
        self._channel.write(data, False, self._timeout)

    def shutdown_write(self) -> None:
        """Send EOF: the far end reads end of stream; we can still receive."""
        self._channel.send_eof(self._timeout)

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """socket.shutdown(): SHUT_WR and SHUT_RDWR send EOF; reading side is left alone."""
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self.shutdown_write()

    def close(self) -> None:
        """Close the channel (never blocks for long; safe to call more than once)."""
        try:
            self._channel.close(timeout=5)
        except (Timeout, ConnectionLost):
            pass

    def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the far end has closed the channel too."""
        self._channel.wait_closed(timeout)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> Any:
        """A buffered binary file over the stream, like socket.makefile ("rb", "wb", "rwb")."""
        if set(mode) - set("rwb") or "b" not in mode:
            raise ValueError(f"makefile mode {mode!r}: only binary modes 'rb', 'wb', 'rwb'")
        raw = _StreamIO(self, "r" in mode, "w" in mode)
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        if size == 0:
            return raw
        if "r" in mode and "w" in mode:
            return io.BufferedRWPair(raw, raw, size)
        if "r" in mode:
            return io.BufferedReader(raw, size)
        return io.BufferedWriter(raw, size)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.Stream {self.kind} channel {self._channel.id}>"


class _StreamIO(io.RawIOBase):
    def __init__(self, stream: Stream, readable: bool, writable: bool) -> None:
        super().__init__()
        self._stream = stream
        self._readable = readable
        self._writable = writable

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def readinto(self, buffer: Any) -> int:
        return self._stream.recv_into(buffer)

    def write(self, data: Any) -> int:
        return self._stream.send(data)


class NewChannel(NewChannelBase):
    """A channel the server wants to open, as handle_channel_open() handlers get it.

    The handler runs in the reader thread with the connection lock held: call
    `accept()` (a Stream) or `reject()` right away and hand the stream to
    another thread; never block in the handler.
    """

    def accept(self) -> Stream:
        """Confirm the channel; the Stream is open at once (its timeout starts as None)."""
        channel = self._request.accept()
        assert isinstance(channel, ChannelIO)
        return Stream(channel)


class Listener(ListenerBase):
    """Connections to a remote forward (Go's net.Listener from Client.Listen).

    `accept(timeout=)` returns the next connection as a Stream; iterating yields
    them until `close()`, which cancels the forward on the server.  Safe to use
    from several threads.
    """

    _link: ThreadDriver

    def accept(self, timeout: float | None = None) -> Stream:
        """The next connection; Timeout if none came in time, SSHError once closed."""
        deadline = deadline_after(timeout)
        link = self._link
        with link.connection_cond:
            while not self.pending:
                if self.closed:
                    raise ChannelClosedError("listener is closed")
                link.check_alive()
                link.connection_cond.wait(remaining(deadline, "a forwarded connection"))
            channel = self.pending.popleft()
            assert isinstance(channel, ChannelIO)
            return Stream(channel)

    def __iter__(self) -> Iterator[Stream]:
        while True:
            try:
                yield self.accept()
            except SSHError:
                if self.closed or self._link.error is not None:
                    return
                raise

    def close(self, timeout: float | None = 10) -> None:
        """Cancel the forward on the server and refuse what is still queued."""
        with self._link.lock:
            if not self._mark_closed():
                return
        if self._link.error is None:
            try:
                self._cancel(timeout)
            except SSHError as exc:
                log.info("cancelling forward %s failed: %s", self.address, exc)
        self._link.flush()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.Listener {self.network} {self.address}>"
