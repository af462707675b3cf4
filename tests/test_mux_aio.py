"""sshlib.aio.mux against a real OpenSSH ControlMaster: the sync tests' scenarios on asyncio.

Each test runs in test_aio's strict loop (warnings are errors, no task may
outlive the test, loop exceptions fail it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from test_aio import run
from test_mux import (  # noqa: F401  (fixtures)
    Master,
    echo_server_fixture,
    master_fixture,
    short_dir_fixture,
    start_master_fixture,
    tcp_echo_fixture,
)

import sshlib
import sshlib.aio
import sshlib.aio.mux
from sshlib.errors import (
    ExitError,
    ExitMissingError,
    MuxConnectError,
    MuxProtocolError,
    MuxRefusedError,
    MuxTimeoutError,
    RequestDeniedError,
)

pytestmark = [pytest.mark.filterwarnings("error"), pytest.mark.timeout(300)]


def test_check_sessions_and_exit_status(master: Master) -> None:
    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            assert await m.check() == master.process.pid
            async with await m.new_session() as s:
                assert await s.output("echo out; echo err >&2", timeout=20) == b"out\n"
            async with await m.new_session() as s:
                with pytest.raises(ExitError) as info:
                    await s.run("echo oops >&2; exit 3", timeout=20)
                assert info.value.exit_status == 3 and info.value.stderr == b"oops\n"
            async with await m.new_session() as s:
                s2 = await m.new_session()
                await s.setenv("SSHLIB_MUX", "aio")
                await s.start('echo "$SSHLIB_MUX"; kill -KILL $$', timeout=20)
                assert await s.stdout.readline(timeout=10) == b"aio\n"
                with pytest.raises(ExitMissingError, match="signal"):
                    await s.wait(timeout=20)
                with pytest.raises(RequestDeniedError):
                    await s2.signal("TERM")
                await s2.close()
    run(main)


def test_stdin_stdout_with_flow_control(master: Master) -> None:
    data = os.urandom(3 << 20)

    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            async with await m.new_session() as s:
                await s.start("sha256sum", timeout=20)

                async def feed() -> None:
                    await s.stdin.write(data, timeout=60)
                    await s.stdin.close()

                writer = asyncio.create_task(feed())
                digest = await s.stdout.read(timeout=60)
                await writer
                assert digest.split()[0].decode() == hashlib.sha256(data).hexdigest()
                await s.wait(timeout=20)
            async with await m.new_session() as s:  # more output than the pump buffers
                out = await s.output("head -c 5000000 /dev/zero", timeout=60)
                assert out == bytes(5000000)
    run(main)


def test_pty_session(master: Master) -> None:
    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            async with await m.new_session() as s:
                await s.request_pty("vt100", 30, 100)
                await s.start('echo "$TERM"; stty size; read x; for i in $(seq 100); do '
                              '[ "$(stty size)" = "40 120" ] && break; sleep 0.05; done; '
                              'stty size', timeout=20)
                assert await s.stdout.readline(timeout=10) == b"vt100\r\n"
                assert await s.stdout.readline(timeout=10) == b"30 100\r\n"
                await s.window_change(40, 120)
                await s.stdin.write(b"\r", timeout=10)
                rest = await s.stdout.read(timeout=20)
                assert rest.endswith(b"40 120\r\n"), rest
                await s.wait(timeout=10)
    run(main)


def test_dial_and_forward_local(master: Master, echo_server: tuple[str, int]) -> None:
    host, port = echo_server
    data = os.urandom(1 << 20)

    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            conn = await m.dial("tcp", f"{host}:{port}", timeout=10)
            assert isinstance(conn, sshlib.aio.Stream)
            conn.write(data)
            got = await conn.readexactly(len(data), timeout=30)
            await conn.drain(timeout=30)
            assert got == data
            conn.write_eof()
            assert await conn.read(timeout=10) == b""
            conn.close()
            fw = await m.forward_local("127.0.0.1:0", f"{host}:{port}")
            reader, writer = await asyncio.open_connection(*fw.address)
            writer.write(b"through the master\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"through the master\n"
            writer.close()
            await writer.wait_closed()
            await fw.close()
            with pytest.raises(OSError):
                await asyncio.open_connection(*fw.address)
            with pytest.raises(MuxRefusedError):
                await m.dial("tcp", f"127.0.0.1:{_closed_port()}", timeout=10)
            async with await m.forward_remote("127.0.0.1:0", f"{host}:{port}") as rfw:
                reader, writer = await asyncio.open_connection(*rfw.address)
                writer.write(b"back\n")
                assert await asyncio.wait_for(reader.readline(), 10) == b"back\n"
                writer.close()
                await writer.wait_closed()
            with pytest.raises(MuxRefusedError):  # already closed: the master no longer has it
                await m.close_forward(rfw)
    run(main)


def _closed_port() -> int:
    sock = socket.create_server(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_dead_master_stale_socket_and_garbage(master: Master, short_dir: Path) -> None:
    garbage = short_dir / "garbage"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(garbage))
    server.listen()

    async def main() -> None:
        m = await sshlib.aio.mux.connect(master.path, timeout=10)
        s = await m.new_session()
        master.process.kill()
        master.process.wait()
        start = time.monotonic()
        with pytest.raises(MuxConnectError):
            await m.check(timeout=5)
        with pytest.raises(MuxConnectError):
            await s.output("true", timeout=5)
        with pytest.raises(MuxConnectError, match="stale"):
            await sshlib.aio.mux.connect(master.path, timeout=5)
        with pytest.raises(MuxConnectError, match="does not exist"):
            await sshlib.aio.mux.connect(str(short_dir / "nothing"), timeout=5)
        assert time.monotonic() - start < 5
        await m.close()

        async def accept_and_babble() -> None:
            loop = asyncio.get_running_loop()
            server.setblocking(False)
            conn, _ = await loop.sock_accept(server)
            with conn:
                await loop.sock_sendall(conn, b"SSH-2.0-OpenSSH_9.2\r\n")
                await asyncio.sleep(0.5)

        babbler = asyncio.create_task(accept_and_babble())
        with pytest.raises(MuxProtocolError):
            await sshlib.aio.mux.connect(str(garbage), timeout=5)
        await babbler
    try:
        run(main)
    finally:
        server.close()


def test_master_that_asks_and_is_refused(start_master: Any, short_dir: Path) -> None:
    askpass = short_dir / "no"
    askpass.write_text("#!/bin/sh\necho no\n")
    askpass.chmod(0o755)
    refusing = start_master("-M", env={"SSH_ASKPASS": str(askpass),
                                       "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"})

    async def main() -> None:
        async with sshlib.aio.mux.connect(refusing.path, timeout=10) as m:
            async with await m.new_session() as s:
                with pytest.raises(MuxRefusedError) as info:
                    await s.output("true", timeout=20)
                assert info.value.permission_denied
    run(main)


def test_stop_listening_terminate_and_a_silent_socket(master: Master, short_dir: Path) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(short_dir / "silent"))
    silent.listen()  # accepts (in the kernel) and never says HELLO

    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            await m.stop_listening()
            with pytest.raises(MuxConnectError):
                await sshlib.aio.mux.connect(master.path, timeout=5)
            assert await m.check() == master.process.pid  # this connection still works
            await m.terminate()
        start = time.monotonic()
        with pytest.raises(MuxTimeoutError):
            await sshlib.aio.mux.connect(str(short_dir / "silent"), timeout=1)
        assert time.monotonic() - start < 2.5
    try:
        run(main)
    finally:
        silent.close()
    master.process.wait(10)
