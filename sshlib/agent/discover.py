"""Endpoint strings: parsing them, opening them, and finding the agent when none is given.

An endpoint string names where an agent is; the forms are listed in
docs/agent.md.  Each kind maps to one opener function in `_OPENERS`, one
module per transport, so a new channel is one module plus one table entry.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import AgentConnectError, AgentError
from . import protocol as p
from .assuan import is_assuan_data, open_assuan, open_assuan_data
from .client import DEFAULT_TIMEOUT, AgentClient
from .cygwin import CYGWIN_MAGIC, open_cygwin, open_cygwin_data, read_socket_file, windows_path
from .pageant import open_pageant, open_pageant_pipe, open_pageant_window
from .paths import AgentDirSocket, agent_home_sockets, agent_homes
from .relay import open_relay
from .tcp import open_tcp
from .transport import Transport
from .unix import open_unix
from .vsock import open_vsock
from .winpipe import open_pipe

__all__ = [
    "Endpoint",
    "parse_endpoint",
    "open_stream",
    "connect",
    "default_endpoints",
    "discovery_order",
    "OPENSSH_PIPE",
]

log = logging.getLogger("sshlib.agent")

#: Win32-OpenSSH's agent pipe (also served by 1Password, Bitwarden, gpg-agent >= 2.4).
OPENSSH_PIPE = "openssh-ssh-agent"

_PREFIXES = ("unix", "pipe", "tcp", "vsock", "exec", "cygwin", "msys", "assuan")
_KEYWORDS = ("pageant", "pageant-pipe", "pageant-window")
_PIPE_RE = re.compile(r"^(?:\\\\|//)\.(?:\\|/)pipe(?:\\|/)(?P<name>.+)$", re.IGNORECASE)
_PREFIX_RE = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9+.-]+):")


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint string.

    kind is one of: unix, auto (a bare path: a socket, or a Cygwin/libassuan
    file), pipe, pageant, pageant-pipe, pageant-window, cygwin, assuan, exec,
    tcp, vsock.  `address` is the path, pipe name, command line or host;
    `port` is set for tcp and vsock (and `cid` for vsock).
    """

    kind: str
    address: str = ""
    port: int = 0
    cid: int = 0

    def __str__(self) -> str:
        if self.kind in _KEYWORDS:
            return self.kind
        if self.kind == "auto":
            return self.address
        if self.kind == "tcp":
            host = f"[{self.address}]" if ":" in self.address else self.address
            return f"tcp:{host}:{self.port}"
        if self.kind == "vsock":
            cid = "any" if self.cid == 0xFFFFFFFF else self.cid  # VMADDR_CID_ANY (listening)
            return f"vsock:{cid}:{self.port}"
        return f"{self.kind}:{self.address}"


def _bad(text: str, why: str) -> AgentError:
    return AgentError(f"bad agent endpoint {text!r}: {why}")


def _port(text: str, value: str, highest: int = 65535) -> int:
    if not value.isdigit() or not 0 < int(value) <= highest:
        raise _bad(text, f"port {value!r} is not a number in 1..{highest}")
    return int(value)


def parse_endpoint(text: str) -> Endpoint:
    """Parse an endpoint string (see docs/agent.md); AgentError if it is malformed."""
    if not text:
        raise _bad(text, "it is empty")
    if "\x00" in text:
        raise _bad(text, "it contains a NUL character")
    if text in _KEYWORDS:
        return Endpoint(text)
    pipe = _PIPE_RE.match(text)
    if pipe:
        return Endpoint("pipe", pipe["name"])
    match = _PREFIX_RE.match(text)
    if match is None or match["prefix"].lower() not in _PREFIXES:
        if match is not None and not text.startswith(("/", ".", "~")):
            raise _bad(text, f"unknown endpoint type {match['prefix']!r} "
                             f"(known: {', '.join(_PREFIXES + _KEYWORDS)}; "
                             f"write a path with a colon as unix:PATH)")
        return Endpoint("auto", os.path.expanduser(text))
    kind = match["prefix"].lower()
    rest = text[match.end():]
    if not rest:
        raise _bad(text, f"{kind}: needs an address after the colon")
    if kind == "msys":
        kind = "cygwin"
    if kind in ("unix", "cygwin", "assuan"):
        return Endpoint(kind, os.path.expanduser(rest))
    if kind == "exec":
        if not rest.strip():
            raise _bad(text, "exec: needs a command line")
        return Endpoint("exec", rest)
    if kind == "pipe":
        full = _PIPE_RE.match(rest)
        name = full["name"] if full else rest
        if "\\" in name or "/" in name:
            raise _bad(text, "a pipe name cannot contain slashes (write pipe:NAME "
                             "or \\\\.\\pipe\\NAME)")
        return Endpoint("pipe", name)
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise _bad(text, f"{kind}: wants {'HOST' if kind == 'tcp' else 'CID'}:PORT")
    # vsock ports are 32 bits (the kernel picks ones above 2**31); 0xFFFFFFFF means "any".
    port = _port(text, port_text, 65535 if kind == "tcp" else 0xFFFFFFFE)
    if kind == "tcp":
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host:
            raise _bad(text, "tcp: needs a host")
        return Endpoint("tcp", host, port)
    # vsock
    if not host.isdigit() or int(host) > 0xFFFFFFFF:
        raise _bad(text, f"vsock CID {host!r} is not a number")
    return Endpoint("vsock", "", port, int(host))


# --- opening ------------------------------------------------------------------------------


def _open_auto(endpoint: Endpoint, timeout: float | None) -> Transport:
    """A bare path: an AF_UNIX socket, unless it is a regular file in a bridge's format.

    On Windows this is how SSH_AUTH_SOCK is sniffed: a Cygwin/MSYS file, a
    libassuan file, else a Winsock AF_UNIX socket (pipe paths never get here:
    parse_endpoint makes them pipe: endpoints).  A POSIX-style path from an
    MSYS2/Git Bash environment goes through cygpath first.
    """
    path = windows_path(endpoint.address, str(endpoint))
    try:
        is_file = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        is_file = False
    if is_file:
        data = read_socket_file(path, str(endpoint))
        if data.startswith(CYGWIN_MAGIC):
            return open_cygwin_data(data, path, timeout, f"cygwin:{path}")
        if is_assuan_data(data):
            return open_assuan_data(data, path, timeout, f"assuan:{path}")
        if sys.platform != "win32":
            raise AgentConnectError(
                f"{path} is a regular file, neither a socket nor a Cygwin/libassuan "
                f"socket file", endpoint=str(endpoint))
    return open_unix(path, timeout, str(endpoint))


#: kind -> opener.  The Windows channels raise AgentUnsupportedError off Windows.
_OPENERS: dict[str, Callable[[Endpoint, float | None], Transport]] = {
    "unix": lambda e, t: open_unix(e.address, t, str(e)),
    "auto": _open_auto,
    "tcp": lambda e, t: open_tcp(e.address, e.port, t, str(e)),
    "vsock": lambda e, t: open_vsock(e.cid, e.port, t, str(e)),
    "exec": lambda e, t: open_relay(e.address, t, str(e)),
    "cygwin": lambda e, t: open_cygwin(e.address, t, str(e)),
    "assuan": lambda e, t: open_assuan(e.address, t, str(e)),
    "pipe": lambda e, t: open_pipe(e.address, t, str(e)),
    "pageant": lambda e, t: open_pageant(t, str(e)),
    "pageant-pipe": lambda e, t: open_pageant_pipe(t, str(e)),
    "pageant-window": lambda e, t: open_pageant_window(t, str(e)),
}


def _open_one(endpoint: str | Endpoint, timeout: float | None) -> Transport:
    parsed = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
    log.debug("agent: opening %s", parsed)
    return _OPENERS[parsed.kind](parsed, timeout)


def discovery_order(environ: Mapping[str, str], platform: str,
                    home_sockets: Sequence[AgentDirSocket] = ()) -> list[tuple[str, str]]:
    """(endpoint, why) in the order `connect()` tries them; pure, for the doctor too.

    SSH_AUTH_SOCK first; then, on POSIX, OpenSSH >= 10.1's ``~/.ssh/agent/``
    sockets best first (`sshlib.agent.paths.agent_home_sockets`), which also
    covers an SSH_AUTH_SOCK naming a socket whose agent has gone; on Windows
    Pageant's pipe, Win32-OpenSSH's pipe, Pageant's window.
    """
    found: list[tuple[str, str]] = []
    sock = environ.get("SSH_AUTH_SOCK", "")
    if sock:
        found.append((sock, "SSH_AUTH_SOCK"))
    if platform == "win32":
        found += [("pageant-pipe", "Windows: PuTTY Pageant pipe"),
                  (f"pipe:{OPENSSH_PIPE}", "Windows: OpenSSH agent pipe"),
                  ("pageant-window", "Windows: Pageant window")]
    else:
        same = os.path.realpath(sock) if sock else None
        for entry in home_sockets:
            if same is not None and os.path.realpath(entry.path) == same:
                continue
            found.append((f"unix:{entry.path}", f"~/.ssh/agent (OpenSSH >= 10.1): "
                                                f"{entry.describe()}"))
    return found


def default_endpoints() -> list[str]:
    """Where `connect()` looks, in order (see `discovery_order`)."""
    home_sockets = [] if sys.platform == "win32" else agent_home_sockets(agent_homes())
    return [endpoint for endpoint, _ in discovery_order(os.environ, sys.platform, home_sockets)]


def open_stream(endpoint: str | Endpoint | None = None, *,
                timeout: float | None = 10.0) -> Transport:
    """A new raw byte stream to the agent at `endpoint` (what agent forwarding relays).

    Every call makes its own connection (its own relay process for exec:),
    so each forwarded channel keeps its own agent state.  None: the first of
    `default_endpoints()` that answers.
    """
    if endpoint is not None:
        return _open_one(endpoint, timeout)
    candidates = default_endpoints()
    if not candidates:
        raise AgentConnectError("no agent endpoint given, SSH_AUTH_SOCK is not set and "
                                "~/.ssh/agent/ has no agent socket")
    failures: list[str] = []
    for candidate in candidates:
        try:
            return _open_one(candidate, timeout)
        except AgentError as exc:
            log.debug("agent: %s", exc)
            if len(candidates) == 1:
                raise
            failures.append(str(exc))
    raise AgentConnectError("no agent reachable: " + "; ".join(failures))


def connect(endpoint: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
            max_message: int = p.DEFAULT_MAX_MESSAGE) -> AgentClient:
    """An AgentClient for `endpoint`, or for the first agent `default_endpoints()` reaches.

    `timeout` bounds connecting and is each request's default.  Use as a
    context manager to close the connection (and reap a relay process).
    """
    return AgentClient(open_stream(endpoint, timeout=timeout), timeout=timeout,
                       max_message=max_message)
