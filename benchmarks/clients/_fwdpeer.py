"""The two ends of a forwarding benchmark, as separate processes (never charged to a client).

    python _fwdpeer.py source NBYTES   # listens on 127.0.0.1; prints its port; sends NBYTES
                                        # of zeros to each connection, then closes it
    python _fwdpeer.py echo            # listens on 127.0.0.1; prints its port; echoes
    python _fwdpeer.py consume PORT NBYTES   # reads one connection to EOF
    python _fwdpeer.py conns PORT COUNT      # COUNT short connections, one after another:
                                              # send 32 bytes, read them back, close
    (both print "<bytes or connections> <seconds from the first connect to the end>")

The benchmark client (bench_<client>.py) sets up its forwarder between them
and measures its own CPU time across the transfer, so the cost of producing
and consuming the bytes is the same for every client and counted for none.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _listen() -> socket.socket:
    server = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(server.getsockname()[1], flush=True)
    return server


def source(nbytes: int) -> None:
    server = _listen()
    chunk = memoryview(bytes(1 << 20))

    def serve(conn: socket.socket) -> None:
        with conn:
            left = nbytes
            try:
                while left > 0:
                    left -= conn.send(chunk[:min(left, len(chunk))])
            except OSError:
                pass

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def echo() -> None:
    server = _listen()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def consume(port: int, nbytes: int) -> None:
    buf = memoryview(bytearray(1 << 20))
    got = 0
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as c:
        while n := c.recv_into(buf):
            got += n
    print(got, time.perf_counter() - t0, flush=True)


def conns(port: int, count: int) -> None:
    done = 0
    msg = b"x" * 32
    t0 = time.perf_counter()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = c.recv(64)
                if not chunk:
                    break
                got += chunk
            if got == msg:
                done += 1
    print(done, time.perf_counter() - t0, flush=True)


# --- used by the bench_<client>.py scripts ---------------------------------------------------

def start(kind: str, *args: object) -> tuple[subprocess.Popen[str], int]:
    """Start `source NBYTES` or `echo` as a child; returns it and the port it listens on."""
    proc = subprocess.Popen([sys.executable, str(HERE), kind, *map(str, args)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def run(kind: str, port: int, n: int) -> tuple[int, float]:
    """Run `consume`/`conns` against `port` to the end: (bytes or connections, seconds)."""
    out = subprocess.run([sys.executable, str(HERE), kind, str(port), str(n)],
                         capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    count, seconds = out.stdout.split()
    return int(count), float(seconds)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "source":
        source(int(sys.argv[2]))
    elif what == "echo":
        echo()
    elif what == "consume":
        consume(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "conns":
        conns(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {what!r}")
