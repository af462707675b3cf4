"""``assuan:PATH``: act as a libassuan (GnuPG / Gpg4win) socket: ``PORT\\n`` + 16-byte nonce.

A client proves it could read the file by sending the 16 nonce bytes first;
nothing is sent back; the agent stream follows.  A fresh nonce each start,
the file is mode 0600 and removed on close.
"""

from __future__ import annotations

import hmac
import secrets
import socket

from ...errors import AgentConnectError, AgentError
from ..transport import SocketTransport
from . import PendingClient, SocketPendingClient
from ._sockfile import SocketFileListener

__all__ = ["AssuanListener"]


class _AssuanClient(SocketPendingClient):
    def __init__(self, sock: socket.socket, endpoint: str, peer: str, nonce: bytes) -> None:
        super().__init__(sock, endpoint, peer)
        self._nonce = nonce

    def handshake(self, transport: SocketTransport, timeout: float | None) -> None:
        try:
            got = transport.recv_exact(16, timeout)
        except AgentError as exc:
            raise AgentConnectError(f"libassuan handshake with {self.peer} failed: "
                                    f"{exc.reason}", endpoint=self.endpoint) from None
        if not hmac.compare_digest(got, self._nonce):
            raise AgentConnectError(f"client {self.peer} sent a wrong libassuan nonce: it "
                                    f"did not read our socket file", endpoint=self.endpoint)


class AssuanListener(SocketFileListener):
    """A libassuan socket file at `path` and the port it names."""

    kind = "libassuan socket file"

    def __init__(self, path: str) -> None:
        self._nonce = secrets.token_bytes(16)
        super().__init__(path, "assuan")

    def file_contents(self) -> bytes:
        return f"{self.port}\n".encode("ascii") + self._nonce

    def make_client(self, conn: socket.socket, address: object) -> PendingClient:
        client = super().make_client(conn, address)
        assert isinstance(client, SocketPendingClient)
        return _AssuanClient(client.sock, self.endpoint, client.peer, self._nonce)
