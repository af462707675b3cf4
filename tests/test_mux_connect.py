"""sshlib.connect()/sshlib.aio.connect() over a running ControlMaster, forward_dynamic through a
master, and what agent forwarding through a master really does.

The master is a real ``ssh -M -N`` in front of the test sshd (test_mux.Master).  That a
command ran through the master is proven by SSH_CONNECTION: it names the TCP connection the
server sees, and only the master's connection has the master's source port; a direct
connection has another.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from agentfixtures import start_ssh_agent
from forwardpeers import HTTPServer
from frontends import AioClient, frontend_fixture  # noqa: F401  (fixture)
from test_aio import run
from test_forwarding import curl
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
import sshlib.mux
from sshlib.testing import TestServer

pytestmark = pytest.mark.timeout(300)


def connect(frontend: Any, destination: str, **kwargs: Any) -> Any:
    """sshlib.connect or sshlib.aio.connect (behind the sync-shaped adapter)."""
    if frontend.name == "sync":
        return sshlib.connect(destination, **kwargs)
    return AioClient(frontend, frontend.run(sshlib.aio.connect(destination, **kwargs)))


def write_config(directory: Path, server: TestServer, extra: str) -> Path:
    """A private ssh_config for Host "muxhost" (the test sshd) plus `extra` lines."""
    path = directory / "ssh_config"
    key = server.user_key_paths["ed25519-openssh"]
    path.write_text(f"Host muxhost\n  HostName {server.host}\n  Port {server.port}\n"
                    f"  User {server.user}\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                    f"  UserKnownHostsFile {server.known_hosts_path}\n"
                    f"  StrictHostKeyChecking yes\n{extra}")
    path.chmod(0o600)
    return path


def masters_connection(master: Master) -> bytes:
    """SSH_CONNECTION as the server sees the master's own connection."""
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        return s.output("echo $SSH_CONNECTION", timeout=20).strip()


def connection_of(client: Any) -> bytes:
    with client.new_session() as s:
        out: bytes = s.output("echo $SSH_CONNECTION", timeout=20)
        return out.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def echo_through(port: int, data: bytes = b"through the master\n") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(data)
        return c.makefile("rb").readline()


@pytest.fixture
def web(short_dir: Path) -> Any:
    (short_dir / "www").mkdir()
    body = b"served through a ControlMaster\n" * 4096
    (short_dir / "www" / "blob").write_bytes(body)
    server = HTTPServer(short_dir / "www")
    yield server, body
    server.close()


# --- the decision, without a master ---------------------------------------------------------------
@pytest.mark.parametrize("lines,wanted,expected", [
    ("", True, None),
    ("ControlPath /tmp/cm-%h", True, "/tmp/cm-example.org"),           # ControlMaster no
    ("ControlMaster auto\nControlPath /tmp/cm-%p", True, "/tmp/cm-22"),
    ("ControlMaster autoask\nControlPath /tmp/cm", True, "/tmp/cm"),
    ("ControlMaster yes\nControlPath /tmp/cm", True, None),           # ssh becomes the master
    ("ControlMaster ask\nControlPath /tmp/cm", True, None),
    ("ControlMaster auto\nControlPath none", True, None),
    ("ControlMaster auto\nControlPath /tmp/cm", False, None),         # control_master=False
])
def test_master_path_follows_muxclient(tmp_path: Path, lines: str, wanted: bool,
                                       expected: str | None) -> None:
    from sshlib.sshconfig import resolve
    from sshlib.sshconfig.control import master_path

    config = tmp_path / "config"
    config.write_text("Host example.org\n" + "".join(f"  {line}\n" for line in lines.split("\n")
                                                     if line))
    hc = resolve("example.org", config_files=[config])
    assert master_path(hc, wanted=wanted) == expected


@pytest.mark.parametrize("spec,listen,remote,expected", [
    ("8080", True, False, ("", 8080)),               # ssh's empty host: the master's default
    (8080, True, True, ("", 8080)),
    ("*:8080", True, False, ("*", 8080)),
    ("[::1]:8080", True, False, ("::1", 8080)),
    ("127.0.0.1:0", True, False, ("127.0.0.1", 0)),
    ("unix:/run/a.sock", True, False, ("/run/a.sock", 0xFFFFFFFE)),
    ("/run/a.sock", False, False, ("/run/a.sock", 0xFFFFFFFE)),  # sshlib.mux's older form
    ("web:80", False, False, ("web", 80)),
    (("db", 5432), False, False, ("db", 5432)),
])
def test_forward_specs_as_ssh_sends_them(spec: Any, listen: bool, remote: bool,
                                         expected: tuple[str, int]) -> None:
    from sshlib.mux.fds import forward_endpoint

    assert forward_endpoint(spec, listen=listen, remote=remote) == expected


def test_dynamic_forward_fields() -> None:
    from sshlib.mux.fds import local_forward_tries

    (fields, last), = local_forward_tries("127.0.0.1:1080", None)
    assert fields == (3, "127.0.0.1", 1080, "socks", 0) and last  # MUX_FWD_DYNAMIC, as ssh -D
    with pytest.raises(ValueError, match="Unix socket"):
        list(local_forward_tries("unix:/tmp/socks", None))
    with pytest.raises(ValueError):
        list(local_forward_tries("127.0.0.1:1080", "nohost"))


# --- connect() over a running master -----------------------------------------------------------
def test_connect_uses_a_running_master(frontend: Any, openssh_server: TestServer, master: Master,
                                       short_dir: Path, echo_server: tuple[str, int], web: Any,
                                       caplog: pytest.LogCaptureFixture) -> None:
    server, body = web
    lport, dport, rport = free_port(), free_port(), free_port()
    config = write_config(short_dir, openssh_server, (
        f"  ControlMaster auto\n  ControlPath {master.path}\n"
        "  SetEnv SSHLIB_CFG=from-config\n"
        f"  LocalForward 127.0.0.1:{lport} {echo_server[0]}:{echo_server[1]}\n"
        f"  DynamicForward 127.0.0.1:{dport}\n"
        f"  RemoteForward 127.0.0.1:{rport} {echo_server[0]}:{echo_server[1]}\n"))
    expected = masters_connection(master)
    caplog.set_level(logging.INFO, logger="sshlib.client")
    with connect(frontend, "muxhost", config_files=[config], timeout=20) as client:
        assert client.control_path == master.path
        with client.new_session() as s:  # SetEnv travels, the master's SendEnv passes it
            out = s.output('echo "$SSH_CONNECTION/$SSHLIB_CFG"', timeout=20)
        assert out == expected + b"/from-config\n"
        assert connection_of(client) == expected  # every session: the master's connection
        conn = client.dial("tcp", f"{echo_server[0]}:{echo_server[1]}", timeout=10)
        if frontend.name == "sync":
            conn.sendall(b"dialled\n")
            assert conn.makefile("rb").readline() == b"dialled\n"
        conn.close()
        # the configuration's LocalForward, RemoteForward (the sshd listens on this machine
        # too) and DynamicForward, held by the master
        assert echo_through(lport) == b"through the master\n"
        assert echo_through(rport) == b"through the master\n"
        done = curl("--socks5-hostname", ("127.0.0.1", dport),
                    f"http://localhost:{server.port}/blob")
        assert done.returncode == 0 and done.stdout == body, (done.stderr, master.log_text())
        # forward_dynamic() on the client: the master runs the proxy, close() removes it
        fw = client.forward_dynamic("127.0.0.1:0")
        done = curl("--socks5-hostname", fw.address, f"http://localhost:{server.port}/blob")
        assert done.returncode == 0 and done.stdout == body, done.stderr
        kept = fw.address
        rfw = client.forward_remote("127.0.0.1:0", f"{echo_server[0]}:{echo_server[1]}")
        assert rfw.address[1] != 0 and echo_through(rfw.address[1]) == b"through the master\n"
        rkept = rfw.address
    with pytest.raises(OSError):  # closed with the client ...
        socket.create_connection(kept, timeout=5).close()
    deadline = time.monotonic() + 10  # the cancel reaches sshd after the master's reply
    while True:
        try:
            socket.create_connection(rkept, timeout=5).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the server still listens after close()"
        time.sleep(0.05)
    assert echo_through(lport) == b"through the master\n"  # ... the config's stay, as ssh's
    assert any("using the ControlMaster at" in r.getMessage() for r in caplog.records)
    frontend.check()


def test_direct_when_the_configuration_says_so(frontend: Any, openssh_server: TestServer,
                                               master: Master, short_dir: Path) -> None:
    """ControlMaster yes/ask (ssh would become a master), ControlPath none and
    control_master=False all connect directly although a master is listening."""
    expected = masters_connection(master)
    for extra, kwargs in [
        (f"  ControlMaster yes\n  ControlPath {master.path}\n", {}),
        (f"  ControlMaster ask\n  ControlPath {master.path}\n", {}),
        # the first ControlPath wins: "none" turns it off for this host
        (f"  ControlPath none\nHost *\n  ControlMaster auto\n  ControlPath {master.path}\n", {}),
        (f"  ControlMaster auto\n  ControlPath {master.path}\n", {"control_master": False}),
    ]:
        config = write_config(short_dir, openssh_server, extra)
        with connect(frontend, "muxhost", config_files=[config], timeout=20, **kwargs) as client:
            assert client.control_path is None, extra
            got = connection_of(client)
            assert got != expected and got.split()[2:] == expected.split()[2:], (extra, got)
    frontend.check()


def test_no_or_stale_socket_connects_directly(frontend: Any, openssh_server: TestServer,
                                              short_dir: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    stale = short_dir / "stale"
    with socket.socket(socket.AF_UNIX) as dead:  # bound, never listening: ECONNREFUSED
        dead.bind(str(stale))
    caplog.set_level(logging.INFO, logger="sshlib.client")
    for path in (stale, short_dir / "missing"):
        config = write_config(short_dir, openssh_server,
                              f"  ControlMaster auto\n  ControlPath {path}\n")
        with connect(frontend, "muxhost", config_files=[config], timeout=20) as client:
            assert client.control_path is None
            assert connection_of(client)
    assert stale.exists()  # sshlib does not become the master, so it leaves the socket alone
    messages = [r.getMessage() for r in caplog.records]
    assert any("stale control socket" in m and "directly" in m for m in messages), messages
    assert any("does not exist" in m and "directly" in m for m in messages), messages
    frontend.check()


def test_silent_master_costs_the_timeout_then_connects_directly(
        frontend: Any, openssh_server: TestServer, short_dir: Path) -> None:
    path = str(short_dir / "silent")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        config = write_config(short_dir, openssh_server,
                              f"  ConnectTimeout 2\n  ControlPath {path}\n")
        started = time.monotonic()
        with connect(frontend, "muxhost", config_files=[config]) as client:
            elapsed = time.monotonic() - started
            assert client.control_path is None
            assert connection_of(client)
        assert 1.9 < elapsed < 15, elapsed  # waited for the master's HELLO, not forever
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
    frontend.check()


def test_proxyjump_through_a_master(frontend: Any, openssh_server: TestServer, master: Master,
                                    short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A jump host whose ControlPath has a master is reached through it (as ``ssh -W`` would
    be); the target gets its own SSH connection over the master's stdio forward."""
    server = openssh_server
    key = server.user_key_paths["ed25519-openssh"]
    config = write_config(short_dir, server, (
        f"  ControlPath {master.path}\nHost target\n  HostName {server.host}\n"
        f"  Port {server.port}\n  User {server.user}\n  IdentityFile {key}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {server.known_hosts_path}\n"
        "  ProxyJump muxhost\n"))
    expected = masters_connection(master)
    caplog.set_level(logging.INFO, logger="sshlib.client")
    with connect(frontend, "target", config_files=[config], timeout=20) as client:
        assert client.control_path is None  # the target's own connection ...
        got = connection_of(client)
        assert got and got != expected
    # ... reached through the master: the hop used it
    assert any(f"using the ControlMaster at {master.path}" in r.getMessage()
               for r in caplog.records)
    frontend.check()


@pytest.mark.parametrize("over_master", [True, False])
def test_sftp_and_request_tty(openssh_server: TestServer, master: Master, short_dir: Path,
                              over_master: bool) -> None:
    """sftp() over a mux session (and directly); RequestTTY asks for a pty for sessions,
    never for SFTP (a pty would mangle the binary stream)."""
    config = write_config(short_dir, openssh_server,
                          f"  ControlPath {master.path}\n  RequestTTY yes\n")
    payload = bytes(range(256)) * 8192
    remote = f"sshlib-mux-sftp-{os.getpid()}-{over_master}"  # in the test user's home
    want = master.path if over_master else None
    with sshlib.connect("muxhost", config_files=[config], timeout=20,
                        control_master=over_master) as client:
        assert client.control_path == want
        with client.new_session() as s:
            assert s.output("tty", timeout=20).startswith(b"/dev/")
        with client.sftp(timeout=20) as sftp:
            with sftp.open(remote, "wb") as f:
                f.write(payload)
            assert sftp.stat(remote).st_size == len(payload)
            with sftp.open(remote, "rb") as f:
                assert hashlib.sha256(f.read()).digest() == hashlib.sha256(payload).digest()

    async def main() -> None:
        client = await sshlib.aio.connect("muxhost", config_files=[config], timeout=20,
                                          control_master=over_master)
        async with client:
            assert client.control_path == want
            async with client.new_session() as s:
                assert (await s.output("tty", timeout=20)).startswith(b"/dev/")
            async with client.sftp(timeout=20) as sftp:
                assert (await sftp.stat(remote)).st_size == len(payload)
                async with sftp.open(remote, "rb") as f:
                    assert await f.read() == payload
                await sftp.remove(remote)
    run(main)


# --- forward_dynamic through the master ----------------------------------------------------------
def test_mux_forward_dynamic_with_curl(master: Master, web: Any) -> None:
    server, body = web
    url = f"http://localhost:{server.port}/blob"
    with sshlib.mux.connect(master.path, timeout=10) as m:
        fw = m.forward_dynamic("127.0.0.1:0")
        assert fw.kind == "dynamic" and fw.address[0] == "127.0.0.1"
        done = curl("--socks5-hostname", fw.address, url)
        assert done.returncode == 0 and done.stdout == body, done.stderr
        assert curl("--socks5-hostname", fw.address, "http://127.0.0.1:9/").returncode != 0
        fw.close()
        with pytest.raises(OSError):
            socket.create_connection(fw.address, timeout=5).close()

    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            fw = await m.forward_dynamic(0)
            assert fw.kind == "dynamic"
            done = await asyncio.to_thread(curl, "--socks5-hostname", fw.address, url)
            assert done.returncode == 0 and done.stdout == body, done.stderr
            await fw.close()
    run(main)


# --- agent forwarding through a master ----------------------------------------------------------
PROBE = 'echo "${SSH_AUTH_SOCK:+set}"; ssh-add -L 2>&1 || true'


def test_agent_forwarding_is_the_masters(openssh_server: TestServer, start_master: Any,
                                         master: Master, short_dir: Path) -> None:
    """request_agent_forwarding() reaches the server only from a master with ForwardAgent,
    and the agent the server then reaches is the master's (its SSH_AUTH_SOCK).

    sshd keeps one forwarded agent per connection: once a session of the master's
    connection asked, later sessions see it too, so each case below gets a fresh master
    and asks last.
    """
    agent = start_ssh_agent(short_dir / "agent-home")
    try:
        key = openssh_server.user_key_paths["ed25519-openssh"]
        agent.run_client("ssh-add", str(key))
        listed = agent.run_client("ssh-add", "-L").stdout.split()[1].encode()

        def forwarding_master() -> Master:
            return start_master("-o", "ForwardAgent=yes", env={"SSH_AUTH_SOCK": agent.sock})

        def sync_sessions(path: str) -> list[bytes]:
            outs = []
            with sshlib.mux.connect(path, timeout=10) as m:
                for ask in (False, True):
                    with m.new_session() as s:
                        if ask:
                            s.request_agent_forwarding()
                        outs.append(s.output(PROBE, timeout=20))
            return outs

        async def aio_sessions(path: str) -> list[bytes]:
            outs = []
            async with sshlib.aio.mux.connect(path, timeout=10) as m:
                for ask in (False, True):
                    async with m.new_session() as s:
                        if ask:
                            await s.request_agent_forwarding()
                        outs.append(await s.output(PROBE, timeout=20))
            return outs

        for unasked, asked in (sync_sessions(forwarding_master().path),
                               run(lambda: aio_sessions(forwarding_master().path))):
            assert not unasked.startswith(b"set"), unasked
            assert asked.startswith(b"set\n") and listed in asked, asked
        # a master without ForwardAgent drops the request silently (the protocol has no reply)
        assert not sync_sessions(master.path)[1].startswith(b"set")
        assert not run(lambda: aio_sessions(master.path))[1].startswith(b"set")

        # connect() with ForwardAgent yes: the flag goes with every session it opens
        def config_for(path: str) -> Path:
            return write_config(short_dir, openssh_server,
                                f"  ControlPath {path}\n  ForwardAgent yes\n")
        with sshlib.connect("muxhost", config_files=[config_for(forwarding_master().path)],
                            timeout=20) as client:
            assert client.control_path is not None
            with client.new_session() as s:
                assert listed in s.output(PROBE, timeout=20)

        async def aio_connect() -> bytes:
            config = config_for(forwarding_master().path)
            async with await sshlib.aio.connect("muxhost", config_files=[config],
                                                timeout=20) as client:
                assert client.control_path is not None
                async with client.new_session() as s:
                    out: bytes = await s.output(PROBE, timeout=20)
                    return out
        assert listed in run(aio_connect)
    finally:
        agent.stop()


def test_aio_mux_sessions_connect_on_first_use(master: Master) -> None:
    """sshlib.aio.mux's new_session() has the shape of sshlib.aio.Client's: it returns at once
    and its control connection opens on start, ``await`` or ``async with``."""
    from sshlib.errors import MuxConnectError, MuxError

    async def main() -> None:
        async with sshlib.aio.mux.connect(master.path, timeout=10) as m:
            s = m.new_session()
            await s.start("echo lazy", timeout=20)  # connects here
            assert await s.stdout.read(timeout=20) == b"lazy\n"
            await s.wait(timeout=20)
            assert s.exit_status == 0
            await s.close()
            unused = m.new_session()
            await unused.close()
            with pytest.raises(MuxError, match="closed"):
                await unused
            later = m.new_session()
            master.stop()
            with pytest.raises(MuxConnectError):
                await later.start("true", timeout=10)
    run(main)
