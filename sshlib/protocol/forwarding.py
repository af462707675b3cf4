"""Port and socket forwarding payloads (RFC 4254 section 7, OpenSSH PROTOCOL 2.4-2.5).

Pure encoders and decoders, beside the session request encoders, so both
front-ends build and parse these messages identically.  Decoders raise
`DecodeError` on malformed input (via `wire.Reader`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire import Reader, Writer

DIRECT_TCPIP = "direct-tcpip"
FORWARDED_TCPIP = "forwarded-tcpip"
DIRECT_STREAMLOCAL = "direct-streamlocal@openssh.com"
FORWARDED_STREAMLOCAL = "forwarded-streamlocal@openssh.com"
TCPIP_FORWARD = "tcpip-forward"
CANCEL_TCPIP_FORWARD = "cancel-tcpip-forward"
STREAMLOCAL_FORWARD = "streamlocal-forward@openssh.com"
CANCEL_STREAMLOCAL_FORWARD = "cancel-streamlocal-forward@openssh.com"

_HOST_LIMIT = 1024  # bytes of a host name or socket path we accept from the peer


@dataclass(frozen=True, slots=True)
class ForwardedOpen:
    """What the server says about a connection to a forward we asked for.

    For TCP: `address`/`port` are the listening side as the server reports it,
    `origin` the (host, port) that connected.  For Unix sockets `port` is 0,
    `address` the socket path and `origin` is None.
    """

    address: str
    port: int
    origin: tuple[str, int] | None


def direct_tcpip(host: str, port: int, origin_host: str = "127.0.0.1",
                 origin_port: int = 0) -> bytes:
    """Extra data of a direct-tcpip channel open (connect to host:port from the server)."""
    _check_port(port)
    return (Writer().string(host).uint32(port).string(origin_host).uint32(origin_port)
            .getvalue())


def direct_streamlocal(path: str) -> bytes:
    """Extra data of a direct-streamlocal@openssh.com open (connect to a Unix socket)."""
    return Writer().string(path).string("").uint32(0).getvalue()


def tcpip_forward(address: str, port: int) -> bytes:
    """Payload of tcpip-forward and cancel-tcpip-forward (port 0: the server picks)."""
    _check_port(port)
    return Writer().string(address).uint32(port).getvalue()


def streamlocal_forward(path: str) -> bytes:
    """Payload of streamlocal-forward@openssh.com and its cancel request."""
    return Writer().string(path).getvalue()


def bound_port(reply: bytes, requested: int) -> int:
    """The port in a tcpip-forward reply; the reply carries it only when we asked for 0."""
    if requested != 0:
        return requested
    r = Reader(reply)
    port = r.uint32()
    _check_port(port)
    return port


def parse_forwarded_tcpip(payload: bytes) -> ForwardedOpen:
    r = Reader(payload)
    address = r.text(_HOST_LIMIT)
    port = r.uint32()
    origin_host = r.text(_HOST_LIMIT)
    origin_port = r.uint32()
    r.check_end()
    return ForwardedOpen(address, port, (origin_host, origin_port))


def parse_forwarded_streamlocal(payload: bytes) -> ForwardedOpen:
    r = Reader(payload)
    path = r.text(_HOST_LIMIT)
    if r.remaining:
        r.string()  # reserved
    r.check_end()
    return ForwardedOpen(path, 0, None)


def _check_port(port: int) -> None:
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is out of range")
