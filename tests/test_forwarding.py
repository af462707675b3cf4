"""forward_local (-L), forward_remote (-R) and forward_dynamic (-D) through real servers.

OpenSSH's sshd (AllowTcpForwarding, AllowStreamLocalForwarding, GatewayPorts
clientspecified) and asyncssh's server; the real curl as SOCKS client and
bash's /dev/tcp as a program on the server side.  Every test runs on both
front-ends (the `frontend` fixture).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from forwardpeers import EchoServer, HTTPServer, SourceServer, shared_tempdir
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import config, connect
from test_streams_asyncssh import AsyncsshServer

import sshlib
from sshlib import testing
from sshlib.testing import TestServer

FORWARDING = {"AllowTcpForwarding": "yes", "AllowStreamLocalForwarding": "yes",
              "GatewayPorts": "clientspecified"}
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fwd_server(ssh_tools: None) -> Iterator[TestServer]:
    """One sshd with every kind of forwarding allowed, for this module."""
    with testing.start_openssh(extra_config=FORWARDING) as server:
        yield server


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    path = shared_tempdir("sshlib-fwd-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def round_trip(address: Any, payload: bytes, timeout: float = 30) -> bytes:
    """Send payload (in a thread), half-close, read everything back."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(address)

        def send() -> None:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        chunks = []
        while chunk := c.recv(1 << 20):
            chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- forward_local ---------------------------------------------------------------------------

def test_forward_local_100_connections_8mib_each_way(frontend: Any, fwd_server: TestServer,
                                                     echo: EchoServer) -> None:
    base = os.urandom(8 << 20)
    errors: list[BaseException] = []

    with connect(fwd_server, frontend) as client, \
            client.forward_local("127.0.0.1:0", echo.spec) as fw:
        host, port = fw.address
        assert host == "127.0.0.1" and port > 0

        def one(i: int) -> None:
            try:
                data = i.to_bytes(8, "big") + base[8:]  # a different stream per connection
                got = round_trip((host, port), data, timeout=120)
                assert len(got) == len(data), (i, len(got))
                assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), i
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors[:3]
        assert echo.connections == 100
        wait_until(lambda: fw.active == 0, 10, "the forwarded connections to end")


def test_forward_local_unix_sides(frontend: Any, fwd_server: TestServer,
                                  shared_dir: Path) -> None:
    """unix:/path as the local listener, and as the target on the server side."""
    unix_echo = EchoServer(str(shared_dir / "echo.sock"))
    tcp_echo = EchoServer()
    try:
        with connect(fwd_server, frontend) as client:
            listen = shared_dir / "local.sock"
            with client.forward_local(f"unix:{listen}", tcp_echo.spec) as fw:
                assert fw.address == str(listen)
                assert round_trip(str(listen), b"unix to tcp" * 1000) == b"unix to tcp" * 1000
            assert not listen.exists()  # removed on close
            with client.forward_local("0", unix_echo.spec) as fw:
                assert round_trip(fw.address, b"tcp to unix" * 1000) == b"tcp to unix" * 1000
        assert unix_echo.connections == 1
    finally:
        unix_echo.close()
        tcp_echo.close()


def test_forward_local_refused_target_closes_connection(frontend: Any,
                                                        fwd_server: TestServer) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: sshd's connect fails, the channel is refused
    with connect(fwd_server, frontend) as client, \
            client.forward_local("0", f"127.0.0.1:{port}") as fw:
        with socket.create_connection(fw.address, timeout=30) as c:
            assert c.recv(1) == b""
        client.send_keepalive(timeout=10)  # the connection itself is fine


def test_forward_specs_are_checked(frontend: Any, fwd_server: TestServer) -> None:
    with connect(fwd_server, frontend) as client:
        with pytest.raises(ValueError, match="needs a host"):
            client.forward_local("0", "8080")
        with pytest.raises(ValueError, match="port"):
            client.forward_dynamic("127.0.0.1:99999")
        with client.forward_local("0", "127.0.0.1:9") as fw, \
                pytest.raises(sshlib.errors.ForwardingError, match="cannot listen"):
            client.forward_local(fw.address, "127.0.0.1:9")


# --- forward_remote -----------------------------------------------------------------------

def test_forward_remote_used_by_bash_on_the_server(frontend: Any, fwd_server: TestServer,
                                                   echo: EchoServer) -> None:
    lines = 50_000
    expected = hashlib.sha256(b"".join(b"%d\n" % i for i in range(1, lines + 1))).hexdigest()
    with connect(fwd_server, frontend) as client, \
            client.forward_remote("127.0.0.1:0", echo.spec) as fw:
        host, port = fw.address
        assert host == "127.0.0.1" and port > 0
        script = (f"exec 3<>/dev/tcp/127.0.0.1/{port}; {{ seq 1 {lines} >&3; }} & "
                  f"head -n {lines} <&3 | sha256sum; wait")
        with client.new_session() as s:
            out = s.output(f"bash -c '{script}'").decode()
        assert out.split()[0] == expected
    # closing the forwarder cancelled it on the server: the port no longer accepts
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_forward_remote_unix_listener(frontend: Any, fwd_server: TestServer, echo: EchoServer,
                                      shared_dir: Path) -> None:
    path = shared_dir / "remote.sock"
    with connect(fwd_server, frontend) as client, \
            client.forward_remote(f"unix:{path}", echo.spec):
        with client.new_session() as s:
            out = s.output(f"echo via-streamlocal | socat - UNIX-CONNECT:{path}")
        assert out == b"via-streamlocal\n"


def test_forward_remote_refused(frontend: Any, openssh_factory: Any, echo: EchoServer) -> None:
    server = openssh_factory({"AllowTcpForwarding": "no"})
    with connect(server, frontend) as client:
        with pytest.raises(sshlib.RequestDeniedError):
            client.forward_remote("127.0.0.1:0", echo.spec)
        client.send_keepalive(timeout=10)


# --- forward_dynamic -------------------------------------------------------------------------

@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[HTTPServer, bytes]]:
    body = os.urandom(3 << 20)
    (tmp_path / "blob").write_bytes(body)
    server = HTTPServer(tmp_path)
    yield server, body
    server.close()


def curl(proxy_flag: str, proxy: Any, url: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "--silent", "--show-error", "--max-time", "60",
                           proxy_flag, f"{proxy[0]}:{proxy[1]}", url],
                          capture_output=True, timeout=90, check=False)


@pytest.mark.parametrize("flag,host", [("--socks5-hostname", "localhost"),
                                       ("--socks4a", "localhost"),
                                       ("--socks5", "127.0.0.1"),
                                       ("--socks4", "127.0.0.1")])
def test_forward_dynamic_with_curl(frontend: Any, fwd_server: TestServer,
                                   web: tuple[HTTPServer, bytes], flag: str, host: str) -> None:
    server, body = web
    with connect(fwd_server, frontend) as client, client.forward_dynamic("127.0.0.1:0") as fw:
        done = curl(flag, fw.address, f"http://{host}:{server.port}/blob")
        assert done.returncode == 0, done.stderr.decode()
        assert hashlib.sha256(done.stdout).digest() == hashlib.sha256(body).digest()
        # a target the server cannot reach: curl reports the SOCKS refusal, we keep serving
        dead = curl(flag, fw.address, "http://127.0.0.1:9/")
        assert dead.returncode != 0
        again = curl(flag, fw.address, f"http://{host}:{server.port}/blob")
        assert again.returncode == 0 and again.stdout == body


def test_forward_dynamic_refuses_bind_and_auth(frontend: Any, fwd_server: TestServer) -> None:
    with connect(fwd_server, frontend) as client, client.forward_dynamic("0") as fw:
        with socket.create_connection(fw.address, timeout=10) as c:
            c.sendall(b"\x05\x01\x02")  # username/password only
            assert c.recv(2) == b"\x05\xff"
            assert c.recv(1) == b""
        with socket.create_connection(fw.address, timeout=10) as c:
            c.sendall(b"\x05\x01\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50")  # BIND
            reply = b""
            while chunk := c.recv(64):
                reply += chunk
            assert reply[:4] == b"\x05\x00\x05\x07"  # "command not supported", then closed


def socks5_reply_code(address: Any, host: str, port: int) -> int:
    """A raw SOCKS5 CONNECT to host:port through the forwarder: the reply code it got."""
    with socket.create_connection(address, timeout=30) as c:
        name = host.encode()
        c.sendall(b"\x05\x01\x00\x05\x01\x00\x03" + bytes([len(name)]) + name
                  + port.to_bytes(2, "big"))
        reply = b""
        while len(reply) < 12 and (chunk := c.recv(64)):
            reply += chunk
    assert reply[:2] == b"\x05\x00", reply
    return reply[3]


def test_forward_dynamic_maps_server_refusals(frontend: Any, fwd_server: TestServer,
                                              openssh_factory: Any, echo: EchoServer) -> None:
    """sshd's reasons become SOCKS5 codes: connect failed -> 5, PermitOpen -> 2."""
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    echo_port = echo.address[1]
    with connect(fwd_server, frontend) as client, client.forward_dynamic("0") as fw:
        assert socks5_reply_code(fw.address, "127.0.0.1", echo_port) == 0
        assert socks5_reply_code(fw.address, "127.0.0.1", dead_port) == 5  # connection refused
    strict = openssh_factory({**FORWARDING, "PermitOpen": f"127.0.0.1:{dead_port}"})
    with connect(strict, frontend) as client, client.forward_dynamic("0") as fw:
        assert socks5_reply_code(fw.address, "127.0.0.1", echo_port) == 2  # not allowed
        client.send_keepalive(timeout=10)


# --- limits -------------------------------------------------------------------------------------

RSS_CHILD = r"""
import asyncio, json, socket, sys, time
sys.path.insert(0, sys.argv[1])
import sshlib, sshlib.aio
p = json.loads(sys.argv[2])
key = sshlib.load_private_key(p["key"])
cfg = sshlib.ClientConfig(user=p["user"], auth=[sshlib.PublicKeys(key)],
                          host_key_callback=sshlib.knownhosts.callback(p["known_hosts"]))

def rss():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

def hold(address):
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.connect(tuple(address))
    return c  # never read

def report(base, c):
    print("ready", flush=True)
    sys.stdin.readline()  # the parent saw the source stall
    now, peak = rss()
    print(json.dumps({"base": base, "now": now, "peak": peak}), flush=True)
    c.close()

if p["frontend"] == "sync":
    with sshlib.dial("tcp", p["addr"], cfg) as client:
        fw = client.forward_local("0", p["target"])
        base = rss()[0]
        report(base, hold(fw.address))
else:
    async def main():
        async with sshlib.aio.dial("tcp", p["addr"], cfg) as client:
            fw = await client.forward_local("0", p["target"])
            base = rss()[0]
            c = hold(fw.address)
            await asyncio.to_thread(report, base, c)
    asyncio.run(main())
"""


def test_local_end_that_never_reads_holds_about_one_window(frontend: Any,
                                                          fwd_server: TestServer) -> None:
    source = SourceServer()
    params = {"frontend": frontend.name, "addr": fwd_server.address, "user": fwd_server.user,
              "key": str(fwd_server.user_key_paths["ed25519-openssh"]),
              "known_hosts": str(fwd_server.known_hosts_path), "target": source.spec}
    child = subprocess.Popen([sys.executable, "-c", RSS_CHILD, str(TESTS.parent),
                              json.dumps(params)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        wait_until(lambda: source.sent > 0, 30, "the source to start sending")
        last, stalled_since = -1, time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() - stalled_since < 1.0:  # the source is pushed back
            assert time.monotonic() < deadline, f"the source never stalled ({source.sent} B)"
            if source.sent != last:
                last, stalled_since = source.sent, time.monotonic()
            time.sleep(0.05)
        child.stdin.write("measure\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait(30)
        source.close()
    window = sshlib.ClientConfig(user="x").window_size
    grown = result["now"] - result["base"]
    # The window plus the pump's one chunk in flight and thread stacks; not what the source sent
    # (the kernel buffers hold the rest, and they are not the client's memory).
    assert grown < window + (4 << 20), f"RSS grew {grown} B; the source sent {source.sent} B"
    assert source.sent < 64 << 20


def test_1000_forwarded_connections_leave_no_fds(frontend: Any, fwd_server: TestServer,
                                                 echo: EchoServer) -> None:
    with connect(fwd_server, frontend) as client, client.forward_local("0", echo.spec) as fw:
        assert round_trip(fw.address, b"warm-up") == b"warm-up"
        wait_until(lambda: fw.active == 0, 10, "the warm-up connection to end")
        before, threads = fd_count(), threading.active_count()
        for i in range(1000):
            with socket.create_connection(fw.address, timeout=30) as c:
                c.sendall(b"%d" % i)
                assert c.recv(16) == b"%d" % i
        wait_until(lambda: fw.active == 0, 30, "the forwarded connections to end")
        wait_until(lambda: fd_count() <= before, 10, f"fds back to {before} (now {fd_count()})")
        wait_until(lambda: threading.active_count() <= threads, 10, "the pump threads to end")


def test_closing_the_client_ends_every_forwarder(frontend: Any, fwd_server: TestServer,
                                                 echo: EchoServer) -> None:
    before = fd_count()
    client = connect(fwd_server, frontend)
    local = client.forward_local("0", echo.spec)
    dynamic = client.forward_dynamic("0")
    remote = client.forward_remote("127.0.0.1:0", echo.spec)
    held = [socket.create_connection(local.address, timeout=10) for _ in range(5)]
    for c in held:
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
    client.close()
    for c in held:
        assert c.recv(1) == b""  # the local end of each forwarded connection was closed
        c.close()
    for fw in (local, dynamic, remote):
        assert fw.closed
    for address in (local.address, dynamic.address):
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=5).close()
    wait_until(lambda: fd_count() <= before, 10, f"fds back to {before} (now {fd_count()})")


def test_forwarders_close_when_the_connection_ends(frontend: Any, fwd_server: TestServer,
                                                   echo: EchoServer) -> None:
    sock = socket.create_connection((fwd_server.host, fwd_server.port), timeout=30)
    client = frontend.client(sock, config(fwd_server), addr=(fwd_server.host, fwd_server.port))
    try:
        local = client.forward_local("0", echo.spec)
        dynamic = client.forward_dynamic("0")
        held = socket.create_connection(local.address, timeout=10)
        held.sendall(b"ping")
        assert held.recv(4) == b"ping"
        sock.shutdown(socket.SHUT_RDWR)  # the SSH connection dies under the client
        assert held.recv(1) == b""
        held.close()
        wait_until(lambda: local.closed and dynamic.closed, 10, "the forwarders to close")
        for address in (local.address, dynamic.address):
            with pytest.raises(OSError):
                socket.create_connection(address, timeout=5).close()
    finally:
        client.close()
        sock.close()


# --- a second server implementation ------------------------------------------------------------

@pytest.fixture(scope="module")
def asyncssh_server() -> Iterator[AsyncsshServer]:
    server = AsyncsshServer()
    yield server
    server.close()


def test_asyncssh_server_all_three(frontend: Any, asyncssh_server: AsyncsshServer,
                                   echo: EchoServer,
                                   web: tuple[HTTPServer, bytes]) -> None:
    http, body = web
    payload = os.urandom(4 << 20)
    with frontend.dial(f"127.0.0.1:{asyncssh_server.port}", asyncssh_server.config()) as client:
        with client.forward_local("0", echo.spec) as fw:
            got = round_trip(fw.address, payload)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        with client.forward_remote("127.0.0.1:0", echo.spec) as fw:
            host, port = fw.address
            assert port > 0
            got = round_trip((host, port), payload)  # asyncssh listens in this process
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        with client.forward_dynamic("0") as fw:
            done = curl("--socks5-hostname", fw.address, f"http://127.0.0.1:{http.port}/blob")
            assert done.returncode == 0, done.stderr.decode()
            assert done.stdout == body
