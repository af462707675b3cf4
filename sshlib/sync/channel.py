"""Per-channel waiting for the threaded front-end (state lives in sshlib.driver.Channel).

The reader thread only ever appends to the buffers (never blocks); the
application's reads take data out and tell the core, which then returns
window credit to the server.  Buffers are therefore bounded by our window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..driver import Channel
from ..errors import Timeout

if TYPE_CHECKING:
    from .client import Client


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None, what: str) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"timed out waiting for {what}")
    return left


class ChannelIO(Channel):
    """One open (or opening) channel as the application threads see it."""

    def __init__(self, client: Client, kind: str) -> None:
        super().__init__(kind)
        self.client = client
        self.cond = threading.Condition(client._lock)

    def wake(self) -> None:  # called by the driver, lock held
        self.cond.notify_all()

    # --- used by application threads --------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], deadline: float | None, what: str) -> None:
        """Wait (lock held) until predicate() is true; raise on timeout."""
        while not predicate():
            left = remaining(deadline, what)
            self.cond.wait(left)

    def wait_open(self, timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        with self.cond:
            self.wait_for(self.open_settled, deadline, f"{self.kind} channel open")
            self.check_open_result()

    def read(self, index: int, size: int, timeout: float | None) -> bytes:
        """Up to `size` bytes (all until EOF if size < 0) from stdout (0) or stderr (1)."""
        deadline = deadline_after(timeout)
        if size >= 0:
            return self._read_some(index, size, deadline)
        chunks: list[bytes] = []
        while True:  # take data as it arrives so the window keeps reopening
            chunk = self._read_some(index, 1 << 30, deadline)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def _read_some(self, index: int, size: int, deadline: float | None) -> bytes:
        driver = self.client._driver
        with self.cond:
            self.wait_for(lambda: self.readable(index), deadline, "channel data")
            data = self.take(index, size)
            driver.consume(self, len(data))
        if data:
            self.client._flush()
        return data

    def drain(self, sinks: Callable[[list[bytes], list[bytes]], None],
              deadline: float | None) -> None:
        """Feed all output to sinks(stdout chunks, stderr chunks) until the channel closes."""
        driver = self.client._driver
        while True:
            with self.cond:
                self.wait_for(self.output_ready, deadline, "the remote command to finish")
                out, err, taken = self.take_all()
                driver.consume(self, taken)
                finished = self.closed
            sinks(out, err)
            if taken:
                self.client._flush()
            if finished:
                return

    def write(self, data: bytes | bytearray | memoryview, stderr: bool,
              timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        view = memoryview(data).cast("B")
        driver = self.client._driver
        while view:
            with self.cond:
                driver.check_writable(self)
                self.wait_for(lambda: driver.can_write(self), deadline, "send window")
                sent = driver.send_some(self, view, stderr)
            view = view[sent:]
            self.client._flush()

    def request(self, name: str, payload: bytes, want_reply: bool, timeout: float | None) -> bool:
        deadline = deadline_after(timeout)
        with self.cond:
            ticket = self.client._driver.channel_request(self, name, payload, want_reply)
        self.client._flush()
        if ticket < 0:
            return True
        with self.cond:
            self.wait_for(lambda: self.reply_settled(ticket), deadline, f"reply to {name!r}")
            return self.reply_result(ticket, name)

    def send_eof(self) -> None:
        with self.cond:
            if not self.client._driver.send_eof(self):
                return
        self.client._flush()

    def close(self) -> None:
        with self.cond:
            if not self.client._driver.close_channel(self):
                return
        self.client._flush()

    def wait_closed(self, timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        with self.cond:
            self.wait_for(lambda: self.closed, deadline, "the channel to close")
