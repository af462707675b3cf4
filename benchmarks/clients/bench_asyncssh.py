"""asyncssh: one benchmark measurement, see _common.py.

Uses asyncssh's fastest documented path for bulk data: a SSHClientSession
whose data_received() only counts bytes (no stream objects, no copies).
Its defaults (2 MiB window, 32 KiB packets) are kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, cast

import _common
import asyncssh

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"


class _Counter(asyncssh.SSHClientSession[bytes]):
    def __init__(self) -> None:
        self.count = 0
        self.output: list[bytes] = []
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.count += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(exc)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "port": args.port,
        "username": args.user,
        "client_keys": [asyncssh.read_private_key(args.key)],
        "known_hosts": asyncssh.read_known_hosts(args.known_hosts),
        "kex_algs": [args.kex],
        "server_host_key_algs": [args.host_key_alg],
        "encryption_algs": [args.cipher],
        "mac_algs": [args.mac],
        "compression_algs": ["zlib@openssh.com"] if args.compression else ["none"],
        "agent_path": None,
        "config": None,
        "preferred_auth": "publickey",
    }


async def download(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    async with asyncssh.connect(args.host, **_options(args)) as conn:
        chan, base = await conn.create_session(
            _Counter, _common.download_command(args.bytes, args.source), encoding=None)
        session = cast(_Counter, base)
        exc = await session.done
        if exc is not None:
            raise exc
        status = chan.get_exit_status()
        if status != 0:
            raise RuntimeError(f"remote command exited with {status}")
    return {"bytes": session.count, "inner_s": time.perf_counter() - t0}


async def upload(args: argparse.Namespace) -> dict[str, Any]:
    chunks = _common.upload_chunks(args.bytes)
    t0 = time.perf_counter()
    async with asyncssh.connect(args.host, **_options(args)) as conn:
        proc = await conn.create_process(_common.UPLOAD_COMMAND, encoding=None)
        for chunk in chunks:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
        proc.stdin.write_eof()
        out = await proc.stdout.read()
        await proc.wait(check=True)
    return {"bytes": _common.parse_count(out), "inner_s": time.perf_counter() - t0}


async def latency(args: argparse.Namespace) -> dict[str, Any]:
    opts = _options(args)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(args.count):
        t0, c0 = time.perf_counter(), time.process_time()
        async with asyncssh.connect(args.host, **opts) as conn:
            await conn.run("true", check=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"samples_s": walls, "cpu_samples_s": cpus}


async def sessions(args: argparse.Namespace) -> dict[str, Any]:
    async with asyncssh.connect(args.host, **_options(args)) as conn:
        t0, c0 = time.perf_counter(), time.process_time()
        done = 0
        for _ in range(args.count):
            await conn.run("true", check=True, encoding=None)
            done += 1
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"sessions": done, "total_s": total, "cpu_s": cpu}


async def agent(args: argparse.Namespace) -> dict[str, Any]:
    async with asyncssh.connect_agent(args.agent_sock) as conn:
        keys = await conn.get_keys()
        if not keys:
            raise RuntimeError("the agent holds no keys")
        key = cast(asyncssh.agent.SSHAgentKeyPair, keys[0])
        data = os.urandom(64)
        verified = _common.verify_ed25519_signature(args.pubkey, data,
                                                    await key.sign_async(data))
        t0 = time.perf_counter()
        for i in range(args.count):
            await key.sign_async(b"%d" % i)
        total = time.perf_counter() - t0
    return {"signs": args.count, "total_s": total, "verified": verified}


async def sftp(args: argparse.Namespace) -> dict[str, Any]:
    """asyncssh's own get/put with its defaults (its block size and 128 requests in flight)."""
    src, dst = _common.sftp_paths(args)
    t0 = time.perf_counter()
    async with asyncssh.connect(args.host, **_options(args)) as conn:
        async with conn.start_sftp_client() as s:
            if args.measurement.endswith("get"):
                await s.get(src, dst, recurse="tree" in args.measurement)
            else:
                await s.put(src, dst, recurse="tree" in args.measurement)
    return _common.sftp_result(args, t0)


async def forward(args: argparse.Namespace) -> dict[str, Any]:
    """forward and forwardconns through forward_local_port (the consumer runs in a thread
    only to wait for its process; the loop stays free for the forwarder)."""
    target, port = _common.forward_target(args)
    try:
        async with asyncssh.connect(args.host, **_options(args)) as conn:
            listener = await conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", port)
            result = await asyncio.to_thread(_common.forward_measure, listener.get_port(), args,
                                             _common.self_cpu)
            listener.close()
            return result
    finally:
        target.kill()
        target.wait()


def main() -> None:
    args = _common.parse_args()
    run = {"download": download, "upload": upload, "latency": latency,
           "sessions": sessions, "agent": agent, "forward": forward,
           "forwardconns": forward}.get(args.measurement, sftp)
    _common.write_result(args, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
