"""Per-channel waiting for the asyncio front-end (state lives in sshlib.channelstate).

The reader task only appends to the buffers and wakes futures; coroutines
take data out and tell the core, which returns window credit to the server.
Cancelling a coroutine blocked on a channel closes that channel: the
operation cannot be resumed halfway (a `timeout=` argument is the way to
wait with a limit and keep the channel).  Channels reach the connection
only through `AioDriver`: the shared driver plus `flush()` and `drain()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..channelstate import LINE_LIMIT, OutputCollector, SessionChannel, StreamChannel
from ..config import ClientConfig
from ..driver import Driver
from ..errors import SSHError, Timeout
from ..protocol.client import ClientConnection

__all__ = ["AioChannel", "AioDriver", "AioSessionChannel", "Waiters", "deadline_after",
           "LINE_LIMIT", "AioChannelLink"]


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiters:
    """Futures woken together when state changes (a Condition without a lock)."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def wake(self) -> None:
        """Release every waiting coroutine; each re-checks its predicate (call from the loop's
        thread).
        """
        futures, self._futures = self._futures, []
        for future in futures:
            _release(future)

    async def wait_until(self, predicate: Callable[[], bool], deadline: float | None,
                         what: str) -> None:
        """Wait until predicate() is true; deadline is in loop.time(); raise Timeout after it."""
        if predicate():
            return
        loop = asyncio.get_running_loop()
        while not predicate():
            if deadline is not None and loop.time() >= deadline:
                raise Timeout(f"timed out waiting for {what}")
            future = loop.create_future()
            self._futures.append(future)
            handle = None if deadline is None else loop.call_at(deadline, _release, future)
            try:
                await future
            finally:
                if handle is not None:
                    handle.cancel()


def deadline_after(timeout: float | None) -> float | None:
    """The running loop's loop.time() `timeout` seconds from now; None for no limit.

    Call inside a running event loop (RuntimeError otherwise).
    """
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


class AioDriver(Driver):
    """The shared driver as coroutines use it: with the transport's flush and drain."""

    def __init__(self, core: ClientConnection, config: ClientConfig, hostname: str, port: int,
                 flush: Callable[[], None], drain: Callable[[float | None], Awaitable[None]],
                 spawn: Callable[[Awaitable[None]], None]) -> None:
        super().__init__(core, config, hostname, port)
        self._flush = flush
        self._drain = drain
        self.spawn = spawn
        self.waiters = Waiters()  # global replies, listeners and the end of the connection

    def make_stream(self, kind: str) -> StreamChannel:
        return AioChannel(self, kind)

    def flush(self) -> None:
        """Hand what the core queued to the transport (never waits)."""
        self._flush()

    async def drain(self, deadline: float | None = None) -> None:
        """Wait for transport back-pressure to clear; Timeout at `deadline` (loop time)."""
        await self._drain(deadline)

    def wake_connection(self) -> None:
        self.waiters.wake()


class AioChannelLink(Protocol):
    """What an AioChannel needs from what carries it: an AioDriver, or sshlib.aio.mux's pipes."""

    error: SSHError | None
    config: ClientConfig  # its window_size: how much unread data may wait on a channel

    def consume(self, channel: StreamChannel, count: int) -> None:
        """The application took `count` bytes: give the window back (as `Driver.consume`), or for
        mux resume reading; never waits, what it queues goes out with `flush()`."""
    def set_window_size(self, channel: StreamChannel, size: int) -> None:
        """Grow the channel's receive window (as `Driver.set_window_size`; mux: nothing)."""
    def flush(self) -> None:
        """Hand what is queued to the transport; never waits (as `AioDriver.flush`; `drain()`
        waits)."""
    async def drain(self, deadline: float | None = None) -> None:
        """Wait until back-pressure clears (as `AioDriver.drain`; for mux, until our stdin end takes
        data again or the session ended); Timeout at `deadline` (loop.time()), None: no limit."""
    def check_writable(self, channel: StreamChannel) -> None:
        """Raise before a write: the connection's error, or ChannelClosedError after EOF or close
        (as `Driver.check_writable`)."""
    def can_write(self, channel: StreamChannel) -> bool:
        """Whether a writer waiting on `channel` should wake (as `Driver.can_write`): there is
        window, or the channel or connection ended so `send_some()` raises why."""
    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        """After `can_write()`: take what can go now from `view` and return the count (as the
        driver's `send_some`); 0 means nothing could, and the writer drains before trying again.

        Raises the connection's error, or ChannelClosedError once the channel closed.  Call from
        the connection's event loop.
        """
    def channel_request(self, channel: StreamChannel, name: str, payload: bytes,
                        want_reply: bool) -> int:
        """Queue a channel request (as `Driver.channel_request`); returns the ticket to wait on for
        the reply, -1 without `want_reply`.

        ChannelClosedError on a closed channel, the connection's error once it ended; a mux link
        raises RequestDeniedError (the ControlMaster protocol carries no channel requests).
        """
    def send_eof(self, channel: StreamChannel) -> bool:
        """Queue EOF once (as `Driver.send_eof`): True if the caller must now flush, False if EOF
        was already sent or the channel closed."""
    def close_channel(self, channel: StreamChannel) -> bool:
        """Start closing the channel (as `Driver.close_channel`): True if the caller must now flush,
        False when the connection (for mux, the session) already ended.

        Waiters wake when the close completes (the server's CHANNEL_CLOSE, or the master hanging
        up).
        """
    def abandon(self, channel: StreamChannel) -> None:
        """The opener gave up waiting (Timeout or cancellation): close the channel if the server
        confirms it later (as `Driver.abandon`); nothing to do for mux."""
    def open_channel(self, channel: StreamChannel, extra: bytes = b"") -> None:
        """Send CHANNEL_OPEN and register `channel` (as `Driver.open_channel`); the answer comes
        later, see `AioChannel.wait_open`.  Raises the connection's error once it ended; a mux
        link raises SSHError (the master opens its channels itself)."""


class AioChannel(StreamChannel):
    """One channel as coroutines see it."""

    def __init__(self, link: AioChannelLink, kind: str) -> None:
        super().__init__(kind)
        self.link = link
        self._waiters = Waiters()
        #: Called on every state change (a Stream's writer pushes queued bytes from here).
        self.on_wake: Callable[[], None] | None = None

    def wake(self) -> None:
        self._waiters.wake()
        if self.on_wake is not None:
            self.on_wake()

    async def wait(self, predicate: Callable[[], bool], deadline: float | None,
                   what: str) -> None:
        """Wait until predicate() holds (deadline in loop time); cancelling closes the channel."""
        await self._wait(predicate, deadline, what)

    async def _wait(self, predicate: Callable[[], bool], deadline: float | None,
                    what: str) -> None:
        try:
            await self._waiters.wait_until(predicate, deadline, what)
        except asyncio.CancelledError:
            self.close()  # a cancelled operation leaves the channel in an unknown state
            raise

    async def wait_open(self, timeout: float | None) -> None:
        """Wait for the server to confirm or refuse the open.

        ChannelOpenError if refused; Timeout after `timeout`, or cancellation: the channel is
        abandoned (closed when a late confirmation arrives) and marked closed.
        """
        try:
            await self._waiters.wait_until(self.open_settled, deadline_after(timeout),
                                           f"{self.kind} channel open")
        except BaseException:  # Timeout or cancelled: as the sync Client's open
            state = self.give_up_opening(Timeout(f"gave up opening the {self.kind} channel"))
            if state != "ended":
                self.link.abandon(self)
            if state == "confirmed":
                self.close()
            raise
        self.check_open_result()

    async def read(self, index: int, size: int, timeout: float | None) -> bytes:
        """Up to `size` bytes (all until EOF if size < 0) from stdout (0) or stderr (1)."""
        deadline = deadline_after(timeout)
        if size >= 0:
            return await self._read_some(index, size, deadline)
        chunks: list[bytes] = []
        try:
            while True:  # take data as it arrives so the window keeps reopening
                chunk = await self._read_some(index, 1 << 30, deadline)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        except Timeout:
            self.unread(index, b"".join(chunks))
            raise

    async def _read_some(self, index: int, size: int, deadline: float | None) -> bytes:
        if not self.buffers[index] and not self.eof:
            await self._wait(lambda: self.readable(index), deadline, "channel data")
        data = self.take(index, size)
        if data:
            self.link.consume(self, len(data))
            self.link.flush()
        return data

    async def readline(self, index: int, timeout: float | None,
                       limit: int = LINE_LIMIT) -> bytes:
        """One line including its newline, what is left at EOF, or `limit` bytes.

        On Timeout the partial line stays buffered for the next call.
        """
        deadline = deadline_after(timeout)
        chunks: list[bytes] = []
        got = 0
        try:
            while True:
                if not self.buffers[index] and not self.eof:
                    await self._wait(lambda: self.readable(index), deadline, "a line of data")
                data = await self._read_some(index, self.line_length(index, limit - got),
                                             deadline)
                if not data:
                    break
                chunks.append(data)
                got += len(data)
                if data.endswith(b"\n") or got >= limit:
                    break
        except Timeout:
            self.unread(index, b"".join(chunks))
            raise
        return b"".join(chunks)

    async def readexactly(self, index: int, size: int, timeout: float | None) -> bytes:
        """Exactly `size` bytes (fewer only at EOF); on Timeout nothing read is lost."""
        deadline = deadline_after(timeout)
        chunks: list[bytes] = []
        got = 0
        try:
            while got < size:
                chunk = await self._read_some(index, size - got, deadline)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except Timeout:
            self.unread(index, b"".join(chunks))
            raise
        return b"".join(chunks)

    async def write(self, data: bytes | bytearray | memoryview, stderr: bool,
                    timeout: float | None, flush: bool = True) -> None:
        """Send all of `data`; Timeout when window or transport back-pressure outlast it.

        With `flush` False what the window takes stays queued in the core for a later
        flush (it is sent before any wait for window, which the peer grants only after).
        """
        deadline = deadline_after(timeout)
        view = memoryview(data).cast("B")
        link = self.link
        while view:
            link.check_writable(self)
            if not flush and not link.can_write(self):
                link.flush()
            await self._wait(lambda: link.can_write(self), deadline, "send window")
            sent = link.send_some(self, view, stderr)
            view = view[sent:]
            if flush:
                await self.flush(deadline)

    async def flush(self, deadline: float | None) -> None:
        """Hand what the core queued to the transport and wait out its back-pressure."""
        self.link.flush()
        try:
            await self.link.drain(deadline)
        except asyncio.CancelledError:
            self.close()
            raise

    async def request(self, name: str, payload: bytes, want_reply: bool,
                      timeout: float | None) -> bool:
        """Send a channel request and, with `want_reply`, wait for the answer: True on success.

        Without `want_reply`, waits for transport back-pressure and returns True.  Timeout after
        `timeout`; ChannelClosedError if the channel closed unanswered; cancelling the wait for the
        reply closes the channel.
        """
        deadline = deadline_after(timeout)
        ticket = self.link.channel_request(self, name, payload, want_reply)
        self.link.flush()
        if ticket < 0:
            await self.link.drain(deadline)
            return True
        try:
            await self._wait(lambda: self.reply_settled(ticket), deadline, f"reply to {name!r}")
        except (Timeout, asyncio.CancelledError):
            self.abandon_reply(ticket)
            raise
        return self.reply_result(ticket, name)

    def set_window_size(self, size: int) -> None:
        """Let the server send up to `size` bytes ahead of our reads (grow only; the
        WINDOW_ADJUST is handed to the transport at once)."""
        self.link.set_window_size(self, size)
        self.link.flush()

    def send_eof(self) -> None:
        """Send EOF once (later calls do nothing); never blocks: the bytes are queued on the
        transport.
        """
        if self.link.send_eof(self):
            self.link.flush()

    def close(self) -> None:
        """Send CHANNEL_CLOSE (the server's close arrives later); never blocks."""
        if self.id >= 0 and self.link.close_channel(self):
            self.link.flush()

    async def wait_closed(self, timeout: float | None) -> None:
        """Wait until the channel closed (server close or connection end); Timeout after `timeout`.

        Cancelling it closes the channel.
        """
        await self._wait(lambda: self.closed, deadline_after(timeout), "the channel to close")


class AioSessionChannel(AioChannel, SessionChannel):
    """A session channel for coroutines: exit bookkeeping plus draining both streams."""

    async def drain(self, collector: OutputCollector, deadline: float | None) -> None:
        """Feed all output to the collector until the channel closes."""
        link = self.link
        while True:
            await self._wait(self.output_ready, deadline, "the remote command to finish")
            taken = collector.take_from(self)
            link.consume(self, taken)
            if taken:
                link.flush()
            if self.closed:
                return
