"""Jump hosts and proxy commands against real sshd instances, OpenSSH's ssh -W and socat."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import AioClient, frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import config, connect

import sshlib
import sshlib.aio


@pytest.fixture
def hops(openssh_factory: Any, openssh_server: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(outer, bastion, target): outer may open anything, bastion only the target's port."""
    target = openssh_server
    bastion = openssh_factory({"AllowTcpForwarding": "yes",
                               "PermitOpen": f"127.0.0.1:{target.port}"})
    outer = openssh_factory({"AllowTcpForwarding": "yes"})
    yield outer, bastion, target


def whoami(client: Any) -> bytes:
    with client.new_session(timeout=10) as s:
        return bytes(s.output("echo $SSH_CONNECTION", timeout=10))


def test_client_over_a_stream_and_permitopen(frontend: Any, hops: tuple[Any, Any, Any]) -> None:
    _, bastion, target = hops
    with connect(bastion, frontend) as jump:
        stream = jump.dial("tcp", target.address, timeout=10)
        with frontend.client(stream, config(target), addr=(target.host, target.port),
                             timeout=30) as inner:
            assert whoami(inner).split()[3] == str(target.port).encode()
        # PermitOpen lets the bastion reach the target's port only.
        with pytest.raises(sshlib.ChannelOpenError):
            jump.dial("tcp", f"127.0.0.1:{bastion.port}", timeout=10)
        jump.send_keepalive(timeout=10)


def test_via_chain_of_three_hops(frontend: Any, hops: tuple[Any, Any, Any]) -> None:
    outer, bastion, target = hops
    with connect(outer, frontend) as first:
        second = frontend.dial_via(bastion.address, config(bastion), first)
        third = frontend.dial_via(target.address, config(target), second)
        with third:
            assert whoami(third).split()[3] == str(target.port).encode()
            data = os.urandom(1 << 20)
            with third.new_session(timeout=10) as s:
                s.start("cat", timeout=10)
                s.stdin.write(data, timeout=60)
                s.stdin.close()
                assert s.stdout.read(timeout=60) == data
        second.close()


def test_proxy_command_with_openssh_ssh_w(frontend: Any, hops: tuple[Any, Any, Any]) -> None:
    _, bastion, target = hops
    key = bastion.user_key_paths["ed25519-openssh"]
    command = (f"ssh -F none -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
               f"-o UserKnownHostsFile={bastion.known_hosts_path} -o StrictHostKeyChecking=yes "
               f"-p {bastion.port} -l {bastion.user} -W %h:%p {bastion.host}")
    with frontend.dial_proxy(target.address, config(target), command) as client:
        assert whoami(client).split()[3] == str(target.port).encode()


def test_proxy_command_with_socat(frontend: Any, openssh_server: Any) -> None:
    assert shutil.which("socat"), "socat is missing: scripts/test.sh installs it"
    with frontend.dial_proxy(openssh_server.address, config(openssh_server),
                             "socat - TCP:%h:%p") as client:
        assert whoami(client).split()[3] == str(openssh_server.port).encode()


def test_proxy_command_that_fails(frontend: Any, openssh_server: Any) -> None:
    with pytest.raises(sshlib.ConnectionLost):
        frontend.dial_proxy(openssh_server.address, config(openssh_server, timeout=10),
                            "exit 3")


def test_reader_works_with_descriptors_above_1023(frontend: Any, openssh_server: Any) -> None:
    """select.select() refuses fds >= 1024; the reader thread must not care."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 1200, "cannot raise RLIMIT_NOFILE"
    filler = []
    try:
        while True:
            fd = os.open("/dev/null", os.O_RDONLY)
            filler.append(fd)
            if fd >= 1030:
                break
        sock = socket.create_connection((openssh_server.host, openssh_server.port))
        assert sock.fileno() >= 1024
        with frontend.client(sock, config(openssh_server),
                             addr=(openssh_server.host, openssh_server.port),
                             timeout=30) as client:
            with client.new_session(timeout=10) as s:
                assert s.output("echo high", timeout=10) == b"high\n"
    finally:
        for fd in filler:
            os.close(fd)


def test_inner_connection_ends_when_the_bastion_goes(frontend: Any,
                                                     hops: tuple[Any, Any, Any]) -> None:
    _, bastion, target = hops
    jump = connect(bastion, frontend)
    inner = frontend.dial_via(target.address, config(target), jump)
    assert whoami(inner).split()[3] == str(target.port).encode()
    jump.close()
    assert isinstance(inner.wait(timeout=10), sshlib.SSHError)  # ended, with a reason
    with pytest.raises(sshlib.SSHError):
        inner.new_session(timeout=5)
    inner.close()


def gone_or_zombie(pid: int) -> bool:
    """The process has died: no /proc entry, or a zombie its new parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def connect_proxy(frontend: Any, server: Any, command: str) -> Any:
    """sshlib.connect / sshlib.aio.connect with ProxyCommand (no config files read)."""
    options = {"HostName": server.host, "Port": server.port, "User": server.user,
               "IdentityFile": str(server.user_key_paths["ed25519-openssh"]),
               "IdentitiesOnly": "yes", "IdentityAgent": "none",
               "UserKnownHostsFile": str(server.known_hosts_path), "ProxyCommand": command}
    if frontend.name == "sync":
        return sshlib.connect("target", config_files=[], options=options)
    return AioClient(frontend, frontend.run(
        sshlib.aio.connect("target", config_files=[], options=options)))


@pytest.mark.parametrize("how", ["dial", "connect"])
def test_close_ends_a_proxy_command_that_ignores_sigterm(frontend: Any, openssh_server: Any,
                                                         tmp_path: Path, how: str) -> None:
    """close() is quick and bounded even when the ProxyCommand ignores EOF and SIGTERM: the
    command is killed and reaped, and so is a helper it started in the background.  Both
    dial(proxy_command=) and connect() with ProxyCommand."""
    assert shutil.which("socat"), "socat is missing: scripts/test.sh installs it"
    pids = tmp_path / "pids"
    command = (f"trap '' TERM; sleep 60 & echo $$ $! > {pids}; socat - TCP:%h:%p; "
               "wait; sleep 60")
    if how == "dial":
        client = frontend.dial_proxy(openssh_server.address, config(openssh_server), command)
    else:
        client = connect_proxy(frontend, openssh_server, command)
    assert whoami(client).split()[3] == str(openssh_server.port).encode()
    shell, helper = (int(pid) for pid in pids.read_text().split())
    started = time.monotonic()
    client.close()
    took = time.monotonic() - started
    assert took < 1.5, f"close() took {took:.2f} s"
    with pytest.raises(ProcessLookupError):  # reaped, not even a zombie
        os.kill(shell, 0)
    deadline = time.monotonic() + 5
    while not gone_or_zombie(helper):  # SIGKILL is delivered asynchronously
        assert time.monotonic() < deadline, "the proxy command's background helper survived"
        time.sleep(0.02)
