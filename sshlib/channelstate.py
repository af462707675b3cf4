"""Channel state as front-ends see it: one copy for sync and aio, without I/O.

`StreamChannel` is a plain SSH channel (Go's ssh.Channel): two inbound
buffers (data and stderr extended data), EOF, close, request replies.
Forwarded connections and agent channels use it as it is.
`SessionChannel` adds what only a session has: exit status and signal, and
turning them into `ExitError`.

The driver's dispatcher calls the ``on_*`` methods; each ends with `wake()`,
which a front-end overrides to wake whoever waits (a Condition or futures).
Line splitting (`line_length`) and the output collectors live here too, so
the threaded and asyncio readers split lines the same way.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Literal

from .errors import ChannelClosedError, ChannelOpenError, ExitError, ExitMissingError, SSHError

log = logging.getLogger("sshlib.channel")

STDERR_KEEP = 64 * 1024  # bytes of stderr kept for ExitError by run()/output()
LINE_LIMIT = 1 << 20  # readline() returns a partial line after this many bytes

#: A buffered piece of channel data: the core hands data over as a view of the packet it
#: arrived in (no copy); `take()` and the collectors' joins turn it into bytes.
Chunk = bytes | memoryview


class StreamChannel:
    """One channel's buffers and state; no exit bookkeeping (see SessionChannel)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.id = -1
        self.opened = False
        self.open_error: SSHError | None = None
        self.buffers: tuple[deque[Chunk], deque[Chunk]] = (deque(), deque())
        self.buffered = [0, 0]
        self.eof = False
        self.closed = False
        self.error: SSHError | None = None
        self.request_results: dict[int, bool] = {}
        #: Tickets whose waiter gave up (timed out): their late replies are dropped.
        self.abandoned_replies: set[int] = set()
        self.requests_sent = 0
        self.requests_answered = 0
        self.eof_sent = False
        #: For channels the server opened to a forward: who connected, as the server says.
        self.origin: tuple[str, int] | None = None

    def wake(self) -> None:
        """Something changed: the front-end wakes its waiters."""

    # --- from the dispatcher ----------------------------------------------------------
    def on_opened(self) -> None:
        """The server confirmed the channel (dispatcher, lock held); wakes the opener."""
        self.opened = True
        self.wake()

    def on_open_failed(self, reason: int, description: str) -> None:
        """The server refused the channel: `check_open_result()` will raise ChannelOpenError."""
        self.open_error = ChannelOpenError(reason, description)
        self.closed = True
        self.wake()

    def on_data(self, data: Chunk, stderr: bool) -> None:
        """Buffer a chunk of data (`stderr`: extended data) and wake readers.

        The buffers stay bounded by the window we advertised: the core refuses data beyond it.
        """
        index = 1 if stderr else 0
        self.buffers[index].append(data)
        self.buffered[index] += len(data)
        self.wake()

    def on_eof(self) -> None:
        """The server sent EOF: reads return what is buffered, then b""."""
        self.eof = True
        self.wake()

    def on_reply(self, success: bool) -> None:
        """The server answered the oldest unanswered request (replies come in order)."""
        ticket = self.requests_answered
        self.requests_answered += 1
        if ticket in self.abandoned_replies:
            self.abandoned_replies.discard(ticket)
        else:
            self.request_results[ticket] = success
        self.wake()

    def on_exit_status(self, status: int) -> None:
        """A plain channel has no exit: exit-status is logged (debug) and dropped."""
        log.debug("ignoring exit-status %d on %s channel %d", status, self.kind, self.id)

    def on_exit_signal(self, signal: str, core_dumped: bool, message: str) -> None:
        """A plain channel has no exit: exit-signal is logged (debug) and dropped."""
        log.debug("ignoring exit-signal %s on %s channel %d", signal, self.kind, self.id)

    def on_close(self, error: SSHError | None = None) -> None:
        """The channel closed (server close, or `error` when the whole connection ended).

        Sets EOF too, so every waiter wakes; the first error is kept and raised by
        reads once the buffers are empty.
        """
        self.closed = True
        self.eof = True
        if error is not None and self.error is None:
            self.error = error
        self.wake()

    def give_up_opening(self, error: SSHError) -> Literal["ended", "pending", "confirmed"]:
        """The opener stopped waiting for the server's answer (Timeout, cancellation, an
        interrupt; lock held): mark the channel closed with `error`, and say what the
        front-end must do, the same in both front-ends:

        - "ended": it had closed already (refused, or the connection ended): the driver has
          dropped it (its id may belong to another channel now); nothing to do.
        - "pending": no answer yet: call `Driver.abandon`; the driver closes the channel when
          its confirmation comes.
        - "confirmed": the server confirmed it meanwhile: call `Driver.abandon`, then close it.
        """
        if self.closed:
            return "ended"
        confirmed = self.opened
        self.on_close(error)
        return "confirmed" if confirmed else "pending"

    # --- predicates and results for waiters ----------------------------------------------
    def open_settled(self) -> bool:
        """True once the open was confirmed or refused (a waiter's predicate; lock held)."""
        return self.opened or self.closed

    def check_open_result(self) -> None:
        """After `open_settled()`: raise ChannelOpenError if refused, or why it closed while
        opening.
        """
        if self.open_error is not None:
            raise self.open_error
        if not self.opened:
            raise self.error or ChannelClosedError("channel closed while opening")

    def readable(self, index: int) -> bool:
        """True when stream `index` (0 data, 1 stderr) has bytes or is at EOF (a reader predicate).
        """
        return bool(self.buffers[index]) or self.eof

    def output_ready(self) -> bool:
        """True when either stream has bytes or the channel closed (a drain's predicate)."""
        return bool(self.buffers[0] or self.buffers[1]) or self.closed

    def take(self, index: int, size: int) -> bytes:
        """Up to `size` buffered bytes of stream `index`; b"" at EOF, raise if it ended badly.

        The caller returns the window with `Driver.consume(channel, len(result))`.
        """
        buf = self.buffers[index]
        chunks: list[Chunk] = []
        taken = 0
        while buf and taken < size:
            chunk = buf.popleft()
            if taken + len(chunk) > size:
                keep = size - taken
                buf.appendleft(chunk[keep:])
                chunk = chunk[:keep]
            chunks.append(chunk)
            taken += len(chunk)
        self.buffered[index] -= taken
        if not taken and self.error is not None:
            raise self.error
        if len(chunks) == 1 and type(chunks[0]) is bytes:
            return chunks[0]
        return b"".join(chunks)

    def unread(self, index: int, data: bytes) -> None:
        """Put bytes a timed-out read had taken back in front, for the next read."""
        if data:
            self.buffers[index].appendleft(data)
            self.buffered[index] += len(data)

    def line_length(self, index: int, limit: int = LINE_LIMIT) -> int:
        """Bytes to take for the next line (through b"\\n"), or what is buffered if no
        newline is there yet; never more than `limit`.  Scans chunks, not bytes."""
        scanned = 0
        buf = self.buffers[index]
        for position, chunk in enumerate(buf):
            if type(chunk) is not bytes:  # a view of a packet: searched as bytes from now on
                chunk = buf[position] = bytes(chunk)
            found = chunk.find(b"\n", 0, limit - scanned)
            if found >= 0:
                return scanned + found + 1
            scanned += len(chunk)
            if scanned >= limit:
                return limit
        return scanned

    def find(self, index: int, separator: bytes, limit: int = LINE_LIMIT) -> int:
        """Bytes through the first `separator` in the buffer, or -1 (searching `limit` bytes)."""
        data = b"".join(self.buffers[index])[:limit]
        found = data.find(separator)
        return -1 if found < 0 else found + len(separator)

    def take_all(self) -> tuple[list[Chunk], list[Chunk], int]:
        """Everything buffered on both streams: (stdout chunks, stderr chunks, byte count)."""
        taken = self.buffered[0] + self.buffered[1]
        out, err = list(self.buffers[0]), list(self.buffers[1])
        for index in (0, 1):
            self.buffers[index].clear()
            self.buffered[index] = 0
        return out, err, taken

    def reply_settled(self, ticket: int) -> bool:
        """True once request `ticket` was answered or the channel closed (a waiter's predicate)."""
        return ticket in self.request_results or self.closed

    def abandon_reply(self, ticket: int) -> None:
        """The waiter for `ticket` gave up: forget its answer, now or when it comes."""
        if self.request_results.pop(ticket, None) is None and ticket >= self.requests_answered:
            self.abandoned_replies.add(ticket)

    def reply_result(self, ticket: int, name: str) -> bool:
        """The server's answer; ChannelClosedError if the channel closed without one."""
        if ticket not in self.request_results:
            raise self.error or ChannelClosedError(f"channel closed before {name!r} replied")
        return self.request_results.pop(ticket)


class SessionChannel(StreamChannel):
    """A session channel: a StreamChannel plus the remote program's exit."""

    def __init__(self, kind: str = "session") -> None:
        super().__init__(kind)
        self.exit_status: int | None = None
        self.exit_signal: tuple[str, bool, str] | None = None
        #: Arrival order of (stream index, chunk) while a merging collector drains.
        self.interleave: list[tuple[int, Chunk]] | None = None

    def on_exit_status(self, status: int) -> None:
        """Keep the program's exit status for `raise_for_exit()` and the front-end's `exit_status`.
        """
        self.exit_status = status

    def on_exit_signal(self, signal: str, core_dumped: bool, message: str) -> None:
        """Keep the signal that ended the program (name, core dumped, message) for
        `raise_for_exit()`.
        """
        self.exit_signal = (signal, core_dumped, message)

    def on_data(self, data: Chunk, stderr: bool) -> None:
        """As StreamChannel.on_data, also noting the arrival order while a merging collector drains.
        """
        if self.interleave is not None:
            self.interleave.append((1 if stderr else 0, data))
        super().on_data(data, stderr)

    def exited(self) -> bool:
        """The program reported how it ended (exit status or signal)."""
        return self.exit_status is not None or self.exit_signal is not None

    def take_ordered(self) -> tuple[list[Chunk], int]:
        """Everything buffered on both streams in arrival order (for combined output)."""
        if self.interleave is None:  # not recording: stdout first, then stderr
            out, err, taken = self.take_all()
            return out + err, taken
        order, self.interleave = self.interleave, []
        self.take_all()
        return [chunk for _, chunk in order], sum(len(chunk) for _, chunk in order)

    def raise_for_exit(self, stderr: bytes = b"") -> None:
        """After the channel closed: raise ExitError unless the program exited 0."""
        if self.exit_signal is not None:
            signal, _, message = self.exit_signal
            raise ExitError(self.exit_status, signal, message, stderr)
        if self.exit_status is None:
            if self.error is not None:
                raise self.error
            raise ExitMissingError("the session ended without an exit status")
        if self.exit_status != 0:
            raise ExitError(self.exit_status, None, "", stderr)


class OutputCollector:
    """The sinks behind output()/run()/combined_output(): stdout kept, a bounded stderr tail."""

    def __init__(self, keep_stdout: bool, merge: bool) -> None:
        self._keep_stdout = keep_stdout
        self.merge = merge
        self.out: list[Chunk] = []
        self._err: deque[Chunk] = deque()
        self._err_size = 0

    def feed(self, out: list[Chunk], err: list[Chunk]) -> None:
        """Take chunks of stdout and stderr: stdout kept (if asked), stderr merged or trimmed to its
        tail.

        Only the last STDERR_KEEP bytes of stderr are kept, so memory stays bounded.
        """
        if self._keep_stdout:
            self.out.extend(out)
        if self.merge:
            self.out.extend(err)
            return
        for chunk in err:
            self._err.append(chunk)
            self._err_size += len(chunk)
            while self._err_size - len(self._err[0]) > STDERR_KEEP:
                self._err_size -= len(self._err.popleft())

    def take_from(self, channel: SessionChannel) -> int:
        """Move what the channel buffered into the sinks; returns the byte count taken."""
        if self.merge:
            ordered, taken = channel.take_ordered()
            self.out.extend(ordered)
            return taken
        out, err, taken = channel.take_all()
        self.feed(out, err)
        return taken

    @property
    def stdout(self) -> bytes:
        """Everything collected on stdout (with stderr interleaved when merging)."""
        return b"".join(self.out)

    @property
    def stderr_tail(self) -> bytes:
        """The last STDERR_KEEP (64 KiB) bytes of stderr, for ExitError; b"" when merging."""
        return b"".join(self._err)[-STDERR_KEEP:]
