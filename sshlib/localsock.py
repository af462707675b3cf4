"""Local sockets of the port forwarders, the same for both front-ends.

`bind_local` makes the listening socket of forward_local / forward_dynamic
(the asyncio front-end hands it to asyncio.start_server), so both front-ends
follow the same bind rules (sshlib.forwardspec) and report the same address.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

from .errors import ForwardingError
from .forwardspec import WILDCARD, Endpoint

__all__ = ["bind_local", "local_address", "unix_socket", "ForwarderBase", "ForwarderSet"]


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


class ForwarderBase:
    """What the forwarders of both front-ends share: name, address, closed, close callbacks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._closed = False
        self._on_close: list[Callable[[ForwarderBase], None]] = []

    @property
    def address(self) -> object:
        """Where this forwarder listens: (host, port) for TCP, the path for a Unix socket."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """True once close() has begun."""
        return self._closed

    @property
    def active(self) -> int:
        """Forwarded connections open right now."""
        raise NotImplementedError

    def add_close_callback(self, callback: Callable[[ForwarderBase], None]) -> None:
        """Call `callback(self)` once, when the forwarder closes (the Client forgets it)."""
        self._on_close.append(callback)

    def _closed_now(self) -> None:
        """Run the close callbacks (end of a subclass's close())."""
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                logging.getLogger("sshlib.forward").exception("close callback failed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.active} connections"
        return f"<{type(self).__module__}.{type(self).__name__} {self.name} ({state})>"


class ForwarderSet:
    """The forwarders one Client made: each leaves the set when it closes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: set[ForwarderBase] = set()

    def add(self, forwarder: ForwarderBase) -> None:
        """Keep `forwarder` until it closes (thread-safe)."""
        with self._lock:
            self._members.add(forwarder)
        forwarder.add_close_callback(self._discard)

    def _discard(self, forwarder: ForwarderBase) -> None:
        with self._lock:
            self._members.discard(forwarder)

    def snapshot(self) -> list[ForwarderBase]:
        """The open forwarders right now (close them outside the lock)."""
        with self._lock:
            return list(self._members)
