"""`sshlib agent bridge` as a real process: real ssh-agent behind it, real ssh-add and ssh in front.

The bridge runs as ``python -m sshlib agent bridge`` (what users run); a few
tests drive `sshlib.agent.bridge.Bridge` in-process where they need to look
inside (the client limit).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    KeySet,
    ScriptedAgent,
    framed,
    recording_success,
    run_cli,
    ssh_add_l,
    ssh_args,
    start_ssh_agent,
    wait_for,
)

# Other test modules import these from here (they moved to agentfixtures).
from agentfixtures import BridgeProcess as BridgeProcess  # noqa: E402
from agentfixtures import bridges as bridges  # noqa: E402
from agentfixtures import cli_env as cli_env  # noqa: E402
from agentfixtures import loaded_agent as loaded_agent  # noqa: E402

import sshlib.agent  # noqa: E402
from sshlib.agent import AgentClient  # noqa: E402
from sshlib.agent.bridge import Bridge  # noqa: E402
from sshlib.agent.listeners import open_listener  # noqa: E402
from sshlib.errors import AgentConnectError, AgentError, AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]

def expected_listing(agent: AgentProcess) -> str:
    """What ssh-add -l prints talking to the agent directly."""
    direct = ssh_add_l(agent.sock)
    assert direct.returncode == 0, direct.stderr
    assert len(direct.stdout.splitlines()) == 3
    return direct.stdout


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A directory with a short path for sockets (sun_path is 108 bytes)."""
    path = Path(f"/tmp/sshlib-bridge-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    path.mkdir(mode=0o700)
    yield path
    for child in sorted(path.rglob("*"), reverse=True):
        if child.is_dir():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


# --- unix -> unix, real clients ------------------------------------------------------------------


def test_300_parallel_ssh_add_through_unix_bridge(loaded_agent: AgentProcess, bridges: Any,
                                                  sockdir: Path) -> None:
    expected = expected_listing(loaded_agent)
    sock = sockdir / "sub" / "bridge.sock"
    bridge = bridges([f"unix:{sock}"], f"unix:{loaded_agent.sock}")
    assert bridge.endpoints == [f"unix:{sock}"]
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
    procs = [subprocess.Popen(["ssh-add", "-l"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for _ in range(300)]
    results = [(proc.wait(60), *proc.communicate()) for proc in procs]
    bad = [r for r in results if r != (0, expected, "")]
    assert not bad, f"{len(bad)} of 300 wrong, e.g. {bad[:3]}; log: {bridge.log_text()[-3000:]}"
    wait_for(lambda: bridge.log_text().count("ended: closed") >= 300, 10, "300 log lines")
    assert re.search(r"client \d+ \(pid \d+ uid \d+\): 1 request\(s\) \(0 answered FAILURE\)",
                     bridge.log_text())
    assert bridge.stop() == 0
    assert not sock.exists()


def test_real_ssh_logs_in_through_the_bridge(openssh_server: Any, ssh_agent: AgentProcess,
                                             bridges: Any, sockdir: Path,
                                             tmp_path: Path) -> None:
    key_name = "ed25519-openssh"
    ssh_agent.run_client("ssh-add", str(openssh_server.user_key_paths[key_name]))
    pub = tmp_path / "id.pub"  # IdentitiesOnly: only the agent key matching this file
    pub.write_text(openssh_server.user_public_keys[key_name] + "\n")
    sock = sockdir / "bridge.sock"
    bridge = bridges([f"unix:{sock}"], f"unix:{ssh_agent.sock}")
    args = ssh_args(openssh_server, sock, pub)
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    procs = [subprocess.Popen([*args, f"echo login-{i}"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for i in range(8)]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out) == (0, f"login-{i}\n"), f"{err}\n{bridge.log_text()}"
    # Every login was a client of the bridge.
    wait_for(lambda: bridge.log_text().count("ended: closed") >= 8, 10, "8 clients")
    # Without the bridge (IdentityAgent=none) the same login fails: the key only lives in the agent.
    alone = subprocess.run([*[a if not a.startswith("IdentityAgent=") else "IdentityAgent=none"
                              for a in args], "true"], env=env, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
    assert alone.returncode == 255


def test_exec_relay_upstream_used_by_ssh_add(loaded_agent: AgentProcess, bridges: Any,
                                             sockdir: Path) -> None:
    """--to exec: running our own relay command (the WSL2 set-up, minus Windows)."""
    expected = expected_listing(loaded_agent)
    sock = sockdir / "bridge.sock"
    relay = f"{sys.executable} -m sshlib agent relay --to unix:{loaded_agent.sock}"
    bridge = bridges([f"unix:{sock}"], f"exec:{relay}")
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
    procs = [subprocess.Popen(["ssh-add", "-l"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for _ in range(20)]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out, err) == (0, expected, ""), bridge.log_text()
    # Each client had its own relay process, reaped when it left.
    wait_for(lambda: bridge.log_text().count("ended: closed") >= 20, 10, "20 clients")


# --- the socket-file listeners ---------------------------------------------------------------


def test_cygwin_listener_file_and_handshake(loaded_agent: AgentProcess, bridges: Any,
                                            tmp_path: Path, agent_keys: KeySet) -> None:
    path = tmp_path / "msys" / "agent.123"
    bridge = bridges([f"cygwin:{path}"], f"unix:{loaded_agent.sock}")
    data = path.read_bytes()
    match = re.fullmatch(rb"!<socket >(\d+) s ([0-9a-f]{8})-([0-9a-f]{8})-([0-9a-f]{8})-"
                         rb"([0-9a-f]{8})\x00", data)
    assert match, data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    port = int(match[1])
    secret = struct.pack("<4I", *(int(match[i], 16) for i in range(2, 6)))
    for endpoint in (f"cygwin:{path}", f"msys:{path}", str(path)):
        with sshlib.agent.connect(endpoint, timeout=10) as agent:
            blobs = {key.blob for key in agent.list_keys()}
            assert agent_keys.keys["ed25519"].public_key.blob in blobs
            assert len(blobs) == 3
            signature = agent.sign(agent_keys.keys["ed25519"].public_key, b"data")
            assert agent_keys.keys["ed25519"].public_key.verify(b"data", signature, "ssh-ed25519")
    # By hand: the echo and the credentials, as a Cygwin client sees them.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(secret)
        assert recv_exact(raw, 16) == secret
        raw.sendall(struct.pack("<iII", os.getpid(), os.getuid(), os.getgid()))
        pid, uid, gid = struct.unpack("<iII", recv_exact(raw, 12))
        assert (pid, uid, gid) == (bridge.process.pid, os.getuid(), os.getgid())
        raw.sendall(framed(b"\x0b"))
        assert recv_exact(raw, 5)[4] == 12
    # A wrong secret, or a foreign uid, is shown the door; the listener carries on.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(bytes(16))
        assert hung_up(raw)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(secret)
        assert recv_exact(raw, 16) == secret
        raw.sendall(struct.pack("<iII", 1, os.getuid() + 4242, 0))
        assert hung_up(raw)
    with sshlib.agent.connect(f"cygwin:{path}", timeout=10) as agent:
        assert len(agent.list_keys()) == 3
    wait_for(lambda: "wrong Cygwin secret" in bridge.log_text()
             and f"claims uid {os.getuid() + 4242}" in bridge.log_text(), 10, "the log lines")
    assert bridge.stop() == 0
    assert not path.exists()


def recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_assuan_listener_file_and_nonce(loaded_agent: AgentProcess, bridges: Any,
                                        tmp_path: Path) -> None:
    path = tmp_path / "gnupg" / "S.gpg-agent.ssh"
    bridge = bridges([f"assuan:{path}"], f"unix:{loaded_agent.sock}")
    data = path.read_bytes()
    port_text, _, nonce = data.partition(b"\n")
    assert port_text.isdigit() and len(nonce) == 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for endpoint in (f"assuan:{path}", str(path)):
        with sshlib.agent.connect(endpoint, timeout=10) as agent:
            assert len(agent.list_keys()) == 3
    with socket.create_connection(("127.0.0.1", int(port_text)), timeout=10) as raw:
        raw.sendall(bytes(16) + framed(b"\x0b"))  # wrong nonce: closed, never answered
        assert hung_up(raw)
    wait_for(lambda: "wrong libassuan nonce" in bridge.log_text(), 10, "the log line")
    assert bridge.stop() == 0
    assert not path.exists()


def test_tcp_listener_free_port_and_loopback_only(loaded_agent: AgentProcess,
                                                  bridges: Any) -> None:
    bridge = bridges(["tcp:127.0.0.1:0"], f"unix:{loaded_agent.sock}")
    (endpoint,) = bridge.endpoints
    assert re.fullmatch(r"tcp:127\.0\.0\.1:\d+", endpoint) and not endpoint.endswith(":0")
    with sshlib.agent.connect(endpoint, timeout=10) as agent:
        assert len(agent.list_keys()) == 3
    refused = run_cli("agent", "bridge", "--listen", "tcp:0.0.0.0:0", "--to",
                      f"unix:{loaded_agent.sock}")
    assert refused.returncode == 2
    assert "not a loopback address" in refused.stderr and "--allow-remote" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_vsock_listener_is_typed() -> None:
    """Where the kernel has AF_VSOCK the listener works; elsewhere a typed AgentError."""
    try:
        listener = open_listener("vsock:any:0")
    except AgentError as exc:
        assert "vsock" in str(exc).lower()
    else:
        assert listener.endpoint.startswith("vsock:")
        listener.close()


# --- robustness ------------------------------------------------------------------------------


def test_bad_clients_do_not_disturb_others(loaded_agent: AgentProcess, bridges: Any,
                                           sockdir: Path) -> None:
    expected = expected_listing(loaded_agent)
    sock = str(sockdir / "bridge.sock")
    bridge = bridges([f"unix:{sock}"], f"unix:{loaded_agent.sock}", "--idle-timeout", "2")

    def connect() -> socket.socket:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(10)
        raw.connect(sock)
        return raw

    silent = connect()                       # says nothing at all
    half = connect()
    half.sendall(b"\x00\x00")                # half a header, then silence
    oversize = connect()
    oversize.sendall(struct.pack(">I", 0xFFFFFFF0) + b"\x0b")
    garbage = connect()
    garbage.sendall(os.urandom(64) + b"\xff" * 8)
    empty = connect()
    empty.sendall(b"\x00\x00\x00\x00")
    partial = connect()
    partial.sendall(struct.pack(">I", 100) + b"\x0d")   # a request cut short, then silence
    started = time.monotonic()
    # Meanwhile everyone else is served normally.
    for _ in range(10):
        result = ssh_add_l(sock)
        assert (result.returncode, result.stdout) == (0, expected)
    # The broken ones were dropped at once, the silent ones after the idle timeout.
    for raw in (oversize, garbage, empty, silent, half):
        assert hung_up(raw)
    assert time.monotonic() - started < 20
    wait_for(lambda: "exceeds the limit" in bridge.log_text()
             and "empty message" in bridge.log_text()
             and bridge.log_text().count("idle for 2 s") >= 2, 10, "the log lines")
    for raw in (silent, half, oversize, garbage, empty, partial):
        raw.close()
    assert bridge.process.poll() is None
    assert ssh_add_l(sock).stdout == expected


def hung_up(raw: socket.socket) -> bool:
    """Whether the peer closed (a reset counts: it closed with our bytes unread)."""
    try:
        return raw.recv(100) == b""
    except ConnectionResetError:
        return True


def test_upstream_dies_failure_replies_then_recovers(bridges: Any, sockdir: Path,
                                                     tmp_path: Path, agent_keys: KeySet) -> None:
    agent = start_ssh_agent(tmp_path / "mortal")
    try:
        agent.run_client("ssh-add", str(agent_keys.paths["ed25519"]))
        expected = ssh_add_l(agent.sock).stdout
        sock = str(sockdir / "bridge.sock")
        bridge = bridges([f"unix:{sock}"], f"unix:{agent.sock}")
        client = AgentClient(sshlib.agent.open_stream(f"unix:{sock}", timeout=10), timeout=10)
        assert len(client.list_keys()) == 1
        agent.stop()
        wait_for(lambda: not os.path.exists(agent.sock), 5, "the agent socket to go")
        # A new client: FAILURE at once, not a hang or a reset.
        started = time.monotonic()
        dead = ssh_add_l(sock)
        assert dead.returncode != 0 and "agent refused operation" in dead.stderr
        assert time.monotonic() - started < 5
        # The long-lived client: its upstream died under it; FAILURE, connection stays up.
        with pytest.raises(AgentRefusedError):
            client.list_keys()
        wait_for(lambda: f"unix:{agent.sock}" in bridge.log_text()
                 and "answered FAILURE" in bridge.log_text(), 10, "the log lines")
        # The agent comes back on the same socket: both recover, nothing restarted.
        agent = start_ssh_agent(tmp_path / "mortal")
        agent.run_client("ssh-add", str(agent_keys.paths["ed25519"]))
        assert ssh_add_l(sock).stdout == expected
        assert len(client.list_keys()) == 1
        client.close()
        assert bridge.process.poll() is None
    finally:
        agent.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_remove_every_socket_file(loaded_agent: AgentProcess, bridges: Any,
                                          sockdir: Path, tmp_path: Path, signum: int) -> None:
    unix_path = sockdir / "b.sock"
    cyg = tmp_path / "cyg"
    assuan = tmp_path / "assuan"
    bridge = bridges([f"unix:{unix_path}", f"cygwin:{cyg}", f"assuan:{assuan}",
                      "tcp:127.0.0.1:0"], f"unix:{loaded_agent.sock}")
    assert unix_path.exists() and cyg.exists() and assuan.exists()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a connected client doesn't
    idle.connect(str(unix_path))                               # hold the shutdown up
    assert bridge.stop(signum) == 0
    idle.close()
    assert not unix_path.exists() and not cyg.exists() and not assuan.exists()
    assert "bridge stopped" in bridge.log_text()


def test_live_socket_is_kept_stale_one_replaced(loaded_agent: AgentProcess, bridges: Any,
                                                sockdir: Path, tmp_path: Path) -> None:
    sock = sockdir / "b.sock"
    first = bridges([f"unix:{sock}"], f"unix:{loaded_agent.sock}")
    second = run_cli("agent", "bridge", "--listen", f"unix:{sock}", "--to",
                     f"unix:{loaded_agent.sock}")
    assert second.returncode == 2 and "already listens" in second.stderr, second.stderr
    assert ssh_add_l(str(sock)).returncode == 0  # the first one is untouched
    assert first.stop() == 0
    # A stale socket (its owner died without removing it) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()
    bridges([f"unix:{sock}"], f"unix:{loaded_agent.sock}")
    assert ssh_add_l(str(sock)).returncode == 0
    # A regular file and a live Cygwin file are never clobbered.
    plain = sockdir / "plain"
    plain.write_text("precious")
    refused = run_cli("agent", "bridge", "--listen", f"unix:{plain}", "--to",
                      f"unix:{loaded_agent.sock}")
    assert refused.returncode == 2 and "not a socket" in refused.stderr
    assert plain.read_text() == "precious"
    cyg = tmp_path / "cyg"
    bridges([f"cygwin:{cyg}"], f"unix:{loaded_agent.sock}")
    again = run_cli("agent", "bridge", "--listen", f"cygwin:{cyg}", "--to",
                    f"unix:{loaded_agent.sock}")
    assert again.returncode == 2 and "something listens there" in again.stderr


def test_client_limit_queues_instead_of_failing(tmp_path: Path, sockdir: Path) -> None:
    """max_clients bounds threads: the third client waits until a slot frees, then is served."""
    upstream = ScriptedAgent(sockdir / "up.sock", recording_success)
    listener = open_listener(f"unix:{sockdir / 'b.sock'}")
    bridge = Bridge([listener], upstream.endpoint, max_clients=2, idle_timeout=30)
    bridge.start()
    try:
        holders = [AgentClient(sshlib.agent.open_stream(f"unix:{sockdir / 'b.sock'}"),
                               timeout=10) for _ in range(2)]
        for holder in holders:
            assert holder.list_keys() == []
        wait_for(lambda: bridge.active_clients == 2, 5, "two clients")
        third = AgentClient(sshlib.agent.open_stream(f"unix:{sockdir / 'b.sock'}"), timeout=1)
        with pytest.raises(AgentError):  # queued in the backlog: no answer yet
            third.list_keys()
        third.close()
        holders[0].close()
        fourth = AgentClient(sshlib.agent.open_stream(f"unix:{sockdir / 'b.sock'}"), timeout=10)
        assert fourth.list_keys() == []
        assert bridge.active_clients <= 2
        fourth.close()
        holders[1].close()
    finally:
        bridge.close()
        upstream.close()
    assert not (sockdir / "b.sock").exists()
    with pytest.raises(AgentConnectError):
        sshlib.agent.open_stream(f"unix:{sockdir / 'b.sock'}", timeout=2)


def test_upstream_reply_over_the_cap_is_failure_not_a_crash(sockdir: Path) -> None:
    """An upstream announcing a huge reply: the client gets FAILURE, the bridge stays up."""
    upstream = ScriptedAgent(sockdir / "up.sock",
                             lambda payload: struct.pack(">I", 0x7FFFFFFF) + b"\x0c")
    listener = open_listener(f"unix:{sockdir / 'b.sock'}")
    with Bridge([listener], upstream.endpoint) as bridge:
        with AgentClient(sshlib.agent.open_stream(f"unix:{sockdir / 'b.sock'}"),
                         timeout=10) as client:
            with pytest.raises(AgentRefusedError):
                client.list_keys()
            with pytest.raises(AgentRefusedError):  # still connected, still answered
                client.list_keys()
        assert bridge.active_clients in (0, 1)
    upstream.close()


def test_start_twice_or_after_close_is_refused(loaded_agent: AgentProcess,
                                               sockdir: Path) -> None:
    """A second start() raises SSHError and starts no second accept thread; so does start()
    after close().  The running bridge keeps serving the real ssh-agent behind it."""
    import threading

    from sshlib.errors import SSHError

    path = sockdir / "b.sock"
    bridge = Bridge([open_listener(f"unix:{path}")], f"unix:{loaded_agent.sock}")

    def accept_threads() -> int:
        return sum(t.name.startswith("agent-bridge-accept") and str(path) in t.name
                   for t in threading.enumerate())

    try:
        bridge.start()
        with pytest.raises(SSHError, match="called twice"):
            bridge.start()
        with pytest.raises(SSHError, match="called twice"), bridge:  # __enter__ starts too
            pass
        assert accept_threads() == 1
        listing = ssh_add_l(str(path))
        assert listing.returncode == 0 and listing.stdout == expected_listing(loaded_agent)
    finally:
        bridge.close()
    assert bridge.wait(5) and accept_threads() == 0
    with pytest.raises(SSHError, match="after close"):
        bridge.start()
    assert accept_threads() == 0 and not path.exists()
