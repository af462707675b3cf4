"""sshlib.agent against PuTTY's Unix Pageant (apt package putty), run headless."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import AgentProcess, KeySet, start_pageant, to_ppk  # noqa: E402

import sshlib.agent  # noqa: E402
from sshlib import keys  # noqa: E402
from sshlib.errors import AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]


@pytest.fixture
def pageant(tmp_path: Path, agent_keys: KeySet) -> Iterator[AgentProcess]:
    """Pageant started with the ed25519 key loaded from a .ppk (converted by puttygen)."""
    agent = start_pageant(tmp_path / "pageant", [to_ppk(agent_keys.paths["ed25519"])])
    try:
        yield agent
    finally:
        agent.stop()


def test_lists_and_signs_keys_loaded_by_pageant(pageant: AgentProcess, agent_keys: KeySet,
                                                tmp_path: Path) -> None:
    # A second key through Pageant's own client (pageant -a), not through sshlib.
    added = pageant.run_client("pageant", "-a", str(to_ppk(agent_keys.paths["rsa"])),
                               check=False)
    assert added.returncode == 0, added.stderr + added.stdout
    with sshlib.agent.connect(f"unix:{pageant.sock}", timeout=20) as agent:
        listed = {key.blob: key for key in agent.list_keys()}
        assert set(listed) == {agent_keys.keys[n].public_key.blob for n in ("ed25519", "rsa")}
        for name in ("ed25519", "rsa"):
            key = listed[agent_keys.keys[name].public_key.blob]
            assert key.comment == f"test {name}"
            assert key.public_key is not None
            for algorithm in key.public_key.signature_algorithms:
                if algorithm == "ssh-rsa":
                    continue
                data = os.urandom(64)
                signature = key.signer.sign(data, algorithm)
                assert key.public_key.verify(data, signature, algorithm), algorithm


@pytest.mark.parametrize("name", ["ed25519", "ecdsa-256", "ecdsa-521", "rsa"])
def test_add_sign_remove(pageant: AgentProcess, agent_keys: KeySet, name: str) -> None:
    key = agent_keys.keys[name]
    with sshlib.agent.connect(pageant.sock, timeout=20) as agent:
        if name != "ed25519":
            agent.add_key(key, comment=f"via sshlib {name}")
        # Pageant's own client lists what we added.
        listing = pageant.run_client("pageant", "-l").stdout
        assert key.public_key.fingerprint() in listing
        (signer,) = [s for s in agent.signers() if s.public_key == key.public_key]
        signature = signer.sign(b"to be signed")
        assert key.public_key.verify(b"to be signed", signature,
                                     key.public_key.signature_algorithms[0])
        agent.remove_key(key.public_key)
        assert key.public_key.blob not in {k.blob for k in agent.list_keys()}
        with pytest.raises(AgentRefusedError):
            agent.sign(key.public_key, b"gone")


def test_remove_all(pageant: AgentProcess, agent_keys: KeySet) -> None:
    with sshlib.agent.connect(pageant.sock) as agent:
        agent.add_key(agent_keys.keys["ecdsa-384"])
        assert len(agent.list_keys()) == 2
        agent.remove_all()
        assert agent.list_keys() == []
    assert "SHA256:" not in pageant.run_client("pageant", "-l", check=False).stdout


def test_query_session_bind_and_unsupported_requests(pageant: AgentProcess,
                                                     agent_keys: KeySet) -> None:
    host_key = agent_keys.keys["ecdsa-256"]
    with sshlib.agent.connect(pageant.sock) as agent:
        # Pageant answers "query" with SUCCESS and flat strings.
        names = agent.query_extensions()
        assert "query" in names
        assert "list-extended@putty.projects.tartarus.org" in names
        # Pageant 0.78 does not know session-bind: FAILURE, tolerated.
        assert agent.session_bind(host_key.public_key, b"s" * 32, host_key.sign(b"s" * 32),
                                  is_forwarding=True) is False
        # Nor lock, nor key constraints: refused, and the connection stays usable.
        with pytest.raises(AgentRefusedError, match="lock"):
            agent.lock(b"pw")
        with pytest.raises(AgentRefusedError, match="add key"):
            agent.add_key(agent_keys.keys["rsa"], lifetime=60)
        assert len(agent.list_keys()) == 1
        assert isinstance(agent.signers()[0], keys.Signer)
