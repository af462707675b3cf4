"""connect() through ProxyJump and ProxyCommand, and the forwards a configuration starts.

Real servers: the session sshd is the jump host, a second sshd the
target; each hop is resolved through the configuration with its own
HostName, User, keys and known_hosts.  LocalForward carries data,
DynamicForward serves SOCKS, ExitOnForwardFailure turns a failed forward
into an error.  Both front-ends.
"""

from __future__ import annotations

import shutil
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from frontends import AioClient, frontend_fixture  # noqa: F401  (fixture)

import sshlib
import sshlib.aio
from sshlib.testing import TestServer


def connect(frontend: Any, destination: str, **kwargs: Any) -> Any:
    if frontend.name == "sync":
        return sshlib.connect(destination, **kwargs)
    return AioClient(frontend, frontend.run(sshlib.aio.connect(destination, **kwargs)))


def run(client: Any, command: str) -> bytes:
    with client.new_session() as session:
        out: bytes = session.output(command)
        return out


def setup_files(tmp_path: Path, *servers: TestServer) -> tuple[Path, Path]:
    key = tmp_path / "id_test"
    shutil.copyfile(servers[0].user_key_paths["ed25519-openssh"], key)
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text("".join(line + "\n" for s in servers for line in s.known_hosts_lines()))
    return key, known


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_proxyjump_through_a_second_sshd(frontend: Any, openssh_server: TestServer,
                                         openssh_factory: Any, tmp_path: Path) -> None:
    target = openssh_factory()
    key, known = setup_files(tmp_path, openssh_server, target)
    config = tmp_path / "config"
    config.write_text(
        f"Host target\n  HostName 127.0.0.1\n  Port {target.port}\n  ProxyJump bastion\n"
        f"Host chain\n  HostName 127.0.0.1\n  Port {target.port}\n  ProxyJump bastion,bastion\n"
        f"Host bastion\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
        f"Host *\n  User {target.user}\n  IdentityFile {key}\n  UserKnownHostsFile {known}\n"
        "  IdentityAgent none\n")
    start = openssh_server.log_size()
    with connect(frontend, "target", config_files=[config]) as client:
        assert run(client, "echo through") == b"through\n"
    log = openssh_server.log_text(start)
    assert f"port {target.port}" in log and "direct-tcpip" in log, log[-2000:]
    with connect(frontend, "chain", config_files=[config]) as client:  # two hops
        assert run(client, "echo chained") == b"chained\n"


def test_proxycommand(frontend: Any, openssh_server: TestServer, tmp_path: Path) -> None:
    key, known = setup_files(tmp_path, openssh_server)
    config = tmp_path / "config"
    config.write_text(f"Host viaproxy\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                      f"  User {openssh_server.user}\n  IdentityFile {key}\n"
                      f"  UserKnownHostsFile {known}\n  IdentityAgent none\n"
                      "  ProxyCommand socat - TCP:%h:%p\n")
    with connect(frontend, "viaproxy", config_files=[config]) as client:
        assert run(client, "echo proxied") == b"proxied\n"


def test_local_and_dynamic_forwards_from_config(frontend: Any, openssh_server: TestServer,
                                                tmp_path: Path) -> None:
    key, known = setup_files(tmp_path, openssh_server)
    local_port, socks_port = free_port(), free_port()
    config = tmp_path / "config"
    config.write_text(f"Host fwd\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                      f"  User {openssh_server.user}\n  IdentityFile {key}\n"
                      f"  UserKnownHostsFile {known}\n  IdentityAgent none\n"
                      f"  LocalForward {local_port} 127.0.0.1:{openssh_server.port}\n"
                      f"  DynamicForward {socks_port}\n")
    with connect(frontend, "fwd", config_files=[config]):
        with socket.create_connection(("127.0.0.1", local_port), timeout=10) as s:
            assert s.recv(64).startswith(b"SSH-2.0-")  # the sshd's banner, forwarded
        with socket.create_connection(("127.0.0.1", socks_port), timeout=10) as s:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1")
                      + struct.pack(">H", openssh_server.port))
            reply = s.recv(10)
            assert reply[:2] == b"\x05\x00", reply
            assert s.recv(64).startswith(b"SSH-2.0-")


def test_exit_on_forward_failure(frontend: Any, openssh_server: TestServer,
                                 tmp_path: Path) -> None:
    key, known = setup_files(tmp_path, openssh_server)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    config = tmp_path / "config"
    base = (f"Host busy\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
            f"  User {openssh_server.user}\n  IdentityFile {key}\n"
            f"  UserKnownHostsFile {known}\n  IdentityAgent none\n"
            f"  LocalForward {port} 127.0.0.1:22\n")
    try:
        config.write_text(base)
        with connect(frontend, "busy", config_files=[config]) as client:  # warned, still up
            assert run(client, "echo up") == b"up\n"
        config.write_text(base + "  ExitOnForwardFailure yes\n")
        with pytest.raises(sshlib.errors.ForwardingError, match="ExitOnForwardFailure"):
            connect(frontend, "busy", config_files=[config])
    finally:
        busy.close()


def test_remote_forward_from_config(frontend: Any, openssh_server: TestServer,
                                    tmp_path: Path) -> None:
    key, known = setup_files(tmp_path, openssh_server)
    remote_port = free_port()
    config = tmp_path / "config"
    config.write_text(f"Host rfwd\n  HostName 127.0.0.1\n  Port {openssh_server.port}\n"
                      f"  User {openssh_server.user}\n  IdentityFile {key}\n"
                      f"  UserKnownHostsFile {known}\n  IdentityAgent none\n"
                      f"  RemoteForward {remote_port} 127.0.0.1:{openssh_server.port}\n"
                      "  ExitOnForwardFailure yes\n")
    with connect(frontend, "rfwd", config_files=[config]) as client:
        out = run(client, f"timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{remote_port}; "
                          "head -c 8 <&3'")
        assert out == b"SSH-2.0-"  # the server's own banner, back through our client
