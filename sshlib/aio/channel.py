"""Per-channel waiting for the asyncio front-end (state lives in sshlib.driver.Channel).

The reader task only appends to the buffers and wakes futures; coroutines
take data out and tell the core, which returns window credit to the server.
Cancelling a coroutine blocked on a channel closes that channel: the
operation cannot be resumed halfway (a `timeout=` argument is the way to
wait with a limit and keep the channel).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..driver import Channel
from ..errors import Timeout

if TYPE_CHECKING:
    from .client import Client

LINE_LIMIT = 1 << 20  # readline() returns a partial line after this many bytes


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Waiters:
    """Futures woken together when state changes (a Condition without a lock)."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def wake(self) -> None:
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
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


class AioChannel(Channel):
    """One channel as coroutines see it."""

    def __init__(self, client: Client, kind: str) -> None:
        super().__init__(kind)
        self.client = client
        self._waiters = Waiters()

    def wake(self) -> None:
        self._waiters.wake()

    async def _wait(self, predicate: Callable[[], bool], deadline: float | None,
                    what: str) -> None:
        try:
            await self._waiters.wait_until(predicate, deadline, what)
        except asyncio.CancelledError:
            self.close()  # a cancelled operation leaves the channel in an unknown state
            raise

    async def wait_open(self, timeout: float | None) -> None:
        driver = self.client._driver
        try:
            await self._waiters.wait_until(self.open_settled, deadline_after(timeout),
                                           f"{self.kind} channel open")
        except BaseException:  # Timeout or cancelled: close it if the server confirms later
            if not self.open_settled():
                driver.abandon(self)
                self.on_close(Timeout(f"gave up opening the {self.kind} channel"))
            raise
        self.check_open_result()

    async def read(self, index: int, size: int, timeout: float | None) -> bytes:
        """Up to `size` bytes (all until EOF if size < 0) from stdout (0) or stderr (1)."""
        deadline = deadline_after(timeout)
        if size >= 0:
            return await self._read_some(index, size, deadline)
        chunks: list[bytes] = []
        while True:  # take data as it arrives so the window keeps reopening
            chunk = await self._read_some(index, 1 << 30, deadline)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    async def _read_some(self, index: int, size: int, deadline: float | None) -> bytes:
        if not self.buffers[index] and not self.eof:
            await self._wait(lambda: self.readable(index), deadline, "channel data")
        data = self.take(index, size)
        if data:
            self.client._driver.consume(self, len(data))
            self.client._flush()
        return data

    async def readline(self, index: int, timeout: float | None) -> bytes:
        """One line including its newline, what is left at EOF, or LINE_LIMIT bytes."""
        deadline = deadline_after(timeout)
        buf = self.buffers[index]
        while True:
            scanned = 0
            for chunk in buf:
                found = chunk.find(b"\n")
                if found >= 0:
                    return await self._read_some(index, scanned + found + 1, deadline)
                scanned += len(chunk)
            if self.eof or scanned >= LINE_LIMIT:
                return await self._read_some(index, max(scanned, 1), deadline)
            await self._wait(self._grown(index, scanned), deadline, "a line of channel data")

    def _grown(self, index: int, size: int) -> Callable[[], bool]:
        return lambda: self.buffered[index] != size or self.eof

    async def drain(self, sink: Callable[[list[bytes], list[bytes]], None],
                    deadline: float | None) -> None:
        """Feed all output to sink(stdout chunks, stderr chunks) until the channel closes."""
        driver = self.client._driver
        while True:
            await self._wait(self.output_ready, deadline, "the remote command to finish")
            out, err, taken = self.take_all()
            driver.consume(self, taken)
            sink(out, err)
            if taken:
                self.client._flush()
            if self.closed:
                return

    async def write(self, data: bytes | bytearray | memoryview, stderr: bool,
                    timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        view = memoryview(data).cast("B")
        driver = self.client._driver
        while view:
            driver.check_writable(self)
            await self._wait(lambda: driver.can_write(self), deadline, "send window")
            sent = driver.send_some(self, view, stderr)
            view = view[sent:]
            self.client._flush()
            try:
                await self.client._drain()
            except asyncio.CancelledError:
                self.close()
                raise

    async def request(self, name: str, payload: bytes, want_reply: bool,
                      timeout: float | None) -> bool:
        deadline = deadline_after(timeout)
        ticket = self.client._driver.channel_request(self, name, payload, want_reply)
        self.client._flush()
        if ticket < 0:
            return True
        await self._wait(lambda: self.reply_settled(ticket), deadline, f"reply to {name!r}")
        return self.reply_result(ticket, name)

    def send_eof(self) -> None:
        if self.client._driver.send_eof(self):
            self.client._flush()

    def close(self) -> None:
        """Send CHANNEL_CLOSE (the server's close arrives later); never blocks."""
        if self.id >= 0 and self.client._driver.close_channel(self):
            self.client._flush()

    async def wait_closed(self, timeout: float | None) -> None:
        await self._wait(lambda: self.closed, deadline_after(timeout), "the channel to close")
