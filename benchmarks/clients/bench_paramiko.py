"""paramiko: one benchmark measurement, see _common.py.

paramiko has no chacha20-poly1305 (benchmarks/run.py records "n/a" without
starting this script) and names curve25519 only as curve25519-sha256@libssh.org.
A Transport is used directly so the algorithms can be pinned like the other
clients'; the host key is checked against the server's known_hosts file.
Its defaults (2 MiB window, 32 KiB packets, rekey every 512 MiB) are kept.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import Any

import _common
import paramiko  # type: ignore[import-untyped]  # no stubs (types-paramiko is not installed)

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

_KEX_NAMES = {"curve25519-sha256": "curve25519-sha256@libssh.org"}


class _Connection:
    def __init__(self, args: argparse.Namespace, key: paramiko.PKey,
                 host_key: paramiko.PKey) -> None:
        sock = socket.create_connection((args.host, args.port))
        self.transport = paramiko.Transport(sock)
        opts = self.transport.get_security_options()
        opts.kex = [_KEX_NAMES.get(args.kex, args.kex)]
        opts.key_types = [args.host_key_alg]
        opts.ciphers = [args.cipher]
        opts.digests = [args.mac]
        opts.compression = ["zlib@openssh.com"] if args.compression else ["none"]
        self.transport.connect(hostkey=host_key, username=args.user, pkey=key)

    def __enter__(self) -> paramiko.Transport:
        return self.transport

    def __exit__(self, *exc: object) -> None:
        self.transport.close()


def _keys(args: argparse.Namespace) -> tuple[paramiko.PKey, paramiko.PKey]:
    key = paramiko.Ed25519Key.from_private_key_file(args.key)
    known = paramiko.HostKeys(args.known_hosts)
    entry = known.lookup(f"[{args.host}]:{args.port}")
    if entry is None or args.host_key_alg not in entry:
        raise RuntimeError(f"no {args.host_key_alg} key for the server in {args.known_hosts}")
    return key, entry[args.host_key_alg]


def _exec(transport: paramiko.Transport, command: str) -> paramiko.Channel:
    chan = transport.open_session()
    chan.exec_command(command)
    return chan


def _check_exit(chan: paramiko.Channel) -> None:
    status = chan.recv_exit_status()
    if status != 0:
        raise RuntimeError(f"remote command exited with {status}")


def download(args: argparse.Namespace) -> dict[str, Any]:
    key, host_key = _keys(args)
    t0 = time.perf_counter()
    got = 0
    with _Connection(args, key, host_key) as t:
        chan = _exec(t, _common.download_command(args.bytes, args.source))
        recv = chan.recv
        while chunk := recv(1 << 20):
            got += len(chunk)
        _check_exit(chan)
        chan.close()
    return {"bytes": got, "inner_s": time.perf_counter() - t0}


def upload(args: argparse.Namespace) -> dict[str, Any]:
    key, host_key = _keys(args)
    chunks = _common.upload_chunks(args.bytes)
    t0 = time.perf_counter()
    with _Connection(args, key, host_key) as t:
        chan = _exec(t, _common.UPLOAD_COMMAND)
        for chunk in chunks:
            chan.sendall(chunk)
        chan.shutdown_write()
        parts = []
        while part := chan.recv(65536):
            parts.append(part)
        _check_exit(chan)
        chan.close()
    return {"bytes": _common.parse_count(b"".join(parts)), "inner_s": time.perf_counter() - t0}


def _run_true(t: paramiko.Transport) -> None:
    chan = _exec(t, "true")
    while chan.recv(65536):
        pass
    _check_exit(chan)
    chan.close()


def latency(args: argparse.Namespace) -> dict[str, Any]:
    key, host_key = _keys(args)
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(args.count):
        t0, c0 = time.perf_counter(), time.process_time()
        with _Connection(args, key, host_key) as t:
            _run_true(t)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"samples_s": walls, "cpu_samples_s": cpus}


def sessions(args: argparse.Namespace) -> dict[str, Any]:
    key, host_key = _keys(args)
    with _Connection(args, key, host_key) as t:
        t0, c0 = time.perf_counter(), time.process_time()
        done = 0
        for _ in range(args.count):
            _run_true(t)
            done += 1
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"sessions": done, "total_s": total, "cpu_s": cpu}


def agent(args: argparse.Namespace) -> dict[str, Any]:
    os.environ["SSH_AUTH_SOCK"] = args.agent_sock  # paramiko.Agent() only reads this
    conn = paramiko.Agent()
    keys = conn.get_keys()
    if not keys:
        raise RuntimeError("the agent holds no keys")
    key = keys[0]
    data = os.urandom(64)
    verified = _common.verify_ed25519_signature(args.pubkey, data,
                                                bytes(key.sign_ssh_data(data)))
    t0 = time.perf_counter()
    for i in range(args.count):
        key.sign_ssh_data(b"%d" % i)
    total = time.perf_counter() - t0
    conn.close()
    return {"signs": args.count, "total_s": total, "verified": verified}


def _get_tree(s: paramiko.SFTPClient, src: str, dst: str) -> None:
    import stat as st
    os.makedirs(dst, exist_ok=True)
    for entry in s.listdir_attr(src):
        rp, lp = f"{src}/{entry.filename}", os.path.join(dst, entry.filename)
        if st.S_ISDIR(entry.st_mode or 0):
            _get_tree(s, rp, lp)
        else:
            s.get(rp, lp)


def _put_tree(s: paramiko.SFTPClient, src: str, dst: str) -> None:
    s.mkdir(dst)
    for name in sorted(os.listdir(src)):
        lp, rp = os.path.join(src, name), f"{dst}/{name}"
        if os.path.isdir(lp):
            _put_tree(s, lp, rp)
        else:
            s.put(lp, rp, confirm=False)


def sftp(args: argparse.Namespace) -> dict[str, Any]:
    """paramiko's SFTPClient.get/put (it has no recursive transfer: a plain walk)."""
    key, host_key = _keys(args)
    src, dst = _common.sftp_paths(args)
    t0 = time.perf_counter()
    with _Connection(args, key, host_key) as t:
        s = paramiko.SFTPClient.from_transport(t)
        assert s is not None
        tree = "tree" in args.measurement
        if args.measurement.endswith("get"):
            if tree:
                _get_tree(s, src, dst)
            else:
                s.get(src, dst)
        else:
            if tree:
                _put_tree(s, src, dst)
            else:
                s.put(src, dst, confirm=False)
        s.close()
    return _common.sftp_result(args, t0)


def forward(args: argparse.Namespace) -> dict[str, Any]:
    return {"status": "n/a", "reason": "paramiko has no local port forwarder (only a demo script)"}


def main() -> None:
    args = _common.parse_args()
    run = {"download": download, "upload": upload, "latency": latency,
           "sessions": sessions, "agent": agent, "forward": forward,
           "forwardconns": forward}.get(args.measurement, sftp)
    _common.write_result(args, run(args))


if __name__ == "__main__":
    main()
