"""Local sockets of the port forwarders, the same for both front-ends.

`bind_local` makes the listening socket of forward_local / forward_dynamic
(the asyncio front-end hands it to asyncio.start_server), so both front-ends
follow the same bind rules (sshlib.forwardspec) and report the same address.
"""

from __future__ import annotations

import socket

from .errors import ForwardingError
from .forwardspec import WILDCARD, Endpoint

__all__ = ["bind_local", "local_address", "unix_socket"]


def unix_socket() -> socket.socket:
    """A new AF_UNIX stream socket; ForwardingError where the platform has none."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        raise ForwardingError("Unix sockets are not available on this platform")
    return socket.socket(family, socket.SOCK_STREAM)


def bind_local(endpoint: Endpoint, backlog: int = 128) -> socket.socket:
    """A listening socket for `endpoint`; ForwardingError if it cannot be bound.

    A Unix socket path that already exists is an error, as in OpenSSH
    (without StreamLocalBindUnlink); the forwarder removes it when it closes.
    """
    try:
        if endpoint.is_unix:
            sock = unix_socket()
            try:
                sock.bind(endpoint.path)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            return sock
        if endpoint.host == WILDCARD and socket.has_dualstack_ipv6():
            server: socket.socket = socket.create_server(
                ("", endpoint.port), family=socket.AF_INET6, backlog=backlog,
                dualstack_ipv6=True)
            return server
        host = endpoint.host or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, endpoint.port), family=family, backlog=backlog)
    except OSError as exc:
        raise ForwardingError(f"cannot listen on {endpoint}: {exc}") from exc


def local_address(sock: socket.socket, endpoint: Endpoint) -> object:
    """What a forwarder reports as its address: (host, port) or the Unix path."""
    if endpoint.is_unix:
        return endpoint.path
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))
