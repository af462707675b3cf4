"""``tcp:HOST:PORT``: serve agent clients over TCP (socat, WSL2 -> Windows setups).

Plain TCP authenticates nobody: anyone who reaches the port can use every
key in the agent.  So only loopback addresses are accepted unless the caller
forces it (``--allow-remote``).  Port 0 picks a free port; `endpoint` then
names the real one.  The Cygwin and libassuan listeners build on
`listen_tcp` and add their handshake.
"""

from __future__ import annotations

import ipaddress
import socket

from ...errors import AgentConnectError
from . import BACKLOG, PendingClient, SocketListener

__all__ = ["TcpListener", "listen_tcp", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or "localhost")."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_tcp(host: str, port: int, endpoint: str) -> socket.socket:
    """A TCP socket listening on host:port (Nagle off for accepted connections)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise AgentConnectError(f"cannot resolve {host}: {exc.strerror or exc}",
                                endpoint=endpoint) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):  # Windows: no port stealing
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise AgentConnectError(f"cannot listen on {_where(host, port)}: {exc.strerror or exc}",
                                endpoint=endpoint) from None
    return sock


class TcpListener(SocketListener):
    """Plain TCP; `allow_remote` is needed for an address that is not loopback."""

    def __init__(self, host: str, port: int, *, allow_remote: bool = False) -> None:
        requested = f"tcp:{_where(host, port)}"
        if not allow_remote and not is_loopback(host):
            raise AgentConnectError(
                f"{host} is not a loopback address: anyone who can reach it could use your "
                f"keys (pass --allow-remote to do it anyway)", endpoint=requested)
        sock = listen_tcp(host, port, requested)
        bound_port: int = sock.getsockname()[1]
        self.host = host
        self.port = bound_port
        super().__init__(sock, f"tcp:{_where(host, bound_port)}")

    def make_client(self, conn: socket.socket, address: object) -> PendingClient:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().make_client(conn, address)
