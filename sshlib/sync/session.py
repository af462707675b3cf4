"""Sessions (Go's ssh.Session): exec, shell, subsystem, pty, env, signals.

`output()`, `combined_output()` and `run()` read stdout and stderr together
while they wait, so a chatty stderr can never stall a command whose stdout is
being read (the window is shared by both streams).  With `start()` the
application reads `stdout`/`stderr` itself; data it leaves unread holds back
the window, as the SSH flow control intends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType

from ..channelstate import STDERR_KEEP, OutputCollector
from ..errors import ChannelClosedError, RequestDeniedError, SSHError
from ..protocol import session as req
from .channel import SessionChannelIO, deadline_after

__all__ = ["ChannelReader", "ChannelWriter", "Session", "STDERR_KEEP"]


class ChannelReader:
    """stdout or stderr of a session: read(n) returns as soon as any data is there."""

    def __init__(self, channel: SessionChannelIO, index: int) -> None:
        self._channel = channel
        self._index = index

    def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        """Up to `size` bytes as soon as some are available; all until EOF if size < 0.

        Returns b"" at end of stream.
        """
        if size == 0:
            return b""
        return self._channel.read(self._index, size, timeout)

    def readline(self, timeout: float | None = None) -> bytes:
        """One line including its newline (or what is left at EOF; at most 1 MiB).

        On Timeout the partial line stays buffered: the next call returns all of it.
        """
        return self._channel.readline(self._index, timeout)

    def readexactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly `size` bytes (fewer only at EOF); on Timeout nothing read is lost."""
        return self._channel.readexactly(self._index, size, timeout)

    def lines(self, timeout: float | None = None) -> Iterator[bytes]:
        """Iterate lines until EOF; each line must arrive within `timeout` (Timeout)."""
        while True:
            line = self.readline(timeout)
            if not line:
                return
            yield line

    def __iter__(self) -> Iterator[bytes]:
        """Lines until EOF, without a timeout (use lines(timeout=) for one)."""
        return self.lines()


class ChannelWriter:
    """stdin of a session; close() sends EOF."""

    def __init__(self, channel: SessionChannelIO) -> None:
        self._channel = channel

    def write(self, data: bytes | bytearray | memoryview, timeout: float | None = None) -> int:
        """Send all of `data`, waiting for window as needed; returns len(data).

        Timeout when the window or TCP back-pressure outlast `timeout`; bytes
        already handed over stay queued in order.
        """
        self._channel.write(data, False, timeout)
        return len(data)

    def writelines(self, parts: Iterable[bytes | bytearray | memoryview],
                   timeout: float | None = None, flush: bool = True) -> None:
        """Send the parts in order as one write, sending once at the end (a message header
        and its payload leave together, without joining them first).

        With `flush` False what fits the window is queued and goes out with the next
        flush() or write (many small messages in one send); it is never held back
        while waiting for window.  Timeout as for write(): after it, bytes already
        handed over stay queued in order.
        """
        self._channel.writelines(parts, False, timeout, flush)

    def flush(self, timeout: float | None = None) -> None:
        """Send what writelines(flush=False) queued (write() sends at once); Timeout after
        `timeout` if TCP back-pressure holds it up (the bytes stay queued, in order)."""
        self._channel.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Send EOF (the remote program sees end of input); Timeout after `timeout`."""
        self._channel.send_eof(timeout)


class Session:
    """A remote program (command, shell or subsystem) on one channel."""

    def __init__(self, channel: SessionChannelIO) -> None:
        self._channel = channel
        self.stdin = ChannelWriter(channel)
        self.stdout = ChannelReader(channel, 0)
        self.stderr = ChannelReader(channel, 1)
        self._started = False

    # --- requests before start ------------------------------------------------------
    def _request(self, name: str, payload: bytes, timeout: float | None) -> None:
        if not self._channel.request(name, payload, True, timeout):
            raise RequestDeniedError(f"server refused the {name!r} request")

    def request_pty(self, term: str = "xterm", height: int = 24, width: int = 80,
                    modes: Mapping[str | int, int] | None = None,
                    timeout: float | None = None) -> None:
        """Ask for a pseudo-terminal; modes maps names like "ECHO" (or opcodes) to values."""
        self._request("pty-req", req.pty_request(term, height, width, modes), timeout)

    def setenv(self, name: str, value: str, timeout: float | None = None) -> None:
        """Set an environment variable (the server must allow it, e.g. sshd's AcceptEnv)."""
        self._request("env", req.env(name, value), timeout)

    def request_agent_forwarding(self, timeout: float | None = None) -> None:
        """Ask the server to forward its agent socket to us (see Client.forward_agent)."""
        self._request("auth-agent-req@openssh.com", b"", timeout)

    def _claim_start(self) -> None:
        if self._started:
            raise SSHError("session already started; use a new session per command")
        self._started = True

    def _start(self, name: str, payload: bytes, timeout: float | None) -> None:
        self._claim_start()
        try:
            self._request(name, payload, timeout)
        except ChannelClosedError:
            # Some servers close the channel before replying (or never reply): a
            # program that reported how it ended did run.
            if not self._channel.exited():
                raise

    def start(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` without waiting for it; read stdout/stderr, then wait()."""
        self._start("exec", req.exec_(command), timeout)

    def shell(self, timeout: float | None = None) -> None:
        """Start the user's login shell."""
        self._start("shell", b"", timeout)

    def request_subsystem(self, name: str, timeout: float | None = None) -> None:
        """Start a subsystem such as "sftp"."""
        self._start("subsystem", req.subsystem(name), timeout)

    # --- while running -----------------------------------------------------------------
    def signal(self, name: str, timeout: float | None = None) -> None:
        """Send a signal ("TERM", "INT", "KILL", ...; "SIG" prefix optional).

        Timeout if it cannot be sent within `timeout` (TCP back-pressure).
        """
        self._channel.request("signal", req.signal(name), False, timeout)

    def set_window_size(self, size: int, timeout: float | None = None) -> None:
        """Let the server send up to `size` bytes of output ahead of what was read (the
        receive window; ClientConfig.window_size until then).  It only grows.  Bigger
        windows keep bulk downloads flowing over long round trips, and up to `size`
        unread bytes may then be buffered for this session.  Timeout if the
        WINDOW_ADJUST cannot be sent within `timeout`.
        """
        self._channel.set_window_size(size, timeout)

    def window_change(self, height: int, width: int, timeout: float | None = None) -> None:
        """Tell the remote pty its new size; Timeout if it cannot be sent in time."""
        self._channel.request("window-change", req.window_change(height, width), False,
                              timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the remote program to exit; raise ExitError unless it exited 0.

        Output nobody reads holds back the window: read stdout/stderr first, or
        use output()/run(), when a command may print more than the window.
        """
        self._channel.wait_closed(timeout)
        self._raise_for_exit()

    def _raise_for_exit(self, stderr: bytes = b"") -> None:
        self._channel.raise_for_exit(stderr)

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

    # --- one-shot helpers -------------------------------------------------------------------
    def _collect(self, command: str | bytes, keep_stdout: bool, merge: bool,
                 timeout: float | None) -> bytes:
        deadline = deadline_after(timeout)
        collector = OutputCollector(keep_stdout, merge)
        channel = self._channel
        if merge:
            channel.interleave = []  # keep stdout and stderr in arrival order
        self._claim_start()
        # The exec reply is not waited for on its own: the output is collected while it
        # comes (one thread wake-up fewer per command); a refusal still ends the wait.
        ticket = channel.send_request("exec", req.exec_(command), True, deadline)
        channel.drain(collector, deadline,
                      lambda: channel.request_results.get(ticket, True) is False)
        with channel.cond:
            settled = channel.reply_settled(ticket)
        if settled and channel.request_results.get(ticket) is False:
            raise RequestDeniedError("server refused the 'exec' request")
        channel.request_results.pop(ticket, None)
        self._raise_for_exit(collector.stderr_tail)
        return collector.stdout

    def run(self, command: str | bytes, timeout: float | None = None) -> None:
        """Run `command` to completion, discarding stdout (Go's Session.Run)."""
        self._collect(command, False, False, timeout)

    def output(self, command: str | bytes, timeout: float | None = None) -> bytes:
        """Run `command` and return its stdout; ExitError (with .stderr) on failure."""
        return self._collect(command, True, False, timeout)

    def combined_output(self, command: str | bytes, timeout: float | None = None) -> bytes:
        """Run `command` and return stdout and stderr interleaved as they arrived."""
        return self._collect(command, True, True, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Close the channel; Timeout if CLOSE cannot be sent within `timeout`."""
        self._channel.close(timeout)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
