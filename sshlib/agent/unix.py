"""``unix:PATH`` (or a bare POSIX path): the agent's Unix domain socket.

This is how OpenSSH's ssh-agent, PuTTY's Unix Pageant, gpg-agent and
every POSIX agent listen.  CPython on Windows has no AF_UNIX, so there
the socket is made through Winsock (winunix.py).
"""

from __future__ import annotations

import os
import socket
import sys

from ..errors import AgentConnectError, AgentUnsupportedError
from .transport import SocketTransport, seconds

__all__ = ["open_unix"]

# sun_path is 108 bytes on Linux (104 on the BSDs and macOS), NUL included.
_SUN_PATH_MAX = 104 if sys.platform != "linux" else 108


def _connect(sock: socket.socket, path: str) -> None:
    raw = os.fsencode(path)
    if len(raw) < _SUN_PATH_MAX or sys.platform != "linux":
        sock.connect(path)
        return
    # Too long for sun_path: name the socket relative to an O_PATH handle on
    # its directory, through /proc (Linux only; no chdir, so thread-safe).
    directory, name = os.path.split(raw)
    dirfd = os.open(directory or b".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(b"/proc/self/fd/%d/%s" % (dirfd, name))
    finally:
        os.close(dirfd)


def open_unix(path: str, timeout: float | None, endpoint: str) -> SocketTransport:
    """Connects to an agent's Unix socket at `path` within `timeout` seconds.

    Paths longer than `sun_path` work on Linux (through `/proc/self/fd`). On Windows
    it uses Winsock's AF_UNIX. Raises `AgentConnectError` saying whether the socket
    is missing, stale (nothing listens) or timed out, and `AgentUnsupportedError`
    where the platform has no AF_UNIX.
    """
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        if sys.platform == "win32":
            from .winunix import open_winunix

            return open_winunix(path, timeout, endpoint)
        raise AgentUnsupportedError("this Python has no AF_UNIX sockets", endpoint=endpoint)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        _connect(sock, path)
    except OSError as exc:
        sock.close()
        if isinstance(exc, FileNotFoundError):
            message = f"no agent socket at {path}"
        elif isinstance(exc, ConnectionRefusedError):
            message = f"nothing listens on {path} (stale socket of an agent that exited?)"
        elif isinstance(exc, TimeoutError):
            message = f"timed out after {seconds(timeout)} connecting to {path}"
        else:
            message = f"cannot connect to {path}: {exc.strerror or exc}"
        raise AgentConnectError(message, endpoint=endpoint) from None
    return SocketTransport(sock, endpoint)
