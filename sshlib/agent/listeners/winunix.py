"""``unix:PATH`` on Windows: a Winsock AF_UNIX socket, for WSL1 and native AF_UNIX clients.

Windows 10 1803+ has stream AF_UNIX sockets; WSL1 processes connect to them
on DrvFs paths (``/mnt/c/...``), which makes this the WSL1 bridge:
``python.exe -m sshlib agent bridge --listen unix:C:\\Users\\me\\.ssh\\agent.sock
--to pageant`` and ``SSH_AUTH_SOCK=/mnt/c/Users/me/.ssh/agent.sock`` in WSL1.
CPython on Windows has no ``socket.AF_UNIX`` (cpython issue 77589), so the
socket is created, bound, listened on and accepted with ws2_32 through ctypes;
each accepted SOCKET is handed to `socket.socket(fileno=...)`.

Windows AF_UNIX socket files carry no Unix permission bits: access follows
the file's (inherited) ACL, so put it in a folder only you can read, such as
your profile.  A live socket is never replaced; a stale file is.  Wine has no
AF_UNIX in Winsock (WSAEAFNOSUPPORT): there this raises AgentUnsupportedError,
which is all the project's Wine tests can show.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import sys
import threading
from typing import Any

from ...errors import AgentConnectError, AgentUnsupportedError
from ..winunix import AF_UNIX, SOCKADDR_UN, WSAEAFNOSUPPORT, open_winunix
from . import BACKLOG, Listener, ListenerClosed, PendingClient, SocketPendingClient

__all__ = ["WinUnixListener"]

log = logging.getLogger("sshlib.agent.bridge")


def _on_windows() -> bool:
    """A function, not an inline check, so type checkers for POSIX still read the rest."""
    return sys.platform == "win32"

_INVALID_SOCKET = (1 << (8 * ctypes.sizeof(ctypes.c_void_p))) - 1
_UNIX_PATH_MAX = 108


def _ws2() -> Any:
    windll: Any = getattr(ctypes, "WinDLL")  # noqa: B009 - absent on POSIX
    dll = windll("ws2_32", use_last_error=True)
    for name, restype, argtypes in (
            ("socket", ctypes.c_size_t, [ctypes.c_int, ctypes.c_int, ctypes.c_int]),
            ("bind", ctypes.c_int, [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]),
            ("listen", ctypes.c_int, [ctypes.c_size_t, ctypes.c_int]),
            ("accept", ctypes.c_size_t, [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]),
            ("closesocket", ctypes.c_int, [ctypes.c_size_t]),
            ("WSAGetLastError", ctypes.c_int, [])):
        function = getattr(dll, name)
        function.restype = restype
        function.argtypes = argtypes
    return dll


class WinUnixListener(Listener):
    """A Winsock AF_UNIX listening socket at `path` (Windows only)."""

    def __init__(self, path: str) -> None:
        path = os.path.abspath(path)
        super().__init__(f"unix:{path}")
        if not _on_windows():
            raise AgentUnsupportedError("Winsock AF_UNIX is a Windows-only channel",
                                        endpoint=self.endpoint)
        self.path = path
        raw = os.fsencode(path)
        if len(raw) >= _UNIX_PATH_MAX:
            raise AgentConnectError(f"socket path {path} is longer than Windows' "
                                    f"{_UNIX_PATH_MAX - 1}-byte AF_UNIX limit",
                                    endpoint=self.endpoint)
        socket.socket().close()  # makes sure CPython has called WSAStartup
        self._ws2 = _ws2()
        handle = int(self._ws2.socket(AF_UNIX, socket.SOCK_STREAM, 0))
        if handle == _INVALID_SOCKET:
            code = int(self._ws2.WSAGetLastError())
            if code == WSAEAFNOSUPPORT:
                raise AgentUnsupportedError(
                    "this Windows has no AF_UNIX sockets to listen on (Windows 10 1803 or "
                    "later is needed; Wine does not implement them)", endpoint=self.endpoint)
            raise AgentConnectError(f"cannot create an AF_UNIX socket (WSA error {code})",
                                    endpoint=self.endpoint)
        self._handle = handle
        self._closed = False
        self._lock = threading.Lock()
        try:
            self._replace_stale(path)
            address = SOCKADDR_UN(AF_UNIX, raw)
            if self._ws2.bind(handle, ctypes.byref(address), ctypes.sizeof(address)) != 0:
                raise AgentConnectError(f"cannot bind {path} (WSA error "
                                        f"{self._ws2.WSAGetLastError()})", endpoint=self.endpoint)
            if self._ws2.listen(handle, BACKLOG) != 0:
                raise AgentConnectError(f"cannot listen on {path} (WSA error "
                                        f"{self._ws2.WSAGetLastError()})", endpoint=self.endpoint)
            self._identity = os.lstat(path).st_ino
        except BaseException:
            self._ws2.closesocket(handle)
            raise

    def _replace_stale(self, path: str) -> None:
        if not os.path.lexists(path):
            return
        try:
            open_winunix(path, 2.0, self.endpoint).close()
        except AgentConnectError:
            log.info("replacing stale socket %s", path)
            try:
                os.unlink(path)
            except OSError as exc:
                raise AgentConnectError(f"cannot remove stale socket {path}: "
                                        f"{exc.strerror or exc}", endpoint=self.endpoint) from None
            return
        raise AgentConnectError(f"an agent already listens on {path}; not replacing it",
                                endpoint=self.endpoint)

    def accept(self) -> PendingClient:
        while True:
            if self._closed:
                raise ListenerClosed(self.endpoint)
            conn = int(self._ws2.accept(self._handle, None, None))
            if conn == _INVALID_SOCKET:
                if self._closed:
                    raise ListenerClosed(self.endpoint)
                raise AgentConnectError(f"accept failed (WSA error "
                                        f"{self._ws2.WSAGetLastError()})", endpoint=self.endpoint)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=conn)
            sock.settimeout(None)
            return SocketPendingClient(sock, self.endpoint, "local")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._ws2.closesocket(self._handle)  # wakes a thread blocked in accept()
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._identity:
                os.unlink(self.path)
