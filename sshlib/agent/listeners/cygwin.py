"""``cygwin:PATH``: act as a Cygwin / MSYS2 (Git for Windows) ssh-agent socket.

Writes ``!<socket >PORT s XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX`` (NUL
terminated, a fresh random secret each start, the system attribute on
Windows) and serves the handshake on 127.0.0.1:PORT: the client's 16 secret
bytes must match (else the connection is closed, as Cygwin does), we echo
them, then both sides swap ``struct ucred`` (int32 pid, uint32 uid, uint32
gid, little-endian).  Like a Cygwin ssh-agent, a POSIX listener drops peers
claiming a uid that is neither 0 nor its own.  The file goes away on close.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import struct

from ...errors import AgentConnectError, AgentError
from ..transport import Deadline, SocketTransport
from . import PendingClient, SocketPendingClient
from ._sockfile import SocketFileListener

__all__ = ["CygwinListener"]

_UCRED = struct.Struct("<iII")


def _own_credentials() -> bytes:
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    uid = getuid() if getuid is not None else 0
    gid = getgid() if getgid is not None else 0
    return _UCRED.pack(os.getpid() & 0x7FFFFFFF, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)


class _CygwinClient(SocketPendingClient):
    def __init__(self, sock: socket.socket, endpoint: str, peer: str, secret: bytes) -> None:
        super().__init__(sock, endpoint, peer)
        self._secret = secret

    def handshake(self, transport: SocketTransport, timeout: float | None) -> None:
        deadline = Deadline(timeout)
        endpoint = self.endpoint
        try:
            got = transport.recv_exact(16, deadline.remaining(endpoint))
            if not hmac.compare_digest(got, self._secret):
                raise AgentConnectError(
                    f"client {self.peer} sent a wrong Cygwin secret ({len(got)} bytes): it did "
                    f"not read our socket file", endpoint=endpoint)
            transport.send_all(self._secret, deadline.remaining(endpoint))
            creds = transport.recv_exact(12, deadline.remaining(endpoint))
            if len(creds) < 12:
                raise AgentConnectError(f"client {self.peer} hung up during the Cygwin "
                                        f"credentials exchange", endpoint=endpoint)
            pid, uid, _gid = _UCRED.unpack(creds)
            getuid = getattr(os, "getuid", None)
            if getuid is not None and uid not in (0, getuid()):
                raise AgentConnectError(f"client {self.peer} (pid {pid}) claims uid {uid}, "
                                        f"neither 0 nor ours", endpoint=endpoint)
            transport.send_all(_own_credentials(), deadline.remaining(endpoint))
        except AgentConnectError:
            raise
        except AgentError as exc:
            raise AgentConnectError(f"Cygwin handshake with {self.peer} failed: {exc.reason}",
                                    endpoint=endpoint) from None
        self.peer = f"{self.peer} (pid {pid})"


class CygwinListener(SocketFileListener):
    """A Cygwin/MSYS2 socket file at `path` and the port it names."""

    kind = "Cygwin socket file"

    def __init__(self, path: str) -> None:
        self._words = tuple(secrets.randbits(32) for _ in range(4))
        self._secret = struct.pack("<4I", *self._words)
        super().__init__(path, "cygwin")

    def file_contents(self) -> bytes:
        secret = "-".join(f"{word:08x}" for word in self._words)
        return f"!<socket >{self.port} s {secret}".encode("ascii") + b"\x00"

    def make_client(self, conn: socket.socket, address: object) -> PendingClient:
        client = super().make_client(conn, address)
        assert isinstance(client, SocketPendingClient)
        return _CygwinClient(client.sock, self.endpoint, client.peer, self._secret)
