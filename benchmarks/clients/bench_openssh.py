"""OpenSSH's `ssh` client: one benchmark measurement, see _common.py.

This script is only a driver: it starts `ssh` itself and measures that
process (wall time from spawn to exit, CPU and peak RSS via os.wait4), so the
Python start-up of the driver is not charged to OpenSSH.  It reports those
numbers under "process", which benchmarks/run.py uses instead of its own
measurement of the driver.

- download: ssh's stdout is a pipe the driver reads and counts.
- upload: a driver thread writes the data into ssh's stdin pipe.
- latency: one `ssh ... true` process per sample.
- sessions: a ControlMaster (`ssh -M -N`) holds one connection; each session
  is one multiplexed `ssh -S ctl ... true` client.  Time = the loop; CPU = the
  master's CPU during the loop plus all mux clients'; peak RSS = the master's.
- forward / forwardconns: `ssh -N -L`, ssh's CPU read from /proc across the run.
- agent: OpenSSH has no client interface that signs with the agent once per
  call without starting a process, so this is "n/a".
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"


def ssh_argv(args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-T", "-p", str(args.port), "-i", args.key,
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", f"UserKnownHostsFile={args.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
        "-o", f"KexAlgorithms={args.kex}", "-o", f"HostKeyAlgorithms={args.host_key_alg}",
        "-c", args.cipher, "-m", args.mac, "-o", "LogLevel=ERROR",
        "-o", f"Compression={'yes' if args.compression else 'no'}",
        *extra, f"{args.user}@{args.host}",
    ]


def _pipe() -> tuple[int, int]:
    """A pipe of 1 MiB (Linux's default maximum) instead of 64 KiB.

    With the default size ssh blocks on a full pipe after every two packets,
    and the extra wake-ups cost it about as much CPU as the transfer itself
    for small sizes (measured: 4 MiB, 0.14 s sys vs 0.02 s).  The Python
    clients hand data to their caller inside their own process.
    """
    r, w = os.pipe()
    with contextlib.suppress(OSError):  # /proc/sys/fs/pipe-max-size may be lower
        fcntl.fcntl(r, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    return r, w


def _check(proc: dict[str, float], what: str) -> None:
    if proc["exit"] != 0:
        raise RuntimeError(f"{what} exited with status {proc['exit']:.0f}")


def download(args: argparse.Namespace) -> dict[str, Any]:
    argv = [*ssh_argv(args, "-o", "ControlPath=none"),
            _common.download_command(args.bytes, args.source)]
    buf = memoryview(bytearray(1 << 20))
    got = 0
    r, w = _pipe()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=w)
    os.close(w)
    with open(r, "rb", buffering=0) as out:
        readinto = out.readinto
        while n := readinto(buf):
            got += n
    proc = _common.wait_measured(p, t0)
    _check(proc, "ssh")
    return {"bytes": got, "inner_s": proc["wall_s"], "process": proc}


def upload(args: argparse.Namespace) -> dict[str, Any]:
    argv = [*ssh_argv(args, "-o", "ControlPath=none"), _common.UPLOAD_COMMAND]
    chunks = _common.upload_chunks(args.bytes)
    r, w = _pipe()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    assert p.stdout is not None
    stdin = open(w, "wb", buffering=0)
    errors: list[BaseException] = []

    def feed() -> None:
        try:
            for chunk in chunks:
                view = chunk
                while view:
                    view = view[stdin.write(view) or 0:]
        except BaseException as exc:  # reported below; ssh's own exit says more
            errors.append(exc)
        finally:
            stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    out = p.stdout.read()
    writer.join()
    proc = _common.wait_measured(p, t0)
    _check(proc, "ssh")
    if errors:
        raise errors[0]
    return {"bytes": _common.parse_count(out), "inner_s": proc["wall_s"], "process": proc}


def latency(args: argparse.Namespace) -> dict[str, Any]:
    argv = [*ssh_argv(args, "-o", "ControlPath=none"), "true"]
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(args.count):
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert p.stdout is not None
        p.stdout.read()
        p.stdout.close()
        proc = _common.wait_measured(p, t0)
        _check(proc, "ssh")
        walls.append(proc["wall_s"])
        cpus.append(proc["cpu_s"])
    return {"samples_s": walls, "cpu_samples_s": cpus}


def _proc_cpu(pid: int) -> float:
    """utime+stime of a live process from /proc (the master is reaped only at the end)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sessions(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sshlib-bench-mux-") as tmp:
        ctl = str(Path(tmp) / "ctl")
        master = subprocess.Popen(
            ssh_argv(args, "-M", "-N", "-S", ctl, "-o", "ControlPersist=no"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        t_master = time.perf_counter()
        deadline = time.monotonic() + 30
        while subprocess.run(ssh_argv(args, "-S", ctl, "-O", "check"), capture_output=True,
                             check=False).returncode != 0:
            if master.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the ssh ControlMaster did not come up")
            time.sleep(0.05)
        client_argv = [*ssh_argv(args, "-S", ctl, "-o", "ControlMaster=no"), "true"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        master_before = _proc_cpu(master.pid)
        t0 = time.perf_counter()
        done = 0
        for _ in range(args.count):
            subprocess.run(client_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           check=True)
            done += 1
        total = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        master_during = _proc_cpu(master.pid) - master_before
        subprocess.run(ssh_argv(args, "-S", ctl, "-O", "exit"), capture_output=True, check=False)
        mproc = _common.wait_measured(master, t_master)
    clients_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"sessions": done, "total_s": total, "cpu_s": clients_cpu + master_during,
            "master_maxrss_kib": mproc["maxrss_kib"],
            "client_maxrss_kib": float(after.ru_maxrss),
            "process": {"wall_s": total, "cpu_s": clients_cpu + master_during,
                        "maxrss_kib": mproc["maxrss_kib"]}}


def agent(args: argparse.Namespace) -> dict[str, Any]:
    return {"status": "n/a",
            "reason": "no OpenSSH client signs with the agent without one process per signature"}


def sftp(args: argparse.Namespace) -> dict[str, Any]:
    """OpenSSH's `sftp -b` (batch mode) with its defaults (64 requests in flight)."""
    src, dst = _common.sftp_paths(args)
    tree = "tree" in args.measurement
    verb = "get" if args.measurement.endswith("get") else "put"
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as batch:
        batch.write(f"{verb} {'-R ' if tree else ''}{src} {dst}\n")
    ssh = ssh_argv(args)
    opts = [a for a in ssh[1:-1] if a not in ("-T",)]
    port = opts.index("-p")
    opts[port] = "-P"
    cipher = opts.index("-c")
    del opts[cipher:cipher + 2]
    mac = opts.index("-m")
    del opts[mac:mac + 2]
    argv = ["sftp", "-b", batch.name, *opts, "-o", f"Ciphers={args.cipher}",
            "-o", f"MACs={args.mac}", ssh[-1]]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    proc = _common.wait_measured(p, t0)
    os.unlink(batch.name)
    _check(proc, "sftp")
    result = _common.sftp_result(args, t0)
    result["process"] = proc
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    """Is 127.0.0.1:port in LISTEN state? (/proc/net/tcp: no probe connection needed)."""
    want = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == want and fields[3] == "0A":
            return True
    return False


def forward(args: argparse.Namespace) -> dict[str, Any]:
    """forward and forwardconns through `ssh -N -L`; CPU = the ssh process's, across the run."""
    target, port = _common.forward_target(args)
    lport = _free_port()
    argv = ssh_argv(args, "-N", "-o", "ControlPath=none", "-o", "ExitOnForwardFailure=yes",
                    "-L", f"127.0.0.1:{lport}:127.0.0.1:{port}")
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _listening(lport):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ssh -L did not start listening")
            time.sleep(0.02)
        result = _common.forward_measure(lport, args, lambda: _proc_cpu(p.pid))
    finally:
        p.terminate()
        proc = _common.wait_measured(p, t0)
        target.kill()
        target.wait()
    result["process"]["maxrss_kib"] = proc["maxrss_kib"]
    return result


def main() -> None:
    args = _common.parse_args()
    run = {"download": download, "upload": upload, "latency": latency,
           "sessions": sessions, "agent": agent, "forward": forward,
           "forwardconns": forward}.get(args.measurement, sftp)
    _common.write_result(args, run(args))


if __name__ == "__main__":
    main()
