"""The 20 ms round trip of benchmarks/run.py's SFTP RTT rows, the same for every client.

Two ways, chosen at run time (`open_path`, `probe_netem`):

- netem: when the kernel has the netem qdisc (probed in a throwaway network
  namespace) and we are root, the clients run in a network namespace of their
  own (``ip netns exec``), joined to ours by a veth pair with ``tc qdisc ...
  netem delay 10ms`` on both ends.  They reach the sshd (which listens on
  127.0.0.1 only) through a pass-through relay (benchmarks/delayline.py with
  no delay) on our end of the veth pair.
- delayline: otherwise, the clients connect to benchmarks/delayline.py on
  127.0.0.1, which holds every chunk 10 ms in each direction, in order, and
  relays it to the sshd.

Either way the relay runs in a process of its own, so its CPU is charged to no
client, and `ceiling()` of benchmarks/delayline.py measures what one raw TCP
stream moves through it (reported beside the rows, to show it is not the limit).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import delayline

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

ROOT = Path(__file__).resolve().parents[1]
#: The round trip time of the RTT rows, split evenly over the two directions.
RTT_MS = 20.0


@dataclass
class RttPath:
    """Where the clients connect for the RTT rows, and how the delay is made."""

    method: str  # "netem" or "delayline"
    why: str  # what the netem probe said
    host: str
    port: int
    known_hosts: str
    #: argv prefix for the client processes (``ip netns exec NS`` with netem).
    prefix: list[str] = field(default_factory=list)
    #: delayline.ceiling() of the relay in the path.
    ceiling: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        how = ("tc netem delay 10ms on both ends of a veth pair into a network namespace"
               if self.method == "netem" else
               "userspace delay line (benchmarks/delayline.py), 10 ms each way, order-keeping")
        ceil = (f"; the relay's own ceiling: {self.ceiling['mb_per_s']:.0f} MB/s "
                f"(raw TCP, one stream)" if self.ceiling else "")
        return f"{RTT_MS:.0f} ms RTT via {how} ({self.why}){ceil}"

    def to_json(self) -> dict[str, Any]:
        return {"rtt_ms": RTT_MS, "method": self.method, "why": self.why,
                "relay_ceiling": self.ceiling, "description": self.describe()}


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False,
                          stdin=subprocess.DEVNULL)


def probe_netem() -> tuple[bool, str]:
    """(usable, why): can we put a netem qdisc on an interface of a fresh network namespace?"""
    if os.geteuid() != 0:
        return False, "netem needs root for network namespaces"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"no {tool} command (iproute2)"
    ns = f"sshlib-probe-{os.getpid()}"
    added = _run("ip", "netns", "add", ns)
    if added.returncode != 0:
        return False, f"ip netns add failed: {added.stderr.strip()}"
    try:
        got = _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root",
                   "netem", "delay", "10ms")
    finally:
        _run("ip", "netns", "del", ns)
    if got.returncode != 0:
        return False, f"no netem on this kernel: tc says {got.stderr.strip()!r}"
    return True, "the kernel has netem"


@contextlib.contextmanager
def relay(listen: str, upstream: str, delay_ms: float) -> Iterator[str]:
    """benchmarks/delayline.py in a process of its own; yields its HOST:PORT."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.delayline", listen, upstream,
                             "--delay-ms", str(delay_ms)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the delay line did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        stop_process(proc, 10)


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if `proc` is still there after `timeout` seconds; reaped."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _known_hosts(workdir: Path, host: str, port: int, host_keys: Iterable[str]) -> str:
    path = workdir / f"known_hosts-rtt-{port}"
    path.write_text("".join(f"[{host}]:{port} {key}\n" for key in host_keys))
    path.chmod(0o644)
    return str(path)


@contextlib.contextmanager
def _netns(tag: str) -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to ours by a veth pair with netem on both ends:
    yields (namespace, our address, its address)."""
    ns, ours, theirs = f"sshlib-bench-{tag}", f"sbr{tag}a", f"sbr{tag}b"
    net = f"10.213.{int(tag) % 250}"
    steps = [
        ("ip", "netns", "add", ns),
        ("ip", "link", "add", ours, "type", "veth", "peer", "name", theirs),
        ("ip", "link", "set", theirs, "netns", ns),
        ("ip", "addr", "add", f"{net}.1/30", "dev", ours),
        ("ip", "link", "set", ours, "up"),
        ("ip", "netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", theirs),
        ("ip", "netns", "exec", ns, "ip", "link", "set", theirs, "up"),
        ("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"),
        ("tc", "qdisc", "add", "dev", ours, "root", "netem", "delay", "10ms", "limit", "100000"),
        ("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", theirs, "root", "netem",
         "delay", "10ms", "limit", "100000"),
    ]
    try:
        for step in steps:
            done = _run(*step)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)}: {done.stderr.strip()}")
        yield ns, f"{net}.1", f"{net}.2"
    finally:
        _run("ip", "netns", "del", ns)  # takes the veth pair with it
        _run("ip", "link", "del", ours)


@contextlib.contextmanager
def open_path(server_host: str, server_port: int, host_keys: Iterable[str], workdir: Path,
              ceiling_bytes: int, method: str = "auto") -> Iterator[RttPath]:
    """The RTT path to the sshd at server_host:server_port, for as long as the with-block.

    `method` is "auto" (netem if probe_netem() says so, else the delay line),
    "netem" or "delayline".  `host_keys` are the server's public key lines,
    for a known_hosts file naming the address the clients dial.
    """
    usable, why = probe_netem() if method != "delayline" else (False, "asked for")
    if method == "netem" and not usable:
        raise RuntimeError(f"--rtt-via netem: {why}")
    upstream = f"{server_host}:{server_port}"
    keys = list(host_keys)
    with contextlib.ExitStack() as stack:
        if usable:
            ns, ours, _ = stack.enter_context(_netns(str(os.getpid() % 100000)))
            address = stack.enter_context(relay(f"{ours}:0", upstream, 0))
            prefix = ["ip", "netns", "exec", ns]
            delay_ms = 0.0
        else:
            address = stack.enter_context(relay("127.0.0.1:0", upstream, RTT_MS / 2))
            prefix = []
            delay_ms = RTT_MS / 2
        host, port = address.rsplit(":", 1)
        path = RttPath("netem" if usable else "delayline", why, host, int(port),
                       _known_hosts(workdir, host, int(port), keys), prefix)

        @contextlib.contextmanager
        def via(sink: str) -> Iterator[str]:
            with relay("127.0.0.1:0", sink, delay_ms) as line:
                yield line

        path.ceiling = delayline.ceiling(ceiling_bytes, delay_ms / 1000, via)
        yield path
