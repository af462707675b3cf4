"""Channels as streams against a real sshd: dial/listen over TCP and Unix sockets, refusals."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import config, connect

import sshlib
import sshlib.aio

FORWARDING = {"AllowTcpForwarding": "yes", "AllowStreamLocalForwarding": "yes",
              "GatewayPorts": "clientspecified", "StreamLocalBindUnlink": "yes"}


@pytest.fixture(scope="module")
def fwd_server(ssh_tools: None) -> Iterator[Any]:
    """An sshd that allows every kind of forwarding (shared by this module's tests)."""
    from sshlib import testing

    with testing.start_openssh(extra_config=FORWARDING) as server:
        yield server


class EchoServer:
    """A local echo service (TCP or Unix) in a thread; counts connections."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(name="tcp_echo")
def tcp_echo_fixture() -> Iterator[EchoServer]:
    echo = EchoServer(socket.create_server(("127.0.0.1", 0)))
    yield echo
    echo.close()


@pytest.fixture
def unix_dir(tmp_path: Path) -> Path:
    """A directory the sshd's login user (maybe another account) can create sockets in."""
    path = Path(f"/tmp/sshlib-fwd-{os.getpid()}-{tmp_path.name}")
    path.mkdir(mode=0o777)
    path.chmod(0o1777)
    yield path  # type: ignore[misc]
    subprocess.run(["rm", "-rf", str(path)], check=False)


def echo_port(echo: EchoServer) -> int:
    return int(echo.sock.getsockname()[1])


def test_dial_tcp_round_trip_makefile_and_eof(frontend: Any, fwd_server: Any,
                                              tcp_echo: EchoServer) -> None:
    with connect(fwd_server, frontend) as client:
        with client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}", timeout=10) as conn:
            conn.settimeout(10)
            conn.sendall(b"hello")
            got = b""
            while len(got) < 5:
                got += conn.recv(100)
            assert got == b"hello"
            f = conn.makefile("rwb")
            f.write(b"line one\nline two\n")
            f.flush()
            assert f.readline() == b"line one\n"
            assert f.readline() == b"line two\n"
            conn.shutdown_write()
            assert conn.recv(100) == b""  # the echo service saw EOF and closed
            conn.settimeout(0.2)
        blob = os.urandom(3 << 20)  # more than a window each way
        conn = client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}", timeout=10)
        writer = threading.Thread(target=lambda: (conn.sendall(blob), conn.shutdown_write()))
        writer.start()
        conn.settimeout(30)
        chunks = []
        while data := conn.recv(1 << 20):
            chunks.append(data)
        writer.join()
        conn.close()
        assert b"".join(chunks) == blob


def test_recv_timeout_keeps_the_stream(frontend: Any, fwd_server: Any,
                                       tcp_echo: EchoServer) -> None:
    with connect(fwd_server, frontend) as client:
        conn = client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}", timeout=10)
        conn.settimeout(0.3)
        with pytest.raises(sshlib.Timeout):
            conn.recv(10)
        with pytest.raises(TimeoutError):  # socket-expecting code catches TimeoutError
            conn.recv(10)
        conn.settimeout(10)
        conn.sendall(b"still here")
        assert conn.recv(100) == b"still here"
        conn.close()


def test_dial_unix_socket(frontend: Any, fwd_server: Any, unix_dir: Path) -> None:
    path = unix_dir / "echo.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    path.chmod(0o777)
    sock.listen()
    echo = EchoServer(sock)
    try:
        with connect(fwd_server, frontend) as client:
            with client.dial("unix", str(path), timeout=10) as conn:
                conn.settimeout(10)
                conn.sendall(b"over unix")
                assert conn.recv(100) == b"over unix"
        assert echo.connections == 1
    finally:
        echo.close()


def _remote(client: Any, command: str) -> Any:
    session = client.new_session(timeout=10)
    session.start(command, timeout=10)
    return session


def test_listen_tcp_port_zero_and_close_cancels(frontend: Any, fwd_server: Any) -> None:
    with connect(fwd_server, frontend) as client:
        ln = client.listen("tcp", "127.0.0.1:0")
        host, port = ln.address
        assert host == "127.0.0.1" and port > 0
        # A process on the server side connects with bash's /dev/tcp and talks to us.
        session = _remote(client, f"exec 3<>/dev/tcp/127.0.0.1/{port}; echo ping >&3; "
                                  "head -c 5 <&3")
        conn = ln.accept(timeout=10)
        assert conn.origin is not None and conn.origin[0] == "127.0.0.1"
        conn.settimeout(10)
        assert conn.makefile("rb").readline() == b"ping\n"
        conn.sendall(b"pong!")
        assert session.stdout.read(timeout=10) == b"pong!"
        session.wait(timeout=10)
        conn.close()
        with pytest.raises(sshlib.Timeout):
            ln.accept(timeout=0.2)
        ln.close()
        # The forward is really gone on the server: its port refuses connections now.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with pytest.raises(sshlib.SSHError):
            ln.accept(timeout=1)


def test_listen_iterates_until_closed(frontend: Any, fwd_server: Any) -> None:
    with connect(fwd_server, frontend) as client:
        ln = client.listen("tcp", "127.0.0.1:0")
        port = ln.address[1]
        session = _remote(client, "for i in 1 2 3; do "
                                  f"exec 3<>/dev/tcp/127.0.0.1/{port}; echo $i >&3; exec 3>&-; "
                                  "done")
        seen = []
        for conn in ln:
            conn.settimeout(10)
            seen.append(conn.makefile("rb").readline())
            conn.close()
            if len(seen) == 3:
                ln.close()
        assert seen == [b"1\n", b"2\n", b"3\n"]
        session.wait(timeout=10)


def test_listen_unix_socket(frontend: Any, fwd_server: Any, unix_dir: Path) -> None:
    path = str(unix_dir / "remote.sock")
    with connect(fwd_server, frontend) as client:
        ln = client.listen("unix", path)
        assert ln.address == path
        session = _remote(client, "python3 -c \"import socket,sys; s=socket.socket(socket.AF_UNIX);"
                                  f" s.connect('{path}'); s.sendall(b'via unix');"
                                  " sys.stdout.write(s.recv(10).decode())\"")
        conn = ln.accept(timeout=10)
        conn.settimeout(10)
        got = b""
        while len(got) < 8:
            got += conn.recv(100)
        assert got == b"via unix"
        conn.sendall(b"reply")
        assert session.stdout.read(timeout=10) == b"reply"
        session.wait(timeout=10)
        conn.close()
        ln.close()


def test_forwarding_refused_by_the_server(frontend: Any, openssh_factory: Any,
                                          tcp_echo: EchoServer, unix_dir: Path) -> None:
    server = openssh_factory({"AllowTcpForwarding": "no", "AllowStreamLocalForwarding": "no"})
    with connect(server, frontend) as client:
        with pytest.raises(sshlib.ChannelOpenError) as refused:
            client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}", timeout=10)
        assert refused.value.reason == 1  # administratively prohibited
        with pytest.raises(sshlib.ChannelOpenError):
            client.dial("unix", str(unix_dir / "x.sock"), timeout=10)
        with pytest.raises(sshlib.RequestDeniedError):
            client.listen("tcp", "127.0.0.1:0")
        with pytest.raises(sshlib.RequestDeniedError):
            client.listen("unix", str(unix_dir / "y.sock"))
        client.send_keepalive(timeout=10)  # the connection is fine after the refusals
    assert tcp_echo.connections == 0


def test_dial_connect_failure(frontend: Any, fwd_server: Any) -> None:
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with connect(fwd_server, frontend) as client:
        with pytest.raises(sshlib.ChannelOpenError) as failed:
            client.dial("tcp", f"127.0.0.1:{port}", timeout=10)
        assert failed.value.reason == 2  # connect failed


def test_closing_the_client_ends_streams_and_listeners(frontend: Any, fwd_server: Any,
                                                       tcp_echo: EchoServer) -> None:
    client = connect(fwd_server, frontend)
    conn = client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}", timeout=10)
    ln = client.listen("tcp", "127.0.0.1:0")
    client.close()
    conn.settimeout(5)
    with pytest.raises(sshlib.SSHError):
        conn.sendall(b"x")
    with pytest.raises(sshlib.SSHError):
        conn.recv(1)
    with pytest.raises(sshlib.SSHError):
        ln.accept(timeout=5)
    assert list(ln) == []


def test_thousand_dials_leave_fd_count_unchanged(frontend: Any, fwd_server: Any,
                                                 tcp_echo: EchoServer) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with connect(fwd_server, frontend) as client:
        target = f"127.0.0.1:{echo_port(tcp_echo)}"
        with client.dial("tcp", target, timeout=10) as warm:
            warm.sendall(b"w")
        before = fds()
        for _ in range(1000):
            conn = client.dial("tcp", target, timeout=10)
            conn.close()
        client.send_keepalive(timeout=10)
        assert fds() <= before + 2


# --- asyncio-only API: open_connection and the StreamReader/StreamWriter methods -------------

def test_aio_open_connection_runs_asyncio_code_unchanged(fwd_server: Any,
                                                         tcp_echo: EchoServer) -> None:
    async def talk(reader: Any, writer: Any) -> list[bytes]:
        """Code written for asyncio.open_connection's pair."""
        writer.write(b"one\ntwo\n")
        writer.writelines([b"three", b"\n", b"tail"])
        await writer.drain()
        lines = [await reader.readline(), await reader.readuntil(b"\n")]
        lines.append(await reader.readexactly(6))
        writer.write_eof()
        lines.append(await reader.read())
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()
        return lines

    async def main() -> None:
        async with sshlib.aio.dial("tcp", fwd_server.address, config(fwd_server)) as client:
            reader, writer = await client.open_connection("127.0.0.1", echo_port(tcp_echo))
            assert await talk(reader, writer) == [b"one\n", b"two\n", b"three\n", b"tail"]
            real = await asyncio.open_connection("127.0.0.1", echo_port(tcp_echo))
            assert await talk(*real) == [b"one\n", b"two\n", b"three\n", b"tail"]
            stream = await client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}")
            stream.write(b"a\nb\nc")
            stream.write_eof()
            assert [line async for line in stream] == [b"a\n", b"b\n", b"c"]
            with pytest.raises(asyncio.IncompleteReadError):
                await stream.readexactly(1)
            stream = await client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}")
            stream.write(b"key=value;;rest")
            with pytest.raises(sshlib.Timeout):
                await stream.readuntil(b"#", timeout=0.5)  # consumes nothing
            assert await stream.readuntil(b";;", timeout=10) == b"key=value;;"
            stream.write_eof()
            with pytest.raises(asyncio.IncompleteReadError) as partial:
                await stream.readuntil(b";;", timeout=10)
            assert partial.value.partial == b"rest"
            stream.close()
            ln = await client.listen("tcp", "127.0.0.1:0")
            open_tcp = asyncio.open_connection(*ln.address)
            local = asyncio.ensure_future(open_tcp)
            async for conn in ln:
                conn.write(b"hi")
                await conn.drain(timeout=10)
                conn.close()
                break
            r, w = await local
            assert await r.read() == b"hi"
            w.close()
            pending = await client.dial("tcp", f"127.0.0.1:{echo_port(tcp_echo)}")
        with pytest.raises(sshlib.SSHError):  # closing the client closed its streams
            await pending.read(1)
        with pytest.raises(sshlib.SSHError):
            await ln.accept(timeout=1)

    asyncio.run(asyncio.wait_for(main(), 60))
