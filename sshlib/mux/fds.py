"""What the sync and asyncio mux links share: our ends of a session's descriptors.

`FdLink` writes stdin (non-blocking), reads stdout/stderr, applies the
master's session messages to a channel and closes everything once; the
front-ends add the waiting (a pump thread, or the event loop's readers).
`SessionSpec` collects what a mux session asks for before it starts, and
`make_stdio()` builds the descriptors to pass (socketpairs, or a local pty).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..channelstate import StreamChannel
from ..errors import ChannelClosedError, MuxProtocolError, RequestDeniedError, SSHError
from . import protocol as mp

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

from . import tty

log = logging.getLogger("sshlib.mux")

__all__ = ["FdLink", "SessionSpec", "Stdio", "make_stdio", "BUFFER_LIMIT"]

BUFFER_LIMIT = 2 * 1024 * 1024  # unread bytes per stream before we stop reading
READ_CHUNK = 64 * 1024
WRITE_CHUNK = 256 * 1024


@dataclass
class SessionSpec:
    """What goes with MUX_C_NEW_SESSION: the pty, environment and agent flag."""

    pty: tuple[str, int, int, dict[str | int, int]] | None = None
    env: list[str] = field(default_factory=list)
    agent: bool = False
    started: bool = False

    def before_start(self, what: str) -> None:
        if self.started:
            raise SSHError(f"{what}() must come before the session starts")

    def request_pty(self, term: str, height: int, width: int,
                    modes: Mapping[str | int, int] | None) -> None:
        self.before_start("request_pty")
        self.pty = (term, height, width, dict(modes or {}))

    def setenv(self, name: str, value: str) -> None:
        self.before_start("setenv")
        if not name or "=" in name:
            raise ValueError(f"bad environment variable name {name!r}")
        self.env.append(f"{name}={value}")

    def request_agent(self) -> None:
        self.before_start("request_agent_forwarding")
        self.agent = True

    def start(self) -> None:
        if self.started:
            raise SSHError("session already started; use a new session per command")
        self.started = True


@dataclass
class Stdio:
    """Descriptors of one session: ours (kept), and those the master gets."""

    stdin: int
    outputs: list[int]
    to_pass: list[int]  # in the order the master reads them
    theirs: list[int]  # each of our copies of the passed descriptors, closed once sent
    pty: bool

    def close_theirs(self) -> None:
        for fd in self.theirs:
            os.close(fd)
        self.theirs = []


def make_stdio(spec: SessionSpec | None) -> Stdio:
    """Socketpairs for stdin/stdout/stderr; a local pty for a pty session (spec.pty).

    `spec=None` is a stdio forward: stdin and stdout only.
    """
    if spec is not None and spec.pty is not None:
        _, height, width, modes = spec.pty
        ours, theirs = tty.open_pty(height, width, modes)
        return Stdio(ours, [ours], [theirs] * 3, [theirs], True)
    count = 2 if spec is None else 3
    pairs = [socket.socketpair() for _ in range(count)]
    passed = [b.detach() for _, b in pairs]
    return Stdio(pairs[0][0].detach(), [a.detach() for a, _ in pairs[1:]], passed, passed,
                 False)


class FdLink:
    """Our ends of a session's descriptors as a channel link (see sync ChannelLink)."""

    path: str

    def __init__(self) -> None:
        self.stdin = -1
        self.outputs: list[int] = []  # index 0 stdout, 1 stderr (a pty has stdout only)
        self.pty = False
        self.write_blocked = False
        self._released = False

    def attach(self, stdio: Stdio) -> None:
        """Our ends of the descriptors the master gets (owned and closed by us from now)."""
        self.stdin, self.outputs, self.pty = stdio.stdin, stdio.outputs, stdio.pty
        for fd in {self.stdin, *self.outputs}:
            os.set_blocking(fd, False)

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def read_output(fd: int) -> bytes | None:
        """What the fd has (b"" at its end; a pty whose far side closed reads EIO), or None."""
        try:
            return os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.ECONNRESET):
                raise
            return b""

    def apply(self, channel: StreamChannel, events: list[mp.MuxEvent]) -> bool:
        """The master's messages on a running session; False once it closed the connection."""
        for event in events:
            if isinstance(event, mp.ExitReported):
                channel.on_exit_status(event.exit_status)
            elif isinstance(event, mp.TtyAllocFailed):
                log.info("mux master %s: the server refused the pty", self.path)
            elif isinstance(event, mp.MasterClosed):
                return False
            else:
                raise MuxProtocolError(f"unexpected {type(event).__name__} on a session",
                                       path=self.path)
        return True

    # --- ChannelLink methods both front-ends share ----------------------------------------
    def check_writable(self, channel: StreamChannel) -> None:
        if self.stdin < 0:
            raise ChannelClosedError("the session has not started")
        if channel.eof_sent or channel.closed:
            raise ChannelClosedError("channel input is closed")

    def can_write(self, channel: StreamChannel) -> bool:
        return True

    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        if stderr:
            raise ValueError("a mux session has no stderr to write to")
        try:
            return os.write(self.stdin, view[:WRITE_CHUNK])
        except BlockingIOError:
            self.write_blocked = True
            return 0
        except OSError as exc:
            raise ChannelClosedError(f"the session's input is closed: {exc}") from None

    def channel_request(self, channel: StreamChannel, name: str, payload: bytes,
                        want_reply: bool) -> int:
        raise RequestDeniedError(f"the ControlMaster protocol cannot send {name!r} requests")

    def send_eof(self, channel: StreamChannel) -> bool:
        if channel.eof_sent or channel.closed:
            return False
        channel.eof_sent = True
        if not self.pty:  # a pty has no end of input; send ^D (b"\\x04") instead
            try:
                with socket.socket(fileno=os.dup(self.stdin)) as sock:
                    sock.shutdown(socket.SHUT_WR)  # the dup shares the socket; closing it doesn't
            except OSError:
                pass
        return True

    def close_fds(self) -> None:
        """Close our descriptors (once)."""
        if self._released:
            return
        self._released = True
        for fd in {self.stdin, *self.outputs} - {-1}:
            try:
                os.close(fd)
            except OSError:
                pass
