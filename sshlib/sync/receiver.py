"""How the reader thread reads its socket: fewer, larger reads while data streams in.

Every wake-up of the reader thread costs a poll, a read, a lock round
trip and a hand-off to the thread that consumes the data. When the server
streams (a download), that happened once per 32 KiB packet, and the
context switches cost more CPU than decrypting (docs/performance.md).

While a bulk transfer is under way (a read returned at least a full
packet's worth), SO_RCVLOWAT asks the kernel to report the socket readable
only once `lowat` bytes wait; a short poll timeout then picks up the
rest below that mark, so the tail of a burst waits at most BULK_WAIT and a
small message after a lull goes back to being read at once. Linux TCP
only; elsewhere (and for socketpairs and Unix sockets) it is plain
poll + recv.  Waiting uses `selectors` (epoll/poll), so descriptors above
1023 work (select.select refuses them).
"""

from __future__ import annotations

import os
import selectors
import socket
import sys

__all__ = ["Receiver", "RECV_SIZE", "BULK_WAIT", "BULK_TRIGGER", "BULK_LOWAT"]

RECV_SIZE = 256 * 1024
#: A read at least this big means the peer is streaming: switch to bulk reads.
BULK_TRIGGER = 32 * 1024
#: How many bytes to let gather before waking in bulk mode (capped by a quarter window).
BULK_LOWAT = 256 * 1024
#: The longest a burst's last bytes wait below the low-water mark, in seconds.
BULK_WAIT = 0.002


class Receiver:
    """Reads one connected socket for the reader thread (the socket is non-blocking)."""

    def __init__(self, sock: socket.socket, lowat: int = BULK_LOWAT) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.lowat = lowat
        self.bulk = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.fd, selectors.EVENT_READ)
        self.enabled = (sys.platform == "linux" and lowat > BULK_TRIGGER
                        and sock.family in (socket.AF_INET, socket.AF_INET6)
                        and sock.type == socket.SOCK_STREAM)

    def wait(self, timeout: float | None) -> bool:
        """Wait until the socket is readable; False on timeout."""
        return bool(self._selector.select(timeout))

    def receive(self, idle_timeout: float) -> bytes | None:
        """The next bytes (b"" at end of stream), or None if nothing came in time.

        OSError when the connection fails.
        """
        if not self.enabled:
            if not self.wait(idle_timeout):
                return None
            try:
                return self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return None
        if not self.wait(BULK_WAIT if self.bulk else idle_timeout):
            if not self.bulk:
                return None
            self._set_bulk(False)  # the stream paused: read what is left below the mark
        try:
            data = os.read(self.fd, RECV_SIZE)
        except BlockingIOError:
            return None
        if not self.bulk and len(data) >= BULK_TRIGGER:
            self._set_bulk(True)
        return data

    def close(self) -> None:
        self._selector.close()

    def _set_bulk(self, on: bool) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self.lowat if on else 1)
        except OSError:  # refused by this kernel or socket: stay with plain reads
            self.enabled = False
            on = False
        self.bulk = on
