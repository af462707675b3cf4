"""``tcp:HOST:PORT``: an agent stream over TCP (WSL2 <-> Windows bridges, socat relays).

Plain TCP carries no authentication: anyone who can reach the port can use
the agent, so only point this at loopback or a trusted link.  The Cygwin and
libassuan socket files are TCP on 127.0.0.1 too; they reuse `connect_tcp`.
"""

from __future__ import annotations

import socket

from ..errors import AgentConnectError
from .transport import SocketTransport, seconds

__all__ = ["connect_tcp", "open_tcp"]


def connect_tcp(host: str, port: int, timeout: float | None, endpoint: str) -> socket.socket:
    """A connected TCP socket with Nagle off, or AgentConnectError naming host and port."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise AgentConnectError(f"timed out after {seconds(timeout)} connecting to {where}",
                                endpoint=endpoint) from None
    except ConnectionRefusedError:
        raise AgentConnectError(f"nothing accepts connections on {where} (agent not running?)",
                                endpoint=endpoint) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise AgentConnectError(f"cannot connect to {where}: {reason}", endpoint=endpoint) \
            from None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # a latency tweak only
    return sock


def open_tcp(host: str, port: int, timeout: float | None, endpoint: str) -> SocketTransport:
    """A raw agent stream over TCP. There is no authentication: use loopback only.

    `timeout` bounds the connect; `AgentConnectError` names the address on failure.
    """
    return SocketTransport(connect_tcp(host, port, timeout, endpoint), endpoint)
