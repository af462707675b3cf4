"""Forwarding without SSH: the SOCKS parser, spec parsing and the pump, on real local sockets.

The SOCKS parser and the spec parser are pure (bytes/strings in, values out);
the forwarders are exercised here with an opener that connects a plain local
socket, so their threading, half-close and teardown are tested apart from
the SSH layer (tests/test_forwarding.py runs them through real servers).
"""

from __future__ import annotations

import ast
import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshlib import errors
from sshlib.aio import forward as aio_forward
from sshlib.forwardspec import WILDCARD, Endpoint, parse_listen, parse_target
from sshlib.socks import (
    SOCKS5_COMMAND_NOT_SUPPORTED,
    SOCKS5_CONNECTION_REFUSED,
    SocksConnect,
    SocksHandshake,
)
from sshlib.sync.forward import DynamicForwarder, LocalForwarder

ROOT = Path(__file__).resolve().parents[1]


def test_pure_modules_import_no_io() -> None:
    for name in ("socks.py", "forwardspec.py"):
        tree = ast.parse((ROOT / "sshlib" / name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
        bad = imported & {"socket", "threading", "asyncio", "select", "selectors", "time"}
        assert not bad, f"{name} imports {bad}"


# --- SOCKS ------------------------------------------------------------------------------

def feed_all(data: bytes, step: int = 1) -> tuple[SocksHandshake, SocksConnect, bytes]:
    hs = SocksHandshake()
    out = b""
    result = None
    for i in range(0, len(data), step):
        assert result is None, "request complete before all its bytes arrived"
        result = hs.receive_data(data[i:i + step])
        out += hs.data_to_send()
    assert result is not None
    return hs, result, out


def socks5(cmd: int, atyp: int, addr: bytes, port: int, methods: bytes = b"\x00") -> bytes:
    return bytes([5, len(methods)]) + methods + bytes([5, cmd, 0, atyp]) + addr + \
        struct.pack(">H", port)


def test_socks4_connect_byte_by_byte() -> None:
    req = b"\x04\x01" + struct.pack(">H", 80) + bytes([10, 1, 2, 3]) + b"alice\0"
    hs, r, out = feed_all(req)
    assert r == SocksConnect(4, "10.1.2.3", 80, "alice")
    assert out == b""
    assert hs.success() == b"\x00\x5a" + bytes(6)
    assert hs.failure() == b"\x00\x5b" + bytes(6)


def test_socks4a_hostname_and_leftover() -> None:
    req = b"\x04\x01" + struct.pack(">H", 8080) + b"\0\0\0\x07" + b"\0" + b"web.internal\0GET"
    hs, r, _ = feed_all(req, step=len(req))
    assert r == SocksConnect(4, "web.internal", 8080, "")
    assert hs.leftover == b"GET"


@pytest.mark.parametrize("atyp,addr,host", [
    (1, bytes([127, 0, 0, 1]), "127.0.0.1"),
    (4, bytes(15) + b"\x01", "::1"),
    (3, b"\x0bexample.com", "example.com"),
])
def test_socks5_connect(atyp: int, addr: bytes, host: str) -> None:
    hs, r, out = feed_all(socks5(1, atyp, addr, 443, methods=b"\x02\x00"), step=3)
    assert r == SocksConnect(5, host, 443)
    assert out == b"\x05\x00"
    assert hs.success(("127.0.0.1", 1080)) == b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"
    assert hs.failure(SOCKS5_CONNECTION_REFUSED)[:2] == b"\x05\x05"


@pytest.mark.parametrize("data,reply,words", [
    (socks5(2, 1, bytes(4), 80), b"\x05\x00\x05\x07\x00\x01" + bytes(6), "BIND"),
    (socks5(3, 1, bytes(4), 80), b"\x05\x00\x05\x07\x00\x01" + bytes(6), "UDP"),
    (b"\x05\x01\x02", b"\x05\xff", "authentication"),
    (socks5(1, 9, bytes(4), 80), b"\x05\x00\x05\x08\x00\x01" + bytes(6), "address type"),
    (b"\x04\x02\x00\x50\x01\x02\x03\x04\0", b"\x00\x5b" + bytes(6), "BIND"),
    (b"\x04\x01\x00\x50" + bytes(4) + b"x" * 300, b"\x00\x5b" + bytes(6), "longer"),
    (b"\x04\x01\x00\x50\0\0\0\x01\0" + b"h" * 300, b"\x00\x5b" + bytes(6), "longer"),
    (b"GET / HTTP/1.1\r\n", b"", "not a SOCKS"),
    (socks5(1, 1, bytes(4), 0), b"\x05\x00\x05\x02\x00\x01" + bytes(6), "port 0"),
    (socks5(1, 3, b"\x03a b", 80), b"\x05\x00\x05\x08\x00\x01" + bytes(6), "hostname"),
])
def test_socks_refusals(data: bytes, reply: bytes, words: str) -> None:
    hs = SocksHandshake()
    with pytest.raises(errors.SocksError, match=words) as info:
        hs.receive_data(data)
    assert info.value.reply == reply
    assert isinstance(info.value, errors.SSHError)


def test_socks_eof_before_request() -> None:
    hs = SocksHandshake()
    assert hs.receive_data(b"\x05\x01") is None
    with pytest.raises(errors.SocksError, match="closed"):
        hs.receive_data(b"")


def test_socks5_partial_request_waits() -> None:
    hs = SocksHandshake()
    assert hs.receive_data(b"\x05\x01\x00\x05\x01\x00\x03\x20abc") is None
    assert hs.data_to_send() == b"\x05\x00"
    assert hs.receive_data(b"d" * 29) is None
    assert hs.receive_data(b"\x00") is None
    assert hs.receive_data(b"\x50") == SocksConnect(5, "abc" + "d" * 29, 80)


@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_socks_garbage_never_escapes_typed_errors(data: bytes, step: int) -> None:
    hs = SocksHandshake()
    try:
        for i in range(0, len(data), step):
            if hs.receive_data(data[i:i + step]) is not None:
                break
    except errors.SocksError:
        pass
    assert len(hs._buf) <= 600


# --- specs -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,remote,expected", [
    ("8080", False, Endpoint("tcp", "127.0.0.1", 8080)),
    (8080, False, Endpoint("tcp", "127.0.0.1", 8080)),
    ("8080", True, Endpoint("tcp", "localhost", 8080)),
    ("localhost:0", False, Endpoint("tcp", "127.0.0.1", 0)),
    ("*:80", False, Endpoint("tcp", WILDCARD, 80)),
    (":80", True, Endpoint("tcp", WILDCARD, 80)),
    ("127.0.0.1:8080", False, Endpoint("tcp", "127.0.0.1", 8080)),
    ("[::1]:80", False, Endpoint("tcp", "::1", 80)),
    ("unix:/tmp/x.sock", False, Endpoint("unix", path="/tmp/x.sock")),
    (("10.0.0.1", 22), True, Endpoint("tcp", "10.0.0.1", 22)),
])
def test_parse_listen(spec: str, remote: bool, expected: Endpoint) -> None:
    assert parse_listen(spec, remote=remote) == expected


@pytest.mark.parametrize("spec,expected", [
    ("web.internal:80", Endpoint("tcp", "web.internal", 80)),
    ("[2001:db8::1]:443", Endpoint("tcp", "2001:db8::1", 443)),
    ("unix:/run/app.sock", Endpoint("unix", path="/run/app.sock")),
])
def test_parse_target(spec: str, expected: Endpoint) -> None:
    assert parse_target(spec) == expected
    assert str(expected) == spec


@pytest.mark.parametrize("spec", ["", "x:", "x:70000", "::1:80", "[::1]80", "unix:", "8080",
                                  "host:0", "*:80", "[]:80", "a:-1"])
def test_bad_target_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_target(spec)


@pytest.mark.parametrize("spec", ["", "x", "x:99999", "::1:80", "unix:"])
def test_bad_listen_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(spec)


# --- the forwarders over plain sockets ---------------------------------------------------

class SockStream:
    """A local socket in the shape of sshlib.Stream (what the forwarders need of it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """Echoes until EOF, then half-closes; one thread per connection."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    yield server.getsockname()
    stop.set()
    server.close()


def test_local_forwarder_half_close_both_ways(echo_server: tuple[str, int]) -> None:
    opened: list[SockStream] = []

    def opener() -> SockStream:
        stream = SockStream(socket.create_connection(echo_server))
        opened.append(stream)
        return stream

    with LocalForwarder(parse_listen("0"), opener, "echo") as fw:
        host, port = fw.address  # type: ignore[misc]
        assert host == "127.0.0.1" and port != 0
        c = socket.create_connection((host, port))
        c.sendall(b"hello")
        assert c.recv(5) == b"hello"
        c.shutdown(socket.SHUT_WR)  # EOF our way: the echo still comes back, then EOF
        assert c.recv(10) == b""
        c.close()
        deadline = time.monotonic() + 5
        while fw.active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fw.active == 0


def test_local_forwarder_remote_eof_keeps_upstream_open() -> None:
    """The far end sends EOF first; our data still goes through afterwards."""
    a, b = socket.socketpair()
    with LocalForwarder(parse_listen("0"), lambda: SockStream(a), "pair") as fw:
        c = socket.create_connection(fw.address)  # type: ignore[arg-type]
        b.sendall(b"banner")
        b.shutdown(socket.SHUT_WR)
        assert c.recv(6) == b"banner"
        assert c.recv(1) == b""
        c.sendall(b"after-eof")
        got = b""
        while len(got) < 9:
            got += b.recv(9)
        assert got == b"after-eof"
        c.close()
        assert b.recv(1) == b""
        b.close()


def test_local_forwarder_close_ends_connections(echo_server: tuple[str, int]) -> None:
    fw = LocalForwarder(parse_listen("0"),
                        lambda: SockStream(socket.create_connection(echo_server)), "echo")
    conns = [socket.create_connection(fw.address) for _ in range(5)]  # type: ignore[arg-type]
    for c in conns:
        c.sendall(b"x")
        assert c.recv(1) == b"x"
    fw.close()
    for c in conns:
        c.settimeout(5)
        assert c.recv(1) == b""
        c.close()
    assert fw.active == 0
    with pytest.raises(OSError):
        socket.create_connection(fw.address, timeout=1)  # type: ignore[arg-type]


def test_unix_listen_socket_removed_on_close(tmp_path: Path,
                                            echo_server: tuple[str, int]) -> None:
    path = tmp_path / "fw.sock"
    with LocalForwarder(parse_listen(f"unix:{path}"),
                        lambda: SockStream(socket.create_connection(echo_server)), "e") as fw:
        assert fw.address == str(path)
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(path))
        c.sendall(b"unix")
        assert c.recv(4) == b"unix"
        c.close()
    assert not path.exists()


def test_listen_failure_is_typed(echo_server: tuple[str, int]) -> None:
    with LocalForwarder(parse_listen("0"), lambda: SockStream(socket.socket()), "x") as fw:
        with pytest.raises(errors.ForwardingError, match="cannot listen"):
            LocalForwarder(parse_listen(fw.address), lambda: SockStream(socket.socket()), "x")  # type: ignore[arg-type]


def test_local_forwarder_bounded_when_local_end_never_reads() -> None:
    """The pump stops reading the stream while the local socket is full."""
    a, b = socket.socketpair()
    b.setblocking(False)
    with LocalForwarder(parse_listen("0"), lambda: SockStream(a), "pair") as fw:
        c = socket.create_connection(fw.address)  # type: ignore[arg-type]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sent = 0
        chunk = bytes(65536)
        deadline = time.monotonic() + 20
        progress = time.monotonic()
        while time.monotonic() - progress < 0.3:  # the far end writes until it is pushed back
            assert time.monotonic() < deadline, f"never pushed back ({sent} B taken)"
            try:
                sent += b.send(chunk)
                progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        # Everything sent sits in kernel buffers plus at most one pump chunk: no unbounded
        # buffering in the forwarder (a few MiB at most, not the 3 s worth of writes).
        assert sent < 16 << 20
        c.close()
        b.close()


def socks_connect(addr: object, request: bytes) -> socket.socket:
    c = socket.create_connection(addr, timeout=5)  # type: ignore[arg-type]
    c.sendall(request)
    return c


def test_dynamic_forwarder_socks5_and_refusals(echo_server: tuple[str, int]) -> None:
    asked: list[tuple[str, int]] = []

    def opener(host: str, port: int) -> SockStream:
        asked.append((host, port))
        if host == "refused.example":
            raise errors.ChannelOpenError(2, "connect failed")
        return SockStream(socket.create_connection(echo_server))

    with DynamicForwarder(parse_listen("0"), opener) as fw:
        port = echo_server[1]
        c = socks_connect(fw.address, socks5(1, 3, b"\x0cecho.example", port) + b"early")
        assert c.recv(2) == b"\x05\x00"
        reply = b""
        while len(reply) < 10:
            reply += c.recv(10 - len(reply))
        assert reply[:2] == b"\x05\x00"
        assert c.recv(5) == b"early"  # bytes sent before the reply were forwarded too
        c.close()
        assert asked == [("echo.example", port)]

        c = socks_connect(fw.address, socks5(1, 3, b"\x0frefused.example", 80))
        assert c.recv(2) == b"\x05\x00"
        assert c.recv(10)[:2] == bytes([5, SOCKS5_CONNECTION_REFUSED])
        assert c.recv(1) == b""
        c.close()

        c = socks_connect(fw.address, socks5(2, 1, bytes(4), 80))
        assert c.recv(2) == b"\x05\x00"
        assert c.recv(10)[:2] == bytes([5, SOCKS5_COMMAND_NOT_SUPPORTED])
        assert c.recv(1) == b""
        c.close()

        c = socks_connect(fw.address, b"\x05\x01\x02")
        assert c.recv(2) == b"\x05\xff"
        assert c.recv(1) == b""
        c.close()


# --- the asyncio forwarders over plain sockets --------------------------------------------

class AioSockStream:
    """An asyncio connection in the shape of sshlib.aio's stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, n: int = -1) -> bytes:
        return await self.reader.read(n)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def write_eof(self) -> None:
        self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()


def test_aio_local_and_dynamic_forwarders(echo_server: tuple[str, int]) -> None:
    async def go() -> None:
        async def opener() -> AioSockStream:
            return AioSockStream(*await asyncio.open_connection(*echo_server))

        async def socks_opener(host: str, port: int) -> AioSockStream:
            if host == "refused.example":
                raise errors.ChannelOpenError(2, "connect failed")
            return await opener()

        fw = aio_forward.LocalForwarder(parse_listen("0"), opener, "echo")
        await fw.start()
        reader, writer = await asyncio.open_connection(*fw.address)  # type: ignore[misc]
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        writer.write_eof()  # half-close: the echo still arrives, then EOF
        assert await reader.read() == b""
        writer.close()
        idle = [await asyncio.open_connection(*fw.address) for _ in range(3)]  # type: ignore[misc]
        for r, w in idle:
            w.write(b"x")
            assert await r.readexactly(1) == b"x"
        await fw.close()  # ends every forwarded connection
        for r, w in idle:
            assert await asyncio.wait_for(r.read(), 5) == b""
            w.close()
        assert fw.active == 0

        async with aio_forward.DynamicForwarder(parse_listen("0"), socks_opener) as dyn:
            await dyn.start()
            port = echo_server[1]
            r, w = await asyncio.open_connection(*dyn.address)  # type: ignore[misc]
            w.write(b"\x04\x01" + struct.pack(">H", port) + b"\0\0\0\x01u\0echo.example\0ping")
            assert await r.readexactly(8) == b"\x00\x5a" + bytes(6)
            assert await r.readexactly(4) == b"ping"
            w.close()
            r, w = await asyncio.open_connection(*dyn.address)  # type: ignore[misc]
            w.write(socks5(1, 3, b"\x0frefused.example", 80))
            assert (await r.read())[:4] == b"\x05\x00\x05\x05"
            w.close()
            r, w = await asyncio.open_connection(*dyn.address)  # type: ignore[misc]
            w.write(socks5(3, 1, bytes(4), 80))
            assert await r.read() == b"\x05\x00\x05\x07\x00\x01" + bytes(6)
            w.close()

    asyncio.run(go())
