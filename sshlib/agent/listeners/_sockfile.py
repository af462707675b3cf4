"""What the Cygwin and libassuan listeners share: a TCP port on 127.0.0.1 advertised
by a small file that carries a secret, written so no other user can read it."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys

from ...errors import AgentConnectError, AgentError
from ..assuan import is_assuan_data, parse_assuan_socket_file
from ..cygwin import CYGWIN_MAGIC, parse_cygwin_socket_file
from . import SocketListener
from .tcp import listen_tcp

__all__ = ["SocketFileListener"]

log = logging.getLogger("sshlib.agent.bridge")

_FILE_ATTRIBUTE_SYSTEM = 0x4
_MAX_FILE = 4096


def _advertised_port(data: bytes) -> int | None:
    """The port a Cygwin or libassuan socket file names, or None if it is neither."""
    try:
        if data.startswith(CYGWIN_MAGIC):
            return parse_cygwin_socket_file(data).port
        if is_assuan_data(data):
            return parse_assuan_socket_file(data).port
    except AgentError:
        return None
    return None


def _port_is_live(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            return True
    except OSError:
        return False


def _set_system_attribute(path: str) -> None:
    """Cygwin ignores a socket file without FILE_ATTRIBUTE_SYSTEM (Windows only)."""
    if sys.platform != "win32":
        return
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    if not kernel32.SetFileAttributesW(ctypes.c_wchar_p(path),
                                       ctypes.c_uint32(_FILE_ATTRIBUTE_SYSTEM)):
        raise OSError(ctypes.get_last_error(), "SetFileAttributesW failed", path)


class SocketFileListener(SocketListener):
    """A loopback TCP listener plus the file at `path` that advertises it."""

    kind = "socket file"

    def __init__(self, path: str, endpoint_prefix: str) -> None:
        path = os.path.abspath(path)
        self.path = path
        endpoint = f"{endpoint_prefix}:{path}"
        self._check_existing(path, endpoint)
        sock = listen_tcp("127.0.0.1", 0, endpoint)
        self.port: int = sock.getsockname()[1]
        super().__init__(sock, endpoint)
        try:
            self._identity = self._write(path, self.file_contents(), endpoint)
        except BaseException:
            self._close_socket()
            raise

    def file_contents(self) -> bytes:
        """The bytes written to the socket file: what a client reads to find the port and secret."""
        raise NotImplementedError

    def _check_existing(self, path: str, endpoint: str) -> None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_FILE)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AgentConnectError(f"cannot check {path}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None
        port = _advertised_port(data)
        if port is None:
            raise AgentConnectError(f"{path} exists and is not a Cygwin or libassuan socket "
                                    f"file; not replacing it", endpoint=endpoint)
        if _port_is_live(port):
            raise AgentConnectError(
                f"{path} names port {port} and something listens there: an agent is "
                f"probably using it (remove the file if not)", endpoint=endpoint)
        log.info("replacing stale %s %s (port %d is closed)", self.kind, path, port)

    @staticmethod
    def _write(path: str, data: bytes, endpoint: str) -> tuple[int, int]:
        """Write `data` to a private temporary file and rename it over `path`."""
        directory = os.path.dirname(path)
        temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            fd = os.open(temp, flags, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            _set_system_attribute(temp)
            os.replace(temp, path)
            info = os.stat(path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise AgentConnectError(f"cannot write socket file {path}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None
        return info.st_dev, info.st_ino

    def close(self) -> None:
        if not self._close_socket():
            return
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
