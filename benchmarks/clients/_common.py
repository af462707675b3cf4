"""What every benchmark client script shares: its command line and its result file.

Each client script (bench_<client>.py) runs ONE measurement in a fresh process
started by benchmarks/run.py, which times the whole process and reads its CPU
time with os.wait4.  The script writes what only it can know (bytes counted,
per-connection latencies, ...) as JSON to the file named by --result; nothing
is printed to stdout, so a stray print or warning can never corrupt a result.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

MEASUREMENTS = ("download", "upload", "latency", "sessions", "agent",
                "sftp-get", "sftp-put", "sftp-tree-get", "sftp-tree-put", "forward", "forwardconns")

#: Upload data is written from one preallocated buffer of this size.
CHUNK = 1 << 20

#: Remote side of the upload: consume and discard stdin like `cat > /dev/null`,
#: but also print the byte count so the upload is verified end to end.
UPLOAD_COMMAND = "wc -c"


def download_command(nbytes: int, source: str = "") -> str:
    """Zeros, or the file `source` over and over (compression rows), cut at `nbytes`."""
    if source:
        return f"while cat {shlex.quote(source)}; do :; done | head -c {nbytes}"
    return f"head -c {nbytes} /dev/zero"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="one benchmark measurement for one client")
    p.add_argument("measurement", choices=MEASUREMENTS)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True, help="ed25519 private key file (OpenSSH format)")
    p.add_argument("--known-hosts", required=True)
    p.add_argument("--kex", default="curve25519-sha256")
    p.add_argument("--host-key-alg", default="ssh-ed25519")
    p.add_argument("--cipher", default="aes128-gcm@openssh.com")
    p.add_argument("--mac", default="hmac-sha2-256-etm@openssh.com")
    p.add_argument("--bytes", type=int, default=0, help="download/upload size")
    p.add_argument("--count", type=int, default=0,
                   help="latency samples, sessions, or agent signatures")
    p.add_argument("--agent-sock", default="")
    p.add_argument("--pubkey", default="", help="public key the agent holds (to verify)")
    p.add_argument("--sftp-dir", default="", help="directory of the SFTP sources/results")
    p.add_argument("--result", required=True, help="write the JSON result here")
    p.add_argument("--source", default="", help="download: repeat this remote file, not zeros")
    p.add_argument("--compression", action="store_true",
                   help="offer zlib@openssh.com (else compression is off)")
    return p.parse_args(argv)


def write_result(args: argparse.Namespace, result: dict[str, Any]) -> None:
    tmp = Path(args.result + ".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, args.result)


def not_available(args: argparse.Namespace, reason: str) -> None:
    write_result(args, {"status": "n/a", "reason": reason})


def zeros() -> memoryview:
    return memoryview(bytes(CHUNK))


def upload_chunks(nbytes: int) -> list[memoryview]:
    """Views of one zero buffer adding up to exactly `nbytes` (no per-chunk allocation)."""
    buf = zeros()
    full, rest = divmod(nbytes, CHUNK)
    chunks = [buf] * full
    if rest:
        chunks.append(buf[:rest])
    return chunks


def parse_count(output: bytes) -> int:
    """The byte count printed by the remote `wc -c`; -1 if there is none."""
    try:
        return int(output.split()[0])
    except (IndexError, ValueError):
        return -1


def verify_ed25519_signature(pubkey_path: str, data: bytes, signature: bytes) -> bool:
    """Check an agent's Ed25519 signature (SSH blob or raw 64 bytes) with `cryptography`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    public = load_ssh_public_key(Path(pubkey_path).read_bytes())
    if not isinstance(public, Ed25519PublicKey):
        return False
    raw = signature
    if len(signature) != 64:  # string "ssh-ed25519" || string sig
        try:
            (n,) = struct.unpack_from(">I", signature, 0)
            (m,) = struct.unpack_from(">I", signature, 4 + n)
            raw = signature[8 + n:8 + n + m]
        except struct.error:
            return False
    try:
        public.verify(raw, data)
    except InvalidSignature:
        return False
    return True


def wait_measured(proc: subprocess.Popen[bytes], started: float) -> dict[str, float]:
    """Reap `proc` with os.wait4: its wall time since `started`, CPU (user+sys), peak RSS."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": float(usage.ru_maxrss), "exit": float(proc.returncode)}


def sftp_paths(args: argparse.Namespace) -> tuple[str, str]:
    """(source, destination) of an SFTP measurement; run.py made the source and checks
    the destination (byte count and sha256).  Server and client share the directory."""
    base = args.sftp_dir
    tree = "tree" in args.measurement
    src = f"{base}/tree" if tree else f"{base}/src.bin"
    dst = f"{base}/out-{args.measurement}" + ("" if tree else ".bin")
    return src, dst


def sftp_result(args: argparse.Namespace, t0: float) -> dict[str, Any]:
    """The bytes that arrived at the destination (file size or tree total)."""
    _, dst = sftp_paths(args)
    if os.path.isdir(dst):
        got = sum(os.path.getsize(os.path.join(top, f)) for top, _, files in os.walk(dst)
                  for f in files)
    else:
        got = os.path.getsize(dst)
    return {"bytes": got, "inner_s": time.perf_counter() - t0}


def forward_measure(port: int, args: argparse.Namespace, cpu: Callable[[], float]
                    ) -> dict[str, Any]:
    """Push the transfer (forward) or the short connections (forwardconns) through `port`.

    `port` is the client's local forward to the target the script started
    with `forward_target(args)`; `cpu()` reads the client's CPU seconds (its
    own process, or the ssh process it drives).  The consumer is a separate
    process, so its cost is charged to no client; the result's "process"
    entry (wall = the consumer's elapsed time, CPU = the client's CPU across
    it) is what benchmarks/run.py reports.
    """
    import resource

    import _fwdpeer

    c0 = cpu()
    if args.measurement == "forward":
        count, seconds = _fwdpeer.run("consume", port, args.bytes)
        result: dict[str, Any] = {"bytes": count}
    else:
        count, seconds = _fwdpeer.run("conns", port, args.count)
        result = {"connections": count, "total_s": seconds}
    cpu_s = cpu() - c0
    rss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    result.update(inner_s=seconds, cpu_s=cpu_s,
                  process={"wall_s": seconds, "cpu_s": cpu_s, "maxrss_kib": rss})
    return result


def forward_target(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    """The target service the forward leads to: a source of N bytes, or an echo service."""
    import _fwdpeer

    if args.measurement == "forward":
        return _fwdpeer.start("source", args.bytes)
    return _fwdpeer.start("echo")


def self_cpu() -> float:
    """This process's CPU seconds (all threads, not its children)."""
    return time.process_time()
