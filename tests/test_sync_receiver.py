"""The threaded reader's socket reads: bulk mode (SO_RCVLOWAT) and the tick during transfers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import connect

import sshlib.sync.client as sync_client
from sshlib.sync.receiver import BULK_TRIGGER, BULK_WAIT, Receiver


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, server) TCP sockets on loopback; the client has a timeout like sshlib's."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.settimeout(60)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def receive_all(receiver: Receiver, count: int,
                limit: float = 10) -> tuple[bytes, float, bool]:
    """Read `count` bytes: (the bytes, seconds it took, whether bulk mode was ever on)."""
    got = b""
    bulk_seen = False
    start = time.monotonic()
    while len(got) < count:
        assert time.monotonic() - start < limit, f"only {len(got)} of {count} bytes arrived"
        data = receiver.receive(1.0)
        bulk_seen = bulk_seen or receiver.bulk
        if data is not None:
            assert data, "unexpected end of stream"
            got += data
    return got, time.monotonic() - start, bulk_seen


def test_bulk_mode_engages_and_small_messages_still_arrive_at_once(
        tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = tcp_pair
    receiver = Receiver(client, lowat=256 * 1024)
    assert receiver.enabled and not receiver.bulk
    small = b"x" * 100
    server.sendall(small)
    assert receive_all(receiver, 100)[0] == small
    assert not receiver.bulk  # small reads stay plain

    blob = bytes(range(256)) * 1024  # 256 KiB
    server.sendall(blob)
    got, _, bulk_seen = receive_all(receiver, len(blob))
    assert got == blob
    assert bulk_seen

    # A short message after the burst, below the low-water mark: it must not wait for more.
    if not receiver.bulk:
        receiver._set_bulk(True)
    server.sendall(b"tail")
    got, took, _ = receive_all(receiver, 4)
    assert got == b"tail"
    assert took < BULK_WAIT + 0.5
    assert not receiver.bulk  # the pause ended bulk mode

    server.sendall(b"z" * (BULK_TRIGGER + 10))
    receive_all(receiver, BULK_TRIGGER + 10)
    server.close()  # end of stream is seen in bulk mode too
    deadline = time.monotonic() + 5
    while (data := receiver.receive(1.0)) != b"":
        assert data is None and time.monotonic() < deadline
    assert receiver.receive(0.01) == b""


def test_idle_timeout_returns_none(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = tcp_pair
    start = time.monotonic()
    assert Receiver(client).receive(0.2) is None
    assert 0.15 < time.monotonic() - start < 2


def test_plain_reads_for_other_sockets() -> None:
    left, right = socket.socketpair()
    with left, right:
        receiver = Receiver(left)
        assert not receiver.enabled
        right.sendall(b"y" * (BULK_TRIGGER * 2))
        assert receive_all(receiver, BULK_TRIGGER * 2)[0] == b"y" * (BULK_TRIGGER * 2)
        assert not receiver.bulk


def test_rekey_interval_fires_during_a_busy_download(openssh_server: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Time-based work used to run only when the socket went idle for TICK_SECONDS."""
    monkeypatch.setattr(sync_client, "TICK_SECONDS", 0.2)
    with connect(openssh_server, rekey_interval=0.5, rekey_bytes=1 << 50) as client, \
            client.new_session() as s:
        s.start("cat /dev/zero")  # an endless stream: the socket never goes idle
        got = 0
        deadline = time.monotonic() + 30
        while client.kex_count < 2:
            assert time.monotonic() < deadline, (
                f"no rekey after {got} bytes of a busy download (kex_count {client.kex_count})")
            got += len(s.stdout.read(1 << 20, timeout=30))
        after = got
        while got < after + (64 << 20):  # and the stream goes on under the new keys
            got += len(s.stdout.read(1 << 20, timeout=30))
        assert client.kex_count >= 2


def test_bulk_download_then_small_echo_is_prompt(openssh_server: Any) -> None:
    with connect(openssh_server) as client, client.new_session() as s:
        s.start("head -c 8000000 /dev/zero; while read line; do echo \"got $line\"; done")
        got = 0
        while got < 8_000_000:
            got += len(s.stdout.read(8_000_000 - got, timeout=30))
        for i in range(5):
            start = time.monotonic()
            s.stdin.write(f"{i}\n".encode())
            assert s.stdout.readline(timeout=10) == f"got {i}\n".encode()
            assert time.monotonic() - start < 0.5
        s.stdin.close()
        s.wait(timeout=10)
