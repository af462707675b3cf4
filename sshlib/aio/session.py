"""Sessions on asyncio: the sync Session's API with ``await``.

The channel opens on first use: ``async with client.new_session() as s``,
``s = await client.new_session()``, or simply the first request.  Request
encoding, exit-status mapping and the output collectors are shared with
sshlib.sync through sshlib.driver and sshlib.protocol.session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..driver import OutputCollector
from ..errors import RequestDeniedError, SSHError
from ..protocol import session as req
from .channel import AioChannel, deadline_after

if TYPE_CHECKING:
    from .client import Client


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
        """One line including its newline (or what is left at EOF)."""
        channel = await self._session._open()
        return await channel.readline(self._index, timeout)

    async def readexactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly `size` bytes; fewer only at EOF."""
        deadline = deadline_after(timeout)
        loop = asyncio.get_running_loop()
        parts: list[bytes] = []
        got = 0
        while got < size:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            chunk = await self.read(size - got, left)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

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

    async def drain(self) -> None:
        """Wait until the transport buffer is below its high-water mark (write() already does)."""
        await self._session._client._drain()

    async def close(self) -> None:
        """Send EOF: the remote program sees end of input."""
        channel = await self._session._open()
        channel.send_eof()
        await self._session._client._drain()


class Session:
    """A remote program (command, shell or subsystem) on one channel."""

    def __init__(self, client: Client, open_timeout: float | None = None) -> None:
        self._client = client
        self._open_timeout = open_timeout
        self._channel = AioChannel(client, "session")
        self.stdin = ChannelWriter(self)
        self.stdout = ChannelReader(self, 0)
        self.stderr = ChannelReader(self, 1)
        self._started = False

    async def _open(self, timeout: float | None = None) -> AioChannel:
        channel = self._channel
        if channel.opened:
            return channel
        if channel.id < 0 and not channel.closed:
            self._client._driver.open_channel(channel)
            self._client._flush()
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
        await self._request(name, payload, timeout)

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
    async def signal(self, name: str) -> None:
        """Send a signal ("TERM", "INT", "KILL", ...; "SIG" prefix optional)."""
        channel = await self._open()
        await channel.request("signal", req.signal(name), False, None)

    async def window_change(self, height: int, width: int) -> None:
        channel = await self._open()
        await channel.request("window-change", req.window_change(height, width), False, None)

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
        return self._channel.exit_status

    @property
    def exit_signal(self) -> str | None:
        return self._channel.exit_signal[0] if self._channel.exit_signal else None

    # --- one-shot helpers ---------------------------------------------------------------
    async def collect(self, command: str | bytes, keep_stdout: bool = True, merge: bool = False,
                      timeout: float | None = None) -> OutputCollector:
        """Start `command`, read both streams until the channel closes; don't raise on exit."""
        deadline = deadline_after(timeout)
        await self.start(command, timeout)
        collector = OutputCollector(keep_stdout, merge)
        await self._channel.drain(collector.feed, deadline)
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

    async def close(self) -> None:
        """Close the channel (the server's close confirmation arrives later)."""
        self._channel.close()

    async def __aenter__(self) -> Session:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._channel.close()
