"""Forwarding address specs ("127.0.0.1:8080", "[::1]:80", "8080", "unix:/path"), no I/O.

The strings `forward_local`, `forward_remote` and `forward_dynamic` take, with
the bind-address rules of OpenSSH's -L, -R and -D:

- a bare port ("8080", or the int 8080) listens on the loopback interface:
  locally 127.0.0.1; for a remote forward the server is asked for "localhost"
  (what `ssh -R 8080:...` sends), which sshd binds on its loopback addresses;
- "*:8080" or ":8080" listens on every interface (for a remote forward the
  server honours that only with `GatewayPorts clientspecified` or `yes`);
- "localhost:8080" is the loopback interface, like a bare port;
- "host:port" and "[v6]:port" listen on (or connect to) that address;
- "unix:/path" is a Unix-domain socket (OpenSSH's -L/-R socket forms).

A listening port may be 0 (the system picks one; the forwarder's `address`
says which).  A target needs an explicit port from 1 to 65535.  A malformed
spec raises ValueError naming the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Endpoint", "Spec", "parse_listen", "parse_target", "dial_args", "WILDCARD"]

#: The host of an Endpoint that listens on every interface.
WILDCARD = ""
_LOOPBACK = "127.0.0.1"
_UNIX = "unix:"

#: A forwarding spec: "8080", "host:port", "[v6]:port", "unix:/path" or (host, port).
Spec = str | int | tuple[str, int]


@dataclass(frozen=True)
class Endpoint:
    """Where to listen or connect: a TCP (host, port) or a Unix socket path."""

    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_unix(self) -> bool:
        """True for a Unix socket path ("unix:/path"), False for host and port."""
        return self.kind == "unix"

    def __str__(self) -> str:
        if self.is_unix:
            return f"unix:{self.path}"
        host = self.host or "*"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def _port(text: str, spec: object, lowest: int) -> int:
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ValueError(f"bad port {text!r} in forwarding spec {spec!r} "
                         f"(expected {lowest}-65535)")
    return int(text)


def _split(spec: str) -> tuple[str | None, str]:
    """'host:port' / '[v6]:port' / 'port' -> (host or None, port text)."""
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":") or not host:
            raise ValueError(f"bad forwarding spec {spec!r} (expected [address]:port)")
        return host, rest[1:]
    host, sep, port = spec.rpartition(":")
    if not sep:
        return None, spec
    if ":" in host:
        raise ValueError(f"bad forwarding spec {spec!r}: put an IPv6 address in brackets, "
                         "as in [::1]:8080")
    return host, port


def _unix(spec: str) -> Endpoint:
    path = spec[len(_UNIX):]
    if not path or "\0" in path:
        raise ValueError(f"bad Unix socket spec {spec!r} (expected unix:/path)")
    return Endpoint("unix", path=path)


def parse_listen(spec: Spec, *, remote: bool = False) -> Endpoint:
    """A listening spec -> Endpoint; `remote` for the server side of forward_remote.

    The host of the result is WILDCARD ("") for every interface; for a bare
    port it is "127.0.0.1" locally and "localhost" remotely (OpenSSH's rules).
    """
    if isinstance(spec, tuple):
        return Endpoint("tcp", spec[0], _port(str(spec[1]), spec, 0))
    if isinstance(spec, int):
        spec = str(spec)
    if spec.startswith(_UNIX):
        return _unix(spec)
    given, port_text = _split(spec)
    port = _port(port_text, spec, 0)
    if given is None or given == "localhost":
        host = "localhost" if remote else _LOOPBACK
    else:
        host = WILDCARD if given == "*" else given
    return Endpoint("tcp", host, port)


def parse_target(spec: Spec) -> Endpoint:
    """A target spec ("host:port", "[v6]:port", "unix:/path") -> Endpoint."""
    if isinstance(spec, tuple):
        return Endpoint("tcp", spec[0], _port(str(spec[1]), spec, 1))
    if isinstance(spec, int):
        raise ValueError(f"forwarding target {spec!r} needs a host (host:port)")
    if spec.startswith(_UNIX):
        return _unix(spec)
    given, port_text = _split(spec)
    if not given or given == "*":
        raise ValueError(f"forwarding target {spec!r} needs a host (host:port)")
    return Endpoint("tcp", given, _port(port_text, spec, 1))


def dial_args(endpoint: Endpoint) -> tuple[str, str]:
    """(network, address) for Client.dial / Client.listen: ("unix", path) or ("tcp", "h:p").

    The wildcard host becomes an empty host (":8080"), which a server reads as
    "every interface" in a tcpip-forward request.
    """
    if endpoint.is_unix:
        return "unix", endpoint.path
    host = endpoint.host
    return "tcp", f"[{host}]:{endpoint.port}" if ":" in host else f"{host}:{endpoint.port}"
