"""Pure SFTP client policy: open modes, server limits, the pipelining plans, progress pacing.

Nothing here does I/O or reads a clock; front-ends pass `now` in.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import SFTPProtocolError
from .core import FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE, decode_u64s

__all__ = ["open_flags", "Limits", "ReadPlan", "WritePlan", "ProgressPacer", "choose_depth",
           "DEFAULT_BLOCK", "DEFAULT_REQUESTS", "SFTP_WINDOW", "sftp_window", "glob_parts",
           "has_magic"]

#: OpenSSH's sftp keeps 64 requests in flight.
DEFAULT_REQUESTS = 64
#: The receive window an SFTP session asks for when the connection's default is smaller
#: (2 MiB): with more data in flight the server never idles waiting for credit, on
#: loopback and over long round trips alike (docs/performance.md, "20 ms RTT").
SFTP_WINDOW = 8 * 1024 * 1024
#: Without limits@openssh.com: 32 KiB, which every v3 server must accept.
SAFE_BLOCK = 32 * 1024
#: With limits: up to this much per READ/WRITE (OpenSSH's sftp-server allows 255 KiB).
DEFAULT_BLOCK = 255 * 1024

_MODES = {
    "r": FXF_READ,
    "w": FXF_WRITE | FXF_CREAT | FXF_TRUNC,
    "a": FXF_WRITE | FXF_CREAT | FXF_APPEND,
    "x": FXF_WRITE | FXF_CREAT | FXF_EXCL,
    "r+": FXF_READ | FXF_WRITE,
    "w+": FXF_READ | FXF_WRITE | FXF_CREAT | FXF_TRUNC,
    "a+": FXF_READ | FXF_WRITE | FXF_CREAT | FXF_APPEND,
    "x+": FXF_READ | FXF_WRITE | FXF_CREAT | FXF_EXCL,
}


def open_flags(mode: str) -> int:
    """SFTP pflags for a binary open() mode: "rb", "wb", "ab", "r+b", "xb" (the "b" optional)."""
    key = mode.replace("b", "")
    if key not in _MODES or mode.count("b") > 1 or "t" in mode:
        raise ValueError(f"unsupported SFTP open mode {mode!r}: use rb, wb, ab, xb, r+b (binary)")
    return _MODES[key]


@dataclass(frozen=True)
class Limits:
    """limits@openssh.com: 0 means the server did not say."""

    max_packet: int = 0
    max_read: int = 0
    max_write: int = 0
    max_handles: int = 0

    @classmethod
    def decode(cls, payload: bytes) -> Limits:
        """Parse the limits@openssh.com reply payload."""
        return cls(*decode_u64s(payload, 4))

    def read_block(self) -> int:
        """Bytes per READ: the server's limit up to 255 KiB, or 32 KiB if it gave none."""
        return min(self.max_read, DEFAULT_BLOCK) if self.max_read else SAFE_BLOCK

    def write_block(self) -> int:
        """Bytes per WRITE: the server's limit up to 255 KiB, or 32 KiB if it gave none."""
        return min(self.max_write, DEFAULT_BLOCK) if self.max_write else SAFE_BLOCK


def sftp_window(connection_window: int) -> int:
    """The receive window for an SFTP session of a connection whose default is
    `connection_window`: at least SFTP_WINDOW."""
    return max(connection_window, SFTP_WINDOW)


def choose_depth(block: int, window: int, max_requests: int = DEFAULT_REQUESTS) -> int:
    """Requests to keep in flight: enough to cover the channel window twice over (so the
    server always has the next request queued while the window drains), at most
    `max_requests`, at least 2."""
    return max(2, min(max_requests, -(-2 * window // block)))


class ReadPlan:
    """Which (offset, length) READs to send for bytes [start, end) of a file.

    Call next() until it returns None, send those, and report each answer with
    on_data() or on_eof(); done is true when every byte arrived or EOF ended the
    file early.  Short reads are re-requested for the rest; at most `depth`
    requests are outstanding.
    """

    def __init__(self, start: int, end: int, block: int, depth: int) -> None:
        if block <= 0 or depth <= 0:
            raise ValueError("block and depth must be positive")
        self.next_offset = start
        self.end = end
        self.block = block
        self.depth = depth
        self.inflight = 0
        self.received = 0
        self.batch = max(1, depth // 4)
        self._filling = True
        self._holes: deque[tuple[int, int]] = deque()

    def next(self) -> tuple[int, int] | None:
        """The next READ to send, or None.  Once started, refills come in batches of a
        quarter of the depth, so the front-end sends several requests per write."""
        if self.inflight <= self.depth - self.batch:
            self._filling = True
        if not self._filling or self.inflight >= self.depth:
            self._filling = False
            return None
        while self._holes:
            offset, length = self._holes.popleft()
            if offset < self.end:
                self.inflight += 1
                return offset, min(length, self.end - offset)
        if self.next_offset >= self.end:
            return None
        offset = self.next_offset
        length = min(self.block, self.end - offset)
        self.next_offset += length
        self.inflight += 1
        return offset, length

    def on_data(self, offset: int, asked: int, got: int) -> None:
        """A DATA reply of `got` bytes for the READ (offset, asked); a short one is re-asked."""
        self.inflight -= 1
        if got == 0 or got > asked:
            raise SFTPProtocolError(f"SFTP server returned {got} bytes for a READ of {asked}")
        self.received += got
        if got < asked:
            self._holes.append((offset + got, asked - got))

    def on_eof(self, offset: int) -> None:
        """The server said EOF for a READ at `offset`: the file ends there (or before)."""
        self.inflight -= 1
        self.end = min(self.end, offset)

    @property
    def done(self) -> bool:
        """True when every byte arrived (or EOF ended the file) and nothing is in flight."""
        return self.inflight == 0 and self.next_offset >= self.end and not any(
            off < self.end for off, _ in self._holes)


class WritePlan:
    """(offset, length) WRITEs for bytes [start, end) with at most `depth` unacknowledged."""

    def __init__(self, start: int, end: int, block: int, depth: int) -> None:
        if block <= 0 or depth <= 0:
            raise ValueError("block and depth must be positive")
        self.next_offset = start
        self.end = end
        self.block = block
        self.depth = depth
        self.inflight = 0

    def next(self) -> tuple[int, int] | None:
        """The next (offset, length) WRITE to send, or None while `depth` are unacknowledged."""
        if self.inflight >= self.depth or self.next_offset >= self.end:
            return None
        offset = self.next_offset
        length = min(self.block, self.end - offset)
        self.next_offset += length
        self.inflight += 1
        return offset, length

    def on_ack(self) -> None:
        """A WRITE was acknowledged."""
        self.inflight -= 1

    def shorten(self, end: int) -> None:
        """The local source ended early (it shrank while we sent it)."""
        self.end = min(self.end, end)
        self.next_offset = min(self.next_offset, self.end)

    @property
    def done(self) -> bool:
        """True when every block was sent and acknowledged."""
        return self.inflight == 0 and self.next_offset >= self.end


class ProgressPacer:
    """Calls progress(done, total) at most every `interval` seconds, and always at the end."""

    def __init__(self, callback: Callable[[int, int], object] | None, total: int,
                 now: float, interval: float = 0.1) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self.interval = interval
        self._last = now - interval
        self._reported = -1

    def add(self, count: int, now: float) -> None:
        """Count `count` more bytes at time `now`; call the callback if due."""
        self.done += count
        if self.callback is not None and (now - self._last >= self.interval
                                          or self.done >= self.total):
            self._last = now
            self._reported = self.done
            self.callback(self.done, self.total)

    def finish(self) -> None:
        """Report the final count if the last call did not already."""
        if self.callback is not None and self._reported != self.done:
            self._reported = self.done
            self.callback(self.done, self.total)


_MAGIC = re.compile(r"[*?[]")


def has_magic(part: str) -> bool:
    """True if a path component contains glob characters (*, ? or [)."""
    return _MAGIC.search(part) is not None


def glob_parts(pattern: str) -> tuple[str, list[str]]:
    """Split a glob into its literal leading directory and the remaining components."""
    parts = pattern.split("/")
    base: list[str] = []
    for i, part in enumerate(parts):
        if has_magic(part):
            prefix = "/".join(base) if base else ("" if not pattern.startswith("/") else "/")
            if pattern.startswith("/") and base == [""]:
                prefix = "/"
            return prefix, [p for p in parts[i:] if p]
        base.append(part)
    return pattern, []


def glob_match(name: str, part: str) -> bool:
    """fnmatch on one path component; dot-files only match a pattern starting with a dot."""
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)


def join(base: str, name: str) -> str:
    return posixpath.join(base, name) if base else name
