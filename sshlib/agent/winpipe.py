"""``pipe:NAME`` (or ``\\\\.\\pipe\\NAME``, ``//./pipe/NAME``): a Windows named pipe agent.

Win32-OpenSSH's ssh-agent, 1Password, Bitwarden, gpg-agent >= 2.4 and KeeAgent
serve ``\\\\.\\pipe\\openssh-ssh-agent``; Pageant >= 0.75 serves its own pipe
(see pageant.py).  All use byte-mode pipes carrying the plain agent stream.

The handle is opened for overlapped I/O so that every read and write can be
bounded by a timeout (WaitForMultipleObjects on the I/O's event and a
"closing" event) and so that `close()` from another thread wakes a blocked
`recv` (CancelIoEx).  A busy pipe (all instances taken: ERROR_PIPE_BUSY) is
retried with WaitNamedPipe until the timeout runs out.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import AgentConnectError, AgentError, AgentTimeoutError, AgentUnsupportedError
from . import _win32 as w32
from .transport import MAX_IN_FLIGHT, BaseTransport, Deadline, seconds

__all__ = ["PipeTransport", "open_pipe", "pipe_path", "PipeListeners", "pipe_listeners",
           "process_image"]

log = logging.getLogger("sshlib.agent")

_CHUNK = 65536
#: Longest single WaitNamedPipe wait, so a pipe that vanishes and comes back is retried.
_BUSY_SLICE = 0.5


def pipe_path(name: str) -> str:
    """``\\\\.\\pipe\\NAME`` for a bare pipe name (a full path is returned as is)."""
    if name.startswith(("\\\\", "//")):
        return name.replace("/", "\\")
    return "\\\\.\\pipe\\" + name


def _millis(timeout: float | None) -> int:
    if timeout is None:
        return w32.INFINITE
    return min(int(timeout * 1000 + 0.999), w32.INFINITE - 1)


class PipeTransport(BaseTransport):
    """A connected client end of a named pipe, opened with FILE_FLAG_OVERLAPPED.

    One thread may read while another writes.  `close()` sets an event every
    pending operation also waits on, cancels the I/O, and closes the handle
    only once no operation uses it any more.  A byte-mode pipe is a stream
    (Win32-OpenSSH's agent answers in order), so clients may pipeline.
    """

    max_in_flight = MAX_IN_FLIGHT

    def __init__(self, handle: int, endpoint: str, path: str) -> None:
        super().__init__(endpoint)
        self._w = w32.api()
        self.path = path
        self._handle = handle
        self._closing = self._w.CreateEventW(None, True, False, None)
        if not self._closing:
            error = w32.win_error("CreateEvent")
            self._w.CloseHandle(handle)
            raise AgentConnectError(str(error), endpoint=endpoint)
        self._busy = 0
        self._closed = False
        self._cond = threading.Condition()
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    @property
    def handle(self) -> int:
        """The pipe handle (for owner checks)."""
        return self._handle

    def server_pid(self) -> int | None:
        """The process ID of the pipe server this connection reached (None if unknown)."""
        pid = ctypes.c_uint32(0)
        if not self._w.GetNamedPipeServerProcessId(self._handle, ctypes.byref(pid)):
            return None
        return int(pid.value) or None

    def _enter(self) -> None:
        with self._cond:
            if self._closed:
                raise AgentConnectError("the connection is closed", endpoint=self._endpoint)
            self._busy += 1

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def _io(self, write: bool, buffer: Any, count: int, timeout: float | None) -> int | None:
        """One overlapped ReadFile/WriteFile: bytes moved; None if close() interrupted it.

        0 from a read means end of stream (the server closed its end).
        """
        w = self._w
        event = w.CreateEventW(None, True, False, None)
        if not event:
            raise AgentConnectError(str(w32.win_error("CreateEvent")), endpoint=self._endpoint)
        try:
            overlapped = w32.OVERLAPPED()
            overlapped.hEvent = event
            moved = ctypes.c_uint32(0)
            call = w.WriteFile if write else w.ReadFile
            ok = call(self._handle, buffer, count, None, ctypes.byref(overlapped))
            error = 0 if ok else w32.last_error()
            if not ok and error != w32.ERROR_IO_PENDING:
                return self._failed(write, error)
            handles = (ctypes.c_void_p * 2)(event, self._closing)
            status = w.WaitForMultipleObjects(2, handles, False, _millis(timeout))
            if status != w32.WAIT_OBJECT_0:
                # Timed out or closing: cancel, then wait for the I/O to settle
                # (the kernel still owns `buffer` and `overlapped` until it does).
                w.CancelIoEx(self._handle, ctypes.byref(overlapped))
            if w.GetOverlappedResult(self._handle, ctypes.byref(overlapped), ctypes.byref(moved),
                                     True):
                if moved.value or status == w32.WAIT_OBJECT_0:
                    return moved.value
            else:
                error = w32.last_error()
                if error == w32.ERROR_MORE_DATA:  # a message-mode server: data is valid
                    return moved.value
                if error != w32.ERROR_OPERATION_ABORTED:
                    return self._failed(write, error)
            if status == w32.WAIT_TIMEOUT:
                what = "the agent to read" if write else "the agent"
                raise AgentTimeoutError(f"timed out after {seconds(timeout)} waiting for {what}",
                                        endpoint=self._endpoint)
            if status == w32.WAIT_FAILED:
                raise AgentConnectError(str(w32.win_error("WaitForMultipleObjects")),
                                        endpoint=self._endpoint)
            return None  # closing
        finally:
            w.CloseHandle(event)

    def _failed(self, write: bool, error: int) -> int:
        if error in (w32.ERROR_BROKEN_PIPE, w32.ERROR_PIPE_NOT_CONNECTED, w32.ERROR_NO_DATA):
            if not write:
                return 0
            raise AgentConnectError("the agent closed the pipe", endpoint=self._endpoint)
        what = "writing to" if write else "reading from"
        raise AgentConnectError(f"{what} the pipe failed: {w32.win_error('', error).strerror}",
                                endpoint=self._endpoint)

    def send_all(self, data: bytes, timeout: float | None) -> None:
        deadline = Deadline(timeout)
        with self._write_lock:
            self._enter()
            try:
                view = memoryview(bytes(data))
                while view:
                    piece = bytes(view[:_CHUNK])
                    buffer = ctypes.create_string_buffer(piece, len(piece))
                    moved = self._io(True, buffer, len(piece),
                                     deadline.remaining(self._endpoint, "the agent to read"))
                    if moved is None:
                        raise AgentConnectError("the connection was closed while sending",
                                                endpoint=self._endpoint)
                    view = view[moved:]
            finally:
                self._leave()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        with self._read_lock:
            try:
                self._enter()
            except AgentConnectError:
                return b""
            try:
                size = max(1, min(max_bytes, _CHUNK))
                buffer = ctypes.create_string_buffer(size)
                moved = self._io(False, buffer, size, timeout)
                if not moved:
                    return b""
                return buffer.raw[:moved]
            finally:
                self._leave()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
        w = self._w
        w.SetEvent(self._closing)
        with self._cond:
            while self._busy:
                self._cond.wait(1.0)
        w.CloseHandle(self._handle)
        w.CloseHandle(self._closing)


def _connect_handle(path: str, deadline: Deadline, endpoint: str) -> int:
    """CreateFile on the pipe, waiting out ERROR_PIPE_BUSY within the deadline."""
    w = w32.api()
    flags = w32.FILE_FLAG_OVERLAPPED | w32.SECURITY_SQOS_PRESENT | w32.SECURITY_IDENTIFICATION
    busy_seen = False
    while True:
        handle = w.CreateFileW(path, w32.GENERIC_READ | w32.GENERIC_WRITE, 0, None,
                               w32.OPEN_EXISTING, flags, None)
        if handle is not None and handle != w32.INVALID_HANDLE_VALUE:
            return int(handle)
        error = w32.last_error()
        if error == w32.ERROR_FILE_NOT_FOUND:
            raise AgentConnectError(f"no agent pipe {path} (is the agent running?)",
                                    endpoint=endpoint)
        if error == w32.ERROR_ACCESS_DENIED:
            raise AgentConnectError(f"access to pipe {path} denied", endpoint=endpoint)
        if error != w32.ERROR_PIPE_BUSY:
            raise AgentConnectError(f"cannot open pipe {path}: "
                                    f"{w32.win_error('', error).strerror}", endpoint=endpoint)
        busy_seen = True
        log.debug("agent %s: every instance of %s is busy; waiting", endpoint, path)
        left = deadline.left()
        if left is not None and left <= 0:
            break
        wait = _BUSY_SLICE if left is None else min(left, _BUSY_SLICE)
        started = time.monotonic()
        if not w.WaitNamedPipeW(path, max(1, int(wait * 1000))):
            # Not free yet (ERROR_SEM_TIMEOUT), or the pipe vanished between
            # calls; CreateFile above tells which.  Never spin.
            if time.monotonic() - started < 0.005:
                time.sleep(0.01)
    assert busy_seen
    raise AgentTimeoutError(f"timed out after {seconds(deadline.timeout)}: every instance of "
                            f"pipe {path} stayed busy", endpoint=endpoint)


def open_pipe(name: str, timeout: float | None, endpoint: str) -> PipeTransport:
    """Connect to the named pipe `name` (bare name or full ``\\\\.\\pipe\\`` path)."""
    if sys.platform != "win32":
        raise AgentUnsupportedError(
            "Windows named pipes can only be opened from Windows (from WSL2 use an exec: "
            "relay such as npiperelay.exe)", endpoint=endpoint)
    path = pipe_path(name)
    handle = _connect_handle(path, Deadline(timeout), endpoint)
    log.debug("agent %s: connected to %s", endpoint, path)
    return PipeTransport(handle, endpoint, path)


def process_image(pid: int) -> str | None:
    """The executable path of process `pid` (None if it cannot be queried)."""
    w = w32.api()
    process = w.OpenProcess(w32.PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not process:
        return None
    try:
        size = ctypes.c_uint32(1024)
        buffer = ctypes.create_unicode_buffer(size.value)
        if not w.QueryFullProcessImageNameW(process, 0, buffer, ctypes.byref(size)):
            return None
        return buffer.value
    finally:
        w.CloseHandle(process)


@dataclass
class PipeListeners:
    """What `pipe_listeners` saw: the server process of each connection it could open."""

    path: str
    #: Server PID per connection opened (None where Windows would not say), in order.
    pids: list[int | None] = field(default_factory=list)
    #: Executable path per PID, where it could be read.
    images: dict[int, str] = field(default_factory=dict)

    @property
    def distinct(self) -> list[int]:
        """The different server processes seen, first seen first."""
        return list(dict.fromkeys(pid for pid in self.pids if pid is not None))

    def describe(self, pid: int | None) -> str:
        """``PID 1234 (C:\\...\\agent.exe)`` for messages (the path where it could be read)."""
        if pid is None:
            return "an unknown process"
        image = self.images.get(pid)
        return f"PID {pid} ({image})" if image else f"PID {pid}"


def pipe_listeners(name: str, timeout: float | None, endpoint: str,
                   connections: int = 6) -> tuple[PipeListeners, PipeTransport]:
    """Open up to `connections` connections to pipe `name` at once and ask each which
    process serves it: more than one PID means several programs claim the name (only
    the instances free at that moment can be seen).  Returns the findings and the first
    connection, still open (the caller uses it, so it knows which process answered);
    the others are closed.  AgentError as `open_pipe` if the first cannot be opened.
    """
    first = open_pipe(name, timeout, endpoint)
    seen = PipeListeners(first.path, [first.server_pid()])
    extra: list[PipeTransport] = []
    try:
        for _ in range(connections - 1):
            try:  # a busy pipe is no finding: do not wait for it
                extra.append(open_pipe(name, 0.05, endpoint))
            except AgentError:
                break
            seen.pids.append(extra[-1].server_pid())
    finally:
        for transport in extra:
            transport.close()
    for pid in seen.distinct:
        image = process_image(pid)
        if image:
            seen.images[pid] = image
    return seen, first
