"""Finding OpenSSH >= 10.1's agents in ``~/.ssh/agent/`` (connect() with no endpoint, doctor).

Real ssh-agents of the newest OpenSSH (tests/peers.py) make their default
sockets in a private home.  The home comes from $HOME or, with $HOME unset,
from the passwd entry, which libnss-wrapper supplies (LD_PRELOAD) without
touching the machine's accounts; sshlib runs in a child process with the
same environment, as a user's program would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    KeySet,
    cli_env,
    need_tool,
    private_passwd_env,
    run_cli,
    wait_for,
)
from peers import openssh  # noqa: E402

from sshlib.agent.paths import agent_home_sockets, hostname_hash  # noqa: E402

pytest_plugins = ["agentfixtures"]

@dataclass
class HomeAgent:
    process: subprocess.Popen[bytes]
    sock: str

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(10)


@pytest.fixture
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short directory: the agent's socket path must fit in sun_path (108 bytes)."""
    return tmp_path_factory.mktemp("h")


@pytest.fixture
def home_agents() -> Iterator[list[HomeAgent]]:
    started: list[HomeAgent] = []
    yield started
    for agent in started:
        agent.stop()


def start_home_agent(env: dict[str, str], started: list[HomeAgent]) -> HomeAgent:
    """The newest OpenSSH's ssh-agent -D with no -a: its default socket, from its output."""
    process = subprocess.Popen([openssh("newest").ssh_agent, "-D"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    assert process.stdout is not None and process.stderr is not None
    line = process.stdout.readline().decode()
    found = re.match(r"SSH_AUTH_SOCK=([^;]+);", line)
    if not found:
        process.kill()
        raise AssertionError(f"ssh-agent said {line!r} {process.stderr.read()!r}")
    agent = HomeAgent(process, found.group(1))
    started.append(agent)
    wait_for(lambda: os.path.exists(agent.sock), 10, "the agent socket")
    return agent


def add_key(sock: str, key: Path) -> None:
    subprocess.run([openssh("newest").ssh_add, str(key)], env={**os.environ, "SSH_AUTH_SOCK": sock},
                   check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


def connect_in_child(env: dict[str, str]) -> tuple[str, int]:
    """(endpoint, number of keys) that sshlib.agent.connect() finds in a child process."""
    code = ("import sshlib.agent\nwith sshlib.agent.connect(timeout=10) as a:\n"
            "    print(a.endpoint, len(a.list_keys()))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    endpoint, count = done.stdout.split()
    return endpoint, int(count)


def doctor(env: dict[str, str]) -> dict[str, object]:
    done = run_cli("agent", "doctor", "--json", env=env)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_newest_live_socket_first_stale_and_unset_ssh_auth_sock(
        short: Path, home_agents: list[HomeAgent], agent_keys: KeySet) -> None:
    tmp_path = short
    home = tmp_path / "home"
    home.mkdir()
    env = private_passwd_env(tmp_path, home)
    agent_env = {**env, "HOME": str(home)}  # ssh-agent prefers $HOME, else passwd
    older = start_home_agent(agent_env, home_agents)
    add_key(older.sock, agent_keys.paths["ed25519"])
    time.sleep(0.05)  # distinct mtimes
    newer = start_home_agent(agent_env, home_agents)
    for key in ("ed25519", "rsa"):
        add_key(newer.sock, agent_keys.paths[key])
    assert Path(newer.sock).parent == home / ".ssh" / "agent"
    assert Path(newer.sock).name.startswith(f"s.{hostname_hash()}.agent.")

    # SSH_AUTH_SOCK unset, $HOME unset: the passwd home, newest socket first.
    assert connect_in_child(env) == (f"unix:{newer.sock}", 2)
    report = doctor(env)
    assert report["picked"] == f"unix:{newer.sock}"
    assert "first live one in discovery order: ~/.ssh/agent (OpenSSH >= 10.1): ssh-agent, " \
           "this host" in str(report["picked_why"])

    # The newest dies without cleaning up (SIGKILL): its socket is stale, the older one wins.
    newer.stop(signal.SIGKILL)
    assert os.path.exists(newer.sock)
    assert connect_in_child(env) == (f"unix:{older.sock}", 1)
    report = doctor(env)
    assert report["picked"] == f"unix:{older.sock}"
    why = str(report["picked_why"])
    assert f"skipped unix:{newer.sock}" in why and "nothing listens" in why
    table = run_cli("agent", "doctor", env=env).stdout
    assert f"sshlib.agent.connect() picks unix:{older.sock}" in table

    # A stale SSH_AUTH_SOCK (an agent from an old login) is skipped the same way.
    stale_env = {**env, "SSH_AUTH_SOCK": newer.sock}
    assert connect_in_child(stale_env) == (f"unix:{older.sock}", 1)
    why = str(doctor(stale_env)["picked_why"])
    assert f"skipped {newer.sock} (SSH_AUTH_SOCK)" in why

    # A live SSH_AUTH_SOCK always wins.
    third = start_home_agent(agent_env, home_agents)
    live_env = {**env, "SSH_AUTH_SOCK": older.sock}
    assert connect_in_child(live_env) == (older.sock, 1)
    assert doctor(live_env)["picked_why"] == "SSH_AUTH_SOCK names it"
    assert connect_in_child(env)[0] == f"unix:{third.sock}"


def test_home_from_environment_and_passwd(short: Path, home_agents: list[HomeAgent]) -> None:
    """An agent started with $HOME=A and a passwd home B: sshlib finds it with either."""
    tmp_path = short
    env_home, passwd_home = tmp_path / "a", tmp_path / "b"
    env_home.mkdir()
    passwd_home.mkdir()
    env = private_passwd_env(tmp_path, passwd_home)
    by_env = start_home_agent({**env, "HOME": str(env_home)}, home_agents)
    assert by_env.sock.startswith(str(env_home))
    assert connect_in_child({**env, "HOME": str(env_home)})[0] == f"unix:{by_env.sock}"
    by_env.stop()
    by_passwd = start_home_agent(env, home_agents)  # no $HOME: the passwd entry's
    assert by_passwd.sock.startswith(str(passwd_home))
    assert connect_in_child({**env, "HOME": str(env_home)})[0] == f"unix:{by_passwd.sock}"


def test_no_agent_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    env = private_passwd_env(tmp_path, home)
    done = run_cli("agent", "list", env=env)
    assert done.returncode == 2
    assert "SSH_AUTH_SOCK is not set and ~/.ssh/agent/ has no agent socket" in done.stderr
    report = doctor(env)
    assert report["picked"] is None
    assert "no ~/.ssh/agent/ sockets" in str(report["picked_why"])


def test_ranking(tmp_path: Path) -> None:
    """This host's before other hosts', ssh-agent's before sshd's, then newest first; only
    sockets of the right shape and owner."""
    directory = tmp_path / ".ssh" / "agent"
    directory.mkdir(parents=True)
    ours, other = hostname_hash("here"), hostname_hash("elsewhere")
    names = [f"s.{other}.agent.new", f"s.{ours}.sshd.new", f"s.{ours}.agent.old",
             f"s.{ours}.agent.new", "not-a-socket-name", f"s.{ours}.agent.plainfile"]
    made = []
    for index, name in enumerate(names):
        path = directory / name
        if name.endswith("plainfile"):
            path.write_text("")
        else:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            made.append(sock)
        stamp = 1_000_000 + (100 if name.endswith(".new") else 0) + index
        os.utime(path, (stamp, stamp), follow_symlinks=False)
    ranked = [Path(s.path).name for s in agent_home_sockets([str(tmp_path)], "here")]
    assert ranked == [f"s.{ours}.agent.new", f"s.{ours}.agent.old", f"s.{ours}.sshd.new",
                      f"s.{other}.agent.new"]
    assert agent_home_sockets([str(tmp_path)], "here", uid=os.getuid() + 1) == []
    for sock in made:
        sock.close()


def test_system_ssh_agent_still_found_through_ssh_auth_sock(ssh_agent: AgentProcess) -> None:
    """OpenSSH 9.2 (socket in /tmp, named by SSH_AUTH_SOCK): unchanged."""
    need_tool("ssh-agent")
    env = cli_env(SSH_AUTH_SOCK=ssh_agent.sock)
    assert connect_in_child(env) == (ssh_agent.sock, 0)


