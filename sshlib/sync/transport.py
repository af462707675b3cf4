"""The byte streams a threaded Client runs over: a socket, an sshlib Stream, a process.

A `Transport` gives the client three things: `receive(timeout)` for the
reader (None when nothing came in time, b"" at end of stream),
`send(view, deadline)` that writes what it can before `deadline` and says
how much, and `close()`.  `SocketTransport` keeps the fast path (bulk reads
with SO_RCVLOWAT, `Receiver`); `ChannelTransport` runs SSH inside a channel
of another connection (a jump host, Go's NewClientConn over Client.Dial);
`ProcessTransport` runs a ProxyCommand with a socketpair as its stdin and
stdout (POSIX), so it is a socket to us.
"""

from __future__ import annotations

import logging
import selectors
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Protocol

from .. import proxyproc
from ..errors import ChannelClosedError, ConnectionLost, SSHError, Timeout
from .receiver import BULK_LOWAT, RECV_SIZE, Receiver

if TYPE_CHECKING:
    from .channel import ChannelIO

log = logging.getLogger("sshlib.client")


class Transport(Protocol):
    """What a threaded Client runs over (a structural Protocol: any object with these methods).

    The reader thread calls `receive()`; senders call `send()` with the client's
    send lock held, so one of each runs at a time.  `shutdown()` and `close()` come
    from the reader's exit and from Client.close(), possibly both and while the
    reader is still in `receive()`: both must be idempotent and thread-safe.
    """
    def receive(self, timeout: float | None) -> bytes | None:
        """Next bytes; b"" at end of stream; None on timeout; OSError/SSHError on failure."""

    def send(self, view: memoryview, deadline: float | None) -> int:
        """Write some of `view`, waiting for writability until `deadline`; Timeout if none."""

    def start_streaming(self, lowat: int) -> None:
        """Handshake done: switch to the bulk-read path where there is one."""

    def shutdown(self) -> None:
        """Tell the peer we are done (half-close) without releasing resources."""

    def close(self) -> None:
        """Release the stream and what it holds (socket, child process, channel)."""


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class SocketTransport:
    """A connected stream socket, non-blocking, waited on with selectors (fds > 1023 work)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self._receiver = Receiver(sock, 0)
        self._writable = selectors.DefaultSelector()
        self._writable.register(sock.fileno(), selectors.EVENT_WRITE)

    def start_streaming(self, lowat: int) -> None:
        """Switch the reader to bulk reads (SO_RCVLOWAT, at most `lowat` bytes) after the handshake.
        """
        self._receiver.close()
        self._receiver = Receiver(self.sock, min(BULK_LOWAT, lowat))

    def receive(self, timeout: float | None) -> bytes | None:
        """Next bytes (b"" at end of stream) or None after `timeout`; OSError if the socket fails.

        `timeout` None waits until the socket is readable.
        """
        if timeout is None:
            while not self._receiver.wait(None):
                pass
            timeout = 0.0
        return self._receiver.receive(timeout)

    def send(self, view: memoryview, deadline: float | None) -> int:
        """Send some of `view` (returns the count), waiting for writability up to `deadline`.

        Timeout (nothing sent) once `deadline` (time.monotonic()) passed; OSError if the socket
        fails.
        """
        while True:
            try:
                return self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                pass
            left = _left(deadline)
            if left is not None and left <= 0:
                raise Timeout("timed out sending: the peer is not reading")
            self._writable.select(left)

    def shutdown(self) -> None:
        """Shut the socket down both ways (errors ignored); the file descriptor stays open."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Close the selectors and the socket."""
        self._receiver.close()
        self._writable.close()
        self.sock.close()


class ProcessTransport(SocketTransport):
    """A ProxyCommand: the child's stdin and stdout are one end of a socketpair."""

    def __init__(self, command: str) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(command, shell=True, stdin=theirs.fileno(),
                                            stdout=theirs.fileno(),
                                            close_fds=True, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise ConnectionLost(f"cannot start proxy command {command!r}: {exc}") from exc
        finally:
            theirs.close()
        self.command = command
        super().__init__(ours)

    def close(self) -> None:
        """Close our end, then end the ProxyCommand: it has 0.2 s to exit by itself, then its
        process group gets SIGTERM and 0.5 s later SIGKILL (sshlib.proxyproc).

        So it returns within about 0.7 s even when the command ignores end of file and
        SIGTERM; the command is reaped.
        """
        super().close()
        process = self.process
        for how, wait in proxyproc.STEPS:
            if how is not None:
                if process.poll() is not None:
                    return
                log.debug("proxy command %r (pid %d) still runs: %s", self.command,
                          process.pid, how)
                proxyproc.send(process, how)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue
        log.warning("proxy command %r (pid %d) did not exit even after SIGKILL", self.command,
                    process.pid)


class ChannelTransport:
    """SSH over a channel of another connection (an sshlib Stream's channel)."""

    def __init__(self, channel: ChannelIO) -> None:
        self.channel = channel

    def start_streaming(self, lowat: int) -> None:
        """Nothing to switch: a channel is read in whatever chunks the outer connection delivers."""
        pass

    def receive(self, timeout: float | None) -> bytes | None:
        """Next bytes from the channel; b"" at EOF or once closed; None after `timeout`; SSHError if
        the
        outer connection failed.
        """
        try:
            return self.channel.read(0, RECV_SIZE, timeout)
        except Timeout:
            return None
        except ChannelClosedError:
            return b""

    def send(self, view: memoryview, deadline: float | None) -> int:
        """Send some of `view` through the channel, waiting for window up to `deadline`.

        Timeout when the deadline passes; ConnectionLost when the channel (or the outer connection)
        failed.
        """
        try:
            return self.channel.write_some(view, False, deadline)
        except SSHError as exc:
            if isinstance(exc, Timeout):
                raise
            raise ConnectionLost(f"the tunnel closed: {exc}") from exc

    def shutdown(self) -> None:
        """Send EOF on the channel (waits at most 5 s; errors ignored)."""
        try:
            self.channel.send_eof(timeout=5)
        except SSHError:
            pass

    def close(self) -> None:
        """Close the channel of the outer connection (waits at most 5 s to send; errors ignored)."""
        try:
            self.channel.close(timeout=5)
        except SSHError:
            pass
