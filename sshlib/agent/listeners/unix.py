"""``unix:PATH``: serve agent clients on a Unix domain socket (ssh, ssh-add, WSL1).

The socket is created with mode 0600 inside a fresh 0700 directory and then
renamed into place, so no other user can connect during the window between
bind() and chmod(), and the process umask (shared by every thread) is never
touched.  A live socket at PATH is never clobbered; a stale one (nothing
accepts on it) is replaced.  On close the file is removed, but only if it is
still ours.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import struct
import sys
import tempfile

from ...errors import AgentConnectError, AgentUnsupportedError
from . import BACKLOG, PendingClient, SocketListener

__all__ = ["UnixListener", "socket_is_live"]

log = logging.getLogger("sshlib.agent.bridge")

_SUN_PATH_MAX = 104 if sys.platform != "linux" else 108


def socket_is_live(path: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections on the Unix socket at `path`."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        return False
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(path)
    except TimeoutError:
        return True  # a full backlog: it is alive, just busy
    except OSError:
        return False
    finally:
        probe.close()
    return True


class UnixListener(SocketListener):
    """A Unix socket at `path` with permission bits `mode` (default 0600)."""

    def __init__(self, path: str, mode: int = 0o600) -> None:
        endpoint = f"unix:{path}"
        family = getattr(socket, "AF_UNIX", None)
        if family is None:
            raise AgentUnsupportedError(
                "listening on an AF_UNIX socket is not implemented on this platform yet "
                "(Windows AF_UNIX comes with the Windows transports)", endpoint=endpoint)
        path = os.path.abspath(path)
        self.path = path
        if len(os.fsencode(path)) >= _SUN_PATH_MAX:
            raise AgentConnectError(
                f"socket path is {len(os.fsencode(path))} bytes, the limit is "
                f"{_SUN_PATH_MAX - 1}: choose a shorter path", endpoint=endpoint)
        parent = os.path.dirname(path)
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise AgentConnectError(f"cannot create directory {parent}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None
        self._check_existing(path, endpoint)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._identity = self._bind(sock, path, parent, mode, endpoint)
            sock.listen(BACKLOG)
        except BaseException:
            sock.close()
            raise
        super().__init__(sock, endpoint)

    @staticmethod
    def _check_existing(path: str, endpoint: str) -> None:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AgentConnectError(f"cannot check {path}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None
        if not stat.S_ISSOCK(info.st_mode):
            raise AgentConnectError(f"{path} exists and is not a socket; not replacing it",
                                    endpoint=endpoint)
        if socket_is_live(path):
            raise AgentConnectError(f"an agent already listens on {path}; not replacing it "
                                    f"(stop it, or choose another path)", endpoint=endpoint)
        log.info("replacing stale socket %s", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AgentConnectError(f"cannot remove stale socket {path}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None

    @staticmethod
    def _bind(sock: socket.socket, path: str, parent: str, mode: int,
              endpoint: str) -> tuple[int, int]:
        """Bind in a private directory, chmod, rename into place; (st_dev, st_ino)."""
        try:
            private = tempfile.mkdtemp(prefix=".sshlib-", dir=parent)
        except OSError as exc:
            raise AgentConnectError(f"cannot create a socket in {parent}: "
                                    f"{exc.strerror or exc}", endpoint=endpoint) from None
        staging = os.path.join(private, "s")
        try:
            if len(os.fsencode(staging)) >= _SUN_PATH_MAX:
                # The staging path is longer than the target: bind in place instead
                # (the directory's own permissions then guard the short window).
                staging = path
            sock.bind(staging)
            os.chmod(staging, mode)
            if staging != path:
                os.rename(staging, path)
            info = os.lstat(path)
        except OSError as exc:
            raise AgentConnectError(f"cannot listen on {path}: {exc.strerror or exc}",
                                    endpoint=endpoint) from None
        finally:
            try:
                if os.path.lexists(os.path.join(private, "s")):
                    os.unlink(os.path.join(private, "s"))
                os.rmdir(private)
            except OSError:
                pass
        return info.st_dev, info.st_ino

    def make_client(self, conn: socket.socket, address: object) -> PendingClient:
        client = super().make_client(conn, address)
        peercred = getattr(socket, "SO_PEERCRED", None)
        if peercred is not None:  # Linux: who is on the other end, for the log line
            try:
                pid, uid, _gid = struct.unpack("=iII", conn.getsockopt(socket.SOL_SOCKET,
                                                                        peercred, 12))
                client.peer = f"pid {pid} uid {uid}"
            except OSError:
                pass
        return client

    def close(self) -> None:
        if not self._close_socket():
            return
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
