"""Agent throughput with concurrent callers: pipelined sshlib vs one-at-a-time vs asyncssh.

    python benchmarks/agent_concurrency.py                     # 3 rounds, 300 logins
    python benchmarks/agent_concurrency.py --rounds 1 --signs 500 --logins 50 --out FILE

A real OpenSSH ssh-agent holding one Ed25519 key, reached either directly
(its Unix socket) or through an order-keeping delay line (benchmarks/
delayline.py, 1 ms each way, in a process of its own), which stands in for a
WSL2 relay, a forwarded agent or a bridge.

- signatures: one agent connection per client process, C concurrent signers
  (C = 1, 8, 32) sharing it, `--signs` Ed25519 signatures in all.  sshlib:
  threads calling `AgentSigner.sign` on one `AgentClient` (pipelined, up to 32
  in flight); "sshlib 1-at-a-time" is the same with `max_in_flight=1`, which is
  how AgentClient worked before pipelining (one lock around each request);
  asyncssh: tasks calling `SSHAgentKeyPair.sign_async` on one
  `asyncssh.connect_agent()` client (asyncssh holds a lock per request).
- logins: `--logins` concurrent connections to a local sshd, each
  authenticating with the agent's key and running `true`.  sshlib:
  `sshlib.aio.run_on` with the signers of one `sshlib.aio.agent` client;
  asyncssh: `asyncssh.connect(agent_path=...)` (one agent connection per SSH
  connection, as asyncssh does it) under `asyncio.gather`.

Every measurement runs in a fresh child process (this file with --child), the
clients alternating per round; wall time and CPU (user+sys) are the child's
own (RUSAGE_SELF), so the agent's and the delay line's CPU are not counted.
Medians over the rounds.  A wrong signature aborts the run; a failed login is
counted and shown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The benchmarks run sshd and POSIX tools; the assert also tells `mypy --platform win32`
# to skip the rest of this module (as in sshlib.testing).
assert sys.platform != "win32", "the benchmarks are POSIX-only"

from benchmarks.fanout import CIPHER, HOST_KEY_ALG, KEX, machine  # noqa: E402
from benchmarks.run import ssh_agent  # noqa: E402

SIGN_CLIENTS = ("sshlib", "sshlib-serial", "asyncssh")
LOGIN_CLIENTS = ("sshlib", "asyncssh")
CONCURRENCY = (1, 8, 32)
PATHS = ("direct", "delay")
LABELS = {"sshlib": "sshlib (pipelined)", "sshlib-serial": "sshlib 1-at-a-time",
          "asyncssh": "asyncssh"}


# --- children ---------------------------------------------------------------------------------

def _usage() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _check(pub_line: str, data: bytes, signature: bytes) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = serialization.load_ssh_public_key(pub_line.encode())
    assert isinstance(key, ed25519.Ed25519PublicKey)
    key.verify(signature[-64:], data)  # raises on a bad signature


def sign_sshlib(args: argparse.Namespace, serial: bool) -> tuple[float, float, bytes]:
    import sshlib.agent

    agent = sshlib.agent.AgentClient(sshlib.agent.open_stream(args.sock, timeout=30),
                                     timeout=60, max_in_flight=1 if serial else None)
    (signer,) = agent.signers()
    data = os.urandom(32)
    left = [args.signs]
    lock = threading.Lock()
    last: list[bytes] = []

    def work() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            last[:] = [signer.sign(data)]

    cpu0, started = _usage(), time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - started, _usage() - cpu0
    agent.close()
    return wall, cpu, data + last[0]


def sign_asyncssh(args: argparse.Namespace) -> tuple[float, float, bytes]:
    import asyncssh

    async def run() -> tuple[float, float, bytes]:
        agent = await asyncssh.connect_agent(args.sock)
        (key,) = await agent.get_keys()
        assert isinstance(key, asyncssh.SSHAgentKeyPair)  # get_keys() is typed as SSHKeyPair
        data = os.urandom(32)
        left = [args.signs]
        last: list[bytes] = []

        async def work() -> None:
            while left[0] > 0:
                left[0] -= 1
                last[:] = [await key.sign_async(data)]

        cpu0, started = _usage(), time.perf_counter()
        await asyncio.gather(*(work() for _ in range(args.concurrency)))
        wall, cpu = time.perf_counter() - started, _usage() - cpu0
        agent.close()
        return wall, cpu, data + last[0]

    return asyncio.run(run())


async def login_sshlib(args: argparse.Namespace) -> list[str]:
    import sshlib
    import sshlib.aio
    import sshlib.aio.agent

    agent = await sshlib.aio.agent.connect(args.sock, timeout=120)
    cfg = sshlib.ClientConfig(
        user=args.user, auth=[sshlib.PublicKeys(*await agent.signers())],
        host_key_callback=sshlib.knownhosts.callback(args.known_hosts),
        kex_algorithms=[KEX], host_key_algorithms=[HOST_KEY_ALG], ciphers=[CIPHER],
        timeout=300)
    problems = []
    async for r in sshlib.aio.run_on([(args.host, args.port)] * args.n, "true", cfg,
                                     limit=args.n, timeout=600):
        if not r.ok:
            problems.append(f"{r.error or r.exit_status}")
    await agent.close()
    return problems


async def login_asyncssh(args: argparse.Namespace) -> list[str]:
    import asyncssh

    options = {
        "port": args.port, "username": args.user, "agent_path": args.sock,
        "known_hosts": asyncssh.read_known_hosts(args.known_hosts),
        "kex_algs": [KEX], "server_host_key_algs": [HOST_KEY_ALG],
        "encryption_algs": [CIPHER], "compression_algs": ["none"], "config": None,
        "preferred_auth": "publickey", "connect_timeout": 300,
    }

    async def one() -> str | None:
        try:
            async with asyncssh.connect(args.host, **options) as conn:
                result = await conn.run("true")
                return None if result.exit_status == 0 else f"exit {result.exit_status}"
        except (OSError, asyncssh.Error) as exc:
            return repr(exc)

    return [p for p in await asyncio.gather(*(one() for _ in range(args.n))) if p]


def child(args: argparse.Namespace) -> None:
    if args.child == "sign":
        if args.client == "asyncssh":
            wall, cpu, proof = sign_asyncssh(args)
        else:
            wall, cpu, proof = sign_sshlib(args, serial=args.client == "sshlib-serial")
        _check(args.pubkey, proof[:32], proof[32:])
        print(json.dumps({"wall": wall, "cpu": cpu, "rate": args.signs / wall}))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.n + 1024)), hard))
    runner = login_sshlib if args.client == "sshlib" else login_asyncssh
    cpu0, started = _usage(), time.perf_counter()
    problems = asyncio.run(runner(args))
    print(json.dumps({"wall": time.perf_counter() - started, "cpu": _usage() - cpu0,
                      "failed": len(problems), "problems": problems[:3]}))


# --- parent -------------------------------------------------------------------------------------

@contextlib.contextmanager
def delay_line(workdir: Path, upstream: str, delay_ms: float) -> Iterator[str]:
    sock = workdir / "delay.sock"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.delayline", str(sock), upstream,
                             "--delay-ms", str(delay_ms)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the delay line did not start")
            time.sleep(0.02)
        yield str(sock)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        print(err.strip(), file=sys.stderr)


def run_child(*extra: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if proc.returncode != 0:
        if "InvalidSignature" in proc.stderr or "AssertionError" in proc.stderr:
            sys.exit(f"wrong signature from {extra}: {proc.stderr[-800:]}")
        return {"error": proc.stderr.strip()[-300:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _med(runs: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(r[field] for r in runs))


def parent(args: argparse.Namespace) -> None:
    from sshlib import testing

    sign: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    login: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(testing.start_openssh(
            extra_config={"MaxStartups": "1000:30:1000", "MaxSessions": "1000"}))
        key = Path(server.user_key_paths["ed25519-openssh"])
        pub_line = Path(str(key) + ".pub").read_text().strip() if \
            Path(str(key) + ".pub").exists() else _pub_line(key)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentbench-")))
        agent_sock = stack.enter_context(ssh_agent(work, str(key)))
        line_sock = stack.enter_context(delay_line(work, agent_sock, args.delay_ms))
        socks = {"direct": agent_sock, "delay": line_sock}
        for round_no in range(args.rounds):
            clients = SIGN_CLIENTS if round_no % 2 == 0 else tuple(reversed(SIGN_CLIENTS))
            for path in PATHS:
                for conc in CONCURRENCY:
                    for client in clients:
                        r = run_child("--child", "sign", "--client", client, "--sock",
                                      socks[path], "--concurrency", str(conc), "--signs",
                                      str(args.signs), "--pubkey", pub_line)
                        sign.setdefault((path, client, conc), []).append(r)
                        print(f"round {round_no + 1} sign {path} c={conc} {client}: {r}",
                              file=sys.stderr)
                if args.logins:
                    for client in (LOGIN_CLIENTS if round_no % 2 == 0
                                   else tuple(reversed(LOGIN_CLIENTS))):
                        r = run_child("--child", "login", "--client", client, "--sock",
                                      socks[path], "--n", str(args.logins), "--host",
                                      server.host, "--port", str(server.port), "--user",
                                      server.user, "--known-hosts",
                                      str(server.known_hosts_path))
                        login.setdefault((path, client), []).append(r)
                        print(f"round {round_no + 1} login {path} {client}: {r}",
                              file=sys.stderr)
    text = render(args, sign, login)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def _pub_line(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True,
                         check=True, timeout=30)
    return out.stdout.strip()


def render(args: argparse.Namespace, sign: dict[tuple[str, str, int], list[dict[str, Any]]],
           login: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    lines = [
        "## Agent: concurrent signers and logins through one agent",
        "",
        f"`python benchmarks/agent_concurrency.py --rounds {args.rounds} --signs {args.signs} "
        f"--logins {args.logins}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"A real OpenSSH ssh-agent with one Ed25519 key, reached directly or through an "
        f"order-keeping delay line ({args.delay_ms:g} ms each way, its own process). "
        f"Medians over {args.rounds} round(s); CPU is the client process's own "
        f"(user+sys); \"vs asyncssh\" is the signature rate divided by asyncssh's.",
        "",
        f"Machine: {machine()}.",
        "",
        "| path | signers | client | signatures/s | CPU per 1,000 signatures (s) "
        "| vs asyncssh | vs 1-at-a-time |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for path in PATHS:
        for conc in CONCURRENCY:
            ok = {c: [r for r in sign.get((path, c, conc), []) if "error" not in r]
                  for c in SIGN_CLIENTS}
            rate = {c: _med(runs, "rate") for c, runs in ok.items() if runs}
            for client in SIGN_CLIENTS:
                if client not in rate:
                    lines.append(f"| {path} | {conc} | {LABELS[client]} | error | | | |")
                    continue
                cpu = _med(ok[client], "cpu") / args.signs * 1000
                vs_a = f"{rate[client] / rate['asyncssh']:.2f}x" if "asyncssh" in rate else ""
                vs_s = (f"{rate[client] / rate['sshlib-serial']:.2f}x"
                        if "sshlib-serial" in rate and client.startswith("sshlib") else "")
                lines.append(f"| {path} | {conc} | {LABELS[client]} | {rate[client]:,.0f} | "
                             f"{cpu:.2f} | {vs_a} | {vs_s} |")
    if login:
        lines += ["", f"{args.logins} concurrent connections, each authenticating with the "
                      f"agent's key and running `true`:", "",
                  "| path | client | wall time (s) | client CPU (s) | failed |",
                  "|---|---|---:|---:|---:|"]
        for path in PATHS:
            for client in LOGIN_CLIENTS:
                runs = [r for r in login.get((path, client), []) if "error" not in r]
                if not runs:
                    lines.append(f"| {path} | {client} | error | | |")
                    continue
                failed = sum(r["failed"] for r in runs)
                lines.append(f"| {path} | {client} | {_med(runs, 'wall'):.2f} | "
                             f"{_med(runs, 'cpu'):.2f} | {failed} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--signs", type=int, default=2000, help="signatures per measurement")
    ap.add_argument("--logins", type=int, default=300, help="concurrent logins (0: none)")
    ap.add_argument("--delay-ms", type=float, default=1.0)
    ap.add_argument("--out", help="also write the Markdown section here")
    ap.add_argument("--child", choices=("sign", "login"))
    ap.add_argument("--client")
    ap.add_argument("--sock")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--pubkey")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--user")
    ap.add_argument("--known-hosts")
    args = ap.parse_args()
    if args.child:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
