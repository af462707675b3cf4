"""Listeners: the serving side of each agent channel, for `sshlib.agent.bridge`.

A listener owns one listening endpoint (a Unix socket, a Cygwin socket file
and its TCP port, ...).  Its `accept` blocks for the next connection and
returns a `PendingClient` at once; the channel's handshake (a Cygwin secret,
a libassuan nonce) runs later in that client's own thread via
`PendingClient.open`, so a slow or hostile peer never stalls the accept loop.

One module per channel: ``unix``, ``tcp``, ``cygwin``, ``assuan``, ``vsock``,
and on Windows ``winpipe`` (``pipe:``), ``pageant_window`` (``pageant-window``)
and ``winunix`` (``unix:`` through Winsock AF_UNIX, for WSL1).
"""

from __future__ import annotations

import abc
import dataclasses
import re
import socket
import sys

from ...errors import AgentConnectError, AgentError, AgentUnsupportedError
from ..discover import Endpoint, parse_endpoint
from ..transport import SocketTransport, Transport

__all__ = [
    "Listener",
    "PendingClient",
    "SocketPendingClient",
    "ListenerClosed",
    "parse_listen_endpoint",
    "open_listener",
    "VMADDR_CID_ANY",
]

#: Listen on every vsock CID (``vsock:any:PORT``).
VMADDR_CID_ANY = 0xFFFFFFFF

#: Connections the kernel queues while every accept thread is busy; 300
#: clients starting at once must not be refused.
BACKLOG = 1024


class ListenerClosed(Exception):
    """`Listener.accept` was interrupted by `close`: the accept loop should end."""


class PendingClient(abc.ABC):
    """An accepted connection whose channel handshake has not run yet."""

    #: Who connected, for log lines ("pid 123", "127.0.0.1:5555", ...).
    peer: str = "?"

    @abc.abstractmethod
    def open(self, timeout: float | None) -> Transport:
        """Run the handshake and return the agent stream; AgentError if the peer fails it."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Drop the connection without a handshake (bridge full, shutting down)."""


class SocketPendingClient(PendingClient):
    """A connected socket; subclasses override `handshake` for channels that have one."""

    def __init__(self, sock: socket.socket, endpoint: str, peer: str) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.peer = peer

    def handshake(self, transport: SocketTransport, timeout: float | None) -> None:
        """Nothing to prove on a plain socket."""

    def open(self, timeout: float | None) -> Transport:
        transport = SocketTransport(self.sock, self.endpoint)
        try:
            self.handshake(transport, timeout)
        except BaseException:
            transport.close()
            raise
        return transport

    def abort(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Listener(abc.ABC):
    """A listening endpoint.  `close` may be called from any thread and wakes `accept`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    @abc.abstractmethod
    def accept(self) -> PendingClient:
        """The next connection; ListenerClosed once `close` was called."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and remove whatever file advertises this endpoint (idempotent)."""

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.endpoint}>"


class SocketListener(Listener):
    """A listening socket; `make_client` wraps each accepted connection."""

    def __init__(self, sock: socket.socket, endpoint: str) -> None:
        super().__init__(endpoint)
        self.sock = sock
        self._closed = False

    def make_client(self, conn: socket.socket, address: object) -> PendingClient:
        """Wraps one accepted connection; listeners with a handshake (Cygwin, assuan) override it.

        Called on the accepting thread, so it must not block: the handshake itself runs
        later on the client's own thread.
        """
        return SocketPendingClient(conn, self.endpoint, _peer_name(address))

    def accept(self) -> PendingClient:
        while True:
            if self._closed:
                raise ListenerClosed(self.endpoint)
            try:
                conn, address = self.sock.accept()
            except OSError as exc:
                if self._closed:
                    raise ListenerClosed(self.endpoint) from None
                if isinstance(exc, (ConnectionAbortedError, InterruptedError)):
                    continue  # the peer gave up while queued: not our problem
                raise AgentConnectError(f"accept failed: {exc.strerror or exc}",
                                        endpoint=self.endpoint) from None
            conn.settimeout(None)
            return self.make_client(conn, address)

    def _close_socket(self) -> bool:
        """Close the socket once; True the first time (subclasses then clean up)."""
        if self._closed:
            return False
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
        except OSError:
            pass
        self.sock.close()
        return True

    def close(self) -> None:
        self._close_socket()


def _peer_name(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "local"


_ZERO_PORT_RE = re.compile(r"^(?P<head>(?:tcp|vsock):.*):0$", re.IGNORECASE)
_VSOCK_ANY_RE = re.compile(r"^vsock:any:", re.IGNORECASE)


def parse_listen_endpoint(text: str) -> Endpoint:
    """Parse a ``--listen`` endpoint: like `parse_endpoint`, plus port 0 (pick a free
    one) for tcp/vsock and ``vsock:any:PORT``."""
    probe = text
    if _VSOCK_ANY_RE.match(probe):
        probe = f"vsock:{VMADDR_CID_ANY}:" + probe[len("vsock:any:"):]
    zero = _ZERO_PORT_RE.match(probe)
    if zero:
        probe = zero["head"] + ":1"
    endpoint = parse_endpoint(probe)
    if zero:
        endpoint = dataclasses.replace(endpoint, port=0)
    return endpoint


def open_listener(text: str | Endpoint, *, allow_remote: bool = False,
                  mode: int = 0o600, request_timeout: float | None = 120.0,
                  max_message: int | None = None) -> Listener:
    """Start listening on `text` (``unix:PATH``, ``tcp:HOST:PORT``, ``cygwin:PATH``,
    ``assuan:PATH``, ``vsock:CID:PORT``; on Windows also ``pipe:NAME`` and
    ``pageant-window``).

    `allow_remote` permits a TCP address that is not loopback; `mode` is the
    Unix socket's permission bits; `request_timeout` bounds how long the
    Pageant window waits for a reply (its message loop must stay responsive)
    and `max_message` the request size it accepts.  AgentError says why it
    cannot listen.
    """
    endpoint = text if isinstance(text, Endpoint) else parse_listen_endpoint(text)
    kind = endpoint.kind
    if kind == "pipe":
        from .winpipe import PipeListener

        return PipeListener(endpoint.address)
    if kind == "pageant-window":
        from ..protocol import DEFAULT_MAX_MESSAGE
        from .pageant_window import PageantWindowListener

        return PageantWindowListener(request_timeout,
                                     max_message if max_message else DEFAULT_MAX_MESSAGE)
    if kind in ("unix", "auto") and sys.platform == "win32":
        from .winunix import WinUnixListener

        return WinUnixListener(endpoint.address)
    if kind in ("unix", "auto"):
        from .unix import UnixListener

        return UnixListener(endpoint.address, mode=mode)
    if kind == "tcp":
        from .tcp import TcpListener

        return TcpListener(endpoint.address, endpoint.port, allow_remote=allow_remote)
    if kind == "cygwin":
        from .cygwin import CygwinListener

        return CygwinListener(endpoint.address)
    if kind == "assuan":
        from .assuan import AssuanListener

        return AssuanListener(endpoint.address)
    if kind == "vsock":
        from .vsock import VsockListener

        return VsockListener(endpoint.cid, endpoint.port)
    if kind in ("pageant", "pageant-pipe"):
        raise AgentUnsupportedError(
            "cannot listen as Pageant's own pipe (its name is Pageant's to serve); listen on "
            "pageant-window for PuTTY-family clients, or pipe:openssh-ssh-agent",
            endpoint=str(endpoint))
    raise AgentError(f"cannot listen on a {kind}: endpoint (listen on unix:, tcp:, cygwin:, "
                     f"assuan:, vsock:, pipe: or pageant-window)", endpoint=str(endpoint))
