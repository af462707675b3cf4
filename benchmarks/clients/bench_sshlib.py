"""sshlib (this repository's working tree): one benchmark measurement, see _common.py."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import _common

import sshlib

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"


def config(args: argparse.Namespace, cipher: str | None = None) -> sshlib.ClientConfig:
    cipher = cipher or args.cipher
    cfg = sshlib.ClientConfig(
        user=args.user,
        auth=[sshlib.PublicKeys(sshlib.load_private_key(args.key))],
        host_key_callback=sshlib.knownhosts.callback(args.known_hosts),
        kex_algorithms=[args.kex],
        host_key_algorithms=[args.host_key_alg],
        ciphers=[cipher],
        macs=[args.mac],
        compression=args.compression,
    )
    # Tuning experiments only (docs/performance.md): the harness never sets these.
    if os.environ.get("SSHLIB_BENCH_WINDOW"):
        cfg.window_size = int(os.environ["SSHLIB_BENCH_WINDOW"])
    if os.environ.get("SSHLIB_BENCH_MAX_PACKET"):
        cfg.max_packet_size = int(os.environ["SSHLIB_BENCH_MAX_PACKET"])
    return cfg


def dial(args: argparse.Namespace) -> sshlib.Client:
    return sshlib.dial("tcp", f"{args.host}:{args.port}", config(args))


def download(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    got = 0
    with dial(args) as client, client.new_session() as s:
        s.start(_common.download_command(args.bytes, args.source))
        read = s.stdout.read
        while chunk := read(1 << 20):
            got += len(chunk)
        s.wait()
    return {"bytes": got, "inner_s": time.perf_counter() - t0}


def upload(args: argparse.Namespace) -> dict[str, Any]:
    chunks = _common.upload_chunks(args.bytes)
    t0 = time.perf_counter()
    with dial(args) as client, client.new_session() as s:
        s.start(_common.UPLOAD_COMMAND)
        write = s.stdin.write
        for chunk in chunks:
            write(chunk)
        s.stdin.close()
        out = s.stdout.read()
        s.wait()
    return {"bytes": _common.parse_count(out), "inner_s": time.perf_counter() - t0}


def latency(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config(args)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(args.count):
        t0, c0 = time.perf_counter(), time.process_time()
        client = sshlib.dial("tcp", f"{args.host}:{args.port}", cfg)
        with client.new_session() as s:
            s.run("true")
        client.close()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"samples_s": walls, "cpu_samples_s": cpus}


def sessions(args: argparse.Namespace) -> dict[str, Any]:
    with dial(args) as client:
        t0, c0 = time.perf_counter(), time.process_time()
        done = 0
        for _ in range(args.count):
            s = client.new_session()
            s.output("true")
            s.close()
            done += 1
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"sessions": done, "total_s": total, "cpu_s": cpu}


def agent(args: argparse.Namespace) -> dict[str, Any]:
    try:
        mod = importlib.import_module("sshlib.agent")
    except ImportError as exc:
        return {"status": "n/a", "reason": f"not implemented yet (import sshlib.agent: {exc})"}
    if not hasattr(mod, "connect"):
        return {"status": "n/a", "reason": "not implemented yet (no sshlib.agent.connect)"}
    conn = mod.connect(f"unix:{args.agent_sock}")
    keys = list(conn.list_keys())
    if not keys:
        raise RuntimeError("sshlib.agent.list_keys() returned no keys")
    key = keys[0]
    data = os.urandom(64)
    first = conn.sign(key, data)
    verified = _common.verify_ed25519_signature(args.pubkey, data, bytes(first))
    t0 = time.perf_counter()
    for i in range(args.count):
        conn.sign(key, b"%d" % i)
    total = time.perf_counter() - t0
    close = getattr(conn, "close", None)
    if callable(close):
        close()
    return {"signs": args.count, "total_s": total, "verified": verified}


def sftp(args: argparse.Namespace) -> dict[str, Any]:
    """client.sftp().get/put; SSHLIB_BENCH_FRONTEND=aio uses sshlib.aio's SFTP client
    (an experiment for docs/performance.md; run.py never sets it)."""
    src, dst = _common.sftp_paths(args)
    recursive = "tree" in args.measurement
    t0 = time.perf_counter()
    if os.environ.get("SSHLIB_BENCH_FRONTEND") == "aio":
        asyncio.run(_sftp_aio(args, src, dst, recursive))
        return _common.sftp_result(args, t0)
    with dial(args) as client, client.sftp(timeout=60) as s:
        if args.measurement.endswith("get"):
            s.get(src, dst, recursive=recursive)
        else:
            s.put(src, dst, recursive=recursive)
    return _common.sftp_result(args, t0)


def _port(address: object) -> int:
    """The port of a TCP forwarder's address (typed `object`: it may be a socket path)."""
    assert isinstance(address, tuple), address
    return int(address[1])
async def _sftp_aio(args: argparse.Namespace, src: str, dst: str, recursive: bool) -> None:
    import sshlib.aio

    async with sshlib.aio.dial("tcp", f"{args.host}:{args.port}", config(args)) as client, \
            client.sftp(timeout=60) as s:
        if args.measurement.endswith("get"):
            await s.get(src, dst, recursive=recursive)
        else:
            await s.put(src, dst, recursive=recursive)


def forward(args: argparse.Namespace) -> dict[str, Any]:
    """forward (1 stream of N bytes) and forwardconns (short connections) via forward_local.

    SSHLIB_BENCH_FRONTEND=aio measures sshlib.aio's forwarder instead (an
    experiment for docs/performance.md; run.py never sets it).
    """
    target, port = _common.forward_target(args)
    try:
        if os.environ.get("SSHLIB_BENCH_FRONTEND") == "aio":
            return asyncio.run(_forward_aio(args, port))
        with dial(args) as client, \
                client.forward_local("127.0.0.1:0", f"127.0.0.1:{port}") as fw:
            return _common.forward_measure(_port(fw.address), args, _common.self_cpu)
    finally:
        target.kill()
        target.wait()


async def _forward_aio(args: argparse.Namespace, port: int) -> dict[str, Any]:
    import sshlib.aio

    async with sshlib.aio.dial("tcp", f"{args.host}:{args.port}", config(args)) as client:
        fw = await client.forward_local("127.0.0.1:0", f"127.0.0.1:{port}")
        result = await asyncio.to_thread(_common.forward_measure, _port(fw.address), args,
                                         _common.self_cpu)
        await fw.close()
        return result


def main() -> None:
    args = _common.parse_args()
    run = {"download": download, "upload": upload, "latency": latency,
           "sessions": sessions, "agent": agent, "forward": forward,
           "forwardconns": forward}.get(args.measurement, sftp)
    _common.write_result(args, run(args))


if __name__ == "__main__":
    main()
