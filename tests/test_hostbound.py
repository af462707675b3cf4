"""Host-bound authentication: publickey-hostbound-v00@openssh.com with sshd 9.2, agent
session-bind@openssh.com, and ssh-add -h destination constraints enforced by a real ssh-agent."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import AgentProcess, ScriptedAgent, framed, start_pageant, to_ppk  # noqa: E402
from frontends import frontend_fixture  # noqa: E402, F401  (the `frontend` fixture)

import sshlib  # noqa: E402
import sshlib.agent  # noqa: E402
from sshlib import keys  # noqa: E402
from sshlib.agent.client import AgentSigner  # noqa: E402
from sshlib.wire import Reader  # noqa: E402

pytest_plugins = ["agentfixtures"]


def dial(frontend: Any, server: Any, *signers: Any) -> Any:
    cfg = sshlib.ClientConfig(
        user=server.user, auth=[sshlib.PublicKeys(*signers)],
        host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path), timeout=30)
    return frontend.dial(server.address, cfg)


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f",
                    str(path)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return path


def test_hostbound_method_used_when_advertised(frontend: Any, openssh_server: Any) -> None:
    start = openssh_server.log_size()
    key = sshlib.load_private_key(openssh_server.user_key_paths["ecdsa-256-openssh"])
    with dial(frontend, openssh_server, key):
        pass
    log = openssh_server.log_text(start)
    assert "method publickey-hostbound-v00@openssh.com" in log
    assert "method publickey " not in log


def test_destination_constraints(frontend: Any, ssh_agent: AgentProcess, openssh_server: Any,
                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ssh-add -h: a key constrained to this server works here; one constrained to another
    host is refused by the agent; without session-bind even the permitted one is refused."""
    allowed, elsewhere = keygen(tmp_path / "allowed"), keygen(tmp_path / "elsewhere")
    with open(openssh_server.workdir / "authorized_keys", "a") as fh:
        for path in (allowed, elsewhere):
            fh.write(Path(f"{path}.pub").read_text())
    other_host = keys.generate_private_key("ed25519").public_key
    hosts = tmp_path / "constraint_hosts"
    hosts.write_text("".join(f"permitted {line}\n"
                             for line in openssh_server.host_public_keys.values())
                     + f"other {other_host.openssh()}\n")
    for destination, path in (("permitted", allowed), ("other", elsewhere)):
        ssh_agent.run_client("ssh-add", "-H", str(hosts), "-h", destination, str(path))

    def signer_for(agent: Any, path: Path) -> Any:
        want = sshlib.load_public_key(f"{path}.pub")
        (signer,) = [s for s in agent.signers() if s.public_key == want]
        return signer

    # One agent connection per SSH connection: the agent binds a socket to one session.
    with sshlib.agent.connect(ssh_agent.sock, timeout=20) as agent:
        with dial(frontend, openssh_server, signer_for(agent, allowed)) as client:
            with client.new_session() as session:
                assert bytes(session.output("whoami")).strip() == openssh_server.user.encode()
    with sshlib.agent.connect(ssh_agent.sock, timeout=20) as agent:
        with pytest.raises(sshlib.AuthError):
            dial(frontend, openssh_server, signer_for(agent, elsewhere)).close()
    monkeypatch.setattr(AgentSigner, "bind_session", lambda self, *args: False)
    with sshlib.agent.connect(ssh_agent.sock, timeout=20) as agent:
        with pytest.raises(sshlib.AuthError):
            dial(frontend, openssh_server, signer_for(agent, allowed)).close()


def test_agent_without_session_bind_still_authenticates(frontend: Any, openssh_server: Any,
                                                        tmp_path: Path) -> None:
    """PuTTY's Pageant answers FAILURE to session-bind@openssh.com: that is tolerated."""
    pageant = start_pageant(tmp_path / "pageant",
                            [to_ppk(Path(openssh_server.user_key_paths["ed25519-openssh"]))])
    try:
        with sshlib.agent.connect(pageant.sock, timeout=20) as agent:
            (signer,) = agent.signers()
            assert signer.bind_session(b"k", b"s", b"sig") is False
            with dial(frontend, openssh_server, signer) as client:
                assert client.kex_count == 1
    finally:
        pageant.stop()


def test_forwarded_agent_channels_start_with_session_bind(frontend: Any, openssh_server: Any,
                                                          tmp_path: Path) -> None:
    """Each forwarded channel's upstream stream first binds the forwarding connection
    (is_forwarding true), as OpenSSH's ssh does; a FAILURE reply is tolerated."""
    def handler(payload: bytes) -> bytes:
        if payload[:1] == b"\x0b":  # REQUEST_IDENTITIES: none
            return framed(b"\x0c" + bytes(4))
        return framed(b"\x05")  # FAILURE, also to session-bind

    with ScriptedAgent(tmp_path / "scripted.sock", handler) as scripted:
        key = sshlib.load_private_key(openssh_server.user_key_paths["ed25519-openssh"])
        with dial(frontend, openssh_server, key) as client:
            client.forward_agent(scripted.endpoint)
            with client.new_session() as session:
                session.request_agent_forwarding()
                out = session.output("ssh-add -l; echo rc=$?", timeout=30)
            assert b"rc=1" in out  # "The agent has no identities."
            bind, listing = scripted.requests[:2]
            assert listing[:1] == b"\x0b"
            r = Reader(bind)
            assert r.byte() == 27 and r.text() == "session-bind@openssh.com"
            host_key = sshlib.parse_public_key(r.string())
            session_id, signature = r.string(), r.string()
            assert r.boolean() is True
            r.check_end()
            assert host_key == client.host_key and session_id == client.session_id
            assert host_key.verify(session_id, signature, client.algorithms.host_key)


def test_forwarded_hops_are_checked_against_constraints(ssh_agent: AgentProcess,
                                                        openssh_server: Any,
                                                        tmp_path: Path) -> None:
    """With the forwarding bind, the real ssh-agent sees the hop server -> server and
    applies ``ssh-add -h``: a key allowed only for the first host cannot be used by a
    second hop from it; one also allowed for that hop can."""
    user_key = sshlib.load_private_key(openssh_server.user_key_paths["ed25519-openssh"])
    hosts = tmp_path / "constraint_hosts"
    hosts.write_text("".join(f"server {line}\n"
                             for line in openssh_server.host_public_keys.values()))
    hop = (f"ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o IdentitiesOnly=no -o IdentityFile=/dev/null -p {openssh_server.port} "
           f"{openssh_server.user}@127.0.0.1 echo second-hop; echo rc=$?")
    key = keygen(tmp_path / "hopkey")
    with open(openssh_server.workdir / "authorized_keys", "a") as fh:
        fh.write(Path(f"{key}.pub").read_text())

    def second_hop() -> bytes:
        cfg = sshlib.ClientConfig(
            user=openssh_server.user, auth=[sshlib.PublicKeys(user_key)], timeout=30,
            host_key_callback=sshlib.knownhosts.callback(openssh_server.known_hosts_path))
        with sshlib.dial("tcp", openssh_server.address, cfg) as client:
            client.forward_agent(f"unix:{ssh_agent.sock}")
            with client.new_session() as session:
                session.request_agent_forwarding()
                return bytes(session.output(hop, timeout=60))

    ssh_agent.run_client("ssh-add", "-H", str(hosts), "-h", "server", str(key))
    assert b"second-hop" not in second_hop()  # the hop server -> server is not allowed
    ssh_agent.run_client("ssh-add", "-D")
    ssh_agent.run_client("ssh-add", "-H", str(hosts), "-h", "server", "-h", "server>server",
                         str(key))
    assert b"second-hop" in second_hop()
