"""Certificates held by a real ssh-agent (ssh-add of key + certificate): listed with a
usable Certificate, offered by agent.signers(), accepted by sshd with TrustedUserCAKeys."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import AgentProcess  # noqa: E402
from frontends import frontend_fixture  # noqa: E402, F401  (the `frontend` fixture)

import sshlib  # noqa: E402
import sshlib.agent  # noqa: E402

pytest_plugins = ["agentfixtures"]

SPECS = {"ed25519": ["-t", "ed25519"], "ecdsa": ["-t", "ecdsa", "-b", "384"],
         "rsa": ["-t", "rsa", "-b", "2048"]}


def keygen(path: Path, *spec: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", *spec, "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return path


def test_agent_certificates_authenticate(frontend: Any, ssh_agent: AgentProcess,
                                         openssh_factory: Any, tmp_path: Path) -> None:
    ca = keygen(tmp_path / "ca", "-t", "ed25519")
    server = openssh_factory({"TrustedUserCAKeys": f"{ca}.pub"})
    users = {name: keygen(tmp_path / f"id_{name}", *spec) for name, spec in SPECS.items()}
    for name, path in users.items():
        subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", f"agent-{name}", "-n",
                        server.user, "-z", "3", f"{path}.pub"], check=True, capture_output=True)
        added = ssh_agent.run_client("ssh-add", str(path))  # adds the key and its -cert.pub
        assert "Certificate added" in added.stderr, added.stderr
    with sshlib.agent.connect(ssh_agent.sock, timeout=20) as agent:
        listed = agent.list_keys()
        certs = [k for k in listed if isinstance(k.public_key, sshlib.Certificate)]
        assert sorted(c.public_key.key_id for c in certs) == [  # type: ignore[union-attr]
            f"agent-{n}" for n in sorted(SPECS)]
        for cert_key in certs:
            cert = cert_key.public_key
            assert isinstance(cert, sshlib.Certificate)
            assert cert_key.key_type == cert.key_type and cert.key_type.endswith(
                "-cert-v01@openssh.com")
            assert cert.signature_valid() and cert.principals == (server.user,)
        signers = agent.signers()
        assert len(signers) == 2 * len(SPECS)  # every plain key and every certificate
        for cert_key in certs:
            cert = cert_key.public_key
            assert isinstance(cert, sshlib.Certificate)
            start = server.log_size()
            # Only this certificate: the plain keys are not authorized on this server.
            with frontend.dial(server.address, sshlib.ClientConfig(
                    user=server.user, auth=[sshlib.PublicKeys(cert_key.signer)],
                    host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path),
                    timeout=30)) as client:
                with client.new_session() as session:
                    assert bytes(session.output("whoami")).strip() == server.user.encode()
            log = server.log_text(start)
            assert f"Accepted publickey for {server.user}" in log
            assert f"ID {cert.key_id} (serial 3)" in log
            if cert.public_key.key_type == "ssh-rsa":
                assert "pkalg rsa-sha2-512-cert-v01@openssh.com" in log
        # The plain agent keys alone are refused: the certificates did the work above.
        plain = [s for s in signers if not isinstance(s.public_key, sshlib.Certificate)]
        with pytest.raises(sshlib.AuthError):
            frontend.dial(server.address, sshlib.ClientConfig(
                user=server.user, auth=[sshlib.PublicKeys(*plain)],
                host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path),
                timeout=30)).close()
