"""Every POSIX-reachable channel to a real ssh-agent: unix, tcp, Cygwin/MSYS files, libassuan
files, exec relays; vsock and the Windows names give clear errors; discovery."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    HERE,
    AgentProcess,
    BridgeServer,
    KeySet,
    need_tool,
)

import sshlib.agent  # noqa: E402
from sshlib.agent import AgentClient  # noqa: E402
from sshlib.agent.relay import RelayTransport  # noqa: E402
from sshlib.errors import AgentConnectError, AgentUnsupportedError  # noqa: E402

pytest_plugins = ["agentfixtures"]


@pytest.fixture
def loaded_agent(ssh_agent: AgentProcess, agent_keys: KeySet) -> AgentProcess:
    """The session ssh-agent holding the ed25519 and rsa test keys."""
    for name in ("ed25519", "rsa"):
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    return ssh_agent


def exercise(agent: AgentClient, agent_keys: KeySet) -> None:
    """List, sign and verify through `agent`: the channel carries the real protocol."""
    listed = {key.blob for key in agent.list_keys()}
    assert listed == {agent_keys.keys[n].public_key.blob for n in ("ed25519", "rsa")}
    for signer in agent.signers():
        for algorithm in signer.public_key.signature_algorithms[:2]:
            data = os.urandom(48)
            assert signer.public_key.verify(data, signer.sign(data, algorithm), algorithm)


@pytest.fixture
def bridges() -> Iterator[list[BridgeServer]]:
    made: list[BridgeServer] = []
    yield made
    for bridge in made:
        bridge.close()


# --- unix -------------------------------------------------------------------------------------


def test_unix_prefix_and_bare_path(loaded_agent: AgentProcess, agent_keys: KeySet) -> None:
    for endpoint in (f"unix:{loaded_agent.sock}", loaded_agent.sock):
        with sshlib.agent.connect(endpoint) as agent:
            assert agent.endpoint == endpoint
            exercise(agent, agent_keys)


def test_unix_path_longer_than_sun_path(loaded_agent: AgentProcess, agent_keys: KeySet,
                                        tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    long_path = deep / "agent.sock"
    os.link(loaded_agent.sock, long_path)  # a second name for the same socket
    assert len(str(long_path)) > 108
    with sshlib.agent.connect(f"unix:{long_path}") as agent:
        exercise(agent, agent_keys)


def test_unix_missing_and_stale_socket(tmp_path: Path) -> None:
    with pytest.raises(AgentConnectError, match="no agent socket at"):
        sshlib.agent.connect(f"unix:{tmp_path}/nothing")
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()  # the file stays, nobody listens
    with pytest.raises(AgentConnectError, match="stale") as info:
        sshlib.agent.connect(str(stale))
    assert str(stale) in str(info.value)


# --- discovery --------------------------------------------------------------------------------


def test_connect_discovers_ssh_auth_sock(loaded_agent: AgentProcess, agent_keys: KeySet,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", loaded_agent.sock)
    assert sshlib.agent.default_endpoints() == [loaded_agent.sock]
    with sshlib.agent.connect() as agent:
        assert agent.endpoint == loaded_agent.sock
        exercise(agent, agent_keys)
    stream = sshlib.agent.open_stream(None, timeout=5)
    stream.close()


def test_connect_without_ssh_auth_sock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # and no ~/.ssh/agent/ sockets either
    monkeypatch.setattr("sshlib.agent.paths.user_home", lambda: str(tmp_path))
    with pytest.raises(AgentConnectError, match="SSH_AUTH_SOCK is not set"):
        sshlib.agent.connect()


def test_ssh_auth_sock_naming_a_cygwin_file_is_sniffed(
        loaded_agent: AgentProcess, agent_keys: KeySet, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, bridges: list[BridgeServer]) -> None:
    bridge = BridgeServer("cygwin", loaded_agent.sock, tmp_path / "agent.cyg")
    bridges.append(bridge)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.cyg"))
    with sshlib.agent.connect() as agent:
        assert agent.endpoint == f"cygwin:{tmp_path / 'agent.cyg'}"
        exercise(agent, agent_keys)
    assert bridge.handshakes_ok == 1


def test_bare_path_to_a_plain_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(AgentConnectError, match="regular file"):
        sshlib.agent.connect(str(tmp_path / "junk"))


# --- tcp, cygwin, assuan ----------------------------------------------------------------------


def test_tcp(loaded_agent: AgentProcess, agent_keys: KeySet,
             bridges: list[BridgeServer]) -> None:
    bridge = BridgeServer("tcp", loaded_agent.sock)
    bridges.append(bridge)
    with sshlib.agent.connect(f"tcp:127.0.0.1:{bridge.port}") as agent:
        exercise(agent, agent_keys)
    with sshlib.agent.connect(f"tcp:localhost:{bridge.port}") as agent:
        assert len(agent.list_keys()) == 2


@pytest.mark.parametrize("upper", [False, True], ids=["cygwin-lowercase", "keeagent-uppercase"])
def test_cygwin_secret_and_credentials_handshake(loaded_agent: AgentProcess,
                                                 agent_keys: KeySet, tmp_path: Path,
                                                 bridges: list[BridgeServer],
                                                 upper: bool) -> None:
    bridge = BridgeServer("cygwin", loaded_agent.sock, tmp_path / "agent.1", upper_hex=upper)
    bridges.append(bridge)
    assert (b" s " in (tmp_path / "agent.1").read_bytes())
    for endpoint in (bridge.endpoint, f"msys:{tmp_path / 'agent.1'}", str(tmp_path / "agent.1")):
        with sshlib.agent.connect(endpoint) as agent:
            exercise(agent, agent_keys)
    assert bridge.handshakes_ok == 3
    pid, uid, gid = bridge.client_credentials[0]
    assert (pid, uid, gid) == (os.getpid(), os.getuid(), os.getgid())


def test_cygwin_oldest_format_without_handshake(loaded_agent: AgentProcess, agent_keys: KeySet,
                                                tmp_path: Path,
                                                bridges: list[BridgeServer]) -> None:
    bridge = BridgeServer("cygwin-plain", loaded_agent.sock, tmp_path / "agent.old")
    bridges.append(bridge)
    with sshlib.agent.connect(bridge.endpoint) as agent:
        exercise(agent, agent_keys)


def test_msysgit_named_event_format_needs_windows(tmp_path: Path) -> None:
    path = tmp_path / "agent.msysgit"
    path.write_bytes(b"!<socket >4000 0123abcd-89abcdef-00000001-ffffffff\x00")
    with pytest.raises(AgentUnsupportedError, match="only works from Windows") as info:
        sshlib.agent.connect(f"cygwin:{path}")
    assert str(path) in str(info.value)
    assert sys.platform != "win32"


def test_cygwin_datagram_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.dgram"
    path.write_bytes(b"!<socket >4000 d 0123abcd-89abcdef-00000001-ffffffff\x00")
    with pytest.raises(AgentConnectError, match="datagram"):
        sshlib.agent.connect(f"cygwin:{path}")


def test_assuan_nonce_file(loaded_agent: AgentProcess, agent_keys: KeySet, tmp_path: Path,
                           bridges: list[BridgeServer]) -> None:
    bridge = BridgeServer("assuan", loaded_agent.sock, tmp_path / "S.gpg-agent.ssh")
    bridges.append(bridge)
    for endpoint in (bridge.endpoint, str(tmp_path / "S.gpg-agent.ssh")):
        with sshlib.agent.connect(endpoint) as agent:
            exercise(agent, agent_keys)
    assert bridge.handshakes_ok == 2


def test_assuan_and_cygwin_prefixes_accept_either_file(loaded_agent: AgentProcess,
                                                       agent_keys: KeySet, tmp_path: Path,
                                                       bridges: list[BridgeServer]) -> None:
    """gpg-agent writes its ssh socket in Cygwin format: assuan:PATH must cope, and back."""
    cyg = BridgeServer("cygwin", loaded_agent.sock, tmp_path / "cyg")
    nonce = BridgeServer("assuan", loaded_agent.sock, tmp_path / "nonce")
    bridges += [cyg, nonce]
    with sshlib.agent.connect(f"assuan:{tmp_path / 'cyg'}") as agent:
        exercise(agent, agent_keys)
    with sshlib.agent.connect(f"cygwin:{tmp_path / 'nonce'}") as agent:
        exercise(agent, agent_keys)
    assert (cyg.handshakes_ok, nonce.handshakes_ok) == (1, 1)


# --- exec -------------------------------------------------------------------------------------


def test_exec_socat(loaded_agent: AgentProcess, agent_keys: KeySet) -> None:
    need_tool("socat")
    with sshlib.agent.connect(f"exec:socat - UNIX-CONNECT:{loaded_agent.sock}") as agent:
        exercise(agent, agent_keys)
        transport = agent.transport
        assert isinstance(transport, RelayTransport)
    assert transport.process.returncode is not None  # reaped on close


def test_exec_python_relay(loaded_agent: AgentProcess, agent_keys: KeySet,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    # The relay child imports sshlib: make that work whether or not sshlib is installed.
    repo = str(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (repo, os.environ.get("PYTHONPATH", "")) if p))
    command = f"{sys.executable} {HERE} relay {loaded_agent.sock}"
    with sshlib.agent.connect(f"exec:{command}") as agent:
        exercise(agent, agent_keys)
        transport = agent.transport
        assert isinstance(transport, RelayTransport)
        # A second stream for the same endpoint is a second relay process.
        other = agent.open_stream()
        assert isinstance(other, RelayTransport)
        assert other.process.pid != transport.process.pid
        with AgentClient(other) as second:
            assert len(second.list_keys()) == 2
        assert other.process.returncode is not None
    assert transport.process.returncode is not None


def test_exec_close_reaps_a_relay_that_ignores_eof() -> None:
    start = time.monotonic()
    agent = sshlib.agent.connect("exec:sleep 60", timeout=2)
    transport = agent.transport
    assert isinstance(transport, RelayTransport)
    agent.close()
    assert transport.process.returncode is not None
    assert time.monotonic() - start < 10


# --- vsock and the Windows channels -----------------------------------------------------------


def test_vsock_fails_clearly_within_the_timeout() -> None:
    """No vsock peer in a container: a clear AgentConnectError naming the CID and port."""
    start = time.monotonic()
    with pytest.raises(AgentConnectError, match="vsock") as info:
        sshlib.agent.connect("vsock:1:50999", timeout=2)
    assert time.monotonic() - start < 5
    assert info.value.endpoint == "vsock:1:50999"
