"""The threaded mux client: `connect()`, `MuxClient`, `MuxSession`, `Forward`.

A `MuxClient` keeps one control connection for quick requests (alive check,
forwards, terminate).  The master runs at most one session or stdio
forward per control connection, so each `new_session()` and `dial()`
opens a connection of its own, as each ssh(1) mux client does.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from ..channelstate import OutputCollector
from ..errors import (
    MuxConnectError,
    MuxError,
    MuxRefusedError,
    RequestDeniedError,
)
from ..forwardspec import Spec
from ..sync.channel import ChannelIO, SessionChannelIO
from ..sync.session import Session
from ..sync.stream import Stream
from . import fds, tty
from . import protocol as mp
from .control import ControlConnection, deadline_after, remaining_time
from .fds import SessionSpec, Stdio, make_stdio
from .pipes import Pipes

if TYPE_CHECKING:
    from ..sshconfig.session import SessionSetup

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.mux")

__all__ = ["connect", "MuxClient", "MuxSession", "Forward", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0


def connect(path: str, timeout: float | None = DEFAULT_TIMEOUT) -> MuxClient:
    """Connect to the ControlMaster listening at `path` (``~`` is expanded).

    Raises MuxConnectError when nothing listens there (no socket, a stale
    socket left by a dead master), MuxProtocolError when what answers is not
    a mux master of protocol version 4, MuxTimeoutError after `timeout`.
    """
    return MuxClient(os.path.expanduser(path), timeout)


class _MuxSessionChannel(SessionChannelIO):
    def raise_for_exit(self, stderr: bytes = b"") -> None:
        fds.raise_for_exit(self, stderr)


class MuxClient:
    """A running ControlMaster, reached through its control socket.

    Methods take a `timeout` (seconds, None: wait forever) and raise
    MuxTimeoutError when it runs out; a master that refuses raises
    MuxRefusedError; a master that went away raises MuxConnectError.
    Safe to use from several threads.  Closing it closes the sessions and
    streams it opened (the master and its SSH connection stay up).
    """

    def __init__(self, path: str, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._control = ControlConnection(path, timeout)
        self._lock = threading.Lock()
        self._closed = False
        self._children: weakref.WeakSet[MuxSession | Stream] = weakref.WeakSet()

    # --- quick requests on the long-lived connection ------------------------------------
    def _ask(self, make: str, timeout: float | None, what: str,
             *args: object) -> mp.MuxEvent:
        with self._lock:
            if self._closed:
                raise MuxError("the mux client is closed", path=self.path)
            rid = getattr(self._control.proto, make)(*args)
            return self._control.request(rid, timeout, what)

    def check(self, timeout: float | None = DEFAULT_TIMEOUT) -> int:
        """MUX_C_ALIVE_CHECK: the master's process id (MuxConnectError if it went away)."""
        event = self._ask("alive_check", timeout, "the alive check")
        assert isinstance(event, mp.AliveReported)
        return event.pid

    def terminate(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """MUX_C_TERMINATE: ask the master to exit, ending its connection (like ssh -O exit)."""
        try:
            self._ask("terminate", timeout, "the terminate request")
        except MuxConnectError:  # OpenSSH may exit before its reply makes it out
            pass

    def stop_listening(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """MUX_C_STOP_LISTENING (ssh -O stop): no new clients; existing ones keep working."""
        self._ask("stop_listening", timeout, "the stop-listening request")

    def forward_local(self, listen: Spec, target: Spec,
                      timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """Make the master listen at `listen` and forward connections to `target` (ssh -L).

        Both take the specs of sshlib.Client.forward_local ("8080", "host:port",
        "[v6]:port", "*:port", "unix:/path") or a Unix socket path.  Port 0 picks a free
        local port here (a master does not report the port it bound); the forward's
        `address` says which.  `close()` removes it (MUX_C_CLOSE_FWD).
        """
        return self._open_local(listen, target, timeout, f"forward {listen} -> {target}")

    def forward_dynamic(self, listen: Spec, timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """Make the master run a SOCKS4/5 proxy at `listen` (ssh -D, MUX_FWD_DYNAMIC).

        Each SOCKS request becomes a direct-tcpip channel of the master's connection
        (names are resolved by the server).  Port 0 picks a free port here, as for
        forward_local; `address` says which.  `close()` removes it.
        """
        return self._open_local(listen, None, timeout, f"dynamic forward {listen}")

    def _open_local(self, listen: Spec, target: Spec | None, timeout: float | None,
                    what: str) -> Forward:
        for fields, last in fds.local_forward_tries(listen, target):
            try:
                self._ask("open_forward", timeout, what, *fields)
            except MuxRefusedError:
                if last:
                    raise
                continue  # someone took the free port in between: try another
            return Forward(self, fields, fields[2])
        raise AssertionError("unreachable")

    def forward_remote(self, listen: Spec, target: Spec,
                       timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """Make the server listen at `listen` and the master connect each connection to
        `target` (ssh -R).  Port 0 lets the server choose; `address` says what it chose.
        A bare port asks the server for "localhost", as ssh -R does.
        """
        fields = fds.remote_forward_fields(listen, target)
        event = self._ask("open_forward", timeout, f"remote forward {listen} -> {target}",
                          *fields)
        port = event.port if isinstance(event, mp.RemotePortAllocated) else fields[2]
        return Forward(self, fields, port)

    def close_forward(self, forward: Forward, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Remove a forward (MUX_C_CLOSE_FWD), as forward.close() does; MuxRefusedError if
        the master does not have it (any more)."""
        self._ask("close_forward", timeout, "closing a forward", *forward.request_fields)

    # --- sessions and streams: one control connection each -----------------------------------
    def new_session(self, timeout: float | None = DEFAULT_TIMEOUT, *,
                    setup: SessionSetup | None = None) -> MuxSession:
        """A session (the Session API); nothing runs until start/output/run/shell.

        Its own control connection is opened now (MuxConnectError if the master
        went away); the command, pty and environment go to the master at start.
        `setup` (an sshlib.sshconfig SessionSetup) pre-sets environment, agent and pty
        as its setenv()/request_agent_forwarding()/request_pty() would.
        """
        session = MuxSession(self, ControlConnection(self.path, timeout))
        if setup is not None:
            session.apply_setup(setup)
        self._adopt(session)
        return session

    def dial(self, network: str, address: str,
             timeout: float | None = DEFAULT_TIMEOUT) -> Stream:
        """A Stream to "host:port", connected by the server on the master's connection
        (MUX_C_NEW_STDIO_FWD, like ssh -W).

        Only "tcp": OpenSSH's master opens every stdio forward as direct-tcpip, so a
        Unix socket path cannot be reached this way (ValueError; forward_local() can).
        MuxRefusedError if the master or the server refuses (the master does not pass
        on the server's reason).
        """
        host, port = fds.stdio_target(network, address)
        deadline = deadline_after(timeout)
        control = ControlConnection(self.path, timeout)
        pipes = Pipes(control)
        stdio = make_stdio(None)
        pipes.attach(stdio)
        try:
            rid = control.proto.new_stdio_forward(host, port)
            control.flush(deadline)  # the master reads the descriptors right after the request
            control.send_fds(stdio.to_pass, deadline)
            stdio.close_theirs()
            event = control.reply(rid, deadline, f"dial {address}")
        except BaseException:
            stdio.close_theirs()
            pipes.discard()
            raise
        assert isinstance(event, mp.SessionOpened)
        channel = ChannelIO(pipes, "direct-tcpip")
        channel.id = event.session_id
        channel.opened = True
        pipes.start(channel)
        stream = Stream(channel)
        self._adopt(stream)
        return stream

    def _adopt(self, child: MuxSession | Stream) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._children.add(child)
        if closed:
            child.close()
            raise MuxError("the mux client is closed", path=self.path)

    # --- lifetime ------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once `close()` was called; new sessions and streams then raise MuxError."""
        return self._closed

    def close(self) -> None:
        """Close the control connection and every session and stream opened through it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._control.close()
        for child in list(self._children):
            child.close()

    def __enter__(self) -> MuxClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sshlib.mux.MuxClient {self.path}>"


class Forward(fds.ForwardBase):
    """A forward the master holds (forward_local/remote/dynamic); close() removes it."""

    def __init__(self, mux: MuxClient, fields: fds.Fields, bound_port: int) -> None:
        super().__init__(fields, bound_port)
        self._mux = mux

    def close(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Remove the forward (MUX_C_CLOSE_FWD); the master stops listening at once."""
        if self.closed:
            return
        self.closed = True
        self._mux.close_forward(self, timeout)

    def __enter__(self) -> Forward:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()



class MuxSession(Session):
    """A session run by the master: the Session API, with what the mux protocol allows.

    stdin/stdout/stderr are local socketpairs (a local pty with request_pty())
    whose other ends the master holds.  Differences from a Client's session:
    pty, environment and agent forwarding are sent with the command at start;
    setenv() values reach the server only for names the master's own SendEnv
    allows (silently dropped otherwise); signal() raises RequestDeniedError
    (the protocol has no signals); a command killed by a signal ends with
    ExitMissingError (the master relays exit-status only); a pty session has
    one output stream (stderr is empty) and stdin.close() does nothing there.
    """

    _channel: _MuxSessionChannel

    def __init__(self, mux: MuxClient, control: ControlConnection) -> None:
        self._mux = mux
        self._control = control
        self._spec = SessionSpec()
        self._pipes = Pipes(control)
        self._pty_fd = -1
        self._mux_pid = 0
        super().__init__(_MuxSessionChannel(self._pipes, "session"))

    # --- requests before start ------------------------------------------------------------
    def request_pty(self, term: str = "xterm", height: int = 24, width: int = 80,
                    modes: Mapping[str | int, int] | None = None,
                    timeout: float | None = None) -> None:
        """Ask for a pseudo-terminal; sent with the command (MuxRefusedError at start)."""
        self._spec.request_pty(term, height, width, modes)

    def setenv(self, name: str, value: str, timeout: float | None = None) -> None:
        """Pass NAME=value with the command; the master drops names its SendEnv lacks."""
        self._spec.setenv(name, value)

    def request_agent_forwarding(self, timeout: float | None = None) -> None:
        """Ask the master to forward its agent to this session (sent with the command).

        The agent is the master's (its SSH_AUTH_SOCK or ForwardAgent path), never ours,
        and only a master running with ForwardAgent asks the server; one without drops
        the flag silently (the protocol has no reply to say so).  OpenSSH's sshd keeps one
        forwarded agent per connection, so once any session on the master's connection
        has it, later sessions there see SSH_AUTH_SOCK whether they asked or not.
        SSHError once started.
        """
        self._spec.request_agent()

    def apply_setup(self, setup: SessionSetup) -> None:
        """Pre-set what ssh_config asks of every session (see fds.SessionSpec.apply)."""
        self._spec.apply(setup)

    # --- start -----------------------------------------------------------------------------------
    def start(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` without waiting for it; read stdout/stderr, then wait()."""
        self._launch(command, False, timeout)

    def shell(self, timeout: float | None = None) -> None:
        """Start the user's login shell."""
        self._launch("", False, timeout)

    def request_subsystem(self, name: str, timeout: float | None = None) -> None:
        """Start a subsystem such as "sftp"."""
        self._launch(name, True, timeout)

    def _collect(self, command: str | bytes, keep_stdout: bool, merge: bool,
                 timeout: float | None) -> bytes:
        """output()/run()/combined_output(): the command goes in MUX_C_NEW_SESSION (no exec
        reply to wait for), then both streams are collected until the master closes."""
        deadline = deadline_after(timeout)
        collector = OutputCollector(keep_stdout, merge)
        if merge:
            self._channel.interleave = []  # keep stdout and stderr in arrival order
        self.start(command, timeout)
        self._channel.drain(collector, deadline)
        self._raise_for_exit(collector.stderr_tail)
        return collector.stdout

    def _launch(self, command: str | bytes, subsystem: bool, timeout: float | None) -> None:
        spec = self._spec
        spec.start()
        self._claim_start()
        control, pipes = self._control, self._pipes
        deadline = deadline_after(timeout if timeout is not None else self._mux.timeout)
        stdio: Stdio | None = None
        try:
            # The pid is for SIGWINCH (ssh(1) asks first too).
            pid = control.request(control.proto.alive_check(), remaining_time(deadline),
                                  "the alive check")
            assert isinstance(pid, mp.AliveReported)
            self._mux_pid = pid.pid
            stdio = make_stdio(spec)
            pipes.attach(stdio)
            if stdio.pty:
                self._pty_fd = stdio.stdin
            rid = spec.request(control.proto, command, subsystem, stdio)
            # The master blocks reading the descriptors right after the request.
            control.flush(deadline)
            control.send_fds(stdio.to_pass, deadline)
            event = control.reply(rid, deadline, "the new session")
            assert isinstance(event, mp.SessionOpened)
            if stdio.pty:
                tty.make_raw(stdio.theirs[0])
        except BaseException:
            pipes.discard()
            with self._channel.cond:
                self._channel.on_close()
            raise
        finally:
            if stdio is not None:
                stdio.close_theirs()
        self._channel.id = event.session_id
        self._channel.opened = True
        pipes.start(self._channel)
    # --- while running -------------------------------------------------------------------------
    def signal(self, name: str, timeout: float | None = None) -> None:
        """Not possible through a master: raises RequestDeniedError (in a pty, write b"\\x03")."""
        raise RequestDeniedError("the ControlMaster protocol cannot send signals")

    def window_change(self, height: int, width: int, timeout: float | None = None) -> None:
        """Resize the pty: set the local pty's size and tell the master (SIGWINCH)."""
        fds.resize(self._pty_fd, self._mux_pid, height, width, self._mux.path)

    def close(self, timeout: float | None = None) -> None:
        """Hang up this session's control connection; the master closes the channel."""
        if not self._started:
            self._pipes.discard()
            with self._channel.cond:
                self._channel.on_close()
            return
        super().close(timeout)

    def __repr__(self) -> str:
        return f"<sshlib.mux.MuxSession {self._mux.path} session {self._channel.id}>"
