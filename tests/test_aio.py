"""sshlib.aio-only behaviour: the API forms, cancellation, agent I/O off the loop, run_on.

The shared interop/auth/session/bad-input tests already run against sshlib.aio
through tests/frontends.py; this file covers what only asyncio has.  Every
test runs its own event loop with warnings as errors, a loop exception
handler that fails the test (e.g. "Task was destroyed but it is pending",
"Task exception was never retrieved"), a check that no task outlives the
test's clients, and a gc pass so that unclosed transports raise their
ResourceWarning inside the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from helpers import config
from test_agent_forwarding import local_agent  # noqa: F401  (fixture)

import sshlib
import sshlib.agent
import sshlib.aio

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.timeout(300)]

T = TypeVar("T")


async def within(awaitable: Awaitable[T], delay: float) -> T:
    """asyncio's own deadline: asyncio.timeout() on 3.11+, wait_for() on 3.10 (no timeout())."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(delay):
            return await awaitable
    return await asyncio.wait_for(awaitable, delay)


def run(main: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    """asyncio.run(main()) with the checks the module docstring lists."""
    problems: list[str] = []

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, ctx: problems.append(
            f"{ctx.get('message')}: {ctx.get('exception')!r}"))
        result = await within(main(), timeout)
        await asyncio.sleep(0.05)  # let closed transports finish their callbacks
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not left, f"tasks left running: {left}"
        gc.collect()
        return result

    result = asyncio.run(wrapper())
    gc.collect()
    assert not problems, problems
    return result


def addr(server: Any) -> str:
    return f"{server.host}:{server.port}"


# --- the API forms -------------------------------------------------------------------------

def test_dial_await_and_async_with_and_session_forms(openssh_server: Any) -> None:
    async def main() -> None:
        cfg = config(openssh_server)
        async with sshlib.aio.dial("tcp", addr(openssh_server), cfg) as client:
            assert client.kex_count == 1
            async with client.new_session() as s:
                assert await s.output("echo hello") == b"hello\n"
            s = client.new_session()
            await s.start("cat")
            await s.stdin.write(b"x" * 100_000)
            await s.stdin.drain()
            await s.stdin.close()
            assert await s.stdout.read() == b"x" * 100_000
            await s.wait()
            s = await client.new_session()
            await s.request_pty("xterm", 24, 80)
            await s.shell()
            await s.stdin.write(b"stty size; exit\n")
            assert b"24 80" in await s.stdout.read(timeout=20)
            await s.wait(timeout=10)
        client = await sshlib.aio.dial("tcp", addr(openssh_server), cfg)
        try:
            with pytest.raises(sshlib.ExitError) as info:
                await client.new_session().output("echo bad >&2; exit 4")
            assert (info.value.exit_status, info.value.stderr) == (4, b"bad\n")
        finally:
            await client.close()
        assert await client.wait(timeout=5) is None
        with pytest.raises(sshlib.ConnectionLost):
            await client.new_session().start("true")
    run(main)


def test_client_over_stream_pair_and_line_iteration(openssh_server: Any) -> None:
    async def main() -> None:
        reader, writer = await asyncio.open_connection(openssh_server.host, openssh_server.port)
        async with await sshlib.aio.client_over(reader, writer, config(openssh_server)) as client:
            async with client.new_session() as s:
                await s.start("printf 'one\\ntwo\\nlast'")
                assert [line async for line in s.stdout] == [b"one\n", b"two\n", b"last"]
                await s.wait(timeout=10)
            async with client.new_session() as s:
                await s.start("head -c 300000 /dev/zero | tr '\\0' a; echo; echo end")
                assert await s.stdout.readline() == b"a" * 300000 + b"\n"
                assert await s.stdout.readexactly(3) == b"end"
                await s.wait(timeout=10)
    run(main)


def test_concurrent_sessions_and_backpressure(openssh_server: Any) -> None:
    """100 sessions at once; a 64 MiB upload that the transport must pace (drain)."""
    async def main() -> None:
        async with sshlib.aio.dial("tcp", addr(openssh_server), config(openssh_server)) as c:
            async def one(i: int) -> bytes:
                async with c.new_session(timeout=60) as s:
                    return await s.output(f"echo {i}", timeout=60)
            results = await asyncio.gather(*(one(i) for i in range(100)))
            assert results == [f"{i}\n".encode() for i in range(100)]
            s = c.new_session()
            await s.start("wc -c")
            await s.stdin.write(b"\0" * (64 << 20), timeout=120)
            await s.stdin.close()
            assert (await s.stdout.read(timeout=60)).strip() == str(64 << 20).encode()
            await s.wait(timeout=10)
    run(main, timeout=180)


# --- timeouts and cancellation -----------------------------------------------------------

def test_timeout_argument_keeps_the_session_and_asyncio_timeout_cooperates(
        openssh_server: Any) -> None:
    async def main() -> None:
        async with sshlib.aio.dial("tcp", addr(openssh_server), config(openssh_server)) as c:
            s = c.new_session()
            await s.start("sleep 0.5; echo late")
            with pytest.raises(sshlib.Timeout):
                await s.stdout.read(10, timeout=0.1)
            assert await s.stdout.read(timeout=10) == b"late\n"  # still usable
            await s.wait(timeout=10)
            s = c.new_session()
            await s.start("sleep 30")
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):  # TimeoutError itself on 3.11+
                await within(s.wait(), 0.2)
            assert time.monotonic() - started < 2
            with pytest.raises(sshlib.Timeout):
                await asyncio.wait_for(s.wait(timeout=0.1), 5)
            await s.close()
    run(main)


@pytest.mark.parametrize("blocked_in", ["read", "wait", "output", "write"])
def test_cancelling_a_blocked_task_closes_its_channel(openssh_server: Any,
                                                      blocked_in: str) -> None:
    async def main() -> None:
        async with sshlib.aio.dial("tcp", addr(openssh_server), config(openssh_server)) as c:
            # `cat` ends when sshd closes its stdin, which it does when our CHANNEL_CLOSE
            # arrives (sshd keeps a session channel until its command exits).
            s = c.new_session()
            if blocked_in != "output":
                await s.start("exec cat" if blocked_in != "write" else "exec cat >/dev/null")
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "read": lambda: s.stdout.read(),
                "wait": lambda: s.wait(),
                "output": lambda: s.output("exec cat"),
                "write": lambda: s.stdin.write(b"\0" * (1 << 30)),  # seconds of sending
            }
            task = asyncio.ensure_future(calls[blocked_in]())
            await asyncio.sleep(0.5)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # We sent CHANNEL_CLOSE; the server answers and the channel goes away.
            channel = s._channel
            for _ in range(100):
                if channel.closed:
                    break
                await asyncio.sleep(0.05)
            assert channel.closed and channel.id not in c._driver.channels
            assert await c.new_session().output("echo alive") == b"alive\n"
    run(main)


def test_cancelling_dial_against_a_silent_server_closes_the_socket() -> None:
    """Cancel dial() while it waits for the server's version: the socket must be closed."""
    async def main() -> None:
        peer_closed = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client goes away
            peer_closed.set()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cfg = sshlib.ClientConfig(user="u", host_key_callback=sshlib.insecure_ignore_host_key())
        try:
            task = asyncio.ensure_future(sshlib.aio.dial("tcp", f"127.0.0.1:{port}", cfg))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(peer_closed.wait(), 5)
            with pytest.raises(sshlib.Timeout):
                await sshlib.aio.dial("tcp", f"127.0.0.1:{port}",
                                      sshlib.ClientConfig(user="u", timeout=0.3))
        finally:
            server.close()
            await server.wait_closed()
    run(main)


def test_cancelling_dial_at_every_stage_of_a_real_handshake(openssh_server: Any) -> None:
    """Cancel after 0, 1, 2, ... ms: whatever state the handshake is in, nothing leaks."""
    async def main() -> None:
        cfg = config(openssh_server)
        cancelled = 0
        for delay_ms in range(0, 60, 3):
            task = asyncio.ensure_future(sshlib.aio.dial("tcp", addr(openssh_server), cfg))
            await asyncio.sleep(delay_ms / 1000)
            if task.cancel():
                cancelled += 1
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                await (await task).close()
        assert cancelled >= 5
    run(main)


def test_connection_refused_and_unresolvable_are_connection_lost() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # nothing listens here
        cfg = sshlib.ClientConfig(user="u", host_key_callback=sshlib.insecure_ignore_host_key())
        with pytest.raises(sshlib.ConnectionLost):
            await sshlib.aio.dial("tcp", f"127.0.0.1:{port}", cfg)
        with pytest.raises(sshlib.ConnectionLost):
            await sshlib.aio.dial("tcp", "no-such-host.invalid:22", cfg)
    run(main)


# --- agents -------------------------------------------------------------------------------

def test_agent_signing_runs_off_the_loop_and_forwarding_works(
        openssh_server: Any, local_agent: tuple[str, str]) -> None:  # noqa: F811
    sock, fingerprint = local_agent
    signing_threads: list[threading.Thread] = []

    class Recording:
        def __init__(self, signer: Any) -> None:
            self._signer = signer
            self.public_key = signer.public_key

        def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
            signing_threads.append(threading.current_thread())
            return bytes(self._signer.sign(data, algorithm))

    async def main() -> None:
        with sshlib.agent.connect(f"unix:{sock}") as agent:
            signers = [Recording(s) for s in agent.signers()]
            cfg = config(openssh_server, auth=[sshlib.PublicKeys(*signers)])  # type: ignore[arg-type]
            async with sshlib.aio.dial("tcp", addr(openssh_server), cfg) as client:
                client.forward_agent(f"unix:{sock}")
                async with client.new_session() as s:
                    await s.request_agent_forwarding()
                    listing = await s.output("ssh-add -l", timeout=30)
        assert fingerprint.encode() in listing
        assert signing_threads and threading.main_thread() not in signing_threads

    run(main)


def test_async_agent_client_against_a_real_ssh_agent(
        openssh_server: Any, local_agent: tuple[str, str]) -> None:  # noqa: F811
    import sshlib.aio.agent
    sock, fingerprint = local_agent
    extra = sshlib.keys.generate_private_key("ecdsa-sha2-nistp256")

    async def main() -> None:
        ticks = 0

        async def ticker() -> None:  # proves the loop keeps running while the agent works
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        try:
            async with await sshlib.aio.agent.connect(f"unix:{sock}", timeout=10) as agent:
                keys = await agent.list_keys()
                assert [k.fingerprint() for k in keys] == [fingerprint]
                await agent.add_key(extra, comment="aio-added", lifetime=60)
                assert {k.comment for k in await agent.list_keys()} >= {"aio-added"}
                signature = await agent.sign(extra.public_key, b"data")
                assert extra.public_key.verify(b"data", signature, "ecdsa-sha2-nistp256")
                await agent.lock(b"pw")
                assert await agent.list_keys() == []
                with pytest.raises(sshlib.errors.AgentRefusedError):
                    await agent.unlock(b"wrong")
                await agent.unlock(b"pw")
                await agent.remove_key(extra.public_key)
                signers = await agent.signers()
                cfg = config(openssh_server, auth=[sshlib.PublicKeys(*signers)])
                async with sshlib.aio.dial("tcp", addr(openssh_server), cfg) as client:
                    async with client.new_session() as s:
                        assert await s.output("echo agent-ok") == b"agent-ok\n"
        finally:
            tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick_task
        assert ticks > 1

    run(main)
    with pytest.raises(sshlib.errors.AgentConnectError):
        run(lambda: sshlib.aio.agent.connect("unix:/nonexistent/agent.sock", timeout=2))


# --- run_on ---------------------------------------------------------------------------------

def test_run_on_500_concurrent_connections(openssh_factory: Callable[..., Any]) -> None:
    server = openssh_factory({"MaxStartups": "1000:30:1000", "MaxSessions": "1000"})
    cfg = config(server, timeout=120)
    command = "echo out-$((6*7)); echo err >&2; exit 3"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]

    async def main() -> list[sshlib.aio.HostResult]:
        hosts: list[sshlib.aio.HostSpec] = [addr(server)] * 498
        hosts.append((server.host, server.port, config(server, user="nobody-here")))
        hosts.append(("127.0.0.1", dead_port))
        return [r async for r in sshlib.aio.run_on(hosts, command, cfg, limit=500,
                                                     timeout=240)]

    started = time.monotonic()
    results = run(main, timeout=280)
    elapsed = time.monotonic() - started
    assert len(results) == 500
    good = [r for r in results if r.port == server.port and r.error is None]
    assert len(good) == 498, [r.error for r in results if r.error][:5]
    for r in good:
        assert (r.stdout, r.stderr, r.exit_status, r.exit_signal) == (b"out-42\n", b"err\n", 3,
                                                                      None)
        assert not r.ok
    auth_failed = [r for r in results if isinstance(r.error, sshlib.AuthError)]
    refused = [r for r in results if r.port == dead_port]
    assert len(auth_failed) == 1 and len(refused) == 1
    assert isinstance(refused[0].error, sshlib.ConnectionLost)
    print(f"run_on: 500 connections in {elapsed:.1f} s")


def test_run_on_limit_timeout_and_early_exit(openssh_server: Any) -> None:
    async def main() -> None:
        cfg = config(openssh_server)
        hosts = [addr(openssh_server)] * 12
        started = time.monotonic()
        async for r in sshlib.aio.run_on(hosts, "sleep 0.3; echo ok", cfg, limit=3):
            assert r.ok and r.stdout == b"ok\n", r
        assert time.monotonic() - started >= 1.2  # 12 hosts x 0.3 s, at most 3 at a time
        slow = [r async for r in sshlib.aio.run_on([addr(openssh_server)] * 2, "sleep 30", cfg,
                                                     timeout=0.5)]
        assert all(isinstance(r.error, sshlib.Timeout) for r in slow)
        async with contextlib.aclosing(sshlib.aio.run_on(
                [addr(openssh_server)] * 20, "echo hi", cfg, limit=10)) as results:
            async for r in results:
                assert r.ok
                break  # the other hosts are cancelled and their connections closed
    run(main)
