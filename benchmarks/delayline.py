"""An order-keeping delay line between agent clients and a Unix-socket agent.

    python -m benchmarks.delayline LISTEN_SOCK AGENT_SOCK --delay-ms 1

Every chunk read from either side is forwarded after `delay` seconds, in the
order it arrived (a FIFO per direction, drained by one timer), so the agent
sees the same byte stream, only later: like a WSL2 relay, a forwarded agent
or a bridge on the way.  It also counts agent frames in each direction and
keeps the peak number of requests a client had unanswered (`peak_in_flight`),
which shows whether a client pipelines.

Runs its own asyncio loop, in a thread (`DelayLine.start`) or as this
module's main (the benchmarks run it in a process of its own so that its CPU
is not charged to the client being measured).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import struct
import sys
import threading
import time

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

__all__ = ["DelayLine"]


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
    """One direction of one connection: delayed, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter,
                 delay: float) -> None:
        self.loop = loop
        self.writer = writer
        self.delay = delay
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.counter = _FrameCounter()
        self.eof = False

    def push(self, data: bytes) -> None:
        self.counter.feed(data)
        self.queue.append((self.loop.time() + self.delay, data))
        if self.timer is None:
            self.timer = self.loop.call_at(self.queue[0][0], self.drain)

    def finish(self) -> None:
        self.eof = True
        if self.timer is None:
            self.drain()

    def drain(self) -> None:
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            self.writer.write(self.queue.popleft()[1])
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.drain)
        elif self.eof and self.writer.can_write_eof():
            try:
                self.writer.write_eof()
            except OSError:
                pass


class DelayLine:
    """Listen on `listen`, relay each connection to the agent at `upstream`, `delay` each way."""

    def __init__(self, listen: str, upstream: str, delay: float = 0.001) -> None:
        self.listen = listen
        self.upstream = upstream
        self.delay = delay
        self.peak_in_flight = 0
        self.connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    async def _pump(self, reader: asyncio.StreamReader, direction: _Direction,
                    requests: _Direction | None, replies: _Direction) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                direction.finish()
                return
            direction.push(data)
            if requests is not None:
                outstanding = requests.counter.frames - replies.counter.frames
                self.peak_in_flight = max(self.peak_in_flight, outstanding)

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            agent_r, agent_w = await asyncio.open_unix_connection(self.upstream)
        except OSError:
            client_w.close()
            return
        loop = asyncio.get_running_loop()
        up = _Direction(loop, agent_w, self.delay)
        down = _Direction(loop, client_w, self.delay)
        try:
            await asyncio.gather(self._pump(client_r, up, up, down),
                                 self._pump(agent_r, down, None, down))
            await asyncio.sleep(self.delay * 2)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            agent_w.close()
            client_w.close()

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_unix_server(self._handle, self.listen, backlog=1024)
        os.chmod(self.listen, 0o600)
        self._ready.set()
        if stop is None:
            stop = asyncio.Event()
        self._stop = stop
        await stop.wait()
        self._server.close()

    def start(self) -> DelayLine:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), daemon=True,
                                        name="delayline")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delay line did not start")
        return self

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(5)
        try:
            os.unlink(self.listen)
        except OSError:
            pass

    def __enter__(self) -> DelayLine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("listen")
    parser.add_argument("upstream")
    parser.add_argument("--delay-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    line = DelayLine(args.listen, args.upstream, args.delay_ms / 1000)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await line.serve(stop)

    started = time.monotonic()
    asyncio.run(run())
    print(f"delay line: {line.connections} connections, peak {line.peak_in_flight} requests "
          f"in flight, {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
