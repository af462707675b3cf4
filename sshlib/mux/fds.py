"""What the sync and asyncio mux links share: our ends of a session's descriptors.

`FdLink` writes stdin (non-blocking), reads stdout/stderr, applies the
master's session messages to a channel and closes everything once; the
front-ends add the waiting (a pump thread, or the event loop's readers).
`SessionSpec` collects what a mux session asks for before it starts, and
`make_stdio()` builds the descriptors to pass (socketpairs, or a local pty).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..channelstate import SessionChannel, StreamChannel
from ..driver import split_address
from ..errors import (
    ChannelClosedError,
    ExitMissingError,
    MuxConnectError,
    MuxProtocolError,
    RequestDeniedError,
    SSHError,
)
from ..forwardspec import Spec, parse_listen, parse_target
from . import protocol as mp

if TYPE_CHECKING:
    from ..sshconfig import HostConfig
    from ..sshconfig.session import SessionSetup

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

from . import tty

log = logging.getLogger("sshlib.mux")

__all__ = ["endpoint", "forward_endpoint", "Fields", "free_port", "local_forward_tries",
           "remote_forward_fields",
           "stdio_target", "resize", "ForwardBase", "FdLink", "SessionSpec", "Stdio", "make_stdio",
           "BUFFER_LIMIT", "raise_for_exit", "ConnectedBase"]

BUFFER_LIMIT = 2 * 1024 * 1024  # unread bytes per stream before we stop reading
READ_CHUNK = 64 * 1024
WRITE_CHUNK = 256 * 1024


def raise_for_exit(channel: SessionChannel, stderr: bytes = b"") -> None:
    """SessionChannel.raise_for_exit, saying why a mux session can end without a status."""
    if channel.exit_status is None and channel.error is None:
        raise ExitMissingError(
            "the master closed the session without an exit status (a ControlMaster relays "
            "exit-status only: the command was killed by a signal, or the connection to the "
            "server ended)")
    SessionChannel.raise_for_exit(channel, stderr)


def endpoint(address: str) -> tuple[str, int]:
    """'host:port' -> (host, port); a path (with '/') -> (path, PORT_STREAMLOCAL)."""
    if "/" in address:
        return address, mp.PORT_STREAMLOCAL
    host, port = split_address(address, -1)
    if port < 0:
        raise ValueError(f"address {address!r} needs a port (host:port)")
    return host, port


def forward_endpoint(spec: Spec, *, listen: bool, remote: bool = False) -> tuple[str, int]:
    """A forwarding spec -> (host or path, port or PORT_STREAMLOCAL) for MUX_C_OPEN_FWD.

    Takes the specs of sshlib.Client.forward_local ("8080", "host:port", "[v6]:port",
    "*:port", "unix:/path", (host, port)) and a bare path with "/".  A listening bare
    port sends an empty host, as ssh(1) does, so the master applies its own default
    (loopback unless GatewayPorts) and finds a forward it already has; "*" is every
    interface.  ValueError for a malformed spec.
    """
    if isinstance(spec, str) and "/" in spec and not spec.startswith("unix:"):
        return spec, mp.PORT_STREAMLOCAL
    if listen and (isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit())):
        return "", parse_listen(spec).port
    end = parse_listen(spec, remote=remote) if listen else parse_target(spec)
    if end.is_unix:
        return end.path, mp.PORT_STREAMLOCAL
    return (end.host or "*") if listen else end.host, end.port


def free_port(host: str) -> int:
    """A port nobody listens on now (forward_local with port 0: masters do not say)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host if host not in ("", "*", "localhost") else "127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


Fields = tuple[int, str, int, str, int]


def local_forward_tries(listen: Spec, target: Spec | None
                        ) -> Iterator[tuple[Fields, bool]]:
    """(MUX_C_OPEN_FWD fields, last try?) to attempt in turn for forward_local(), or for
    forward_dynamic() when `target` is None (MUX_FWD_DYNAMIC, connect "socks" port 0).

    With listen port 0 each try takes a new free port (a master does not report the
    port it bound), so a port someone else took in between costs only a retry.
    """
    listen_host, listen_port = forward_endpoint(listen, listen=True)
    if target is None:
        if listen_port == mp.PORT_STREAMLOCAL:
            raise ValueError("a dynamic forward listens on a TCP port, not a Unix socket")
        # ssh(1) sends "socks" (readconf's connect host of a -D): the master's listener
        # setup fails with "No forward host name" for an empty one
        ftype, connect_host, connect_port = mp.FWD_DYNAMIC, "socks", 0
    else:
        ftype = mp.FWD_LOCAL
        connect_host, connect_port = forward_endpoint(target, listen=False)
    attempts = 5 if listen_port == 0 else 1
    for attempt in range(attempts):
        port = listen_port or free_port(listen_host)
        yield (ftype, listen_host, port, connect_host, connect_port), attempt + 1 == attempts


def stdio_target(network: str, address: str) -> tuple[str, int]:
    """(host, port) for dial(): only TCP, as OpenSSH's master opens direct-tcpip for all."""
    if network not in ("tcp", "tcp4", "tcp6"):
        raise ValueError(f"unsupported network {network!r} through a ControlMaster: "
                         "its stdio forwards are always TCP")
    host, port = endpoint(address)
    if port == mp.PORT_STREAMLOCAL:
        raise ValueError(f"tcp address {address!r} looks like a path")
    return host, port


def resize(pty_fd: int, pid: int, height: int, width: int, path: str) -> None:
    """window_change(): the local pty's new size, and SIGWINCH to the master to send it."""
    if pty_fd < 0 or pid <= 1:
        raise SSHError("window_change() needs a started pty session")
    tty.set_size(pty_fd, height, width)
    try:
        os.kill(pid, signal.SIGWINCH)
    except OSError as exc:  # gone, or another user's process
        raise MuxConnectError(f"cannot signal the master (pid {pid}): {exc}",
                              path=path) from None


def remote_forward_fields(listen: Spec, target: Spec) -> Fields:
    """MUX_C_OPEN_FWD fields for forward_remote() (port 0: the server picks, and says)."""
    listen_host, listen_port = forward_endpoint(listen, listen=True, remote=True)
    connect_host, connect_port = forward_endpoint(target, listen=False)
    return mp.FWD_REMOTE, listen_host, listen_port, connect_host, connect_port


class ForwardBase:
    """A forward the master holds: `address` is where it listens (for a remote forward,
    on the server; a path for a Unix socket), `target` where it connects (("socks", 0) for
    a dynamic forward), `kind` "local", "remote" or "dynamic"."""

    def __init__(self, fields: Fields, bound_port: int) -> None:
        ftype, listen_host, port, connect_host, connect_port = fields
        self.kind = _KINDS[ftype]
        self.address: tuple[str, int] | str
        if port == mp.PORT_STREAMLOCAL:
            self.address = listen_host
        else:  # "" is the master's default (loopback), "*" every interface
            self.address = ({"": "127.0.0.1", "*": "0.0.0.0"}.get(listen_host, listen_host),
                            bound_port)
        self.target = (connect_host, connect_port)
        self.closed = False
        #: What MUX_C_CLOSE_FWD must repeat: the fields the forward was opened with.
        self.request_fields = fields

    def __repr__(self) -> str:
        return f"<sshlib.mux.Forward {self.kind} {self.address} -> {self.target}>"


class _MuxLike(Protocol):
    path: str
    timeout: float | None

    @property
    def closed(self) -> bool: ...


M = TypeVar("M", bound=_MuxLike)
FW = TypeVar("FW", bound=ForwardBase)


class ConnectedBase(Generic[M, FW]):
    """What both front-ends' ConfiguredMuxClient share: the MuxClient (`mux`), the
    configuration, default timeouts and the forwards to close with the client."""

    def __init__(self, mux: M, host_config: HostConfig, setup: SessionSetup) -> None:
        self.mux = mux
        #: The master's socket (None on a ConfiguredClient, which has its own connection).
        self.control_path: str | None = mux.path
        self.host_config = host_config
        self.session_setup = setup
        self.hostname, self.port = host_config.hostname, host_config.port
        self._forwards: list[FW] = []

    @property
    def timeout(self) -> float | None:
        """The default timeout of requests to the master (connect()'s timeout)."""
        return self.mux.timeout

    @property
    def closed(self) -> bool:
        """True once close() started."""
        return self.mux.closed

    def _wait(self, timeout: float | None) -> float | None:
        return self.mux.timeout if timeout is None else timeout

    def _keep(self, forward: FW) -> FW:
        self._forwards.append(forward)
        return forward

    def _take_forwards(self) -> list[FW]:
        forwards, self._forwards = self._forwards, []
        return forwards

    def __repr__(self) -> str:
        return (f"<{type(self).__module__}.{type(self).__name__} {self.hostname}:{self.port} "
                f"via {self.mux.path}>")


_KINDS = {mp.FWD_LOCAL: "local", mp.FWD_REMOTE: "remote", mp.FWD_DYNAMIC: "dynamic"}


@dataclass
class SessionSpec:
    """What goes with MUX_C_NEW_SESSION: the pty, environment and agent flag."""

    pty: tuple[str, int, int, dict[str | int, int]] | None = None
    env: list[str] = field(default_factory=list)
    agent: bool = False
    started: bool = False

    def before_start(self, what: str) -> None:
        """SSHError naming `what()` once the session started: all of the spec goes with
        MUX_C_NEW_SESSION and cannot change afterwards."""
        if self.started:
            raise SSHError(f"{what}() must come before the session starts")

    def request_pty(self, term: str, height: int, width: int,
                    modes: Mapping[str | int, int] | None) -> None:
        """Ask for a pty of this size and modes (by name or RFC 4254 opcode); SSHError once
        started.  The master reads them from the local pty passed to it, so an unknown mode
        raises ValueError only when the session starts."""
        self.before_start("request_pty")
        self.pty = (term, height, width, dict(modes or {}))

    def setenv(self, name: str, value: str) -> None:
        """Add `name=value` to the session's environment; ValueError for an empty name or one
        with "=", SSHError once started.  The master passes on only what its own SendEnv/SetEnv
        allow, and the server only what its AcceptEnv allows; either drops the rest silently."""
        self.before_start("setenv")
        if not name or "=" in name:
            raise ValueError(f"bad environment variable name {name!r}")
        self.env.append(f"{name}={value}")

    def request_agent(self) -> None:
        """Ask the master to forward an agent to the session (the master's agent, not ours);
        SSHError once started."""
        self.before_start("request_agent_forwarding")
        self.agent = True

    def apply(self, setup: SessionSetup) -> None:
        """What ssh_config asks of every session (sshlib.connect over a master): SendEnv's
        and SetEnv's variables, ForwardAgent's flag and RequestTTY's pty (24x80, $TERM), as
        ssh(1)'s mux client puts them into MUX_C_NEW_SESSION."""
        for name, value in setup.env.items():
            self.setenv(name, value)
        if setup.agent_forwarding:
            self.request_agent()
        if setup.pty:
            self.request_pty(setup.term, 24, 80, None)

    def start(self) -> None:
        """Mark the spec used; SSHError the second time (one command per mux session)."""
        if self.started:
            raise SSHError("session already started; use a new session per command")
        self.started = True

    def request(self, proto: mp.MuxProtocol, command: str | bytes, subsystem: bool,
                stdio: Stdio) -> int:
        """Queue MUX_C_NEW_SESSION; the caller sends `stdio.to_pass` right after it."""
        return proto.new_session(command, tty=stdio.pty, agent=self.agent, subsystem=subsystem,
                                 term=self.pty[0] if self.pty else "", env=self.env)


@dataclass
class Stdio:
    """Descriptors of one session: ours (kept), and those the master gets."""

    stdin: int
    outputs: list[int]
    to_pass: list[int]  # in the order the master reads them
    theirs: list[int]  # each of our copies of the passed descriptors, closed once sent
    pty: bool

    def close_theirs(self) -> None:
        """Close our copies of the passed descriptors, once sent (or the open failed), so only
        the master holds them and its closing them ends our reads; safe to repeat."""
        for fd in self.theirs:
            os.close(fd)
        self.theirs = []


def make_stdio(spec: SessionSpec | None) -> Stdio:
    """Socketpairs for stdin/stdout/stderr; a local pty for a pty session (spec.pty).

    `spec=None` is a stdio forward: stdin and stdout only.
    """
    if spec is not None and spec.pty is not None:
        _, height, width, modes = spec.pty
        ours, theirs = tty.open_pty(height, width, modes)
        return Stdio(ours, [ours], [theirs] * 3, [theirs], True)
    count = 2 if spec is None else 3
    pairs = [socket.socketpair() for _ in range(count)]
    passed = [b.detach() for _, b in pairs]
    return Stdio(pairs[0][0].detach(), [a.detach() for a, _ in pairs[1:]], passed, passed,
                 False)


class FdLink:
    """Our ends of a session's descriptors as a channel link (see sync ChannelLink)."""

    path: str

    def __init__(self) -> None:
        self.stdin = -1
        self.outputs: list[int] = []  # index 0 stdout, 1 stderr (a pty has stdout only)
        self.pty = False
        self.write_blocked = False
        self._released = False

    def attach(self, stdio: Stdio) -> None:
        """Our ends of the descriptors the master gets (owned and closed by us from now)."""
        self.stdin, self.outputs, self.pty = stdio.stdin, stdio.outputs, stdio.pty
        for fd in {self.stdin, *self.outputs}:
            os.set_blocking(fd, False)

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def read_output(fd: int) -> bytes | None:
        """What the fd has (b"" at its end; a pty whose far side closed reads EIO), or None."""
        try:
            return os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.ECONNRESET):
                raise
            return b""

    def apply(self, channel: StreamChannel, events: list[mp.MuxEvent]) -> bool:
        """The master's messages on a running session; False once it closed the connection."""
        for event in events:
            if isinstance(event, mp.ExitReported):
                channel.on_exit_status(event.exit_status)
            elif isinstance(event, mp.TtyAllocFailed):
                log.info("mux master %s: the server refused the pty", self.path)
            elif isinstance(event, mp.MasterClosed):
                return False
            else:
                raise MuxProtocolError(f"unexpected {type(event).__name__} on a session",
                                       path=self.path)
        return True

    # --- ChannelLink methods both front-ends share ----------------------------------------
    def set_window_size(self, channel: StreamChannel, size: int) -> None:
        """Nothing to do: the master owns the SSH channel and its window."""

    def check_writable(self, channel: StreamChannel) -> None:
        """ChannelLink.check_writable: ChannelClosedError before the session started (no stdin
        yet), after EOF or after close."""
        if self.stdin < 0:
            raise ChannelClosedError("the session has not started")
        if channel.eof_sent or channel.closed:
            raise ChannelClosedError("channel input is closed")

    def can_write(self, channel: StreamChannel) -> bool:
        """Always True: a mux session has no window; a full stdin shows as a short `send_some()`."""
        return True

    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        """Write to our end of stdin without blocking and return the count: 0 when it is full
        (`write_blocked` is then set, and the front-end's flush or drain waits for room).

        ValueError for `stderr` (a session's stderr is output only); ChannelClosedError once
        the descriptor is closed or its far end gone.
        """
        if stderr:
            raise ValueError("a mux session has no stderr to write to")
        try:
            return os.write(self.stdin, view[:WRITE_CHUNK])
        except BlockingIOError:
            self.write_blocked = True
            return 0
        except OSError as exc:
            raise ChannelClosedError(f"the session's input is closed: {exc}") from None

    def channel_request(self, channel: StreamChannel, name: str, payload: bytes,
                        want_reply: bool) -> int:
        """Always RequestDeniedError: the ControlMaster protocol carries no channel requests
        (window_change() goes through the local pty and SIGWINCH instead)."""
        raise RequestDeniedError(f"the ControlMaster protocol cannot send {name!r} requests")

    def send_eof(self, channel: StreamChannel) -> bool:
        """Shut down our stdin socket for writing, once: True the first time, False after EOF or
        close.  A pty has no end of input: nothing is sent (write b"\\x04" instead)."""
        if channel.eof_sent or channel.closed:
            return False
        channel.eof_sent = True
        if not self.pty:  # a pty has no end of input; send ^D (b"\\x04") instead
            try:
                with socket.socket(fileno=os.dup(self.stdin)) as sock:
                    sock.shutdown(socket.SHUT_WR)  # the dup shares the socket; closing it doesn't
            except OSError:
                pass
        return True

    def close_fds(self) -> None:
        """Close our descriptors (once)."""
        if self._released:
            return
        self._released = True
        for fd in {self.stdin, *self.outputs} - {-1}:
            try:
                os.close(fd)
            except OSError:
                pass
