"""Compression (zlib@openssh.com, zlib): real peers, rekeys, and a bounded inflater.

Peers: OpenSSH 9.2 and the newest (>= 10.3) with ``Compression yes`` on both
front-ends, Dropbear (zlib@openssh.com), and asyncssh's server for plain
``zlib`` (OpenSSH >= 7.4 and Dropbear no longer offer it).  A scripted server
sends a decompression bomb.
"""

from __future__ import annotations

import asyncio
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import asyncssh
import pytest
from fakeserver import FakeServer, ServerSide
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import cat_round_trip, connect

import sshlib
from sshlib import algorithms as algs
from sshlib import compression
from sshlib.errors import KexError

ZLIB_OPENSSH = algs.COMPRESSION_ZLIB_OPENSSH
SIZE_64M = 64 << 20


def compressible(size: int) -> bytes:
    """Text-like data that deflates about 5:1 (lines differ, so not trivially)."""
    block = b"".join(b"%08d the quick brown fox jumps over the lazy dog %d\n" % (i, i * 7919)
                     for i in range(16384))
    return (block * (size // len(block) + 1))[:size]


def _compressed_both_ways(client: Any, name: str) -> None:
    got = client.algorithms
    assert (got.compression_client_to_server, got.compression_server_to_client) == (name, name)


# --- the core, no network ---------------------------------------------------------

def test_off_unless_asked() -> None:
    assert sshlib.ClientConfig(user="u").compression is False
    assert compression.offered(False) == ["none"]
    assert compression.offered(True) == [ZLIB_OPENSSH, algs.COMPRESSION_ZLIB, "none"]


def test_inflater_bounds_output_and_rejects_garbage() -> None:
    method = compression.method(ZLIB_OPENSSH)
    assert method is not None and method.delayed
    deflate, inflate = method.new_deflater(), method.new_inflater()
    exact = b"a" * compression.MAX_PAYLOAD
    assert inflate(deflate(exact)) == exact  # exactly the limit is fine
    assert inflate(deflate(b"b")) == b"b"  # the limit is per packet, not per stream
    with pytest.raises(sshlib.ProtocolError, match="inflates past"):
        inflate(deflate(exact + b"!"))
    fresh = method.new_inflater()
    with pytest.raises(sshlib.ProtocolError, match="does not inflate"):
        fresh(b"\x78\x9c\xff\xff garbage")


def test_inflater_limit_is_per_packet() -> None:
    method = compression.method("zlib")
    assert method is not None and not method.delayed
    deflate, inflate = method.new_deflater(), method.new_inflater()
    for _ in range(8):  # 8 x 200 KiB through one stream: each packet is within the limit
        chunk = b"c" * (200 << 10)
        assert inflate(deflate(chunk)) == chunk


# --- OpenSSH ---------------------------------------------------------------------

def test_not_negotiated_by_default(frontend: Any, openssh_factory: Callable[..., Any]) -> None:
    server = openssh_factory({"Compression": "yes"})
    with connect(server, frontend) as client:
        _compressed_both_ways(client, "none")


@pytest.mark.parametrize("version", ["9.2", "newest"])
def test_64_mib_round_trip_compressed_across_rekeys(version: str, frontend: Any,
                                                    openssh_factory: Callable[..., Any]) -> None:
    """zlib@openssh.com with sshd: equal sha256, far fewer wire bytes, rekeys both ways."""
    server = openssh_factory({"Compression": "yes", "RekeyLimit": "4M"}, version=version)
    data = compressible(SIZE_64M)
    with connect(server, frontend, compression=True) as client:
        _compressed_both_ways(client, ZLIB_OPENSSH)
        sent, received = client.bytes_sent, client.bytes_received
        cat_round_trip(client, SIZE_64M, data, midway=client.rekey)
        # Without compression each direction carries at least the 64 MiB itself.
        assert client.bytes_sent - sent < SIZE_64M // 3
        assert client.bytes_received - received < SIZE_64M // 3
        assert client.kex_count >= 3, client.kex_count  # ours midway + sshd's RekeyLimit
        _compressed_both_ways(client, ZLIB_OPENSSH)  # still on after the rekeys


def test_uncompressed_wire_bytes_exceed_the_payload(openssh_server: Any) -> None:
    """The byte counters the compression test relies on count real wire bytes."""
    with connect(openssh_server) as client:
        sent, received = client.bytes_sent, client.bytes_received
        cat_round_trip(client, 4 << 20, compressible(4 << 20))
        assert client.bytes_sent - sent > 4 << 20
        assert client.bytes_received - received > 4 << 20


def test_random_data_survives_compression(frontend: Any, openssh_server: Any) -> None:
    with connect(openssh_server, frontend, compression=True) as client:
        _compressed_both_ways(client, ZLIB_OPENSSH)
        cat_round_trip(client, 8 << 20)


# --- Dropbear: a second implementation of zlib@openssh.com ------------------------------

def test_dropbear_round_trip_compressed(frontend: Any, dropbear_server: Any) -> None:
    with connect(dropbear_server, frontend, compression=True) as client:
        _compressed_both_ways(client, ZLIB_OPENSSH)
        sent = client.bytes_sent
        cat_round_trip(client, 16 << 20, compressible(16 << 20), midway=client.rekey)
        assert client.bytes_sent - sent < (16 << 20) // 3
        assert client.kex_count == 2


# --- asyncssh's server: plain "zlib", active from the first NEWKEYS ---------------------

class _Echo(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True


async def _cat(process: asyncssh.SSHServerProcess[bytes]) -> None:
    while True:
        chunk = await process.stdin.read(65536)
        if not chunk:
            break
        process.stdout.write(chunk)
    process.exit(0)


@pytest.fixture
def asyncssh_zlib_server() -> Iterator[tuple[str, int, sshlib.PublicKey]]:
    """An asyncssh server offering only plain "zlib", echoing any command's stdin."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen("127.0.0.1", 0, server_host_keys=[host_key],
                                     server_factory=_Echo, process_factory=_cat,
                                     encoding=None, compression_algs=["zlib"])
    acceptor = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    port = acceptor.get_port()
    public = sshlib.keys.parse_openssh_public_key(
        host_key.export_public_key("openssh").decode())
    try:
        yield "127.0.0.1", port, public
    finally:
        async def stop() -> None:  # the acceptor belongs to the loop's thread
            acceptor.close()
            await acceptor.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_plain_zlib_with_asyncssh_server(frontend: Any, asyncssh_zlib_server: Any) -> None:
    host, port, host_key = asyncssh_zlib_server
    key = sshlib.keys.generate_private_key("ssh-ed25519")
    cfg = sshlib.ClientConfig(user="tester", auth=[sshlib.PublicKeys(key)], timeout=30,
                              host_key_callback=sshlib.fixed_host_key(host_key),
                              compression=True)
    with frontend.dial(f"{host}:{port}", cfg) as client:
        _compressed_both_ways(client, algs.COMPRESSION_ZLIB)
        sent = client.bytes_sent
        cat_round_trip(client, 8 << 20, compressible(8 << 20), midway=client.rekey)
        assert client.bytes_sent - sent < (8 << 20) // 3
        assert client.kex_count == 2


# --- a hostile server: a decompression bomb ------------------------------------------

def _bomb_script(server: ServerSide) -> None:
    server.handshake(compression=[ZLIB_OPENSSH])
    server.accept_auth()  # sends USERAUTH_SUCCESS uncompressed; delayed compression starts
    bomb = zlib.compressobj(9)
    # ~200 MiB of zeros behind a CHANNEL_DATA byte, deflated to ~200 KB: one packet the
    # client accepts.  A client that inflated it whole would need 200 MiB.
    body = bytes((94,)) + b"\0" * (1 << 20)
    packed = bomb.compress(body)
    for _ in range(255):
        packed += bomb.compress(b"\0" * (1 << 20))
        if len(packed) > 200_000:
            break
    packed += bomb.flush(zlib.Z_PARTIAL_FLUSH)
    assert len(packed) < 250_000  # fits in one packet the client accepts
    server.send_payload(packed)


def test_decompression_bomb_ends_connection_with_bounded_memory() -> None:
    tracemalloc.start()
    try:
        with FakeServer(_bomb_script) as fs:
            with pytest.raises(sshlib.ProtocolError, match="inflates past"):
                with fs.connect(compression=True) as client:
                    client.wait(timeout=10)
                    raise client.wait(timeout=1) or AssertionError("connection stayed up")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak traced memory {peak} bytes"



def test_server_that_requires_compression() -> None:
    """A server offering only zlib@openssh.com: a clear KexError without compression=True,
    a working connection with it (before compression existed it could not be reached)."""
    def script(server: ServerSide) -> None:
        server.handshake(compression=[ZLIB_OPENSSH])
        server.accept_auth()

    with FakeServer(script) as fs, pytest.raises(KexError, match="compression"):
        fs.connect()
    with FakeServer(script) as fs, fs.connect(compression=True) as client:
        _compressed_both_ways(client, ZLIB_OPENSSH)
