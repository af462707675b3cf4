"""Fan-out: one `exec true` on N connections at once, sshlib.aio.run_on vs asyncssh.

    python benchmarks/fanout.py                        # N = 100, 500, 1000; 2 rounds
    python benchmarks/fanout.py --sizes 100,500 --rounds 3 --out /tmp/fanout.md

A throwaway sshd on 127.0.0.1 (sshlib.testing.start_openssh with MaxStartups
1000:30:1000 and MaxSessions 1000) serves every connection; both clients use
the same pinned algorithms (curve25519-sha256, ssh-ed25519 host key,
aes128-gcm@openssh.com, an Ed25519 user key from a file) and open all N
connections concurrently (limit = N): TCP connect, key exchange, auth, one
session running `true`, close.

Each measurement runs in a fresh child process (this file with --child), the
clients alternating per round.  The child raises its RLIMIT_NOFILE, samples
its open file descriptors every 2 ms in a thread, and reports wall time (from
the first dial to the last result), peak RSS (ru_maxrss) and the RSS right
after imports (its baseline), and peak open fds.  A run in which any
connection fails or exits non-zero is reported as failed, not timed.
Results: a Markdown section (with the machine description) to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEX = "curve25519-sha256"
HOST_KEY_ALG = "ssh-ed25519"
CIPHER = "aes128-gcm@openssh.com"
COMMAND = "true"
CLIENTS = ("sshlib", "asyncssh")
DEFAULT_OUT = Path("/work/briefs/fanout-section.md")


# --- the child: one measurement ------------------------------------------------------------

class FdSampler:
    """Peak count of this process's open file descriptors, sampled in a thread."""

    def __init__(self, interval: float = 0.002) -> None:
        self.peak = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(os.listdir("/proc/self/fd")))
            self._stop.wait(self._interval)

    def __enter__(self) -> FdSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


async def run_sshlib(args: argparse.Namespace) -> list[str]:
    import sshlib
    import sshlib.aio

    cfg = sshlib.ClientConfig(
        user=args.user, auth=[sshlib.PublicKeys(sshlib.load_private_key(args.key))],
        host_key_callback=sshlib.knownhosts.callback(args.known_hosts),
        kex_algorithms=[KEX], host_key_algorithms=[HOST_KEY_ALG], ciphers=[CIPHER],
        timeout=300)
    hosts = [(args.host, args.port)] * args.n
    problems = []
    async for r in sshlib.aio.run_on(hosts, COMMAND, cfg, limit=args.n, timeout=600):
        if not r.ok:
            problems.append(f"{r.error or r.exit_status}")
    return problems


async def run_asyncssh(args: argparse.Namespace) -> list[str]:
    import asyncssh

    options = {
        "port": args.port, "username": args.user,
        "client_keys": [asyncssh.read_private_key(args.key)],
        "known_hosts": asyncssh.read_known_hosts(args.known_hosts),
        "kex_algs": [KEX], "server_host_key_algs": [HOST_KEY_ALG],
        "encryption_algs": [CIPHER], "compression_algs": ["none"],
        "agent_path": None, "config": None, "preferred_auth": "publickey",
        "connect_timeout": 300,
    }
    limit = asyncio.Semaphore(args.n)

    async def one() -> str | None:
        async with limit:
            try:
                async with asyncssh.connect(args.host, **options) as conn:
                    result = await conn.run(COMMAND)
                    return None if result.exit_status == 0 else f"exit {result.exit_status}"
            except (OSError, asyncssh.Error) as exc:
                return repr(exc)

    return [p for p in await asyncio.gather(*(one() for _ in range(args.n))) if p]


def child(args: argparse.Namespace) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, 4 * args.n + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    runner = run_sshlib if args.child == "sshlib" else run_asyncssh
    if args.child == "sshlib":
        import sshlib.aio  # noqa: F401  (imports before the baseline)
    else:
        import asyncssh  # noqa: F401
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with FdSampler() as fds:
        started = time.perf_counter()
        problems = asyncio.run(runner(args))
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                      "peak_rss_kib": usage.ru_maxrss, "baseline_rss_kib": baseline,
                      "peak_fds": fds.peak, "failed": len(problems),
                      "problems": problems[:5]}))


# --- the parent: server, rounds, table -----------------------------------------------------

def measure(client: str, n: int, server: Any, key: Path) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", client, "--n", str(n),
           "--host", server.host, "--port", str(server.port), "--user", server.user,
           "--key", str(key), "--known-hosts", str(server.known_hosts_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-500:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True)
    import asyncssh
    import cryptography
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Linux "
            f"{platform.release()}; Python {platform.python_version()}; "
            f"cryptography {cryptography.__version__}; asyncssh {asyncssh.__version__}; "
            f"{(sshd.stderr or sshd.stdout).strip().splitlines()[0]} on the same machine")


def parent(args: argparse.Namespace) -> None:
    from sshlib import testing

    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with testing.start_openssh(extra_config={"MaxStartups": "1000:30:1000",
                                             "MaxSessions": "1000"}) as server:
        key = server.user_key_paths["ed25519-openssh"]
        for round_no in range(args.rounds):
            for n in sizes:
                order = CLIENTS if round_no % 2 == 0 else tuple(reversed(CLIENTS))
                for client in order:
                    r = measure(client, n, server, key)
                    results.setdefault((client, n), []).append(r)
                    print(f"round {round_no + 1} n={n} {client}: {r}", file=sys.stderr)
    lines = [
        "## Fan-out: one command on many connections at once",
        "",
        f"`python benchmarks/fanout.py --sizes {args.sizes} --rounds {args.rounds}`, "
        f"{time.strftime('%Y-%m-%d')}. Each connection: TCP connect, {KEX} key exchange, "
        f"{HOST_KEY_ALG} host key, {CIPHER}, Ed25519 user key from a file, one session "
        f"running `{COMMAND}`, close; all N at once (limit = N), to one local sshd "
        f"(MaxStartups 1000:30:1000). sshlib: `sshlib.aio.run_on(hosts, 'true', cfg, "
        f"limit=N)`; asyncssh: `asyncssh.connect()` + `conn.run('true')` under "
        f"`asyncio.gather`. Each measurement in a fresh child process, clients alternating; "
        f"medians over {args.rounds} round(s). Wall time is first dial to last result; "
        f"peak RSS is the child's ru_maxrss (after imports it was the \"baseline\" value); "
        f"fds are the child's open descriptors, sampled every 2 ms.",
        "",
        f"Machine: {machine()}. The sshd forks two processes per connection on the same "
        f"two cores, so wall times are bounded by the server as much as by the client; "
        f"compare the clients with each other, not with a remote fleet.",
        "",
        "| connections | client | wall time (s) | client CPU (s) | peak RSS (MiB) "
        "| baseline RSS (MiB) | peak open fds | failed |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        for client in CLIENTS:
            runs = [r for r in results[(client, n)] if "error" not in r]
            if not runs:
                lines.append(f"| {n} | {client} | error | | | | | |")
                continue

            def med(field: str, runs: list[dict[str, Any]] = runs) -> float:
                return float(statistics.median(r[field] for r in runs))
            failed = sum(r["failed"] for r in runs)
            lines.append(f"| {n} | {client} | {med('wall'):.2f} | {med('cpu'):.2f} | "
                         f"{med('peak_rss_kib') / 1024:.0f} | "
                         f"{med('baseline_rss_kib') / 1024:.0f} | {med('peak_fds'):.0f} | "
                         f"{failed} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="100,500,1000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--child", choices=CLIENTS)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--user")
    ap.add_argument("--key")
    ap.add_argument("--known-hosts")
    args = ap.parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
