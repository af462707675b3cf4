"""Windows AF_UNIX through Winsock, for ``unix:PATH`` on Windows.

Windows 10 1803+ has stream AF_UNIX sockets, but CPython on Windows does not
expose ``socket.AF_UNIX`` (cpython issue 77589).  Pageant 0.78 ``--unix``,
KeeAgent and wsl-ssh-agent-gui listen on such sockets, and WSL1 processes
reach them on DrvFs paths.  We create and connect the socket with ws2_32 via
ctypes, then hand the SOCKET to `socket.socket(fileno=...)` so that timeouts,
send and recv are CPython's own.  Older Windows (and Wine 8) answer
WSAEAFNOSUPPORT, reported as AgentUnsupportedError.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
from typing import Any

from ..errors import AgentConnectError, AgentUnsupportedError
from .transport import SocketTransport, seconds

__all__ = ["open_winunix", "SOCKADDR_UN"]

AF_UNIX = 1
_UNIX_PATH_MAX = 108
_INVALID_SOCKET = (1 << (8 * ctypes.sizeof(ctypes.c_void_p))) - 1
WSAEAFNOSUPPORT = 10047
WSAECONNREFUSED = 10061
WSAEWOULDBLOCK = 10035
WSAETIMEDOUT = 10060
_ENOENT_CODES = (2, 3, 10061)  # file / path not found, refused (no listener)


class SOCKADDR_UN(ctypes.Structure):
    """Winsock's `sockaddr_un` (afunix.h): family, then a NUL-terminated path of up to 108 bytes."""

    _fields_ = [("sun_family", ctypes.c_ushort), ("sun_path", ctypes.c_char * _UNIX_PATH_MAX)]


_ws2: Any = None


def _winsock() -> Any:
    global _ws2
    if _ws2 is None:
        windll: Any = getattr(ctypes, "WinDLL")  # noqa: B009 - absent on POSIX
        dll = windll("ws2_32", use_last_error=True)
        dll.socket.restype = ctypes.c_size_t
        dll.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        dll.connect.restype = ctypes.c_int
        dll.connect.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int]
        dll.closesocket.restype = ctypes.c_int
        dll.closesocket.argtypes = [ctypes.c_size_t]
        dll.WSAGetLastError.restype = ctypes.c_int
        dll.WSAGetLastError.argtypes = []
        _ws2 = dll
    return _ws2


def open_winunix(path: str, timeout: float | None, endpoint: str) -> SocketTransport:
    """Connect a Winsock AF_UNIX stream socket to `path` (Windows only)."""
    if sys.platform != "win32":
        raise AgentUnsupportedError("Winsock AF_UNIX is a Windows-only channel",
                                    endpoint=endpoint)
    raw = os.fsencode(os.path.abspath(path))
    if len(raw) >= _UNIX_PATH_MAX:
        raise AgentConnectError(f"socket path {path} is longer than Windows' "
                                f"{_UNIX_PATH_MAX - 1}-byte AF_UNIX limit", endpoint=endpoint)
    socket.socket().close()  # makes sure CPython has called WSAStartup
    ws2 = _winsock()
    handle = int(ws2.socket(AF_UNIX, socket.SOCK_STREAM, 0))
    if handle == _INVALID_SOCKET:
        code = int(ws2.WSAGetLastError())
        if code == WSAEAFNOSUPPORT:
            raise AgentUnsupportedError(
                "this Windows has no AF_UNIX sockets (Windows 10 1803 or later is needed; "
                "Wine does not implement them)", endpoint=endpoint)
        raise AgentConnectError(f"cannot create an AF_UNIX socket (WSA error {code})",
                                endpoint=endpoint)
    address = SOCKADDR_UN(AF_UNIX, raw)
    # Windows AF_UNIX connects complete at once (no listener backlog wait), so a
    # blocking connect cannot hang; the timeout then applies to every read/write.
    if ws2.connect(handle, ctypes.byref(address), ctypes.sizeof(address)) != 0:
        code = int(ws2.WSAGetLastError())
        ws2.closesocket(handle)
        if code in _ENOENT_CODES:
            message = f"no agent listening at {path}"
        elif code == WSAETIMEDOUT:
            message = f"timed out after {seconds(timeout)} connecting to {path}"
        else:
            message = f"cannot connect to {path} (WSA error {code})"
        raise AgentConnectError(message, endpoint=endpoint)
    # CPython only needs the family for address conversions we never do.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno=handle)
    sock.settimeout(timeout)
    return SocketTransport(sock, endpoint)
