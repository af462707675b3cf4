"""ssh_config forwards and jump hosts as the strings connect() hands to the client API.

`forward_requests()` turns LocalForward / RemoteForward / DynamicForward
into (kind, listen, target) triples in the spec syntax of
``client.forward_local/forward_remote/forward_dynamic`` ("port",
"host:port", "[v6]:port", "*:port", "unix:/path").  `jump_hops()` splits
ProxyJump into hops.  Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keywords import Forward, parse_jump_host

__all__ = ["ForwardRequest", "forward_requests", "JumpHop", "jump_hops"]

STREAMLOCAL = -2  # Forward.*_port for a Unix socket path


@dataclass(frozen=True)
class ForwardRequest:
    """One forward to start: kind "local", "remote" or "dynamic"; target None for dynamic."""

    kind: str
    listen: str
    target: str | None
    #: How ssh -G spells it, for messages.
    text: str


def _side(host: str | None, port: int, path: str | None, *, listen: bool) -> str:
    if port == STREAMLOCAL:
        return f"unix:{path}"
    if host is None:
        return str(port)
    if listen and host in ("*", ""):
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _text(fwd: Forward) -> str:
    def part(host: str | None, port: int, path: str | None) -> str:
        if port == STREAMLOCAL:
            return path or ""
        return str(port) if host is None else f"[{host}]:{port}"
    listen = part(fwd.listen_host, fwd.listen_port, fwd.listen_path)
    if fwd.dynamic:
        return listen
    return f"{listen} {part(fwd.connect_host, fwd.connect_port, fwd.connect_path)}"


def forward_requests(local: list[Forward], remote: list[Forward],
                     dynamic: list[Forward]) -> list[ForwardRequest]:
    """The forwards in ssh's order: local and dynamic ones, then remote ones."""
    out: list[ForwardRequest] = []
    for fwd in local:
        out.append(ForwardRequest(
            "local", _side(fwd.listen_host, fwd.listen_port, fwd.listen_path, listen=True),
            _side(fwd.connect_host, fwd.connect_port, fwd.connect_path, listen=False),
            _text(fwd)))
    for fwd in dynamic:
        out.append(ForwardRequest(
            "dynamic", _side(fwd.listen_host, fwd.listen_port, fwd.listen_path, listen=True),
            None, _text(fwd)))
    for fwd in remote:
        target = None if fwd.dynamic else _side(fwd.connect_host, fwd.connect_port,
                                                 fwd.connect_path, listen=False)
        out.append(ForwardRequest(
            "remote", _side(fwd.listen_host, fwd.listen_port, fwd.listen_path, listen=True),
            target, _text(fwd)))
    return out


@dataclass(frozen=True)
class JumpHop:
    """One ProxyJump hop: ``[user@]host[:port]`` (user/port None when not given)."""

    user: str | None
    host: str
    port: int | None

    @property
    def destination(self) -> str:
        """The hop as ssh -J writes it: "user@host", or "host" without a user."""
        return f"{self.user}@{self.host}" if self.user else self.host


def jump_hops(proxy_jump: str) -> list[JumpHop]:
    """ProxyJump's hops, first one first (ValueError if one is malformed)."""
    hops: list[JumpHop] = []
    for text in proxy_jump.split(","):
        parsed = parse_jump_host(text.strip())
        if parsed is None:
            raise ValueError(f"bad ProxyJump hop {text!r}")
        user, host, port = parsed
        hops.append(JumpHop(user, host, port if port > 0 else None))
    return hops
