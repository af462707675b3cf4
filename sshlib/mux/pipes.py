"""A mux session or stdio forward as a channel, for threads: one pump thread per session.

The master does the SSH work; we hold the other ends of the descriptors we
passed it plus the session's own control connection.  `Pipes` is the
`ChannelLink` under a `ChannelIO`, so sshlib.Session and sshlib.Stream work
on it unchanged: the pump thread reads stdout/stderr into the channel's
buffers (pausing while more than `BUFFER_LIMIT` bytes wait unread, so memory
stays bounded as with a real window) and turns the master's EXIT_MESSAGE and
its closing of the control socket into exit status and close.  Writes
(stdin) are non-blocking; `flush()` waits for our end to drain, honouring
the deadline.
"""

from __future__ import annotations

import logging
import selectors
import socket
import sys
import threading
from typing import TYPE_CHECKING

from ..channelstate import StreamChannel
from ..errors import MuxConnectError, MuxProtocolError, SSHError
from ..sync.channel import remaining
from .control import ControlConnection
from .fds import BUFFER_LIMIT, FdLink

if TYPE_CHECKING:
    from ..sync.channel import ChannelIO

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.mux")

__all__ = ["Pipes"]


class Pipes(FdLink):
    """Our ends of one session's descriptors, its control connection, and the pump thread."""

    def __init__(self, control: ControlConnection) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.control = control
        self.path = control.path
        self.channel: ChannelIO | None = None
        self._stopping = False
        self._finished = False
        self._paused = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None

    # --- the pump ---------------------------------------------------------------------------
    def start(self, channel: ChannelIO) -> None:
        """Start the pump thread for `channel`, once, after SESSION_OPENED.

        It applies what arrived behind that reply, then reads the outputs and the control
        socket until the session ends; then it closes the channel (with the error, if reading
        failed) and every descriptor.
        """
        self.channel = channel
        self.control.sock.setblocking(False)
        self._thread = threading.Thread(target=self._pump, name="sshlib-mux-pump", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _pump(self) -> None:
        channel = self.channel
        assert channel is not None
        error: SSHError | None = None
        open_outputs = dict(enumerate(self.outputs))
        with self.lock:  # what came in behind the reply the opener waited for
            control_open = self.apply(channel, self.control.inbox.drain())
        try:
            with selectors.DefaultSelector() as sel:
                while (control_open or open_outputs) and not self._stopping:
                    self._register(sel, open_outputs, control_open)
                    for key, _ in sel.select():
                        if key.fileobj is self._wake_r:
                            self._wake_r.recv(4096)
                        elif key.data == "control":
                            control_open = self._on_control(channel)
                        else:
                            self._on_output(channel, key.data, open_outputs)
                    if not open_outputs:
                        with self.lock:
                            if not channel.eof:
                                channel.on_eof()
        except MuxProtocolError as exc:
            error = MuxProtocolError(exc.reason, path=self.control.path)
        except Exception as exc:  # never die silently: the waiters get the error
            log.exception("mux pump failed")
            error = MuxConnectError(f"reading the session failed: {exc}",
                                    path=self.control.path)
        finally:
            with self.lock:
                self._finished = True
                channel.on_close(error)
            self._close_fds()

    def _register(self, sel: selectors.BaseSelector, open_outputs: dict[int, int],
                  control_open: bool) -> None:
        channel = self.channel
        assert channel is not None
        wanted: dict[int, object] = {self._wake_r.fileno(): "wake"}
        if control_open:
            wanted[self.control.sock.fileno()] = "control"
        with self.lock:
            self._paused = False
            for index, fd in open_outputs.items():
                if channel.buffered[index] < BUFFER_LIMIT:
                    wanted[fd] = index
                else:
                    self._paused = True
        for key in list(sel.get_map().values()):
            if key.fd not in wanted:
                sel.unregister(key.fileobj)
        for fd, data in wanted.items():
            if fd not in sel.get_map():
                sel.register(self._wake_r if data == "wake" else fd, selectors.EVENT_READ, data)

    def _on_control(self, channel: ChannelIO) -> bool:
        """Master messages on a running session; False once it closed the connection."""
        try:
            data = self.control.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        events = self.control.proto.receive_data(data)
        with self.lock:
            return self.apply(channel, events)

    def _on_output(self, channel: ChannelIO, index: int, open_outputs: dict[int, int]) -> None:
        data = self.read_output(open_outputs[index])
        if data is None:
            return
        if not data:
            del open_outputs[index]
            return
        with self.lock:
            channel.on_data(data, index == 1)

    def discard(self) -> None:
        """Release everything of a session that never started its pump."""
        if self._thread is None:
            self._finished = True
            self._close_fds()

    def _close_fds(self) -> None:
        self.close_fds()
        self.control.close()
        self._wake_r.close()
        self._wake_w.close()

    # --- ChannelLink (lock held) ----------------------------------------------------------------
    def consume(self, channel: StreamChannel, count: int) -> None:
        """ChannelLink.consume: wake the pump if it stopped reading with `BUFFER_LIMIT` bytes
        unread."""
        if self._paused:
            self._wake()

    def flush(self, deadline: float | None = None) -> None:
        """After a short write: wait until our stdin end takes data again (or Timeout)."""
        if not self.write_blocked:
            return
        sel = selectors.DefaultSelector()
        try:
            sel.register(self.stdin, selectors.EVENT_WRITE)
            while not sel.select(remaining(deadline, "the session's input to drain")):
                pass
        except (OSError, ValueError):  # closed underneath us: the next write says so
            pass
        finally:
            sel.close()
        self.write_blocked = False

    def close_channel(self, channel: StreamChannel) -> bool:
        """Hang up the control connection: the master then closes the SSH channel."""
        if self._finished or self._stopping:
            return False
        self._stopping = True
        self._wake()
        return True
