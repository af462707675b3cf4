"""``pipe:NAME``: serve agent clients on a Windows named pipe (stand in for Win32-OpenSSH).

Byte-mode, overlapped, unlimited instances: one instance always waits in
ConnectNamedPipe, and the moment a client takes it the next one is created,
so 300 clients starting at once see at worst a short ERROR_PIPE_BUSY that
their WaitNamedPipe retry absorbs.

The first instance is created with FILE_FLAG_FIRST_PIPE_INSTANCE: if any
process already serves the name (Win32-OpenSSH's ssh-agent service, 1Password,
another bridge) that fails with access denied and we refuse to start, instead
of silently sharing the name and getting half of its clients.

The security descriptor is the current user's (owner = user SID; the DACL
grants the user, SYSTEM and Administrators, as Win32-OpenSSH does for its
per-user objects) so another user's process cannot connect and use the keys,
nor squat on the name's later instances.

`close` from any thread wakes a blocked `accept` (an event it waits on beside
the ConnectNamedPipe I/O, then CancelIoEx).
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading

from ...errors import AgentConnectError, AgentUnsupportedError
from .. import _win32 as w32
from ..transport import Transport
from ..winpipe import PipeTransport, pipe_path
from . import Listener, ListenerClosed, PendingClient

__all__ = ["PipeListener", "pipe_sddl"]

log = logging.getLogger("sshlib.agent.bridge")


def _on_windows() -> bool:
    """A function, not an inline check, so type checkers for POSIX still read the rest."""
    return sys.platform == "win32"

_BUFFER = 65536
#: ConnectNamedPipe says a client came and went before we saw it: reuse the instance.
_ERROR_NO_DATA = w32.ERROR_NO_DATA


def pipe_sddl(user_sid: str) -> str:
    """Owner the user; protected DACL: full access for the user, SYSTEM and Administrators."""
    return f"O:{user_sid}D:P(A;;GA;;;{user_sid})(A;;GA;;;SY)(A;;GA;;;BA)"


class _PipeClient(PendingClient):
    """A connected pipe instance; its transport is the server end of the pipe."""

    def __init__(self, handle: int, endpoint: str, path: str, peer: str) -> None:
        self._handle: int | None = handle
        self._endpoint = endpoint
        self._path = path
        self.peer = peer

    def open(self, timeout: float | None) -> Transport:
        handle, self._handle = self._handle, None
        if handle is None:
            raise AgentConnectError("the client was already dropped", endpoint=self._endpoint)
        return PipeTransport(handle, self._endpoint, self._path)

    def abort(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            w = w32.api()
            w.DisconnectNamedPipe(handle)
            w.CloseHandle(handle)


class PipeListener(Listener):
    """Instances of the named pipe `name` (bare name or ``\\\\.\\pipe\\`` path)."""

    def __init__(self, name: str) -> None:
        path = pipe_path(name)
        prefix = "\\\\.\\pipe\\"
        short = path[len(prefix):] if path.lower().startswith(prefix) else path
        super().__init__(f"pipe:{short}")
        if not _on_windows():
            raise AgentUnsupportedError(
                "a Windows named pipe can only be served from Windows (on WSL2, run the "
                "bridge with Windows Python: python.exe -m sshlib agent bridge ...)",
                endpoint=self.endpoint)
        self.path = path
        self._w = w32.api()
        try:
            self._attributes = w32.SddlSecurityAttributes(
                pipe_sddl(w32.sid_to_string(w32.user_sid())))
        except OSError as exc:
            raise AgentConnectError(f"cannot build the pipe's security descriptor: {exc}",
                                    endpoint=self.endpoint) from None
        self._closing = self._w.CreateEventW(None, True, False, None)
        if not self._closing:
            raise AgentConnectError(str(w32.win_error("CreateEvent")), endpoint=self.endpoint)
        self._lock = threading.Lock()
        self._closed = False
        self._accepting = False
        self._idle = threading.Condition(self._lock)
        try:
            self._refuse_if_served()
            self._pending: int | None = self._create_instance(first=True)
        except BaseException:
            self._w.CloseHandle(self._closing)
            self._attributes.close()
            raise

    def _refuse_if_served(self) -> None:
        """AgentConnectError if some process already serves the name.

        FILE_FLAG_FIRST_PIPE_INSTANCE says so on Windows, but Wine ignores the
        flag; WaitNamedPipe tells without taking an instance from the other
        server: only a name nobody serves fails with ERROR_FILE_NOT_FOUND.
        """
        if self._w.WaitNamedPipeW(self.path, 1) or \
                w32.last_error() != w32.ERROR_FILE_NOT_FOUND:
            raise AgentConnectError(self._taken_message(), endpoint=self.endpoint)

    def _taken_message(self) -> str:
        return (f"another process already serves pipe {self.path} (an ssh-agent service, "
                f"1Password, gpg-agent or another bridge): stop it, or choose another name")

    def _create_instance(self, first: bool = False) -> int:
        w = self._w
        open_mode = w32.PIPE_ACCESS_DUPLEX | w32.FILE_FLAG_OVERLAPPED
        if first:
            open_mode |= w32.FILE_FLAG_FIRST_PIPE_INSTANCE
        handle = w.CreateNamedPipeW(
            self.path, open_mode,
            w32.PIPE_TYPE_BYTE | w32.PIPE_READMODE_BYTE | w32.PIPE_WAIT
            | w32.PIPE_REJECT_REMOTE_CLIENTS,
            w32.PIPE_UNLIMITED_INSTANCES, _BUFFER, _BUFFER, 0, self._attributes.pointer())
        if handle is not None and handle != w32.INVALID_HANDLE_VALUE:
            return int(handle)
        error = w32.last_error()
        if error in (w32.ERROR_ACCESS_DENIED, w32.ERROR_PIPE_BUSY) and first:
            raise AgentConnectError(self._taken_message(), endpoint=self.endpoint)
        raise AgentConnectError(f"cannot create pipe {self.path}: "
                                f"{w32.win_error('', error).strerror}", endpoint=self.endpoint)

    def _peer(self, handle: int) -> str:
        pid = ctypes.c_uint32(0)
        if self._w.GetNamedPipeClientProcessId(handle, ctypes.byref(pid)) and pid.value:
            return f"pid {pid.value}"
        return "local"

    def _connect(self, handle: int) -> bool:
        """Wait for a client on `handle`: True when one is connected, False if closing."""
        w = self._w
        event = w.CreateEventW(None, True, False, None)
        if not event:
            raise AgentConnectError(str(w32.win_error("CreateEvent")), endpoint=self.endpoint)
        try:
            overlapped = w32.OVERLAPPED()
            overlapped.hEvent = event
            if w.ConnectNamedPipe(handle, ctypes.byref(overlapped)):
                return True
            error = w32.last_error()
            if error == w32.ERROR_PIPE_CONNECTED:
                return True
            if error != w32.ERROR_IO_PENDING:
                raise OSError(error, "ConnectNamedPipe")
            handles = (ctypes.c_void_p * 2)(event, self._closing)
            status = w.WaitForMultipleObjects(2, handles, False, w32.INFINITE)
            if status != w32.WAIT_OBJECT_0:
                w.CancelIoEx(handle, ctypes.byref(overlapped))
            moved = ctypes.c_uint32(0)
            ok = w.GetOverlappedResult(handle, ctypes.byref(overlapped), ctypes.byref(moved),
                                       True)
            if ok:
                return True
            error = w32.last_error()
            if error == w32.ERROR_OPERATION_ABORTED or status != w32.WAIT_OBJECT_0:
                return False
            raise OSError(error, "ConnectNamedPipe")
        finally:
            w.CloseHandle(event)

    def accept(self) -> PendingClient:
        w = self._w
        with self._lock:
            if self._closed:
                raise ListenerClosed(self.endpoint)
            self._accepting = True
        try:
            while True:
                handle = self._pending
                if handle is None:  # the last instance could not be created: try again
                    handle = self._pending = self._create_instance()
                try:
                    connected = self._connect(handle)
                except OSError as exc:
                    code = exc.errno
                    if code == _ERROR_NO_DATA:  # the client already left: recycle
                        w.DisconnectNamedPipe(handle)
                        continue
                    raise AgentConnectError(
                        f"waiting for a client failed: {w32.win_error('', code).strerror}",
                        endpoint=self.endpoint) from None
                if not connected or self._closed:
                    raise ListenerClosed(self.endpoint)
                # Put the next instance up before handing this one out, so
                # clients never find the name without a listening instance.
                self._pending = None
                try:
                    self._pending = self._create_instance()
                except AgentConnectError as exc:
                    log.error("%s", exc)
                return _PipeClient(handle, self.endpoint, self.path, self._peer(handle))
        finally:
            with self._lock:
                self._accepting = False
                self._idle.notify_all()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._w.SetEvent(self._closing)
            while self._accepting:
                self._idle.wait(1.0)
            handle, self._pending = self._pending, None
        if handle is not None:
            self._w.CloseHandle(handle)
        self._w.CloseHandle(self._closing)
        self._attributes.close()
