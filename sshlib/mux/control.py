"""One control connection to a master over its Unix socket, for threads.

Connecting, the HELLO exchange, request/reply with deadlines, and passing
file descriptors (SCM_RIGHTS, one per message with one data byte, the way
OpenSSH's mm_send_fd does and its master's mm_receive_fd expects).  Every
OS-level failure becomes a `MuxError` subclass naming the ControlPath.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence

from ..errors import MuxConnectError, MuxError, MuxProtocolError, MuxRefusedError, MuxTimeoutError
from . import protocol as mp

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.mux")

__all__ = ["ControlConnection", "Inbox", "deadline_after", "remaining_time", "os_error",
           "check_path", "reply_or_raise"]

_SUN_PATH_MAX = 108 if sys.platform == "linux" else 104


def deadline_after(timeout: float | None) -> float | None:
    """The time.monotonic() instant `timeout` seconds from now, None for no limit: one deadline
    shared by every step of an operation (connect, HELLO, request, reply)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining_time(deadline: float | None) -> float | None:
    """Seconds left until `deadline` as a timeout argument, None for no limit.

    Never negative and never raises: 0.0 once the deadline passed, so the step it is passed to
    raises its own MuxTimeoutError.
    """
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def os_error(path: str, exc: OSError, what: str) -> MuxError:
    """The MuxError an OS error means while talking to the master at `path`."""
    if isinstance(exc, socket.timeout):
        return MuxTimeoutError(f"timed out {what}", path=path)
    if isinstance(exc, FileNotFoundError):
        return MuxConnectError("no master: the control socket does not exist", path=path)
    if isinstance(exc, ConnectionRefusedError):
        return MuxConnectError("stale control socket: no master is listening on it", path=path)
    if exc.errno in (errno.EPIPE, errno.ECONNRESET):
        return MuxConnectError(f"the master hung up while {what}", path=path)
    return MuxConnectError(f"{what}: {exc}", path=path)


def check_path(path: str) -> None:
    """MuxConnectError if `path` is too long for a Unix socket address (107 bytes on Linux, 103
    elsewhere), raised before connecting so the error says why."""
    if len(path.encode()) >= _SUN_PATH_MAX:
        raise MuxConnectError(f"ControlPath is longer than a Unix socket path may be "
                              f"({_SUN_PATH_MAX - 1} bytes)", path=path)


def reply_or_raise(event: mp.MuxEvent, path: str, what: str) -> mp.MuxEvent:
    """`event`, unless it is the master's refusal: then MuxRefusedError."""
    if isinstance(event, mp.RequestFailed):
        raise MuxRefusedError(f"{what} refused: {event.reason}", path=path,
                              permission_denied=event.permission_denied)
    return event


class Inbox:
    """What a control connection received, waiting to be matched to what a caller wants.

    Everything parsed is kept in order until taken, so a message arriving in the
    same read as the reply a caller waits for (an EXIT_MESSAGE right behind
    SESSION_OPENED) is still there for whoever takes over the connection next.
    """

    def __init__(self, path: str, proto: mp.MuxProtocol) -> None:
        self.path = path
        self.proto = proto
        self.backlog: list[mp.MuxEvent] = []

    def feed(self, data: bytes) -> None:
        """Parse bytes read from the control socket (b"" at its end) and keep the messages, in
        order; MuxProtocolError naming the ControlPath if the master sent something malformed."""
        try:
            self.backlog += self.proto.receive_data(data)
        except MuxProtocolError as exc:
            raise MuxProtocolError(exc.reason, path=self.path) from None

    def take(self, match: Callable[[mp.MuxEvent], bool], what: str) -> mp.MuxEvent | None:
        """The first event that matches; MuxConnectError if the master hung up before it."""
        for i, event in enumerate(self.backlog):
            if match(event):
                return self.backlog.pop(i)
            if isinstance(event, mp.MasterClosed):
                raise MuxConnectError(f"the master closed the connection while {what}",
                                      path=self.path)
        return None

    def drain(self) -> list[mp.MuxEvent]:
        """Take every message received so far, in order, leaving the inbox empty (a session's
        reader starts with what arrived behind the reply its opener waited for)."""
        events, self.backlog = self.backlog, []
        return events


class ControlConnection:
    """A connected control socket that has exchanged HELLO with the master.

    Not thread-safe by itself: MuxClient serialises requests with its own lock;
    a session's connection is driven by one thread at a time.
    """

    def __init__(self, path: str, timeout: float | None) -> None:
        self.path = path
        self.proto = mp.MuxProtocol()
        self.inbox = Inbox(path, self.proto)
        deadline = deadline_after(timeout)
        check_path(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                self.sock.settimeout(self._left(deadline, "connecting"))
                self.sock.connect(path)
            except OSError as exc:
                raise self._os_error(exc, "connecting") from None
            self.hello = self._hello(deadline)
        except BaseException:
            self.sock.close()
            raise

    # --- low-level I/O --------------------------------------------------------------
    def _left(self, deadline: float | None, what: str) -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise MuxTimeoutError(f"timed out {what}", path=self.path)
        return left

    def _os_error(self, exc: OSError, what: str) -> MuxError:
        return os_error(self.path, exc, what)

    def flush(self, deadline: float | None) -> None:
        """Send what the protocol queued."""
        data = self.proto.data_to_send()
        if not data:
            return
        try:
            self.sock.settimeout(self._left(deadline, "sending to the master"))
            self.sock.sendall(data)
        except OSError as exc:
            raise self._os_error(exc, "sending a request") from None

    def send_fds(self, fds: Sequence[int], deadline: float | None) -> None:
        """Pass descriptors to the master, one per message, as OpenSSH's client does."""
        try:
            for fd in fds:
                self.sock.settimeout(self._left(deadline, "passing descriptors"))
                socket.send_fds(self.sock, [b"\0"], [fd])
        except OSError as exc:
            raise self._os_error(exc, "passing descriptors") from None

    def wait_for(self, match: Callable[[mp.MuxEvent], bool], deadline: float | None,
                 what: str) -> mp.MuxEvent:
        """Read until an event `match`es; others stay in the inbox."""
        while (event := self.inbox.take(match, what)) is None:
            try:
                self.sock.settimeout(self._left(deadline, what))
                data = self.sock.recv(65536)
            except OSError as exc:
                raise self._os_error(exc, what) from None
            self.inbox.feed(data)
        return event

    def _hello(self, deadline: float | None) -> mp.HelloReceived:
        self.flush(deadline)
        event = self.wait_for(lambda e: isinstance(e, mp.HelloReceived), deadline,
                              "waiting for the master's HELLO")
        assert isinstance(event, mp.HelloReceived)
        log.debug("mux master %s speaks version %d", self.path, event.version)
        return event

    # --- request/reply -------------------------------------------------------------------
    def request(self, rid: int, timeout: float | None, what: str) -> mp.MuxEvent:
        """Send the queued request `rid` and wait for its reply; RequestFailed raises."""
        deadline = deadline_after(timeout)
        self.flush(deadline)
        return self.reply(rid, deadline, what)

    def reply(self, rid: int, deadline: float | None, what: str) -> mp.MuxEvent:
        """Wait for the reply to request `rid`, already sent (after passing descriptors, say).

        Other messages stay in the inbox.  MuxTimeoutError once `deadline` (time.monotonic())
        passes; MuxRefusedError if the master refused; MuxConnectError if it hung up first;
        MuxProtocolError for a malformed message.
        """
        event = self.wait_for(lambda e: getattr(e, "request_id", None) == rid, deadline,
                              f"waiting for the reply to {what}")
        return reply_or_raise(event, self.path, what)

    def close(self) -> None:
        """Close the socket; never raises, may be repeated.  For a session's connection the
        master takes the hang-up as the end of the session and closes its channel."""
        try:
            self.sock.close()
        except OSError:
            pass
