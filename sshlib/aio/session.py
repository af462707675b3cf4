"""Sessions on asyncio: the sync Session's API with ``await``.

The channel opens on first use: ``async with client.new_session() as s``,
``s = await client.new_session()``, or simply the first request.  Request
encoding, exit-status mapping and the output collectors are shared with
sshlib.sync through sshlib.driver and sshlib.protocol.session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any

from ..channelstate import OutputCollector
from ..errors import ChannelClosedError, RequestDeniedError, SSHError, Timeout
from ..protocol import session as req
from .channel import AioChannelLink, AioSessionChannel, deadline_after


class ChannelReader:
    """stdout or stderr of a session; ``async for line in s.stdout`` iterates lines."""

    def __init__(self, session: Session, index: int) -> None:
        self._session = session
        self._index = index

    async def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        """Up to `size` bytes as soon as some are available; all until EOF if size < 0.

        Returns b"" at end of stream.
        """
        if size == 0:
            return b""
        channel = await self._session._open()
        return await channel.read(self._index, size, timeout)

    async def readline(self, timeout: float | None = None) -> bytes:
        """One line including its newline (or what is left at EOF; at most 1 MiB).

        On Timeout the partial line stays buffered: the next call returns all of it.
        """
        channel = await self._session._open()
        return await channel.readline(self._index, timeout)

    async def readexactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly `size` bytes; fewer only at EOF; on Timeout nothing read is lost."""
        channel = await self._session._open()
        return await channel.readexactly(self._index, size, timeout)

    async def lines(self, timeout: float | None = None) -> AsyncIterator[bytes]:
        """Iterate lines until EOF; each line must arrive within `timeout` (Timeout)."""
        while True:
            line = await self.readline(timeout)
            if not line:
                return
            yield line

    def __aiter__(self) -> ChannelReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class ChannelWriter:
    """stdin of a session; close() sends EOF."""

    def __init__(self, session: Session) -> None:
        self._session = session

    async def write(self, data: bytes | bytearray | memoryview,
                    timeout: float | None = None) -> int:
        """Send all of `data`, waiting for window and transport buffer; returns len(data)."""
        channel = await self._session._open()
        await channel.write(data, False, timeout)
        return len(data)

    async def writelines(self, parts: Iterable[bytes | bytearray | memoryview],
                         timeout: float | None = None, flush: bool = True) -> None:
        """Send the parts in order as one write (see sshlib.sync's writelines); `timeout`
        bounds the whole call.  With `flush` False what fits the window waits in the
        core for the next flush() or write (many small messages in one send)."""
        channel = await self._session._open()
        loop = asyncio.get_running_loop()
        deadline = deadline_after(timeout)
        for part in parts:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            await channel.write(part, False, left, flush=False)
        if flush:
            await channel.flush(deadline)

    async def flush(self, timeout: float | None = None) -> None:
        """Send what writelines(flush=False) queued; Timeout if back-pressure outlasts
        `timeout`."""
        channel = await self._session._open()
        await channel.flush(deadline_after(timeout))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the transport buffer is below its high-water mark (write() already does).

        Timeout after `timeout` seconds when the peer is not reading.
        """
        await self._session.link.drain(deadline_after(timeout))

    async def close(self, timeout: float | None = None) -> None:
        """Send EOF: the remote program sees end of input; Timeout after `timeout`."""
        channel = await self._session._open()
        channel.send_eof()
        await self._session.link.drain(deadline_after(timeout))


class Session:
    """A remote program (command, shell or subsystem) on one channel."""

    def __init__(self, link: AioChannelLink, open_timeout: float | None = None) -> None:
        self.link = link
        self._open_timeout = open_timeout
        self._channel = AioSessionChannel(link, "session")
        self.stdin = ChannelWriter(self)
        self.stdout = ChannelReader(self, 0)
        self.stderr = ChannelReader(self, 1)
        self._started = False

    async def _open(self, timeout: float | None = None) -> AioSessionChannel:
        channel = self._channel
        if channel.opened:
            return channel
        if channel.id < 0 and not channel.closed:
            self.link.open_channel(channel)
            self.link.flush()
        await channel.wait_open(self._open_timeout if timeout is None else timeout)
        return channel

    def __await__(self) -> Generator[Any, None, Session]:
        return self._opened().__await__()

    async def _opened(self) -> Session:
        await self._open()
        return self

    # --- requests before start ------------------------------------------------------
    async def _request(self, name: str, payload: bytes, timeout: float | None) -> None:
        channel = await self._open(timeout)
        if not await channel.request(name, payload, True, timeout):
            raise RequestDeniedError(f"server refused the {name!r} request")

    async def request_pty(self, term: str = "xterm", height: int = 24, width: int = 80,
                          modes: Mapping[str | int, int] | None = None,
                          timeout: float | None = None) -> None:
        """Ask for a pseudo-terminal; modes maps names like "ECHO" (or opcodes) to values."""
        await self._request("pty-req", req.pty_request(term, height, width, modes), timeout)

    async def setenv(self, name: str, value: str, timeout: float | None = None) -> None:
        """Set an environment variable (the server must allow it, e.g. sshd's AcceptEnv)."""
        await self._request("env", req.env(name, value), timeout)

    async def request_agent_forwarding(self, timeout: float | None = None) -> None:
        """Ask the server to forward its agent socket to us (see Client.forward_agent)."""
        await self._request("auth-agent-req@openssh.com", b"", timeout)

    async def _start(self, name: str, payload: bytes, timeout: float | None) -> None:
        if self._started:
            raise SSHError("session already started; use a new session per command")
        self._started = True
        try:
            await self._request(name, payload, timeout)
        except ChannelClosedError:
            # Some servers close the channel before replying (or never reply): a
            # program that reported how it ended did run.
            if not self._channel.exited():
                raise

    async def start(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` without waiting for it; read stdout/stderr, then wait()."""
        await self._start("exec", req.exec_(command), timeout)

    async def shell(self, timeout: float | None = None) -> None:
        """Start the user's login shell."""
        await self._start("shell", b"", timeout)

    async def request_subsystem(self, name: str, timeout: float | None = None) -> None:
        """Start a subsystem such as "sftp"."""
        await self._start("subsystem", req.subsystem(name), timeout)

    # --- while running -----------------------------------------------------------------
    async def signal(self, name: str, timeout: float | None = None) -> None:
        """Send a signal ("TERM", "INT", "KILL", ...; "SIG" prefix optional).

        Timeout if it cannot be sent within `timeout` (transport back-pressure).
        """
        channel = await self._open(timeout)
        await channel.request("signal", req.signal(name), False, timeout)

    async def set_window_size(self, size: int, timeout: float | None = None) -> None:
        """Let the server send up to `size` bytes of output ahead of what was read (the
        receive window; ClientConfig.window_size until then).  It only grows.  Bigger
        windows keep bulk downloads flowing over long round trips, and up to `size`
        unread bytes may then be buffered for this session.  Timeout if the
        WINDOW_ADJUST cannot be sent within `timeout`.
        """
        channel = await self._open(timeout)
        channel.set_window_size(size)
        await self.link.drain(deadline_after(timeout))

    async def window_change(self, height: int, width: int, timeout: float | None = None) -> None:
        """Tell the remote pty its new size; Timeout if it cannot be sent in time."""
        channel = await self._open(timeout)
        await channel.request("window-change", req.window_change(height, width), False,
                              timeout)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the remote program to exit; raise ExitError unless it exited 0.

        Output nobody reads holds back the window: read stdout/stderr first, or
        use output()/run(), when a command may print more than the window.
        """
        channel = await self._open()
        await channel.wait_closed(timeout)
        channel.raise_for_exit()

    @property
    def exit_status(self) -> int | None:
        """The remote program's exit status once it reported one; None before (or if it died by a
        signal).

        Read it after `wait()` returned or raised ExitError; reading never blocks.
        """
        return self._channel.exit_status

    @property
    def exit_signal(self) -> str | None:
        """The signal name ("TERM", "KILL", ...) if the program died by a signal, else None."""
        return self._channel.exit_signal[0] if self._channel.exit_signal else None

    # --- one-shot helpers ---------------------------------------------------------------
    async def collect(self, command: str | bytes, keep_stdout: bool = True, merge: bool = False,
                      timeout: float | None = None) -> OutputCollector:
        """Start `command`, read both streams until the channel closes; don't raise on exit."""
        deadline = deadline_after(timeout)
        collector = OutputCollector(keep_stdout, merge)
        if merge:
            self._channel.interleave = []  # keep stdout and stderr in arrival order
        await self.start(command, timeout)
        await self._channel.drain(collector, deadline)
        return collector

    async def _collect(self, command: str | bytes, keep_stdout: bool, merge: bool,
                       timeout: float | None) -> bytes:
        collector = await self.collect(command, keep_stdout, merge, timeout)
        self._channel.raise_for_exit(collector.stderr_tail)
        return collector.stdout

    async def run(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` to completion, discarding stdout (Go's Session.Run)."""
        await self._collect(command, False, False, timeout)

    async def output(self, command: str | bytes, timeout: float | None = None) -> bytes:
        """Run `command` and return its stdout; ExitError (with .stderr) on failure."""
        return await self._collect(command, True, False, timeout)

    async def combined_output(self, command: str | bytes, timeout: float | None = None) -> bytes:
        """Run `command` and return stdout and stderr interleaved as they arrived."""
        return await self._collect(command, True, True, timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Close the channel (the server's close confirmation arrives later).

        Timeout if CLOSE cannot be handed to the transport within `timeout`.
        """
        self._channel.close()
        try:
            await self.link.drain(deadline_after(timeout))
        except Timeout:
            raise
        except SSHError:
            pass  # the connection is gone: the channel is closed with it

    async def __aenter__(self) -> Session:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._channel.close()
