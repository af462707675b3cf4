"""An order-keeping delay line between clients and a server (Unix socket or TCP).

    python -m benchmarks.delayline LISTEN_SOCK AGENT_SOCK --delay-ms 1
    python -m benchmarks.delayline 127.0.0.1:0 127.0.0.1:2222 --delay-ms 10

Every chunk read from either side is forwarded `delay` seconds after it
arrived, in the order it arrived, so the server sees the same byte stream,
only later: like a WSL2 relay, a forwarded agent or a bridge on the way (1 ms
each way, the agent benchmark), or a 20 ms round trip to another site (10 ms
each way, the SFTP RTT rows of benchmarks/run.py).  An address with a port
(HOST:PORT) is TCP, anything else a Unix socket path; a TCP listener on port
0 prints ``listening on HOST:PORT`` on stdout once it accepts connections.

Each direction of each connection is a reader thread, which receives up to
1 MiB at a time and stamps the chunk with its due time, and a writer thread,
which sends every chunk when it is due: the reader never waits for the
writer, so the line adds the delay and nothing else (it buffers what is in
flight, as a long link does).  Its own ceiling (bytes per second through it,
with the delay) comes from `ceiling()`; benchmarks/run.py reports it beside
the RTT rows.  Between an agent client and an agent it also counts agent
frames each way and keeps the peak number of requests a client had
unanswered (`peak_in_flight`), which shows whether a client pipelines.

Runs in threads of the caller (`DelayLine.start`) or as this module's main
(the benchmarks run it in a process of its own so that its CPU is not
charged to the client being measured).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

__all__ = ["DelayLine", "ceiling"]

#: Bytes taken from a socket per receive.
CHUNK = 1 << 20
_TCP = re.compile(r"(?P<host>[\w.\-]+):(?P<port>\d+)")


def _address(text: str) -> tuple[socket.AddressFamily, Any]:
    """HOST:PORT is TCP, anything else a Unix socket path."""
    m = _TCP.fullmatch(text)
    if m and not text.startswith(("/", ".")):
        return socket.AF_INET, (m["host"], int(m["port"]))
    return socket.AF_UNIX, text


def _connect(text: str) -> socket.socket:
    family, addr = _address(text)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.connect(addr)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock


class _FrameCounter:
    """Counts whole agent frames in a byte stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self.frames = 0
        self._header = b""
        self._left = 0

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._left:
                take = min(self._left, len(view))
                self._left -= take
                view = view[take:]
                if not self._left:
                    self.frames += 1
                continue
            need = 4 - len(self._header)
            self._header += bytes(view[:need])
            view = view[need:]
            if len(self._header) == 4:
                self._left = struct.unpack(">I", self._header)[0]
                self._header = b""
                if not self._left:
                    self.frames += 1


class _Direction:
    """One direction of one connection: a reader stamping chunks, a writer sending them
    when due (FIFO, so in order)."""

    def __init__(self, src: socket.socket, dst: socket.socket, delay: float,
                 counter: _FrameCounter | None) -> None:
        self.src = src
        self.dst = dst
        self.delay = delay
        self.counter = counter
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.ready = threading.Condition()
        self.on_chunk: Any = None

    def read(self) -> None:
        recv, clock, queue, ready = self.src.recv, time.monotonic, self.queue, self.ready
        while True:
            try:
                data = recv(CHUNK)
            except OSError:
                data = b""
            with ready:
                queue.append((clock() + self.delay, data))
                ready.notify()
            if not data:
                return
            if self.counter is not None:
                self.counter.feed(data)
                if self.on_chunk is not None:
                    self.on_chunk()

    def write(self) -> None:
        clock, queue, ready = time.monotonic, self.queue, self.ready
        broken = False
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, data = queue.popleft()
            wait = due - clock()
            if wait > 0:
                time.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    self.dst.shutdown(socket.SHUT_WR)
                return
            if not broken:
                try:
                    self.dst.sendall(data)
                except OSError:
                    broken = True  # keep draining so the reader's queue stays bounded


class DelayLine:
    """Listen on `listen`, relay each connection to `upstream`, `delay` seconds each way.

    Addresses are HOST:PORT (TCP; port 0 picks one, see `listen` after start())
    or Unix socket paths.  `count_frames` (default: for Unix sockets) counts
    agent frames for `peak_in_flight`.
    """

    def __init__(self, listen: str, upstream: str, delay: float = 0.001,
                 count_frames: bool | None = None) -> None:
        self.listen = listen
        self.upstream = upstream
        self.delay = delay
        family, _ = _address(listen)
        self.count_frames = family == socket.AF_UNIX if count_frames is None else count_frames
        self.peak_in_flight = 0
        self.connections = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def bind(self) -> str:
        """Bind and listen (start() and serve_forever() do it); returns the address."""
        family, addr = _address(self.listen)
        sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        if family == socket.AF_UNIX:
            os.chmod(addr, 0o600)
        else:
            host, port = sock.getsockname()[:2]
            self.listen = f"{host}:{port}"
        sock.listen(1024)
        sock.settimeout(0.2)
        self._sock = sock
        return self.listen

    def stop(self) -> None:
        """Make serve_forever() return (safe from a signal handler)."""
        self._stop.set()

    def _relay(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        try:
            server = _connect(self.upstream)
        except OSError:
            client.close()
            return
        if client.family == socket.AF_INET:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open.update((client, server))
        counting = self.count_frames
        up = _Direction(client, server, self.delay, _FrameCounter() if counting else None)
        down = _Direction(server, client, self.delay, _FrameCounter() if counting else None)
        if counting:
            def note() -> None:
                assert up.counter is not None and down.counter is not None
                outstanding = up.counter.frames - down.counter.frames
                if outstanding > self.peak_in_flight:
                    self.peak_in_flight = outstanding
            up.on_chunk = note
        threads = [threading.Thread(target=f, daemon=True, name=f"delayline-{f.__name__}")
                   for f in (up.read, up.write, down.read, down.write)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with self._lock:
            self._open.difference_update((client, server))
        client.close()
        server.close()

    def serve_forever(self) -> None:
        """Accept and relay connections until close() (binds first if start() did not)."""
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            client.settimeout(None)
            threading.Thread(target=self._relay, args=(client,), daemon=True,
                             name="delayline-conn").start()

    def start(self) -> DelayLine:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        self.bind()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True,
                                        name="delayline")
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, cut the open connections, remove a Unix socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._sock is not None:
            self._sock.close()
            if self._sock.family == socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    os.unlink(self.listen)

    def __enter__(self) -> DelayLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def ceiling(nbytes: int, delay: float,
            via: Callable[[str], contextlib.AbstractContextManager[str]] | None = None
            ) -> dict[str, float]:
    """Bytes per second one TCP stream moves through a delay line (`delay` each way):
    the line's own ceiling, with nothing else in the path.

    `via(upstream)` enters a delay line relaying to `upstream` and yields its
    HOST:PORT (for example one in a process of its own); None runs one in
    threads of this process, which then also carry the source and the sink,
    so it is a lower bound.  Returns {"bytes", "seconds", "mb_per_s"}; the
    seconds include one delay.
    """
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    got = [0]

    def drain() -> None:
        conn, _ = sink.accept()
        buf = memoryview(bytearray(CHUNK))
        with conn:
            while n := conn.recv_into(buf):
                got[0] += n
            conn.sendall(b"k")

    upstream = f"127.0.0.1:{sink.getsockname()[1]}"
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    block = memoryview(bytes(CHUNK))
    try:
        with contextlib.ExitStack() as stack:
            if via is None:
                target = stack.enter_context(DelayLine("127.0.0.1:0", upstream, delay)).listen
            else:
                target = stack.enter_context(via(upstream))
            with _connect(target) as sock:
                t0 = time.perf_counter()
                left = nbytes
                while left > 0:
                    sock.sendall(block[:left])
                    left -= min(left, CHUNK)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)
                seconds = time.perf_counter() - t0
    finally:
        reader.join(10)
        sink.close()
    if got[0] != nbytes:
        raise RuntimeError(f"the delay line passed {got[0]} of {nbytes} bytes")
    return {"bytes": float(nbytes), "seconds": seconds, "mb_per_s": nbytes / 1e6 / seconds}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("listen", help="HOST:PORT (TCP) or a Unix socket path")
    parser.add_argument("upstream", help="HOST:PORT (TCP) or a Unix socket path")
    parser.add_argument("--delay-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    line = DelayLine(args.listen, args.upstream, args.delay_ms / 1000)
    signal.signal(signal.SIGTERM, lambda *_: line.stop())
    line.bind()
    if _address(line.listen)[0] == socket.AF_INET:
        print(f"listening on {line.listen}", flush=True)
    started = time.monotonic()
    with contextlib.suppress(KeyboardInterrupt):
        line.serve_forever()
    line.close()
    print(f"delay line: {line.connections} connections, peak {line.peak_in_flight} requests "
          f"in flight, {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
