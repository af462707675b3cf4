"""Per-channel waiting for the threaded front-end (state lives in sshlib.channelstate).

The reader thread only ever appends to the buffers (never blocks); the
application's reads take data out and tell the core, which then returns
window credit to the server.  Buffers are therefore bounded by our window.
Channels reach the connection only through `ThreadDriver`: the shared
driver plus the connection lock and a `flush()` that sends what the core
queued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from ..channelstate import LINE_LIMIT, OutputCollector, SessionChannel, StreamChannel
from ..config import ClientConfig
from ..driver import Driver
from ..errors import Timeout
from ..protocol.client import ClientConnection


def deadline_after(timeout: float | None) -> float | None:
    """The time.monotonic() instant `timeout` seconds from now; None (wait forever) for None."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None, what: str) -> float | None:
    """Seconds left until `deadline` (None: no limit); raises Timeout naming `what` once it passed.
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"timed out waiting for {what}")
    return left


class ThreadDriver(Driver):
    """The shared driver as threaded channels use it: with the lock and the sender."""

    def __init__(self, core: ClientConnection, config: ClientConfig, hostname: str, port: int,
                 lock: threading.Lock, send: Callable[[float | None], None]) -> None:
        super().__init__(core, config, hostname, port)
        self.lock = lock
        self._send = send
        self.connection_cond = threading.Condition(lock)

    def make_stream(self, kind: str) -> StreamChannel:
        return ChannelIO(self, kind)

    def flush(self, deadline: float | None = None) -> None:
        """Send what the core queued; Timeout at `deadline` (the rest stays queued, in order)."""
        self._send(deadline)

    def wake_connection(self) -> None:  # lock held
        self.connection_cond.notify_all()


class ChannelLink(Protocol):
    """What a ChannelIO needs from what carries it: a ThreadDriver, or sshlib.mux's pipes.

    Each method is called with `lock` held except `flush()`, which may wait.
    """

    lock: threading.Lock

    def consume(self, channel: StreamChannel, count: int) -> None:
        """The application took `count` bytes: give the window back (as `Driver.consume`), or for
        mux let the pump read again; never waits, what it queues goes out with `flush()`."""
    def set_window_size(self, channel: StreamChannel, size: int) -> None:
        """Grow the channel's receive window (as `Driver.set_window_size`; mux: nothing)."""
    def flush(self, deadline: float | None = None) -> None:
        """Send what is queued, without the lock (as `ThreadDriver.flush`); may block.

        Timeout once `deadline` (time.monotonic()) passes; what was not sent stays queued, in
        order, for the next flush.  None waits as long as it takes.
        """
    def check_writable(self, channel: StreamChannel) -> None:
        """Raise before a write: the connection's error, or ChannelClosedError after EOF or close
        (as `Driver.check_writable`)."""
    def can_write(self, channel: StreamChannel) -> bool:
        """Whether a writer waiting on `channel` should wake (as `Driver.can_write`): there is
        window, or the channel or connection ended so `send_some()` raises why.

        Evaluated by the reader thread's wake-ups, so it may read only state changed under `lock`.
        """
    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        """After `can_write()`: take what can go now from `view` and return the count (as the
        driver's `send_some`); 0 means nothing could, and the writer flushes before trying again.

        Raises the connection's error, or ChannelClosedError once the channel closed.
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


class ChannelIO(StreamChannel):
    """One open (or opening) channel as the application threads see it."""

    def __init__(self, link: ChannelLink, kind: str) -> None:
        super().__init__(kind)
        self.link = link
        self.cond = threading.Condition(link.lock)
        self._waiting: list[Callable[[], bool]] = []

    def wake(self) -> None:  # called by the driver, lock held
        # Wake a thread only when what it waits for has come true: each wake-up is a
        # thread hand-off, and a session would otherwise take one per EOF, exit status,
        # window adjust or reply it is not waiting for.
        # notify_all wakes every waiter, so they all leave the list: each re-registers only
        # if it must wait again, and packets arriving before it runs cost nothing here.
        waiting = self._waiting
        for predicate in waiting:
            if predicate():
                waiting.clear()
                self.cond.notify_all()
                return

    # --- used by application threads --------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], deadline: float | None, what: str) -> None:
        """Wait (lock held) until predicate() is true; raise on timeout.

        The predicate must depend only on channel or connection state the
        dispatcher changes (it is evaluated by `wake()` in the reader thread).
        """
        waiting = self._waiting
        while not predicate():
            left = remaining(deadline, what)
            waiting.append(predicate)
            try:
                self.cond.wait(left)
            finally:
                if predicate in waiting:  # a timeout or a wake for someone else
                    waiting.remove(predicate)

    def wait_open(self, timeout: float | None) -> None:
        """Wait for the server to confirm or refuse the open (any thread; takes the lock).

        ChannelOpenError if refused; Timeout after `timeout` (the caller abandons the
        channel, so a late confirmation is closed); the connection's error if it ended.
        """
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
        try:
            while True:  # take data as it arrives so the window keeps reopening
                chunk = self._read_some(index, 1 << 30, deadline)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        except Timeout:
            self._unread(index, chunks)
            raise

    def _read_some(self, index: int, size: int, deadline: float | None) -> bytes:
        with self.cond:
            self.wait_for(lambda: self.readable(index), deadline, "channel data")
            data = self.take(index, size)
            self.link.consume(self, len(data))
        if data:
            self.link.flush()
        return data

    def _unread(self, index: int, chunks: list[bytes]) -> None:
        with self.cond:
            self.unread(index, b"".join(chunks))

    def readline(self, index: int, timeout: float | None, limit: int = LINE_LIMIT) -> bytes:
        """One line including b"\\n", what is left at EOF, or `limit` bytes.

        Scans the buffered chunks for the newline (no per-byte reads); on
        Timeout the bytes of the partial line stay buffered for the next call.
        """
        deadline = deadline_after(timeout)
        chunks: list[bytes] = []
        got = 0
        try:
            while True:
                with self.cond:
                    self.wait_for(lambda: self.readable(index), deadline, "a line of data")
                    want = self.line_length(index, limit - got)
                    data = self.take(index, want)
                    self.link.consume(self, len(data))
                if data:
                    self.link.flush()
                if not data:
                    break
                chunks.append(data)
                got += len(data)
                if data.endswith(b"\n") or got >= limit:
                    break
        except Timeout:
            self._unread(index, chunks)
            raise
        return b"".join(chunks)

    def readexactly(self, index: int, size: int, timeout: float | None) -> bytes:
        """Exactly `size` bytes, fewer only at EOF; on Timeout nothing is lost."""
        deadline = deadline_after(timeout)
        chunks: list[bytes] = []
        got = 0
        try:
            while got < size:
                chunk = self._read_some(index, size - got, deadline)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except Timeout:
            self._unread(index, chunks)
            raise
        return b"".join(chunks)

    def write(self, data: bytes | bytearray | memoryview, stderr: bool,
              timeout: float | None) -> None:
        """Send all of `data`; Timeout when window or TCP back-pressure outlast `timeout`.

        After a Timeout, what was handed to the core stays queued in order (at
        most one chunk past what TCP took) and goes out with the next send.
        """
        deadline = deadline_after(timeout)
        view = memoryview(data).cast("B")
        while view:
            view = view[self._hand_over(view, stderr, deadline):]
            self.link.flush(deadline)

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview], stderr: bool,
                   timeout: float | None, flush: bool = True) -> None:
        """Send every part in order (as write() of their concatenation) with one send at the end.

        What fits the window is only queued, so a small header and the data after it
        leave in one send; before waiting for window the queue is sent, since the
        peer grants more only once it has the bytes.  With `flush` False the last
        bytes stay queued for a later flush() or write.  Timeouts as for write().
        """
        deadline = deadline_after(timeout)
        link = self.link
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                with self.cond:
                    link.check_writable(self)
                    if link.can_write(self):
                        view = view[link.send_some(self, view, stderr):]
                        continue
                link.flush(deadline)
                view = view[self._hand_over(view, stderr, deadline):]
        if flush:
            link.flush(deadline)

    def flush(self, timeout: float | None) -> None:
        """Send what writelines(flush=False) left queued; Timeout under TCP back-pressure."""
        self.link.flush(deadline_after(timeout))

    def set_window_size(self, size: int, timeout: float | None) -> None:
        """Let the server send up to `size` bytes ahead of our reads (grow only)."""
        with self.cond:
            self.link.set_window_size(self, size)
        self.link.flush(deadline_after(timeout))

    def write_some(self, view: memoryview, stderr: bool, deadline: float | None) -> int:
        """Wait for window, hand what fits to the core and send it; returns the count.

        Like socket.send: if TCP pushes back past `deadline` after the bytes were
        handed over, they stay queued in order and the count is still returned.
        """
        sent = self._hand_over(view, stderr, deadline)
        try:
            self.link.flush(deadline)
        except Timeout:
            pass
        return sent

    def _hand_over(self, view: memoryview, stderr: bool, deadline: float | None) -> int:
        link = self.link
        with self.cond:
            link.check_writable(self)
            self.wait_for(lambda: link.can_write(self), deadline, "send window")
            return link.send_some(self, view, stderr)

    def request(self, name: str, payload: bytes, want_reply: bool, timeout: float | None) -> bool:
        """Send a channel request and, with `want_reply`, wait for the answer: True on success.

        Without `want_reply` returns True once sent.  Timeout after `timeout` (a later
        reply is ignored); ChannelClosedError if the channel closed unanswered.
        """
        deadline = deadline_after(timeout)
        ticket = self.send_request(name, payload, want_reply, deadline)
        if ticket < 0:
            return True
        with self.cond:
            try:
                self.wait_for(lambda: self.reply_settled(ticket), deadline,
                              f"reply to {name!r}")
            except Timeout:
                self.abandon_reply(ticket)
                raise
            return self.reply_result(ticket, name)

    def send_request(self, name: str, payload: bytes, want_reply: bool,
                     deadline: float | None) -> int:
        """Send a channel request without waiting for the reply; returns its ticket."""
        with self.cond:
            ticket = self.link.channel_request(self, name, payload, want_reply)
        self.link.flush(deadline)
        return ticket

    def send_eof(self, timeout: float | None = None) -> None:
        """Send EOF once (later calls do nothing); Timeout if TCP back-pressure outlasts `timeout`.
        """
        with self.cond:
            if not self.link.send_eof(self):
                return
        self.link.flush(deadline_after(timeout))

    def close(self, timeout: float | None = None) -> None:
        """Send CHANNEL_CLOSE without waiting for the server's (use `wait_closed`).

        Does nothing after the connection ended; Timeout if it cannot be sent within `timeout`.
        """
        with self.cond:
            if not self.link.close_channel(self):
                return
        self.link.flush(deadline_after(timeout))

    def wait_closed(self, timeout: float | None) -> None:
        """Wait until the channel closed (server close or connection end); Timeout after `timeout`.
        """
        deadline = deadline_after(timeout)
        with self.cond:
            self.wait_for(lambda: self.closed, deadline, "the channel to close")


class SessionChannelIO(ChannelIO, SessionChannel):
    """A session channel for threads: exit bookkeeping plus draining both streams."""

    def __init__(self, link: ChannelLink, kind: str = "session") -> None:
        super().__init__(link, kind)  # ChannelIO, then SessionChannel's exit fields

    def drain(self, collector: OutputCollector, deadline: float | None,
              refused: Callable[[], bool] = lambda: False) -> None:
        """Feed all output to the collector until the channel closes (or `refused()`)."""
        link = self.link

        def ready() -> bool:
            return self.output_ready() or refused()
        while True:
            with self.cond:
                self.wait_for(ready, deadline, "the remote command to finish")
                if refused():
                    return
                taken = collector.take_from(self)
                link.consume(self, taken)
                finished = self.closed
            if taken:
                link.flush()
            if finished:
                return
