"""Channels as streams against a second server implementation: asyncssh's server.

asyncssh's SSHServer forwards direct-tcpip, direct-streamlocal, tcpip-forward
and streamlocal-forward itself once the callbacks allow them; both sshlib
front-ends dial and listen through it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from test_streams import EchoServer, echo_port, tcp_echo_fixture  # noqa: F401  (fixture)

import sshlib


class _Forwarding(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication: the test only exercises channels

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return True

    def unix_connection_requested(self, dest_path: str) -> bool:
        return True

    def unix_server_requested(self, listen_path: str) -> bool:
        return True


class AsyncsshServer:
    """asyncssh's server on a loop in a thread, on 127.0.0.1 with a fresh ed25519 host key."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.key = asyncssh.generate_private_key("ssh-ed25519")

        async def start() -> Any:
            return await asyncssh.create_server(_Forwarding, "127.0.0.1", 0,
                                                server_host_keys=[self.key])
        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def config(self) -> sshlib.ClientConfig:
        public = sshlib.parse_openssh_public_key(self.key.export_public_key().decode())
        return sshlib.ClientConfig(user="tester", auth=[],
                                   host_key_callback=sshlib.fixed_host_key(public), timeout=10)

    def close(self) -> None:
        async def stop() -> None:  # the server belongs to the loop's thread
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def send_all(conn: Any, payload: bytes) -> None:
    conn.sendall(payload)
    conn.shutdown_write()


@pytest.fixture(scope="module")
def asyncssh_server() -> Iterator[AsyncsshServer]:
    server = AsyncsshServer()
    yield server
    server.close()


def test_dial_tcp_and_unix(frontend: Any, asyncssh_server: AsyncsshServer,
                           tcp_echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    usock = socket.socket(socket.AF_UNIX)
    usock.bind(str(path))
    usock.listen()
    unix_echo = EchoServer(usock)
    try:
        with frontend.dial(f"127.0.0.1:{asyncssh_server.port}", asyncssh_server.config()) as c:
            for network, target in (("tcp", f"127.0.0.1:{echo_port(tcp_echo)}"),
                                    ("unix", str(path))):
                conn = c.dial(network, target, timeout=10)
                conn.settimeout(10)
                payload = network.encode() * 50000
                writer = threading.Thread(target=send_all, args=(conn, payload))
                writer.start()
                got = b""
                while data := conn.recv(1 << 16):
                    got += data
                writer.join()
                conn.close()
                assert got == payload
            with pytest.raises(sshlib.ChannelOpenError):
                free = socket.create_server(("127.0.0.1", 0))
                port = free.getsockname()[1]
                free.close()
                c.dial("tcp", f"127.0.0.1:{port}", timeout=10)
    finally:
        unix_echo.close()


def test_listen_tcp_and_cancel(frontend: Any, asyncssh_server: AsyncsshServer) -> None:
    with frontend.dial(f"127.0.0.1:{asyncssh_server.port}", asyncssh_server.config()) as c:
        ln = c.listen("tcp", "127.0.0.1:0")
        port = ln.address[1]
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=10) as local:
            conn = ln.accept(timeout=10)
            assert conn.origin is not None and conn.origin[0] == "127.0.0.1"
            conn.settimeout(10)
            local.sendall(b"from outside")
            got = b""
            while len(got) < 12:
                got += conn.recv(100)
            assert got == b"from outside"
            conn.sendall(b"answer")
            assert local.recv(100) == b"answer"
            conn.close()
        ln.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
