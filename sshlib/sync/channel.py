"""Per-channel state for the threaded front-end: buffers, waits, flow control.

The reader thread only ever appends to these buffers (never blocks); the
application's reads take data out and tell the core, which then returns
window credit to the server.  Buffers are therefore bounded by our window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ChannelClosedError, ChannelOpenError, SSHError, Timeout

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


class ChannelIO:
    """One open (or opening) channel as the application threads see it."""

    def __init__(self, client: Client, kind: str) -> None:
        self.client = client
        self.kind = kind
        self.id = -1
        self.cond = threading.Condition(client._lock)
        self.opened = False
        self.open_error: SSHError | None = None
        self.buffers: tuple[deque[bytes], deque[bytes]] = (deque(), deque())
        self.buffered = [0, 0]
        self.eof = False
        self.closed = False
        self.error: SSHError | None = None
        self.request_results: dict[int, bool] = {}
        self.requests_sent = 0
        self.requests_answered = 0
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str] | None = None
        self.eof_sent = False

    # --- called by the client's dispatcher, lock held --------------------------
    def on_opened(self) -> None:
        self.opened = True
        self.cond.notify_all()

    def on_open_failed(self, reason: int, description: str) -> None:
        self.open_error = ChannelOpenError(reason, description)
        self.closed = True
        self.cond.notify_all()

    def on_data(self, data: bytes, stderr: bool) -> None:
        index = 1 if stderr else 0
        self.buffers[index].append(data)
        self.buffered[index] += len(data)
        self.cond.notify_all()

    def on_reply(self, success: bool) -> None:
        self.request_results[self.requests_answered] = success
        self.requests_answered += 1
        self.cond.notify_all()

    def on_close(self, error: SSHError | None = None) -> None:
        self.closed = True
        self.eof = True
        if error is not None and self.error is None:
            self.error = error
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
            self.wait_for(lambda: self.opened or self.closed, deadline, f"{self.kind} channel open")
            if self.open_error is not None:
                raise self.open_error
            if not self.opened:
                raise self.error or ChannelClosedError("channel closed while opening")

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
        buf = self.buffers[index]
        chunks: list[bytes] = []
        taken = 0
        with self.cond:
            self.wait_for(lambda: bool(buf) or self.eof, deadline, "channel data")
            while buf and taken < size:
                chunk = buf.popleft()
                if taken + len(chunk) > size:
                    keep = size - taken
                    buf.appendleft(chunk[keep:])
                    chunk = chunk[:keep]
                chunks.append(chunk)
                taken += len(chunk)
            self.buffered[index] -= taken
            if taken and not self.closed:
                self.client._core.connection.consume(self.id, taken)
            if not taken and self.error is not None:
                raise self.error
        if taken:
            self.client._flush()
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def drain(self, sinks: tuple[Callable[[bytes], None], Callable[[bytes], None]],
              deadline: float | None) -> None:
        """Feed all output to the sinks until the channel closes."""
        while True:
            with self.cond:
                self.wait_for(lambda: bool(self.buffers[0] or self.buffers[1]) or self.closed,
                              deadline, "the remote command to finish")
                taken = self.buffered[0] + self.buffered[1]
                pending = [list(self.buffers[0]), list(self.buffers[1])]
                for index in (0, 1):
                    self.buffers[index].clear()
                    self.buffered[index] = 0
                if taken and not self.closed:
                    self.client._core.connection.consume(self.id, taken)
                finished = self.closed
            for index in (0, 1):
                for chunk in pending[index]:
                    sinks[index](chunk)
            if taken:
                self.client._flush()
            if finished:
                return

    def write(self, data: bytes | bytearray | memoryview, stderr: bool,
              timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        view = memoryview(data).cast("B")
        connection = self.client._core.connection
        while view:
            with self.cond:
                self.client._check_alive()
                if self.eof_sent or self.closed:
                    raise ChannelClosedError("channel input is closed")
                self.wait_for(lambda: self.closed or self.client._error is not None
                              or connection.window_available(self.id) > 0,
                              deadline, "send window")
                self.client._check_alive()
                if self.closed:
                    raise ChannelClosedError("channel closed by the server")
                sent = connection.send_data(self.id, view[:256 * 1024], stderr)
            view = view[sent:]
            self.client._flush()

    def request(self, name: str, payload: bytes, want_reply: bool, timeout: float | None) -> bool:
        deadline = deadline_after(timeout)
        with self.cond:
            self.client._check_alive()
            if self.closed:
                raise ChannelClosedError(f"cannot send {name!r}: channel is closed")
            self.client._core.connection.send_request(self.id, name, payload, want_reply)
            ticket = self.requests_sent if want_reply else -1
            if want_reply:
                self.requests_sent += 1
        self.client._flush()
        if ticket < 0:
            return True
        with self.cond:
            self.wait_for(lambda: ticket in self.request_results or self.closed,
                          deadline, f"reply to {name!r}")
            if ticket not in self.request_results:
                raise self.error or ChannelClosedError(f"channel closed before {name!r} replied")
            return self.request_results.pop(ticket)

    def send_eof(self) -> None:
        with self.cond:
            if self.eof_sent or self.closed:
                return
            self.eof_sent = True
            self.client._core.connection.send_eof(self.id)
        self.client._flush()

    def close(self) -> None:
        with self.cond:
            if self.client._core.closed:
                return
            self.client._core.connection.close_channel(self.id)
        self.client._flush()

    def wait_closed(self, timeout: float | None) -> None:
        deadline = deadline_after(timeout)
        with self.cond:
            self.wait_for(lambda: self.closed, deadline, "the channel to close")
