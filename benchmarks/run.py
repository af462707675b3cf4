"""sshlib vs asyncssh vs paramiko vs OpenSSH's `ssh`: the one benchmark command.

    python benchmarks/run.py                 # 1 GiB transfers, 3 rounds (takes a while)
    python benchmarks/run.py --quick         # 4 MiB, 1 round: checks the harness works
    python benchmarks/run.py --size 256M --rounds 5 --json /tmp/bench.json

It starts a throwaway sshd on 127.0.0.1 (sshlib.testing.start_openssh) and a
real ssh-agent, then for every round, measurement and client runs the client
in a fresh child process (benchmarks/clients/bench_<client>.py), alternating
the clients A B C D A B C D ... so drift on a shared machine hits them all
alike, and reports medians over the rounds:

- download: remote `head -c N /dev/zero`, per cipher;
- upload: N bytes into remote `wc -c` (it discards the data like
  `cat > /dev/null` and prints the count, so uploads are verified too);
- latency: TCP connect + key exchange + ed25519 auth + `exec true` + close;
- sessions: 1,000 sessions one after another on one connection
  (open, exec `true`, read to EOF, close), total time and peak RSS;
- agent: Ed25519 signatures per second through a real ssh-agent;
- compression: downloads of compressible text and of random bytes (a 16 MiB file
  repeated by remote `cat`, so deflate cannot see the repeats) with compression
  off and with zlib@openssh.com (OpenSSH: ``-o Compression=yes``, i.e. ``ssh -C``).
- forward: N bytes from a local source service through the client's local
  port forward (`forward_local`, asyncssh's `forward_local_port`, `ssh -L`)
  into a separate consumer process;
- forwardconns: 1,000 short connections one after another through the same
  kind of forward (send 32 bytes, read them back, close);
- sftp-get-rtt / sftp-put-rtt: the sftp-get / sftp-put transfer (--rtt-size,
  default 256 MiB, sha256-checked) over a 20 ms round trip, every client through
  the same path (benchmarks/rttpath.py: tc netem in a network namespace when the
  kernel has it, else the userspace delay line benchmarks/delayline.py, 10 ms
  each way); the output says which, with the relay's own ceiling, and gives
  each client's throughput relative to OpenSSH's `sftp`.

Wall time and CPU time (user+sys) are those of the child process, read with
os.wait4 (for OpenSSH, of the `ssh` process the driver script starts, see
clients/bench_openssh.py).  Every client uses the same pinned algorithms:
curve25519-sha256 key exchange, ssh-ed25519 host key, the cipher under test.

A client that transfers a wrong number of bytes (or returns a bad agent
signature) aborts the run with exit status 2 and no results: a benchmark that
silently measures a broken transfer is worse than none.  A client that fails
otherwise is recorded as "error" (its median is taken over the rounds that
worked, and the table says how many did not); a failure of sshlib also makes
the exit status 1, one of the other clients does not (paramiko's download
sometimes dies at its 512 MiB rekey with "Key-exchange timed out").  A child
that runs past its time limit is killed with its process group and recorded as
"timeout"; the run never hangs.  Results go to stdout as Markdown tables and
to benchmarks/results/latest.json (--json).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import rttpath  # noqa: E402

CLIENTS_DIR = Path(__file__).resolve().parent / "clients"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

CLIENTS = ("sshlib", "asyncssh", "paramiko", "openssh")
KINDS = ("download", "upload", "latency", "sessions", "agent", "compression",
         "sftp-get", "sftp-put", "sftp-tree-get", "sftp-tree-put", "forward", "forwardconns",
         "sftp-get-rtt", "sftp-put-rtt")
#: What the compression rows download: text that deflates about 5:1, and random bytes.
COMPRESSION_DATA = ("compressible", "random")
SOURCE_SIZE = 16 << 20
#: Measurements that move bytes: wall, MB/s and CPU per GiB in one table.
TRANSFERS = ("download", "upload", "forward", "sftp-get", "sftp-put", "sftp-tree-get",
             "sftp-tree-put", "sftp-get-rtt", "sftp-put-rtt")
#: The SFTP rows over a 20 ms round trip (benchmarks/rttpath.py): the client runs the
#: plain sftp-get / sftp-put measurement, through the RTT path.
RTT_KINDS = {"sftp-get-rtt": "sftp-get", "sftp-put-rtt": "sftp-put"}
#: The SFTP tree measurements: this many files of this size, in nested directories.
TREE_FILES = 1000
TREE_FILE_SIZE = 16 * 1024
KEX = "curve25519-sha256"
HOST_KEY_ALG = "ssh-ed25519"
ETM_MAC = "hmac-sha2-256-etm@openssh.com"
#: (cipher, MAC) pairs measured for download and upload; AEAD ciphers ignore the MAC.
CIPHERS: tuple[tuple[str, str], ...] = (
    ("chacha20-poly1305@openssh.com", ETM_MAC),
    ("aes128-gcm@openssh.com", ETM_MAC),
    ("aes256-gcm@openssh.com", ETM_MAC),
    ("aes128-ctr", ETM_MAC),
)
#: Cipher used for latency and sessions (the default of sshlib and of OpenSSH's sshd
#: when both sides support AES-NI is aes128-gcm / chacha20; we pin one for all).
DEFAULT_CIPHER = "aes128-gcm@openssh.com"
AEAD = {"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}

NOT_SUPPORTED: dict[tuple[str, str], str] = {
    ("paramiko", "chacha20-poly1305@openssh.com"): "paramiko has no chacha20-poly1305",
}

SSHD_CONFIG = {
    "MaxStartups": "1000",
    "MaxSessions": "1000",
    "Ciphers": ",".join(c for c, _ in CIPHERS),
    "MACs": ETM_MAC,
    "LogLevel": "INFO",
    "Compression": "yes",
}

MiB = 1 << 20
GiB = 1 << 30
#: sha256 of the SFTP sources (filled by run() when SFTP is measured).
SFTP_SUMS: dict[str, str] = {}
#: The same for the RTT rows' source (its own size, --rtt-size).
RTT_SUMS: dict[str, str] = {}


class WrongResult(Exception):
    """A client moved the wrong number of bytes (or signed wrongly): abort, report nothing."""


# --------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------

@dataclass
class Measurement:
    id: str
    kind: str
    cipher: str = DEFAULT_CIPHER
    mac: str = ETM_MAC
    data: str = "zeros"  # download source: zeros, or one of COMPRESSION_DATA
    compress: bool = False

    @property
    def label(self) -> str:
        if self.data != "zeros":
            return f"download {self.data}, compression {'on' if self.compress else 'off'}"
        if self.kind in ("download", "upload"):
            name = self.cipher if self.cipher in AEAD else f"{self.cipher} + {self.mac}"
            return f"{self.kind} {name}"
        if self.kind == "forward":
            return "forward_local (-L) one stream"
        if self.kind in RTT_KINDS:
            return f"{RTT_KINDS[self.kind]}, {rttpath.RTT_MS:.0f} ms RTT"
        return self.kind


@dataclass
class Outcome:
    status: str  # ok | n/a | timeout | error | skipped
    wall_s: float = 0.0
    cpu_s: float = 0.0
    maxrss_kib: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.status == "ok":
            out.update(wall_s=self.wall_s, cpu_s=self.cpu_s, maxrss_kib=self.maxrss_kib)
            out.update({k: v for k, v in self.data.items() if k != "process"})
        else:
            out["after_s"] = self.wall_s
        if self.reason:
            out["reason"] = self.reason
        if self.status == "error":
            out["stderr_tail"] = self.data.get("stderr", "")
        return out


def parse_size(text: str) -> int:
    """'1G', '256M', '4MiB', '512k' (binary units) or a plain byte count."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 1G, 256M, 4MiB)")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def plan(kinds: Sequence[str], ciphers: Sequence[str]) -> list[Measurement]:
    out: list[Measurement] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        if kind in ("download", "upload"):
            for cipher, mac in CIPHERS:
                if cipher in ciphers:
                    out.append(Measurement(f"{kind}/{cipher}", kind, cipher, mac))
        elif kind == "compression":
            out += [Measurement(f"compression/{data}/{'on' if on else 'off'}", "download",
                                data=data, compress=on)
                    for data in COMPRESSION_DATA for on in (False, True)]
        else:
            out.append(Measurement(kind, kind))
    return out


# --------------------------------------------------------------------------
# running one child
# --------------------------------------------------------------------------

@dataclass
class Env:
    host: str
    port: int
    user: str
    key: str
    pubkey: str
    known_hosts: str
    agent_sock: str
    workdir: Path
    #: Remote files for the compression rows, by COMPRESSION_DATA name.
    sources: dict[str, str] = field(default_factory=dict)
    sftp_dir: Path | None = None
    #: The RTT rows: where the clients connect (rttpath.open_path).
    rtt: rttpath.RttPath | None = None


def sftp_dir_for(m: Measurement, env: Env) -> Path | None:
    """The RTT rows have sources of their own size in a subdirectory."""
    if env.sftp_dir is None or m.kind not in RTT_KINDS:
        return env.sftp_dir
    return env.sftp_dir / "rtt"


def child_argv(client: str, m: Measurement, env: Env, nbytes: int, count: int,
               result: Path) -> list[str]:
    host, port, known_hosts, prefix = env.host, env.port, env.known_hosts, []
    if m.kind in RTT_KINDS:
        assert env.rtt is not None
        host, port, known_hosts = env.rtt.host, env.rtt.port, env.rtt.known_hosts
        prefix = env.rtt.prefix
    return [
        *prefix, sys.executable, str(CLIENTS_DIR / f"bench_{client}.py"),
        RTT_KINDS.get(m.kind, m.kind),
        "--host", host, "--port", str(port), "--user", env.user,
        "--key", env.key, "--known-hosts", known_hosts,
        "--kex", KEX, "--host-key-alg", HOST_KEY_ALG, "--cipher", m.cipher, "--mac", m.mac,
        "--bytes", str(nbytes), "--count", str(count),
        "--agent-sock", env.agent_sock, "--pubkey", env.pubkey, "--result", str(result),
        *(["--source", env.sources[m.data]] if m.data != "zeros" else []),
        *(["--compression"] if m.compress else []),
        "--sftp-dir", str(sftp_dir_for(m, env) or ""),
    ]


def run_child(argv: list[str], result: Path, timeout: float, stderr_path: Path) -> Outcome:
    """Run one measurement process; wall time and rusage via os.wait4; kill it at `timeout`."""
    result.unlink(missing_ok=True)
    timed_out = threading.Event()
    with open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True, cwd=str(ROOT))

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the child and the ssh it started

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(ProcessLookupError):  # e.g. a ControlMaster left behind
            os.killpg(proc.pid, signal.SIGKILL)
    if timed_out.is_set():
        return Outcome("timeout", wall_s=wall, reason=f"killed after {timeout:.0f} s")
    tail = stderr_path.read_text(errors="replace")[-2000:].strip()
    if proc.returncode != 0:
        last = tail.splitlines()[-1] if tail else ""
        return Outcome("error", wall_s=wall,
                       reason=f"exit status {proc.returncode} after {wall:.1f} s: {last}",
                       data={"stderr": tail})
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError) as exc:
        return Outcome("error", reason=f"no result file: {exc}", data={"stderr": tail})
    if data.get("status") == "n/a":
        return Outcome("n/a", reason=str(data.get("reason", "")))
    cpu = usage.ru_utime + usage.ru_stime
    rss = float(usage.ru_maxrss)
    proc_data = data.get("process")
    if isinstance(proc_data, dict):  # the driver measured the real client (ssh) itself
        wall = float(proc_data["wall_s"])
        cpu = float(proc_data["cpu_s"])
        rss = float(proc_data["maxrss_kib"])
    return Outcome("ok", wall_s=wall, cpu_s=cpu, maxrss_kib=rss, data=data)


def check_result(client: str, m: Measurement, o: Outcome, nbytes: int, count: int) -> None:
    """Raise WrongResult unless the client did exactly what was asked."""
    if o.status != "ok":
        return
    where = f"client {client!r}, {m.label}"
    if m.kind in TRANSFERS:
        got = o.data.get("bytes")
        if got != nbytes:
            raise WrongResult(f"{where}: transferred {got} bytes, expected {nbytes}")
    elif m.kind == "sessions":
        if o.data.get("sessions") != count:
            raise WrongResult(f"{where}: completed {o.data.get('sessions')} sessions, "
                              f"expected {count}")
    elif m.kind == "forwardconns":
        if o.data.get("connections") != count:
            raise WrongResult(f"{where}: completed {o.data.get('connections')} forwarded "
                              f"connections, expected {count}")
    elif m.kind == "latency":
        if len(o.data.get("samples_s", [])) != count:
            raise WrongResult(f"{where}: {len(o.data.get('samples_s', []))} samples, "
                              f"expected {count}")
    elif m.kind == "agent" and o.data.get("verified") is not True:
        raise WrongResult(f"{where}: the agent's signature did not verify")


# --------------------------------------------------------------------------
# the servers
# --------------------------------------------------------------------------

@contextlib.contextmanager
def ssh_agent(workdir: Path, key: str) -> Iterator[str]:
    """A real ssh-agent on a unix socket, holding `key`; stopped on exit."""
    sock = workdir / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ssh-agent did not start")
            time.sleep(0.02)
        subprocess.run(["ssh-add", "-q", key], env={**os.environ, "SSH_AUTH_SOCK": str(sock)},
                       stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=30)
        yield str(sock)
    finally:
        rttpath.stop_process(agent, 5)


def write_sources(directory: Path) -> dict[str, str]:
    """The compression rows' remote files, readable by the server's login user."""
    block = b"".join(b"%08d the quick brown fox jumps over the lazy dog %d\n" % (i, i * 7919)
                     for i in range(16384))
    contents = {"compressible": (block * (SOURCE_SIZE // len(block) + 1))[:SOURCE_SIZE],
                "random": os.urandom(SOURCE_SIZE)}
    paths: dict[str, str] = {}
    for name in COMPRESSION_DATA:
        path = directory / f"bench-{name}.bin"
        path.write_bytes(contents[name])
        path.chmod(0o644)
        paths[name] = str(path)
    return paths


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------

def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def summarise(m: Measurement, rounds: list[Outcome], nbytes: int, count: int) -> dict[str, Any]:
    ok = [o for o in rounds if o.status == "ok"]
    counts = {s: sum(1 for o in rounds if o.status == s) for s in {o.status for o in rounds}}
    if not ok:
        first = rounds[0] if rounds else Outcome("skipped")
        status = next((o.status for o in rounds if o.status in ("error", "timeout")),
                      first.status)
        reason = next((o.reason for o in rounds if o.status == status), first.reason)
        return {"status": status, "reason": reason, "rounds_by_status": counts}
    s: dict[str, Any] = {"status": "ok", "rounds_ok": len(ok), "rounds_by_status": counts}
    if m.kind in TRANSFERS:
        wall = _median([o.wall_s for o in ok])
        cpu = _median([o.cpu_s for o in ok])
        s.update(wall_s=wall, cpu_s=cpu, mb_per_s=nbytes / 1e6 / wall,
                 cpu_s_per_gib=cpu / (nbytes / GiB),
                 inner_s=_median([float(o.data.get("inner_s", o.wall_s)) for o in ok]),
                 cost={"wall": wall, "cpu": cpu})
    elif m.kind == "latency":
        samples = [x for o in ok for x in o.data["samples_s"]]
        cpus = [x for o in ok for x in o.data["cpu_samples_s"]]
        s.update(median_s=_median(samples), min_s=min(samples), max_s=max(samples),
                 cpu_median_s=_median(cpus), samples=len(samples),
                 cost={"wall": _median(samples), "cpu": _median(cpus)})
    elif m.kind in ("sessions", "forwardconns"):
        total = _median([float(o.data["total_s"]) for o in ok])
        cpu = _median([float(o.data["cpu_s"]) for o in ok])
        rss = max(o.maxrss_kib for o in ok)
        s.update(total_s=total, cpu_s=cpu, peak_rss_mib=rss / 1024,
                 cost={"wall": total, "cpu": cpu, "rss": rss})
    elif m.kind == "agent":
        per = _median([float(o.data["total_s"]) / max(1, int(o.data["signs"])) for o in ok])
        s.update(signs_per_s=1 / per if per else 0.0, seconds_per_sign=per,
                 cost={"wall": per})
    return s


def add_ratios(summaries: dict[str, dict[str, Any]]) -> None:
    """cost ratios to asyncssh and to OpenSSH (client / reference; < 1 is better)."""
    for summary in summaries.values():
        if summary["status"] != "ok":
            continue
        ratios: dict[str, dict[str, float]] = {}
        for ref in ("asyncssh", "openssh"):
            other = summaries.get(ref)
            if not other or other["status"] != "ok":
                continue
            ratios[ref] = {k: v / other["cost"][k] for k, v in summary["cost"].items()
                           if other["cost"].get(k)}
        summary["ratios"] = ratios


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------

def _ratio(summary: dict[str, Any], ref: str, key: str) -> str:
    r = summary.get("ratios", {}).get(ref, {}).get(key)
    return "" if r is None else f"{r:.2f}x"


def _failed_rounds(summary: dict[str, Any]) -> str:
    """' (1 of 3 rounds: error)' when some rounds did not count, else ''."""
    by_status: dict[str, int] = summary.get("rounds_by_status", {})
    bad = {k: v for k, v in by_status.items() if k != "ok"}
    if not bad:
        return ""
    total = sum(by_status.values())
    what = ", ".join(f"{v} {k}" for k, v in sorted(bad.items()))
    return f" ({what} of {total} rounds)"


def _status_cell(summary: dict[str, Any]) -> str:
    status: str = summary["status"]
    if status == "n/a":
        return f"n/a ({summary['reason']})" if summary.get("reason") else "n/a"
    return status + _failed_rounds(summary)


def markdown(measurements: list[Measurement], results: dict[str, dict[str, Any]],
             clients: Sequence[str]) -> str:
    out: list[str] = []
    transfer = [m for m in measurements if m.kind in TRANSFERS]
    if transfer:
        out += ["| measurement | client | wall s | MB/s | CPU s/GiB | wall vs asyncssh | "
                "wall vs ssh | CPU vs asyncssh | CPU vs ssh |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m in transfer:
            for c in clients:
                s = results[m.id][c]
                if s["status"] != "ok":
                    out.append(f"| {m.label} | {c} | {_status_cell(s)} | | | | | | |")
                    continue
                note = _failed_rounds(s)
                out.append(f"| {m.label} | {c}{note} | {s['wall_s']:.2f} | {s['mb_per_s']:.0f} | "
                           f"{s['cpu_s_per_gib']:.2f} | {_ratio(s, 'asyncssh', 'wall')} | "
                           f"{_ratio(s, 'openssh', 'wall')} | {_ratio(s, 'asyncssh', 'cpu')} | "
                           f"{_ratio(s, 'openssh', 'cpu')} |")
        out.append("")
    by_kind = {m.kind: m for m in measurements}
    if "latency" in by_kind:
        m = by_kind["latency"]
        out += ["| connect + auth + exec true | median ms | min ms | client CPU ms | "
                "vs asyncssh | vs ssh | CPU vs asyncssh | CPU vs ssh |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c in clients:
            s = results[m.id][c]
            if s["status"] != "ok":
                out.append(f"| {c} | {_status_cell(s)} | | | | | | |")
                continue
            out.append(f"| {c}{_failed_rounds(s)} | {s['median_s'] * 1e3:.1f} | "
                       f"{s['min_s'] * 1e3:.1f} | "
                       f"{s['cpu_median_s'] * 1e3:.1f} | {_ratio(s, 'asyncssh', 'wall')} | "
                       f"{_ratio(s, 'openssh', 'wall')} | {_ratio(s, 'asyncssh', 'cpu')} | "
                       f"{_ratio(s, 'openssh', 'cpu')} |")
        out.append("")
    for kind, title in (("sessions", "sessions on one connection"),
                        ("forwardconns", "short forwarded connections")):
        if kind not in by_kind:
            continue
        m = by_kind[kind]
        out += [f"| {title} | total s | CPU s | peak RSS MiB | "
                "time vs asyncssh | time vs ssh | RSS vs asyncssh |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for c in clients:
            s = results[m.id][c]
            if s["status"] != "ok":
                out.append(f"| {c} | {_status_cell(s)} | | | | | |")
                continue
            out.append(f"| {c}{_failed_rounds(s)} | {s['total_s']:.2f} | {s['cpu_s']:.2f} | "
                       f"{s['peak_rss_mib']:.1f} | {_ratio(s, 'asyncssh', 'wall')} | "
                       f"{_ratio(s, 'openssh', 'wall')} | {_ratio(s, 'asyncssh', 'rss')} |")
        out.append("")
    if "agent" in by_kind:
        m = by_kind["agent"]
        out += ["| agent signatures | per second | time per signature vs asyncssh |",
                "|---|---:|---:|"]
        for c in clients:
            s = results[m.id][c]
            if s["status"] != "ok":
                out.append(f"| {c} | {_status_cell(s)} | |")
                continue
            out.append(f"| {c}{_failed_rounds(s)} | {s['signs_per_s']:.0f} | "
                       f"{_ratio(s, 'asyncssh', 'wall')} |")
        out.append("")
    return "\n".join(out)


def rtt_markdown(measurements: list[Measurement], results: dict[str, dict[str, Any]],
                 clients: Sequence[str], path: rttpath.RttPath) -> str:
    """The RTT rows as throughput relative to OpenSSH's (> 1 is faster), and the path."""
    out = [f"{path.describe()}.", "",
           f"| {rttpath.RTT_MS:.0f} ms RTT | client | MB/s | throughput vs ssh | "
           "CPU s/GiB | CPU vs ssh |", "|---|---|---:|---:|---:|---:|"]
    for m in measurements:
        if m.kind not in RTT_KINDS:
            continue
        for c in clients:
            s = results[m.id][c]
            if s["status"] != "ok":
                out.append(f"| {RTT_KINDS[m.kind]} | {c} | {_status_cell(s)} | | | |")
                continue
            wall = s.get("ratios", {}).get("openssh", {}).get("wall")
            speed = f"{1 / wall:.2f}x" if wall else ""
            out.append(f"| {RTT_KINDS[m.kind]} | {c}{_failed_rounds(s)} | "
                       f"{s['mb_per_s']:.0f} | {speed} | {s['cpu_s_per_gib']:.2f} | "
                       f"{_ratio(s, 'openssh', 'cpu')} |")
    out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------
# the machine
# --------------------------------------------------------------------------

def _version_of(module: str) -> str:
    try:
        from importlib.metadata import version
        return str(version(module))
    except Exception:  # not installed: the run will say so when it starts that client
        return "not installed"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sshlib"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "cryptography": _version_of("cryptography"),
        "asyncssh": _version_of("asyncssh"),
        "paramiko": _version_of("paramiko"),
        "openssh": (ssh_v.stderr or ssh_v.stdout).strip(),
        "sshlib_commit": commit + (" (sshlib/ modified)" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmark sshlib against asyncssh, paramiko and OpenSSH's ssh client "
                    "on a throwaway local sshd.")
    p.add_argument("--size", type=parse_size, default=None,
                   help="bytes per download/upload, e.g. 1G, 256M (default 1G; --quick: 4M)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3; --quick: 1)")
    p.add_argument("--latency-samples", type=int, default=None,
                   help="connections per round for latency (default 20; --quick: 3)")
    p.add_argument("--sessions", type=int, default=None,
                   help="sessions on one connection (default 1000; --quick: 20)")
    p.add_argument("--agent-signs", type=int, default=None,
                   help="agent signatures per round (default 1000; --quick: 50)")
    p.add_argument("--forward-conns", type=int, default=None,
                   help="short forwarded connections (default 1000; --quick: 20)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes: checks that the harness and every client work")
    p.add_argument("--clients", default=",".join(CLIENTS),
                   help=f"comma-separated subset of {','.join(CLIENTS)}")
    p.add_argument("--measurements", default=",".join(KINDS),
                   help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--ciphers", default=",".join(c for c, _ in CIPHERS),
                   help="comma-separated subset of the ciphers for download/upload")
    p.add_argument("--rtt-size", type=parse_size, default=None,
                   help="bytes per sftp-get-rtt/sftp-put-rtt transfer (default 256M; --quick: 4M)")
    p.add_argument("--rtt-via", choices=("auto", "netem", "delayline"), default="auto",
                   help="how the RTT rows make their 20 ms round trip: tc netem in a network "
                        "namespace, the userspace delay line, or netem when the kernel has it "
                        "(default)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds before a transfer is killed and recorded as 'timeout' "
                        "(default: 30 + 1 s per 8 MB)")
    p.add_argument("--retry-timeouts", action="store_true",
                   help="run a client again in later rounds after it timed out "
                        "(default: record it once and skip it, to bound the run time)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help=f"where to write the results (default {DEFAULT_JSON.relative_to(ROOT)})")
    # Test-only: make this client transfer one byte too few, to prove the check works.
    p.add_argument("--test-wrong-bytes", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    for name, full, small in (("size", GiB, 4 * MiB), ("rtt_size", 256 * MiB, 4 * MiB),
                              ("rounds", 3, 1),
                              ("latency_samples", 20, 3), ("sessions", 1000, 20),
                              ("agent_signs", 1000, 50), ("forward_conns", 1000, 20)):
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    args.clients = [c for c in args.clients.split(",") if c]
    args.measurements = [k for k in args.measurements.split(",") if k]
    args.ciphers = [c for c in args.ciphers.split(",") if c]
    for c in args.clients:
        if c not in CLIENTS:
            p.error(f"unknown client {c!r}")
    for k in args.measurements:
        if k not in KINDS:
            p.error(f"unknown measurement {k!r}")
    for c in args.ciphers:
        if c not in dict(CIPHERS):
            p.error(f"unknown cipher {c!r}")
    args.rtt_ceiling_bytes = 16 * MiB if quick else GiB
    if args.rounds < 1 or args.size < 1 or args.rtt_size < 1:
        p.error("--rounds and --size must be positive")
    if args.timeout is None:
        args.timeout = 30 + args.size / 8e6
    return args


def require_clients(clients: Sequence[str]) -> None:
    missing = [c for c in ("asyncssh", "paramiko") if c in clients
               and _version_of(c) == "not installed"]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not installed for {sys.executable}; "
                         "install the benchmark clients with: pip install -e '.[bench]'")


def timeout_for(m: Measurement, args: argparse.Namespace) -> float:
    if m.kind in RTT_KINDS:
        return 120 + int(args.rtt_size) / 1e6  # 1 MB/s at least
    if m.kind.startswith("sftp"):
        return 4 * float(args.timeout) + 120  # paramiko's get is slow by design
    if m.kind in ("download", "upload", "forward"):
        return float(args.timeout)
    if m.kind == "forwardconns":
        return 60 + 0.5 * int(args.forward_conns)
    if m.kind == "latency":
        return 60 + 5.0 * int(args.latency_samples)
    if m.kind == "sessions":
        return 60 + 0.5 * int(args.sessions)
    return 60 + 0.05 * int(args.agent_signs)


def count_for(m: Measurement, args: argparse.Namespace) -> int:
    counts = {"latency": args.latency_samples, "sessions": args.sessions,
              "agent": args.agent_signs, "forwardconns": args.forward_conns}
    return int(counts.get(m.kind, 0))


def bytes_for(m: Measurement, args: argparse.Namespace) -> int:
    if m.kind in RTT_KINDS:
        return int(args.rtt_size)
    return TREE_FILES * TREE_FILE_SIZE if "tree" in m.kind else int(args.size)


def prepare_sftp(base: Path, size: int, owner: str, tree: bool = True) -> dict[str, str]:
    """The SFTP sources (a `size`-byte file, a tree of TREE_FILES files unless not `tree`)
    and their sha256s, in a directory the server's login user can write (it is on the
    same machine)."""
    import hashlib
    import pwd

    base.mkdir(mode=0o777)
    base.chmod(0o777)
    seed = os.urandom(1 << 20)
    digest = hashlib.sha256()
    with open(base / "src.bin", "wb") as fh:
        left, index = size, 0
        while left > 0:
            block = (index.to_bytes(8, "big") + seed[8:])[:left]
            fh.write(block)
            digest.update(block)
            left -= len(block)
            index += 1
    sums = {"src.bin": digest.hexdigest()}
    for i in range(TREE_FILES if tree else 0):
        d = base / "tree" / f"d{i % 10}" / f"e{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(TREE_FILE_SIZE))
    if tree:
        sums["tree"] = tree_digest(base / "tree")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        for top, dirs, files in os.walk(base):
            for name in [*dirs, *files, "."]:
                os.chown(os.path.join(top, name), entry.pw_uid, entry.pw_gid)
    return sums


def tree_digest(root: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for top, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(top) / name
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def verify_sftp(m: Measurement, env: Env, client: str, sums: dict[str, str]) -> None:
    """Raise WrongResult unless the destination equals the source; then remove it."""
    import hashlib
    import shutil

    base = sftp_dir_for(m, env)
    assert base is not None
    tree = "tree" in m.kind
    dst = base / (f"out-{RTT_KINDS.get(m.kind, m.kind)}" + ("" if tree else ".bin"))
    try:
        if tree:
            got = tree_digest(dst)
        else:
            h = hashlib.sha256()
            with open(dst, "rb") as fh:
                while chunk := fh.read(1 << 22):
                    h.update(chunk)
            got = h.hexdigest()
        if got != sums["tree" if tree else "src.bin"]:
            raise WrongResult(f"client {client!r}, {m.label}: sha256 of the result differs")
    finally:
        if dst.is_dir():
            shutil.rmtree(dst, ignore_errors=True)
        elif dst.exists():
            dst.unlink()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def byte_compile_sshlib() -> None:
    """Write the working tree's .pyc files, as installing a package does.

    The other clients are installed packages whose bytecode pip compiled; sshlib
    runs from the source tree, and with PYTHONDONTWRITEBYTECODE set (as on the
    CI machines) every client process would compile all of it again first: about
    0.08 s of CPU per process that no installed sshlib pays.
    """
    import compileall

    compileall.compile_dir(str(ROOT / "sshlib"), quiet=2)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from sshlib import testing

    require_clients(args.clients)
    measurements = plan(args.measurements, args.ciphers)
    byte_compile_sshlib()
    started = time.time()
    machine = machine_info()
    log(f"sshlib benchmarks: {len(measurements)} measurements x {len(args.clients)} clients x "
        f"{args.rounds} rounds, transfers of {args.size} bytes")
    outcomes: dict[str, dict[str, list[Outcome]]] = {
        m.id: {c: [] for c in args.clients} for m in measurements}
    errors: list[str] = []

    server = testing.start_openssh(extra_config=SSHD_CONFIG)
    env: Env | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="sshlib-bench-") as tmp:
            work = Path(tmp)
            work.chmod(0o700)
            key = str(server.user_key_paths["ed25519-openssh"])
            with ssh_agent(work, key) as agent_sock, contextlib.ExitStack() as stack:
                env = Env(host=server.host, port=server.port, user=server.user, key=key,
                          pubkey=key + ".pub", known_hosts=str(server.known_hosts_path),
                          agent_sock=agent_sock, workdir=work,
                          sources=write_sources(server.workdir))
                if any(m.kind.startswith("sftp") for m in measurements):
                    env.sftp_dir = Path(tempfile.mkdtemp(prefix="sshlib-bench-sftp-"))
                    env.sftp_dir.rmdir()
                    SFTP_SUMS.update(prepare_sftp(env.sftp_dir, args.size, server.user))
                if any(m.kind in RTT_KINDS for m in measurements):
                    assert env.sftp_dir is not None
                    RTT_SUMS.update(prepare_sftp(env.sftp_dir / "rtt", args.rtt_size,
                                                 server.user, tree=False))
                    env.rtt = stack.enter_context(rttpath.open_path(
                        server.host, server.port, server.host_public_keys.values(), work,
                        args.rtt_ceiling_bytes, args.rtt_via))
                    log(f"RTT rows: {env.rtt.describe()}")
                for rnd in range(1, args.rounds + 1):
                    for m in measurements:
                        for client in args.clients:
                            o = measure_one(client, m, env, args, rnd, outcomes[m.id][client])
                            outcomes[m.id][client].append(o)
                            if o.status == "error":
                                errors.append(f"{client}, {m.label}, round {rnd}: {o.reason}")
    finally:
        server.stop()
        if env is not None and env.sftp_dir is not None:
            import shutil
            shutil.rmtree(env.sftp_dir, ignore_errors=True)

    results: dict[str, dict[str, Any]] = {}
    for m in measurements:
        nbytes, count = bytes_for(m, args), count_for(m, args)
        results[m.id] = {c: summarise(m, outcomes[m.id][c], nbytes, count) for c in args.clients}
        add_ratios(results[m.id])
    table = markdown(measurements, results, args.clients)
    if env is not None and env.rtt is not None:
        table += "\n" + rtt_markdown(measurements, results, args.clients, env.rtt)
    command = "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    report = {
        "schema": 1,
        "command": command,
        "started_at": datetime.datetime.fromtimestamp(started, datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "duration_s": time.time() - started,
        "machine": machine,
        "settings": {
            "size_bytes": args.size, "rounds": args.rounds,
            "latency_samples": args.latency_samples, "sessions": args.sessions,
            "agent_signs": args.agent_signs, "forward_conns": args.forward_conns,
            "transfer_timeout_s": args.timeout,
            "clients": args.clients, "kex": KEX, "host_key": HOST_KEY_ALG,
            "latency_and_sessions_cipher": DEFAULT_CIPHER,
            "sshd_config": SSHD_CONFIG,
            "rtt_size_bytes": args.rtt_size,
            **({"rtt_path": env.rtt.to_json()} if env is not None and env.rtt else {}),
            "upload_remote_command": "wc -c",
            "compression_sources": {"bytes": SOURCE_SIZE, "data": list(COMPRESSION_DATA),
                                    "remote_command": "while cat FILE; do :; done | head -c N"},
        },
        "measurements": {
            m.id: {
                "kind": m.kind, "label": m.label,
                **({"cipher": m.cipher, "mac": m.mac if m.cipher not in AEAD else None}
                   if m.kind in ("download", "upload") else {}),
                **({"data": m.data, "compression": m.compress} if m.data != "zeros" else {}),
                "clients": {c: {**results[m.id][c],
                                "rounds": [o.to_json() for o in outcomes[m.id][c]]}
                            for c in args.clients},
            }
            for m in measurements
        },
        "errors": errors,
        "table_markdown": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{command}\n")
    print(f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}; "
          f"cryptography {machine['cryptography']}; asyncssh {machine['asyncssh']}; "
          f"paramiko {machine['paramiko']}; {machine['openssh']}\n")
    print(table)
    print("Ratios are costs (time, CPU, memory) of the client divided by asyncssh's or ssh's: "
          "below 1.00x is better.")
    print(f"JSON: {args.json}  ({report['duration_s']:.0f} s)")
    if errors:
        print("\nClient failures (recorded as 'error' above):\n  " + "\n  ".join(errors),
              file=sys.stderr)
    if any(e.startswith("sshlib,") for e in errors):
        print("FAIL: sshlib failed a measurement", file=sys.stderr)
        return 1
    return 0


def measure_one(client: str, m: Measurement, env: Env, args: argparse.Namespace, rnd: int,
                earlier: list[Outcome]) -> Outcome:
    head = f"[round {rnd}/{args.rounds}] {m.label:<52} {client:<9}"
    if (client, m.cipher) in NOT_SUPPORTED and m.kind in ("download", "upload"):
        return Outcome("n/a", reason=NOT_SUPPORTED[(client, m.cipher)])
    if not args.retry_timeouts and any(o.status == "timeout" for o in earlier):
        log(f"{head} skipped (timed out in an earlier round)")
        return Outcome("skipped", reason="timed out in an earlier round")
    nbytes, count = bytes_for(m, args), count_for(m, args)
    asked = nbytes - 1 if client == args.test_wrong_bytes and nbytes > 0 else nbytes
    result = env.workdir / f"result-{client}.json"
    argv = child_argv(client, m, env, asked, count, result)
    o = run_child(argv, result, timeout_for(m, args), env.workdir / f"stderr-{client}.txt")
    if m.kind.startswith("sftp"):
        if o.status == "ok" and client == args.test_wrong_bytes:
            o.data["bytes"] = nbytes - 1
        if o.status == "ok":
            verify_sftp(m, env, client, RTT_SUMS if m.kind in RTT_KINDS else SFTP_SUMS)
    check_result(client, m, o, nbytes, count)
    if o.status == "ok":
        if m.kind in TRANSFERS:
            detail = f"{o.wall_s:7.2f} s  {nbytes / 1e6 / o.wall_s:7.1f} MB/s  CPU {o.cpu_s:.2f} s"
        elif m.kind == "latency":
            detail = f"median {_median(o.data['samples_s']) * 1e3:.1f} ms"
        elif m.kind in ("sessions", "forwardconns"):
            detail = f"{o.data['total_s']:.2f} s, peak RSS {o.maxrss_kib / 1024:.1f} MiB"
        else:
            detail = f"{o.data['signs'] / o.data['total_s']:.0f} signatures/s"
    else:
        detail = f"{o.status} {o.reason}"
    log(f"{head} {detail}")
    return o


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        return run(args, argv)
    except WrongResult as exc:
        print(f"\nFAIL: {exc}\nNo results were written: a wrong byte count means the "
              "measurement is meaningless.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
