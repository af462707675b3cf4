"""sshlib.aio.mux: an OpenSSH ControlMaster from asyncio, the names of sshlib.mux as coroutines.

    async with sshlib.aio.mux.connect("~/.ssh/cm-alice@host:22") as m:
        print(await m.check())
        async with await m.new_session() as s:
            print(await s.output("uname -a"))
        conn = await m.dial("tcp", "db:5432")          # an sshlib.aio.Stream
        fw = await m.forward_local("127.0.0.1:0", "web:80"); await fw.close()

The same codec (sshlib.mux.protocol) and descriptor handling (sshlib.mux.fds)
as the threaded client; here the event loop's readers move the bytes, so a
session costs no thread.  Differences from a Client's session are those of
sshlib.mux (docs/mux.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..channelstate import StreamChannel
from ..config import ClientConfig
from ..errors import (
    MuxConnectError,
    MuxError,
    MuxProtocolError,
    MuxRefusedError,
    MuxTimeoutError,
    RequestDeniedError,
    SSHError,
)
from ..forwardspec import Spec
from ..mux import fds
from ..mux import protocol as mp
from ..mux.fds import BUFFER_LIMIT, FdLink, SessionSpec, Stdio, make_stdio

if TYPE_CHECKING:
    from ..sshconfig.session import SessionSetup

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

from ..mux import tty
from ..mux.control import Inbox, check_path, os_error, reply_or_raise
from .channel import AioChannel, AioSessionChannel, Waiters, deadline_after
from .session import Session
from .stream import Stream

log = logging.getLogger("sshlib.mux")

__all__ = ["connect", "MuxClient", "MuxSession", "Forward", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")


def _left(deadline: float | None, path: str, what: str) -> float | None:
    if deadline is None:
        return None
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        raise MuxTimeoutError(f"timed out {what}", path=path)
    return left


class _Control:
    """One control connection on the event loop; usable once connect() exchanged HELLO."""

    def __init__(self, path: str) -> None:
        check_path(path)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.proto = mp.MuxProtocol()
        self.inbox = Inbox(path, self.proto)
        self.connected = False

    @classmethod
    async def open(cls, path: str, timeout: float | None) -> _Control:
        control = cls(path)
        await control.connect(deadline_after(timeout))
        return control

    async def connect(self, deadline: float | None) -> None:
        """Connect and exchange HELLO by `deadline` (the loop's time); the socket is closed if
        that fails."""
        try:
            await self._io(asyncio.get_running_loop().sock_connect(self.sock, self.path),
                           deadline, "connecting")
            await self.flush(deadline)
            await self.wait_for(lambda e: isinstance(e, mp.HelloReceived), deadline,
                                "waiting for the master's HELLO")
        except BaseException:
            self.sock.close()
            raise
        self.connected = True

    async def _io(self, operation: Awaitable[T], deadline: float | None, what: str) -> T:
        try:
            return await asyncio.wait_for(operation, _left(deadline, self.path, what))
        except asyncio.TimeoutError:
            raise MuxTimeoutError(f"timed out {what}", path=self.path) from None
        except OSError as exc:
            raise os_error(self.path, exc, what) from None

    async def flush(self, deadline: float | None) -> None:
        data = self.proto.data_to_send()
        if data:
            loop = asyncio.get_running_loop()
            await self._io(loop.sock_sendall(self.sock, data), deadline, "sending a request")

    async def send_fds(self, descriptors: Sequence[int], deadline: float | None) -> None:
        """One descriptor per message with one data byte, as OpenSSH's mm_send_fd."""
        for fd in descriptors:
            while True:
                try:
                    socket.send_fds(self.sock, [b"\0"], [fd])
                    break
                except BlockingIOError:
                    await self._io(_writable(self.sock.fileno()), deadline,
                                   "passing descriptors")
                except OSError as exc:
                    raise os_error(self.path, exc, "passing descriptors") from None

    async def wait_for(self, match: Callable[[mp.MuxEvent], bool], deadline: float | None,
                       what: str) -> mp.MuxEvent:
        loop = asyncio.get_running_loop()
        while (event := self.inbox.take(match, what)) is None:
            self.inbox.feed(await self._io(loop.sock_recv(self.sock, 65536), deadline, what))
        return event

    async def reply(self, rid: int, deadline: float | None, what: str) -> mp.MuxEvent:
        event = await self.wait_for(lambda e: getattr(e, "request_id", None) == rid, deadline,
                                    f"waiting for the reply to {what}")
        return reply_or_raise(event, self.path, what)

    async def request(self, rid: int, deadline: float | None, what: str) -> mp.MuxEvent:
        await self.flush(deadline)
        return await self.reply(rid, deadline, what)

    def close(self) -> None:
        self.sock.close()


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    def ready() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await future
    finally:
        loop.remove_writer(fd)


class _Pipes(FdLink):
    """A session's descriptors on the event loop: the AioChannelLink under its channel."""

    def __init__(self, control: _Control) -> None:
        super().__init__()
        self.control = control
        self.path = control.path
        self.error: SSHError | None = None
        #: Only window_size counts here: what the reader buffers before it pauses.
        self.config = ClientConfig(user="", window_size=BUFFER_LIMIT)
        self.channel: AioChannel | None = None
        self._open: dict[int, int] = {}  # output index -> fd, until its end
        self._reading: set[int] = set()
        self._control_open = False
        self._finished = False
        self._writable = Waiters()

    def start(self, channel: AioChannel) -> None:
        self.channel = channel
        loop = asyncio.get_running_loop()
        self._open = dict(enumerate(self.outputs))
        self._control_open = self.apply(channel, self.control.inbox.drain())
        if self._control_open:
            loop.add_reader(self.control.sock.fileno(), self._on_control)
        self._update_readers()

    def _update_readers(self) -> None:
        channel = self.channel
        if channel is None or self._finished:
            return
        loop = asyncio.get_running_loop()
        for index, fd in self._open.items():
            want = channel.buffered[index] < BUFFER_LIMIT
            if want and fd not in self._reading:
                loop.add_reader(fd, self._on_output, index)
                self._reading.add(fd)
            elif not want and fd in self._reading:
                loop.remove_reader(fd)
                self._reading.discard(fd)

    def _on_output(self, index: int) -> None:
        channel = self.channel
        assert channel is not None
        try:
            data = self.read_output(self._open[index])
        except OSError as exc:
            self.finish(MuxConnectError(f"reading the session failed: {exc}", path=self.path))
            return
        if data is None:
            return
        if data:
            channel.on_data(data, index == 1)
            self._update_readers()
            return
        fd = self._open.pop(index)
        asyncio.get_running_loop().remove_reader(fd)
        self._reading.discard(fd)
        if not self._open:
            channel.on_eof()
            self._maybe_finish()

    def _on_control(self) -> None:
        channel = self.channel
        assert channel is not None
        try:
            data = self.control.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        try:
            still_open = self.apply(channel, self.control.proto.receive_data(data))
        except MuxProtocolError as exc:
            self.finish(MuxProtocolError(exc.reason, path=self.path))
            return
        if not still_open:
            asyncio.get_running_loop().remove_reader(self.control.sock.fileno())
            self._control_open = False
            self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self._control_open and not self._open:
            self.finish(None)

    def finish(self, error: SSHError | None) -> None:
        """Stop reading, close the channel (with `error`) and every descriptor."""
        if self._finished:
            return
        self._finished = True
        loop = asyncio.get_running_loop()
        for fd in self._reading:
            loop.remove_reader(fd)
        self._reading.clear()
        if self._control_open:
            loop.remove_reader(self.control.sock.fileno())
            self._control_open = False
        if self.write_blocked:
            loop.remove_writer(self.stdin)
        self.error = error
        self.close_fds()
        self.control.close()
        if self.channel is not None:
            self.channel.on_close(error)
        self._writable.wake()

    # --- AioChannelLink ------------------------------------------------------------------------
    def consume(self, channel: StreamChannel, count: int) -> None:
        self._update_readers()

    def flush(self) -> None:
        """Writes go straight to our end of stdin: nothing is queued here."""

    def send_some(self, channel: StreamChannel, view: memoryview, stderr: bool) -> int:
        was_blocked = self.write_blocked
        sent = super().send_some(channel, view, stderr)
        if self.write_blocked and not was_blocked:
            asyncio.get_running_loop().add_writer(self.stdin, self._on_writable)
        return sent

    def _on_writable(self) -> None:
        asyncio.get_running_loop().remove_writer(self.stdin)
        self.write_blocked = False
        self._writable.wake()
        if self.channel is not None:
            self.channel.wake()  # a Stream's queued bytes go out from its wake-up

    async def drain(self, deadline: float | None = None) -> None:
        await self._writable.wait_until(lambda: not self.write_blocked or self._finished,
                                        deadline, "the session's input to drain")

    def close_channel(self, channel: StreamChannel) -> bool:
        """Hang up the control connection: the master then closes the SSH channel."""
        if self._finished:
            return False
        self.finish(None)
        return True

    def abandon(self, channel: StreamChannel) -> None:
        """Nothing is opened behind the caller's back here."""

    def open_channel(self, channel: StreamChannel, extra: bytes = b"") -> None:
        raise SSHError("a mux session's channel is opened by the master")

    def discard(self) -> None:
        """Release a session that never started reading."""
        if self.channel is None:
            self._finished = True
            self.close_fds()
            self.control.close()


class _MuxSessionChannel(AioSessionChannel):
    def raise_for_exit(self, stderr: bytes = b"") -> None:
        fds.raise_for_exit(self, stderr)


class _Connect:
    """What connect() returns: await it for a MuxClient, or use it with ``async with``."""

    def __init__(self, path: str, timeout: float | None) -> None:
        self._path = os.path.expanduser(path)
        self._timeout = timeout
        self._client: MuxClient | None = None

    def __await__(self) -> Generator[Any, None, MuxClient]:
        return self._connect().__await__()

    async def _connect(self) -> MuxClient:
        return MuxClient(self._path, self._timeout,
                         await _Control.open(self._path, self._timeout))

    async def __aenter__(self) -> MuxClient:
        self._client = await self._connect()
        return self._client

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()


def connect(path: str, timeout: float | None = DEFAULT_TIMEOUT) -> _Connect:
    """Connect to the ControlMaster at `path`: ``m = await connect(path)`` or ``async with``.

    Raises the MuxError subclasses sshlib.mux.connect() raises.
    """
    return _Connect(path, timeout)


class MuxClient:
    """sshlib.mux.MuxClient for asyncio: every method that talks to the master is a coroutine."""

    def __init__(self, path: str, timeout: float | None, control: _Control) -> None:
        self.path = path
        self.timeout = timeout
        self._control = control
        self._lock = asyncio.Lock()
        self._closed = False
        self._children: weakref.WeakSet[MuxSession | Stream] = weakref.WeakSet()

    async def _ask(self, make: str, timeout: float | None, what: str,
                   *args: object) -> mp.MuxEvent:
        async with self._lock:
            self._check_open()
            rid = getattr(self._control.proto, make)(*args)
            return await self._control.request(rid, deadline_after(timeout), what)

    async def check(self, timeout: float | None = DEFAULT_TIMEOUT) -> int:
        """MUX_C_ALIVE_CHECK: the master's process id."""
        event = await self._ask("alive_check", timeout, "the alive check")
        assert isinstance(event, mp.AliveReported)
        return event.pid

    async def terminate(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """MUX_C_TERMINATE (ssh -O exit)."""
        try:
            await self._ask("terminate", timeout, "the terminate request")
        except MuxConnectError:  # OpenSSH may exit before its reply makes it out
            pass

    async def stop_listening(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """MUX_C_STOP_LISTENING (ssh -O stop)."""
        await self._ask("stop_listening", timeout, "the stop-listening request")

    async def forward_local(self, listen: Spec, target: Spec,
                            timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """As sshlib.mux.MuxClient.forward_local (port 0: a free port chosen here)."""
        return await self._open_local(listen, target, timeout, f"forward {listen} -> {target}")

    async def forward_dynamic(self, listen: Spec,
                              timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """As sshlib.mux.MuxClient.forward_dynamic: the master runs a SOCKS proxy (ssh -D)."""
        return await self._open_local(listen, None, timeout, f"dynamic forward {listen}")

    async def _open_local(self, listen: Spec, target: Spec | None, timeout: float | None,
                          what: str) -> Forward:
        for fields, last in fds.local_forward_tries(listen, target):
            try:
                await self._ask("open_forward", timeout, what, *fields)
            except MuxRefusedError:
                if last:
                    raise
                continue  # someone took the free port in between: try another
            return Forward(self, fields, fields[2])
        raise AssertionError("unreachable")

    async def forward_remote(self, listen: Spec, target: Spec,
                             timeout: float | None = DEFAULT_TIMEOUT) -> Forward:
        """As sshlib.mux.MuxClient.forward_remote (port 0: the server picks, and says)."""
        fields = fds.remote_forward_fields(listen, target)
        event = await self._ask("open_forward", timeout, f"remote forward {listen} -> {target}",
                                *fields)
        port = event.port if isinstance(event, mp.RemotePortAllocated) else fields[2]
        return Forward(self, fields, port)

    async def close_forward(self, forward: Forward,
                            timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Remove a forward (MUX_C_CLOSE_FWD), as forward.close() does; MuxRefusedError if
        the master does not have it (any more)."""
        await self._ask("close_forward", timeout, "closing a forward", *forward.request_fields)

    def new_session(self, timeout: float | None = DEFAULT_TIMEOUT, *,
                    setup: SessionSetup | None = None) -> MuxSession:
        """A session (the aio Session API) on a control connection of its own.

        As with sshlib.aio.Client.new_session, the connection opens on first use: on
        ``await session``, ``async with session`` or start (within `timeout`;
        MuxConnectError there if the master went away).  `setup` pre-sets environment,
        agent and pty as sshlib.mux.MuxClient.new_session's does.
        """
        self._check_open()
        session = MuxSession(self, _Control(self.path), timeout)
        if setup is not None:
            session.apply_setup(setup)
        self._children.add(session)
        return session

    async def dial(self, network: str, address: str,
                   timeout: float | None = DEFAULT_TIMEOUT) -> Stream:
        """An sshlib.aio.Stream to "host:port" through the master (tcp only, as in sync)."""
        host, port = fds.stdio_target(network, address)
        self._check_open()
        deadline = deadline_after(timeout)
        control = await _Control.open(self.path, timeout)
        pipes = _Pipes(control)
        stdio = make_stdio(None)
        pipes.attach(stdio)
        try:
            rid = control.proto.new_stdio_forward(host, port)
            await control.flush(deadline)  # the master reads the descriptors right after
            await control.send_fds(stdio.to_pass, deadline)
            stdio.close_theirs()
            event = await control.reply(rid, deadline, f"dial {address}")
        except BaseException:
            stdio.close_theirs()
            pipes.discard()
            raise
        assert isinstance(event, mp.SessionOpened)
        channel = AioChannel(pipes, "direct-tcpip")
        channel.id = event.session_id
        channel.opened = True
        pipes.start(channel)
        stream = Stream(channel)
        self._children.add(stream)
        return stream

    def _check_open(self) -> None:
        if self._closed:
            raise MuxError("the mux client is closed", path=self.path)

    @property
    def closed(self) -> bool:
        """True once `close()` started; new sessions and streams then raise MuxError."""
        return self._closed

    async def close(self) -> None:
        """Close the control connection and every session and stream opened through it."""
        if self._closed:
            return
        self._closed = True
        self._control.close()
        for child in list(self._children):
            if isinstance(child, MuxSession):
                await child.close()
            else:
                child.close()

    async def __aenter__(self) -> MuxClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class Forward(fds.ForwardBase):
    """A forward the master holds (forward_local/remote/dynamic); close() removes it."""

    def __init__(self, mux: MuxClient, fields: fds.Fields, bound_port: int) -> None:
        super().__init__(fields, bound_port)
        self._mux = mux

    async def close(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Remove the forward (MUX_C_CLOSE_FWD)."""
        if not self.closed:
            self.closed = True
            await self._mux.close_forward(self, timeout)

    async def __aenter__(self) -> Forward:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class MuxSession(Session):
    """sshlib.mux.MuxSession for asyncio (same differences from a Client's session)."""

    _channel: _MuxSessionChannel

    def __init__(self, mux: MuxClient, control: _Control,
                 open_timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._mux = mux
        self._control = control
        self._connecting = asyncio.Lock()
        self._spec = SessionSpec()
        self._pipes = _Pipes(control)
        self._pty_fd = -1
        self._mux_pid = 0
        super().__init__(self._pipes, open_timeout)
        self._channel = _MuxSessionChannel(self._pipes, "session")

    def __await__(self) -> Generator[Any, None, MuxSession]:
        return self._connected().__await__()

    async def _connected(self) -> MuxSession:
        await self._open()
        return self

    async def _open(self, timeout: float | None = None) -> AioSessionChannel:
        """Connect the control socket (once); the master opens the SSH channel at start."""
        await self._connect(deadline_after(self._open_timeout if timeout is None else timeout))
        return self._channel

    async def _connect(self, deadline: float | None) -> None:
        async with self._connecting:
            if not self._control.connected:
                if self._pipes.channel is not None or self._channel.closed:
                    raise MuxError("the session is closed", path=self._control.path)
                await self._control.connect(deadline)

    def apply_setup(self, setup: SessionSetup) -> None:
        """Pre-set what ssh_config asks of every session (see fds.SessionSpec.apply)."""
        self._spec.apply(setup)

    async def request_pty(self, term: str = "xterm", height: int = 24, width: int = 80,
                          modes: Mapping[str | int, int] | None = None,
                          timeout: float | None = None) -> None:
        """Ask for a pseudo-terminal; sent with the command."""
        self._spec.request_pty(term, height, width, modes)

    async def setenv(self, name: str, value: str, timeout: float | None = None) -> None:
        """Pass NAME=value with the command; the master drops names its SendEnv lacks."""
        self._spec.setenv(name, value)

    async def request_agent_forwarding(self, timeout: float | None = None) -> None:
        """Ask the master to forward its agent to this session (sent with the command).

        The agent is the master's (its SSH_AUTH_SOCK or ForwardAgent path), never ours,
        and only a master running with ForwardAgent asks the server; one without drops
        the flag silently (the protocol has no reply to say so).  OpenSSH's sshd keeps one
        forwarded agent per connection, so once any session on the master's connection
        has it, later sessions there see SSH_AUTH_SOCK whether they asked or not.
        SSHError once started.
        """
        self._spec.request_agent()

    async def start(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` without waiting for it."""
        await self._launch(command, False, timeout)

    async def shell(self, timeout: float | None = None) -> None:
        """Start the user's login shell."""
        await self._launch("", False, timeout)

    async def request_subsystem(self, name: str, timeout: float | None = None) -> None:
        """Start a subsystem such as "sftp"."""
        await self._launch(name, True, timeout)

    async def _launch(self, command: str | bytes, subsystem: bool,
                      timeout: float | None) -> None:
        spec = self._spec
        spec.start()
        self._started = True
        control, pipes = self._control, self._pipes
        deadline = deadline_after(timeout if timeout is not None else self._mux.timeout)
        stdio: Stdio | None = None
        try:
            await self._connect(deadline)
            pid = await control.request(control.proto.alive_check(), deadline, "the alive check")
            assert isinstance(pid, mp.AliveReported)
            self._mux_pid = pid.pid
            stdio = make_stdio(spec)
            pipes.attach(stdio)
            if stdio.pty:
                self._pty_fd = stdio.stdin
            rid = spec.request(control.proto, command, subsystem, stdio)
            await control.flush(deadline)  # the master reads the descriptors right after
            await control.send_fds(stdio.to_pass, deadline)
            event = await control.reply(rid, deadline, "the new session")
            assert isinstance(event, mp.SessionOpened)
            if stdio.pty:
                tty.make_raw(stdio.theirs[0])
        except BaseException:
            pipes.discard()
            self._channel.on_close()
            raise
        finally:
            if stdio is not None:
                stdio.close_theirs()
        self._channel.id = event.session_id
        self._channel.opened = True
        pipes.start(self._channel)

    async def signal(self, name: str, timeout: float | None = None) -> None:
        """Not possible through a master: raises RequestDeniedError."""
        raise RequestDeniedError("the ControlMaster protocol cannot send signals")

    async def window_change(self, height: int, width: int, timeout: float | None = None) -> None:
        """Resize the pty: set the local pty's size and tell the master (SIGWINCH)."""
        fds.resize(self._pty_fd, self._mux_pid, height, width, self._mux.path)

    async def close(self, timeout: float | None = None) -> None:
        """Hang up this session's control connection; the master closes the channel."""
        if not self._started:
            self._pipes.discard()
            self._channel.on_close()
            return
        self._channel.close()

    async def __aenter__(self) -> MuxSession:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
