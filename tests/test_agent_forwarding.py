"""Agent forwarding against a real sshd, with a real ssh-agent on our side."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import connect, user_key

import sshlib


@pytest.fixture
def local_agent(openssh_server: Any) -> Iterator[tuple[str, str]]:
    """A real ssh-agent holding the test user's ed25519 key: (socket path, fingerprint)."""
    tmp = Path(tempfile.mkdtemp(prefix="sshlib-fwd-"))
    sock = tmp / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert agent.poll() is None, "ssh-agent exited at start-up"
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.02)
        key_path = openssh_server.user_key_paths["ed25519-openssh"]
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(key_path)], env=env, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)
        yield str(sock), user_key(openssh_server).public_key.fingerprint()
    finally:
        agent.terminate()
        agent.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def test_forwarded_agent_lists_keys_on_the_server(openssh_server: Any,
                                                  local_agent: tuple[str, str]) -> None:
    sock, fingerprint = local_agent
    with connect(openssh_server) as client:
        client.forward_agent(f"unix:{sock}")
        with client.new_session() as session:
            session.request_agent_forwarding()
            listing = session.output("ssh-add -l", timeout=30)
    assert fingerprint.encode() in listing


def test_forwarded_agent_signs_a_second_hop(openssh_server: Any,
                                            local_agent: tuple[str, str]) -> None:
    """The server-side ssh logs in again using only the forwarded agent's signature."""
    sock, _ = local_agent
    hop = (f"ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
           f"-o IdentitiesOnly=no -o IdentityFile=/dev/null -p {openssh_server.port} "
           f"{openssh_server.user}@127.0.0.1 echo second-hop")
    with connect(openssh_server) as client:
        client.forward_agent(f"unix:{sock}")
        with client.new_session() as session:
            session.request_agent_forwarding()
            assert session.output(hop, timeout=60).strip() == b"second-hop"


def test_agent_channels_refused_without_forward_agent(openssh_server: Any) -> None:
    with connect(openssh_server) as client, client.new_session() as session:
        session.request_agent_forwarding()  # the server agrees, but we serve nothing
        with pytest.raises(sshlib.ExitError) as info:
            session.output("ssh-add -l", timeout=30)
    # sshd's socket accepts, our refusal of the channel closes it: ssh-add fails, with
    # status 1 or 2 if it reads the hang-up first, or SIGPIPE if it writes into it first.
    if info.value.signal is not None:
        assert info.value.signal == "PIPE", info.value
    else:
        assert info.value.exit_status in (1, 2), info.value
        assert info.value.stderr.strip()


def test_forwarding_denied_by_server_raises(openssh_factory: Any) -> None:
    server = openssh_factory({"AllowAgentForwarding": "no"})
    with connect(server) as client, client.new_session() as session:
        with pytest.raises(sshlib.RequestDeniedError):
            session.request_agent_forwarding()
