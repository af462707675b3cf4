"""``exec:COMMAND LINE``: a child process whose stdin/stdout is the raw agent stream.

This is how WSL2 reaches an agent on the Windows side (``npiperelay.exe -ei
-s //./pipe/openssh-ssh-agent``, ``socat - UNIX-CONNECT:...``, our own relay):
one process per connection, reaped when the stream closes.  When the relay
exits, the error says so, with its exit status and the end of its stderr.

Pipes cannot be waited on with select() on Windows, so one reader and one
writer thread per relay carry the data: the same code on every platform, and
every call still honours its timeout even if the relay stops reading.

The relay's stderr is a pipe too, drained by a third thread that keeps only
its last few KB for error messages: Windows Python (``python.exe`` started
from WSL2, or ``wine python.exe``) refuses to start when its stderr is a
regular file, and a pipe nobody reads would block a chatty relay.
"""

from __future__ import annotations

import logging
import os
import queue
import shlex
import subprocess
import sys
import threading

from ..errors import AgentConnectError, AgentTimeoutError
from .transport import MAX_IN_FLIGHT, BaseTransport, Deadline, seconds

__all__ = ["RelayTransport", "open_relay", "split_command"]

log = logging.getLogger("sshlib.agent")

_CHUNK = 65536
_STDERR_TAIL = 2000
#: How long close() lets the relay exit on its own after stdin closes, then after SIGTERM.
_GRACE = 1.0
#: After stdout ends, how long to wait for the exit status that explains it.
_EXIT_WAIT = 2.0


def split_command(command: str) -> list[str] | str:
    """POSIX: shell-like word splitting (no shell runs); Windows: the line as is."""
    if sys.platform == "win32":
        return command
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise AgentConnectError(f"cannot parse relay command: {exc}",
                                endpoint=f"exec:{command}") from None


class RelayTransport(BaseTransport):
    """The agent stream through a relay process's stdin and stdout (clients may pipeline)."""

    max_in_flight = MAX_IN_FLIGHT

    def __init__(self, process: subprocess.Popen[bytes], endpoint: str) -> None:
        super().__init__(endpoint)
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        self._stderr = process.stderr
        self._tail = bytearray()
        self._tail_lock = threading.Lock()
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._incoming = bytearray()
        self._eof = False
        self._read_error: OSError | None = None
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._writes: queue.Queue[tuple[bytes, threading.Event, list[BaseException]] | None] = (
            queue.Queue())
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"agent-relay-reader-{process.pid}")
        self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"agent-relay-writer-{process.pid}")
        self._drainer = threading.Thread(target=self._drain_stderr, daemon=True,
                                         name=f"agent-relay-stderr-{process.pid}")
        self._reader.start()
        self._writer.start()
        self._drainer.start()

    # --- threads ------------------------------------------------------------------------

    def _read_loop(self) -> None:
        # This thread alone closes stdout, once it has seen the end: closing a
        # descriptor another thread is blocked reading could let it read from
        # whatever file reuses the number.
        fd = self._stdout.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, _CHUNK)
                except OSError as exc:
                    with self._cond:
                        self._read_error = exc
                        self._eof = True
                        self._cond.notify_all()
                    return
                with self._cond:
                    if not chunk:
                        self._eof = True
                        self._cond.notify_all()
                        return
                    self._incoming += chunk
                    self._cond.notify_all()
        finally:
            self._stdout.close()

    def _drain_stderr(self) -> None:
        """Read the relay's stderr to its end, keeping the last `_STDERR_TAIL` bytes."""
        fd = self._stderr.fileno()
        try:
            while True:
                try:
                    chunk = os.read(fd, _CHUNK)
                except OSError:
                    return
                if not chunk:
                    return
                with self._tail_lock:
                    self._tail += chunk
                    if len(self._tail) > 2 * _STDERR_TAIL:
                        del self._tail[:-_STDERR_TAIL]
        finally:
            self._stderr.close()

    def _write_loop(self) -> None:
        while True:
            item = self._writes.get()
            if item is None:
                return
            data, done, errors = item
            try:
                view = memoryview(data)
                while view:
                    written = self._stdin.write(view)
                    view = view[written or 0:]
            except (OSError, ValueError) as exc:
                errors.append(exc)
            done.set()

    # --- diagnostics --------------------------------------------------------------------

    def _stderr_tail(self) -> str:
        # The process has exited: give the drainer a moment to read what it wrote
        # (a grandchild holding the pipe open must not delay the error).
        self._drainer.join(0.5)
        with self._tail_lock:
            text = bytes(self._tail[-_STDERR_TAIL:]).decode("utf-8", "replace").strip()
        return f": {text}" if text else ""

    @staticmethod
    def _exit_wait(deadline: Deadline) -> float:
        left = deadline.left()
        return _EXIT_WAIT if left is None else min(_EXIT_WAIT, left)

    def _exited_error(self, timeout: float) -> AgentConnectError | None:
        """If the relay has exited (waiting up to `timeout`), an error saying how."""
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        how = (f"was killed by signal {-status}" if status < 0
               else f"exited with status {status}")
        return AgentConnectError(f"relay process {how}{self._stderr_tail()}",
                                 endpoint=self._endpoint)

    # --- Transport ----------------------------------------------------------------------

    def send_all(self, data: bytes, timeout: float | None) -> None:
        deadline = Deadline(timeout)
        with self._send_lock:
            if self._closed:
                raise AgentConnectError("the connection is closed", endpoint=self._endpoint)
            done = threading.Event()
            errors: list[BaseException] = []
            self._writes.put((bytes(data), done, errors))
            if not done.wait(deadline.remaining(self._endpoint, "the relay to read")):
                raise AgentTimeoutError(f"timed out after {seconds(timeout)}: the relay process "
                                        f"does not read its input", endpoint=self._endpoint)
        if errors:
            exited = self._exited_error(self._exit_wait(deadline))
            if exited is not None:
                raise exited
            raise AgentConnectError(f"writing to the relay process failed: {errors[0]}",
                                    endpoint=self._endpoint)

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        deadline = Deadline(timeout)
        with self._cond:
            while not self._incoming and not self._eof:
                if self._closed:
                    return b""
                self._cond.wait(deadline.remaining(self._endpoint))
            if self._incoming:
                chunk = bytes(self._incoming[:max_bytes])
                del self._incoming[:max_bytes]
                return chunk
        if self._closed:
            return b""
        # End of the relay's stdout: say why if the process is gone.
        exited = self._exited_error(self._exit_wait(deadline))
        if exited is not None:
            raise exited
        if self._read_error is not None:
            raise AgentConnectError(f"reading from the relay process failed: "
                                    f"{self._read_error}", endpoint=self._endpoint)
        return b""

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._writes.put(None)
        try:
            self._stdin.close()  # a well-behaved relay exits at end of input
        except OSError:
            pass
        process = self.process
        try:
            process.wait(_GRACE)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.debug("agent %s: relay process %d ended with status %s", self._endpoint,
                  process.pid, process.returncode)
        self._reader.join(_GRACE)  # it closes stdout; a lingering grandchild may delay that
        self._drainer.join(_GRACE)  # likewise for stderr


def open_relay(command: str, timeout: float | None, endpoint: str) -> RelayTransport:
    """Start the relay; AgentConnectError if the command cannot run at all."""
    if not command.strip():
        raise AgentConnectError("exec: needs a command line", endpoint=endpoint)
    args = split_command(command)
    try:
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, bufsize=0, close_fds=True)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AgentConnectError(f"cannot start relay command {command!r}: {reason}",
                                endpoint=endpoint) from None
    log.debug("agent %s: started relay process %d", endpoint, process.pid)
    return RelayTransport(process, endpoint)
