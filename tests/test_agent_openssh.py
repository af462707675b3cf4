"""sshlib.agent against a real OpenSSH ssh-agent, and agent-only login to a real sshd."""

from __future__ import annotations

import base64
import os
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    KEY_SPECS,
    AgentProcess,
    KeySet,
    ScriptedAgent,
    captured_add,
    recording_success,
)
from helpers import connect  # noqa: E402

import sshlib  # noqa: E402
import sshlib.agent  # noqa: E402
from sshlib import keys  # noqa: E402
from sshlib.agent import AgentClient  # noqa: E402
from sshlib.errors import AgentConnectError, AgentError, AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]

KEY_NAMES = list(KEY_SPECS)


def listed_by_ssh_add(agent: AgentProcess) -> dict[bytes, str]:
    """blob -> comment, as OpenSSH's own ssh-add -L prints them (independent parse)."""
    result = agent.run_client("ssh-add", "-L", check=False)
    if result.returncode == 1 and "no identities" in result.stdout:
        return {}
    assert result.returncode == 0, result.stderr
    listed: dict[bytes, str] = {}
    for line in result.stdout.splitlines():
        fields = line.split(None, 2)
        listed[base64.b64decode(fields[1])] = fields[2] if len(fields) > 2 else ""
    return listed


# --- list / add --------------------------------------------------------------------------------


def test_lists_keys_added_by_ssh_add(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    for name in KEY_NAMES:
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    with sshlib.agent.connect(f"unix:{ssh_agent.sock}", timeout=10) as agent:
        listed = agent.list_keys()
    assert len(listed) == len(KEY_NAMES)
    by_blob = {key.blob: key for key in listed}
    for name in KEY_NAMES:
        expected = keys.load_public_key(f"{agent_keys.paths[name]}.pub")
        key = by_blob[expected.blob]
        assert key.public_key == expected
        assert key.comment == f"test {name}"
        assert key.fingerprint() == expected.fingerprint()
        assert key.key_type == expected.key_type


@pytest.mark.parametrize("name", KEY_NAMES)
def test_add_key_each_type_seen_by_ssh_add(ssh_agent: AgentProcess, agent_keys: KeySet,
                                           name: str) -> None:
    key = agent_keys.keys[name]
    with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
        agent.add_key(key, comment=f"added {name}")
        assert [(k.blob, k.comment) for k in agent.list_keys()] == [
            (key.public_key.blob, f"added {name}")]
    assert listed_by_ssh_add(ssh_agent) == {key.public_key.blob: f"added {name}"}


def test_add_key_default_comment_is_the_keys_own(ssh_agent: AgentProcess,
                                                 agent_keys: KeySet) -> None:
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(agent_keys.keys["ed25519"])
        assert agent.list_keys()[0].comment == "test ed25519"


def test_lifetime_constraint_expires_key(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(agent_keys.keys["ed25519"], lifetime=1)
        agent.add_key(agent_keys.keys["ecdsa-256"])
        assert len(agent.list_keys()) == 2
        deadline = time.monotonic() + 10
        while len(agent.list_keys()) == 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        remaining = agent.list_keys()
    assert [k.blob for k in remaining] == [agent_keys.keys["ecdsa-256"].public_key.blob]


def test_confirm_constraint_is_enforced_by_ssh_agent(ssh_agent: AgentProcess,
                                                    agent_keys: KeySet) -> None:
    """ssh-agent runs its askpass (ours: yes iff the 'allow' file exists) before each signature."""
    key = agent_keys.keys["ed25519"]
    allow = Path(ssh_agent.sock).parent / "allow"
    with sshlib.agent.connect(ssh_agent.sock, timeout=20) as agent:
        agent.add_key(key, confirm=True)
        with pytest.raises(AgentRefusedError, match="refused to sign"):
            agent.sign(key.public_key, b"data")
        allow.touch()
        signature = agent.sign(key.public_key, b"data")
        assert key.public_key.verify(b"data", signature, "ssh-ed25519")


def _captured_add(tmp_path: Path, key_path: Path, *flags: str) -> bytes:
    """The ADD_IDENTITY request OpenSSH's ssh-add sends for `key_path`."""
    return captured_add(tmp_path / "rec.sock", *flags, str(key_path))


def _our_add(tmp_path: Path, key: keys.PrivateKey, **kwargs: Any) -> bytes:
    with ScriptedAgent(tmp_path / "ours.sock", recording_success) as recorder:
        with sshlib.agent.connect(recorder.endpoint, timeout=10) as agent:
            agent.add_key(key, **kwargs)
        return recorder.requests[-1]


@pytest.mark.parametrize("name", ["ed25519", "ecdsa-384", "rsa"])
def test_add_requests_are_byte_identical_to_ssh_add(tmp_path: Path, agent_keys: KeySet,
                                                   name: str) -> None:
    """Independent evidence for the add layout and the lifetime/confirm constraints."""
    path, key = agent_keys.paths[name], agent_keys.keys[name]
    plain = _captured_add(tmp_path, path)
    assert plain[0] == 17
    assert _our_add(tmp_path, key) == plain
    constrained = _captured_add(tmp_path, path, "-c", "-t", "600")
    assert constrained[0] == 25
    assert constrained.endswith(b"\x01" + struct.pack(">I", 600) + b"\x02")
    assert _our_add(tmp_path, key, lifetime=600, confirm=True) == constrained
    confirm_only = _captured_add(tmp_path, path, "-c")
    assert _our_add(tmp_path, key, confirm=True) == confirm_only


# --- sign ---------------------------------------------------------------------------------------


SIGN_CASES = [("ed25519", "ssh-ed25519"), ("ecdsa-256", "ecdsa-sha2-nistp256"),
              ("ecdsa-384", "ecdsa-sha2-nistp384"), ("ecdsa-521", "ecdsa-sha2-nistp521"),
              ("rsa", "rsa-sha2-256"), ("rsa", "rsa-sha2-512"), ("rsa", "ssh-rsa")]


@pytest.mark.parametrize(("name", "algorithm"), SIGN_CASES)
def test_sign_and_verify(ssh_agent: AgentProcess, agent_keys: KeySet, name: str,
                         algorithm: str) -> None:
    ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    data = os.urandom(100)
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        (key,) = agent.list_keys()
        assert key.public_key is not None
        flags = sshlib.agent.protocol.sign_flags_for_algorithm(algorithm)
        raw = agent.sign(key, data, flags=flags)
        assert key.public_key.verify(data, raw, algorithm)
        assert not key.public_key.verify(data + b"x", raw, algorithm)
        via_signer = key.signer.sign(data, algorithm)
        assert key.public_key.verify(data, via_signer, algorithm)


def test_signer_default_algorithm_is_rsa_sha2_512(ssh_agent: AgentProcess,
                                                  agent_keys: KeySet) -> None:
    ssh_agent.run_client("ssh-add", str(agent_keys.paths["rsa"]))
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        (signer,) = agent.signers()
        assert isinstance(signer, keys.Signer)
        signature = signer.sign(b"abc")
        assert signer.public_key.verify(b"abc", signature, "rsa-sha2-512")
        with pytest.raises(ValueError):
            signer.sign(b"abc", "ssh-ed25519")


def test_sign_with_unknown_key_is_refused(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        with pytest.raises(AgentRefusedError) as info:
            agent.sign(agent_keys.keys["ed25519"].public_key, b"data")
        assert ssh_agent.sock in str(info.value)
        assert agent.list_keys() == []  # a FAILURE leaves the connection usable


@pytest.mark.parametrize("transport", ["unix", "exec"])
def test_fifty_threads_sign_concurrently(ssh_agent: AgentProcess, agent_keys: KeySet,
                                         transport: str) -> None:
    for name in ("ed25519", "ecdsa-256", "rsa"):
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    endpoint = (ssh_agent.sock if transport == "unix"
                else f"exec:socat - UNIX-CONNECT:{ssh_agent.sock}")
    results: list[tuple[keys.PublicKey, bytes, str, bytes]] = []
    errors: list[BaseException] = []
    with sshlib.agent.connect(endpoint, timeout=60) as agent:
        signers = agent.signers()
        assert len(signers) == 3

        def work(index: int) -> None:
            try:
                signer = signers[index % 3]
                algorithms = signer.public_key.signature_algorithms
                algorithm = algorithms[index % min(2, len(algorithms))]
                data = os.urandom(32) + index.to_bytes(4, "big")
                results.append((signer.public_key, data, algorithm,
                                signer.sign(data, algorithm)))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors, errors
    assert len(results) == 50
    for public_key, data, algorithm, signature in results:
        assert public_key.verify(data, signature, algorithm)


# --- remove / lock / extensions ------------------------------------------------------------------


def test_remove_and_remove_all(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        for name in KEY_NAMES:
            agent.add_key(agent_keys.keys[name])
        listed = agent.list_keys()
        assert len(listed) == len(KEY_NAMES)
        agent.remove_key(listed[0])
        agent.remove_key(agent_keys.keys[KEY_NAMES[1]].public_key)
        left = {k.blob for k in agent.list_keys()}
        assert left == {agent_keys.keys[n].public_key.blob for n in KEY_NAMES[2:]}
        assert set(listed_by_ssh_add(ssh_agent)) == left
        with pytest.raises(AgentRefusedError, match="remove key"):
            agent.remove_key(listed[0])
        agent.remove_all()
        assert agent.list_keys() == []
    assert listed_by_ssh_add(ssh_agent) == {}


def test_lock_and_unlock(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    key = agent_keys.keys["ed25519"]
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(key)
        agent.lock(b"sesame")
        try:
            assert agent.list_keys() == []
            with pytest.raises(AgentRefusedError):
                agent.sign(key.public_key, b"x")
            with pytest.raises(AgentRefusedError, match="unlock"):
                agent.unlock(b"wrong")
            # The lock is real: OpenSSH's ssh-add sees no keys either.
            assert listed_by_ssh_add(ssh_agent) == {}
        finally:
            agent.unlock(b"sesame")
        assert [k.blob for k in agent.list_keys()] == [key.public_key.blob]
        assert key.public_key.verify(b"x", agent.sign(key.public_key, b"x"), "ssh-ed25519")


def test_session_bind_and_query(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    host_key = agent_keys.keys["ecdsa-256"]
    session_id = os.urandom(32)
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(agent_keys.keys["ed25519"])
        # OpenSSH verifies the host key's signature over the session id.
        assert agent.session_bind(host_key.public_key, session_id, host_key.sign(session_id),
                                  is_forwarding=False)
        # A bad signature is refused with FAILURE, which session_bind tolerates.
        assert not agent.session_bind(host_key.public_key, session_id,
                                      host_key.sign(b"other"), is_forwarding=False)
        # ssh-agent 9.2 has no "query": FAILURE, which means nothing to report.
        assert agent.query_extensions() == []
        with pytest.raises(AgentRefusedError, match=r"no-such@example\.com"):
            agent.extension("no-such@example.com", b"")
        assert len(agent.list_keys()) == 1  # connection still in step


def test_closed_client(ssh_agent: AgentProcess) -> None:
    agent = sshlib.agent.connect(ssh_agent.sock)
    agent.close()
    assert agent.closed
    with pytest.raises(AgentConnectError):
        agent.list_keys()


def test_open_stream_reaches_the_same_agent(ssh_agent: AgentProcess,
                                            agent_keys: KeySet) -> None:
    """What agent forwarding uses: a fresh raw stream per forwarded channel."""
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(agent_keys.keys["ed25519"])
        stream = agent.open_stream()
        try:
            with AgentClient(stream) as second:
                assert [k.blob for k in second.list_keys()] == [
                    agent_keys.keys["ed25519"].public_key.blob]
        finally:
            stream.close()
        raw = sshlib.agent.open_stream(agent.endpoint, timeout=5)
        raw.send_all(b"\x00\x00\x00\x01\x0b", 5)
        header = raw.recv_exact(4, 5)
        body = raw.recv_exact(struct.unpack(">I", header)[0], 5)
        assert body[0] == 12
        raw.close()


# --- agent-only public key authentication to a real sshd -----------------------------------------


@pytest.mark.parametrize("key_name", ["ed25519-openssh", "ecdsa-256-openssh", "rsa-openssh"])
def test_agent_only_login_to_sshd(openssh_server: Any, ssh_agent: AgentProcess,
                                  key_name: str) -> None:
    ssh_agent.run_client("ssh-add", str(openssh_server.user_key_paths[key_name]))
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        signers = agent.signers()
        assert len(signers) == 1
        with connect(openssh_server, auth=[sshlib.PublicKeys(*signers)]) as client:
            with client.new_session() as session:
                assert session.output("echo agent-ok") == b"agent-ok\n"


def test_agent_login_with_rsa_sha2_512_only(openssh_factory: Any, ssh_agent: AgentProcess) -> None:
    """The signer asks the agent for rsa-sha2-512 (flag 4); SHA-1 would be refused here."""
    server = openssh_factory({"PubkeyAcceptedAlgorithms": "rsa-sha2-512"})
    ssh_agent.run_client("ssh-add", str(server.user_key_paths["rsa-openssh"]))
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        with connect(server, auth=[sshlib.PublicKeys(*agent.signers())]) as client:
            with client.new_session() as session:
                assert session.output("echo ok") == b"ok\n"
    assert "Accepted publickey" in server.log_text()


def test_agent_login_refused_signature_fails_auth_cleanly(openssh_server: Any,
                                                         ssh_agent: AgentProcess) -> None:
    """A key whose use the agent refuses (confirm denied) makes auth fail, not crash."""
    key = sshlib.load_private_key(openssh_server.user_key_paths["ed25519-openssh"])
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        agent.add_key(key, confirm=True)  # askpass says no: no 'allow' file
        with pytest.raises(sshlib.AuthError):
            connect(openssh_server, auth=[sshlib.PublicKeys(*agent.signers())]).close()


def test_signers_skip_nothing_sshlib_supports(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    for name in KEY_NAMES:
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        assert len(agent.signers()) == len(KEY_NAMES)
        for key in agent.list_keys():
            assert isinstance(key.signer, keys.Signer)


def test_unsupported_key_types_are_listed_but_not_signers(ssh_agent: AgentProcess,
                                                          tmp_path: Path) -> None:
    """A DSA key: sshlib cannot use it, but list_keys must not fail because of it."""
    subprocess.run(["ssh-keygen", "-q", "-t", "dsa", "-N", "", "-C", "old", "-f",
                    str(tmp_path / "dsa")], check=True, stdin=subprocess.DEVNULL)
    added = ssh_agent.run_client("ssh-add", str(tmp_path / "dsa"), check=False)
    assert added.returncode == 0, added.stderr
    with sshlib.agent.connect(ssh_agent.sock) as agent:
        (key,) = agent.list_keys()
        assert key.public_key is None and key.key_type == "ssh-dss"
        assert key.comment == "old"
        assert agent.signers() == []
        with pytest.raises(AgentError, match="cannot authenticate with ssh-dss"):
            _ = key.signer
