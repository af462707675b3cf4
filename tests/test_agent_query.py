"""The ``query`` extension: AgentClient.query_extensions() and ``sshlib agent query``.

Real agents: OpenSSH 9.2's ssh-agent (no ``query``: FAILURE) and, below, the
newest OpenSSH (>= 10.3, whose ``ssh-add -Q`` prints the reference answer).
Scripted agents for the reply layouts in the wild.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    Handler,
    ScriptedAgent,
    cli_env,
    framed,
    run_cli,
    start_ssh_agent,
)
from peers import openssh  # noqa: E402

import sshlib.agent  # noqa: E402
import sshlib.aio.agent  # noqa: E402

pytest_plugins = ["agentfixtures"]


def s(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text


def query_both(endpoint: str) -> tuple[list[str], list[str]]:
    """query_extensions() through the sync and the aio client."""
    with sshlib.agent.connect(endpoint, timeout=10) as agent:
        sync = agent.query_extensions()

    async def run() -> list[str]:
        async with await sshlib.aio.agent.connect(endpoint, timeout=10) as agent:
            return await agent.query_extensions()

    return sync, asyncio.run(run())


def test_openssh_9_2_has_no_query(ssh_agent: AgentProcess) -> None:
    assert query_both(ssh_agent.sock) == ([], [])
    done = run_cli("agent", "query", env=cli_env(SSH_AUTH_SOCK=ssh_agent.sock))
    assert done.returncode == 1 and done.stdout == ""
    assert "does not support the query extension" in done.stderr


@pytest.mark.parametrize(("reply", "names"), [
    # OpenSSH >= 10.3: EXTENSION_RESPONSE, the echoed name "query", then the names.
    (b"\x1d" + s(b"query") + s(b"session-bind@openssh.com"), ["session-bind@openssh.com"]),
    # Pageant: SUCCESS and flat names, "query" among them.
    (b"\x06" + s(b"query") + s(b"add-ppk@putty.projects.tartarus.org"),
     ["query", "add-ppk@putty.projects.tartarus.org"]),
], ids=["openssh-10.3", "pageant"])
def test_reply_layouts(scripted: Callable[[Handler], ScriptedAgent], reply: bytes,
                       names: list[str]) -> None:
    fake = scripted(lambda payload: framed(reply))
    assert query_both(fake.endpoint) == (names, names)
    done = run_cli("agent", "query", "--agent", fake.endpoint)
    assert (done.returncode, done.stdout.split()) == (0, names)


@pytest.fixture(scope="module")
def newest_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    peer = openssh("newest")
    assert peer.version_tuple >= (10, 3), peer.version
    agent = start_ssh_agent(tmp_path_factory.mktemp("agent-newest"), peer.ssh_agent)
    try:
        yield agent
    finally:
        agent.stop()


def test_newest_openssh_answers_query_like_ssh_add_q(newest_agent: AgentProcess) -> None:
    peer = openssh("newest")
    reference = subprocess.run([peer.ssh_add, "-Q"], capture_output=True, text=True, timeout=30,
                               env={**os.environ, "SSH_AUTH_SOCK": newest_agent.sock},
                               stdin=subprocess.DEVNULL)
    assert reference.returncode == 0, reference.stderr
    expected = reference.stdout.split()
    assert "session-bind@openssh.com" in expected
    assert query_both(newest_agent.sock) == (expected, expected)
    done = run_cli("agent", "query", env=cli_env(SSH_AUTH_SOCK=newest_agent.sock))
    assert (done.returncode, done.stdout) == (0, reference.stdout)
    assert Path(newest_agent.sock).exists()
