"""Destination (ssh-add -h), maxsign and extension key constraints.

The bytes are compared with what OpenSSH's own ``ssh-add -h`` sends (captured
by a recording agent); the real ssh-agent accepts and lists such keys; and a
real ``ssh`` login with a key sshlib added works for the permitted host and
not for another (the agent checks OpenSSH's session-bind against the
constraint).
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    KeySet,
    ScriptedAgent,
    captured_add,
    cli_env,
    recording_success,
    run_cli,
    ssh_args,
    start_ssh_agent,
)
from frontends import get_frontend  # noqa: E402
from helpers import connect  # noqa: E402
from peers import openssh  # noqa: E402

import sshlib  # noqa: E402
import sshlib.agent  # noqa: E402
import sshlib.aio.agent  # noqa: E402
from sshlib import keys  # noqa: E402
from sshlib.agent.constraints import (  # noqa: E402
    Destination,
    Hop,
    HostKeySpec,
    destination_constraint,
    maxsign_constraint,
    parse_destination,
)
from sshlib.errors import AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """name -> OpenSSH public key line, made by ssh-keygen."""
    directory = tmp_path_factory.mktemp("hostkeys")
    lines = {}
    for name, spec in (("a", ["-t", "ed25519"]), ("b", ["-t", "ecdsa"]), ("ca", ["-t", "ed25519"]),
                       ("c", ["-t", "rsa", "-b", "2048"])):
        path = directory / name
        subprocess.run(["ssh-keygen", "-q", *spec, "-N", "", "-f", str(path)], check=True,
                       timeout=60, stdin=subprocess.DEVNULL)
        lines[name] = " ".join(path.with_suffix(".pub").read_text().split()[:2])
    return lines


@pytest.fixture
def known_hosts(tmp_path: Path, host_keys: dict[str, str]) -> Path:
    """Plain, port, hashed, CA, revoked and multi-key entries."""
    path = tmp_path / "known_hosts"
    hashed = subprocess.run(["ssh-keygen", "-H", "-f", "-"], input=f"hidden {host_keys['c']}\n",
                            capture_output=True, text=True, timeout=30)
    hashed_line = next((line for line in hashed.stdout.splitlines() if line.startswith("|1|")),
                       None)
    if hashed_line is None:  # ssh-keygen -H wants a real file
        plain = tmp_path / "to-hash"
        plain.write_text(f"hidden {host_keys['c']}\n")
        subprocess.run(["ssh-keygen", "-H", "-f", str(plain)], check=True, capture_output=True,
                       timeout=30)
        hashed_line = plain.read_text().strip()
    path.write_text("\n".join([
        f"alpha {host_keys['a']}",
        f"alpha,beta {host_keys['b']}",
        f"[127.0.0.1]:2222 {host_keys['b']}",
        hashed_line,
        f"@cert-authority *.example.org {host_keys['ca']}",
        f"@revoked alpha {host_keys['c']}",
        f"gamma {host_keys['c']}",
    ]) + "\n")
    return path


SPECS = [
    ["alpha"],
    ["bob@alpha"],
    ["carol@"],
    ["alpha>bob@beta"],
    ["[127.0.0.1]:2222"],
    ["hidden"],
    ["host.example.org"],
    ["alpha", "dave@gamma", "beta>hidden"],
]


def _our_request(tmp_path: Path, key: keys.PrivateKey, **kwargs: Any) -> bytes:
    with ScriptedAgent(tmp_path / "ours.sock", recording_success) as recorder:
        with sshlib.agent.connect(recorder.endpoint, timeout=10) as agent:
            agent.add_key(key, key.comment, **kwargs)
        return recorder.requests[-1]


@pytest.mark.parametrize("version", ["9.2", "newest"])
@pytest.mark.parametrize("specs", SPECS, ids=[" ".join(s) for s in SPECS])
def test_destination_bytes_match_ssh_add(tmp_path: Path, agent_keys: KeySet, known_hosts: Path,
                                         specs: list[str], version: str) -> None:
    ssh_add = openssh(version).ssh_add
    path, key = agent_keys.paths["ed25519"], agent_keys.keys["ed25519"]
    flags = [arg for spec in specs for arg in ("-h", spec)]
    theirs = captured_add(tmp_path / "rec.sock", "-H", str(known_hosts), *flags, str(path),
                          ssh_add=ssh_add)
    destinations = [parse_destination(spec, [str(known_hosts)]) for spec in specs]
    assert _our_request(tmp_path, key, destinations=destinations) == theirs
    # With lifetime and confirm too, in ssh-add's order.
    theirs = captured_add(tmp_path / "rec.sock", "-t", "60", "-c", "-H", str(known_hosts),
                          *flags, str(path), ssh_add=ssh_add)
    ours = _our_request(tmp_path, key, lifetime=60, confirm=True, destinations=destinations)
    assert ours == theirs


def test_cli_add_host_sends_what_ssh_add_sends(tmp_path: Path, agent_keys: KeySet,
                                               known_hosts: Path) -> None:
    path = agent_keys.paths["ecdsa-256"]
    args = ["-H", str(known_hosts), "-h", "bob@alpha", "-h", "beta>gamma"]
    theirs = captured_add(tmp_path / "rec.sock", *args, str(path))
    with ScriptedAgent(tmp_path / "cli.sock", recording_success) as recorder:
        done = run_cli("agent", "add", "--agent", recorder.endpoint, "--host", "bob@alpha",
                       "--host", "beta>gamma", "-H", str(known_hosts), str(path))
        assert done.returncode == 0, done.stderr
        assert "Restricted to destination bob@alpha" in done.stderr
        assert recorder.requests[-1] == theirs


def test_parsed_destination_contents(known_hosts: Path, host_keys: dict[str, str]) -> None:
    files = [str(known_hosts)]
    alpha = parse_destination("alpha", files)
    # Both alpha lines, in file order; the @revoked one is left out.
    assert [k.key.openssh() for k in alpha.to.keys] == [host_keys["a"], host_keys["b"]]
    assert alpha.from_hop == Hop()
    ca = parse_destination("bob@www.example.org", files)
    assert ca.to == Hop("bob", "www.example.org",
                        (HostKeySpec(keys.parse_openssh_public_key(host_keys["ca"]), True),))
    chain = parse_destination("alpha>carol@hidden", files)
    assert chain.from_hop.hostname == "alpha" and chain.to.user == "carol"
    assert parse_destination("carol@", files).to == Hop(user="carol")
    for bad, why in (("nowhere", "no host keys found"), ("bob@alpha>beta", "cannot name a user"),
                     ("@", "names no user or host")):
        with pytest.raises(ValueError, match=why):
            parse_destination(bad, files)


def test_cli_reports_bad_destinations(tmp_path: Path, agent_keys: KeySet,
                                      known_hosts: Path) -> None:
    done = run_cli("agent", "add", "--agent", f"unix:{tmp_path}/none.sock", "--host", "nowhere",
                   "-H", str(known_hosts), str(agent_keys.paths["ed25519"]))
    assert done.returncode == 2 and "no host keys found for destination 'nowhere'" in done.stderr


def test_maxsign_and_extension_encoding() -> None:
    assert maxsign_constraint(5) == b"\x03\x00\x00\x00\x05"
    with pytest.raises(ValueError):
        maxsign_constraint(0)
    with pytest.raises(ValueError):
        destination_constraint([])
    with pytest.raises(ValueError):
        Destination(to=Hop())


# --- the real ssh-agent ------------------------------------------------------------------------


@pytest.mark.parametrize("frontend", ["sync", "aio"])
def test_real_agent_accepts_and_lists_constrained_keys(ssh_agent: AgentProcess,
                                                       agent_keys: KeySet, known_hosts: Path,
                                                       frontend: str) -> None:
    key = agent_keys.keys["ed25519"]
    destinations = [parse_destination("bob@alpha", [str(known_hosts)]),
                    parse_destination("alpha>hidden", [str(known_hosts)])]
    if frontend == "sync":
        with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
            agent.add_key(key, destinations=destinations, lifetime=600)
    else:
        import asyncio

        async def add() -> None:
            async with await sshlib.aio.agent.connect(ssh_agent.sock, timeout=10) as agent:
                await agent.add_key(key, destinations=destinations, lifetime=600)

        asyncio.run(add())
    listed = ssh_agent.run_client("ssh-add", "-L").stdout
    assert base64.b64encode(key.public_key.blob).decode() in listed
    # ... but it signs nothing on a connection without session-bind (it could be anywhere).
    with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
        assert [k.blob for k in agent.list_keys()] == [key.public_key.blob]
        with pytest.raises(AgentRefusedError, match="refused to sign"):
            agent.sign(key.public_key, b"data")


def test_newest_agent_accepts_what_sshlib_sends(tmp_path: Path, agent_keys: KeySet,
                                               known_hosts: Path) -> None:
    agent = start_ssh_agent(tmp_path / "newest", openssh("newest").ssh_agent)
    try:
        key = agent_keys.keys["ecdsa-256"]
        with sshlib.agent.connect(agent.sock, timeout=10) as client:
            client.add_key(key, destinations=[parse_destination(spec, [str(known_hosts)])
                                              for spec in ("alpha", "alpha>carol@hidden")])
            assert [k.blob for k in client.list_keys()] == [key.public_key.blob]
            with pytest.raises(AgentRefusedError):
                client.add_key(key, maxsign=2)
    finally:
        agent.stop()


def test_real_agent_refuses_maxsign_on_keys_other_than_xmss(ssh_agent: AgentProcess,
                                                            agent_keys: KeySet) -> None:
    """OpenSSH only honours maxsign for XMSS keys (not built into Debian's): it refuses the
    key as a whole, which sshlib reports as a refusal (and nothing is added)."""
    with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
        with pytest.raises(AgentRefusedError, match="refused to add key"):
            agent.add_key(agent_keys.keys["ed25519"], maxsign=3)
        assert agent.list_keys() == []


def test_real_agent_refuses_an_unknown_constraint_extension(ssh_agent: AgentProcess,
                                                            agent_keys: KeySet) -> None:
    with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
        with pytest.raises(AgentRefusedError):
            agent.add_key(agent_keys.keys["ed25519"], extensions=[("x@example.org", b"")])
        assert agent.list_keys() == []


def _ssh(server: Any, sock: str, pub: Path) -> subprocess.CompletedProcess[str]:
    args = [*ssh_args(server, sock, pub), "echo in"]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_ssh_login_with_a_key_sshlib_restricted(openssh_server: Any, ssh_agent: AgentProcess,
                                                tmp_path: Path, known_hosts: Path) -> None:
    """`sshlib agent add --host`: real ssh logs in where the key is allowed and nowhere
    else (the agent, not sshd, refuses: the same key without a constraint works)."""
    key_name = "ed25519-openssh"
    key_path = str(openssh_server.user_key_paths[key_name])
    pub = tmp_path / "id.pub"
    pub.write_text(openssh_server.user_public_keys[key_name] + "\n")
    target = f"[127.0.0.1]:{openssh_server.port}"
    server_hosts = str(openssh_server.known_hosts_path)
    env = cli_env(SSH_AUTH_SOCK=ssh_agent.sock)
    cases = [
        (["--host", target, "-H", server_hosts], True),
        (["--host", f"{openssh_server.user}@{target}", "-H", server_hosts], True),
        (["--host", f"someone-else@{target}", "-H", server_hosts], False),
        (["--host", "alpha", "-H", str(known_hosts)], False),  # other host keys
        ([], True),
    ]
    for flags, allowed in cases:
        ssh_agent.run_client("ssh-add", "-D", check=False)
        done = run_cli("agent", "add", *flags, key_path, env=env)
        assert done.returncode == 0, done.stderr
        login = _ssh(openssh_server, ssh_agent.sock, pub)
        if allowed:
            assert (login.returncode, login.stdout) == (0, "in\n"), (flags, login.stderr)
        else:
            assert login.returncode == 255 and "Permission denied" in login.stderr, flags


@pytest.mark.parametrize("frontend_name", ["sync", "aio"])
def test_sshlib_login_with_a_key_sshlib_restricted(openssh_server: Any, ssh_agent: AgentProcess,
                                                   known_hosts: Path, frontend_name: str) -> None:
    """sshlib's own client (host-bound auth and session-bind, issue 12) with a key added by
    `AgentClient.add_key(destinations=...)`: it logs in where the key is allowed, and the
    agent refuses the signature (AuthError) where it is not."""
    frontend = get_frontend(frontend_name)
    key = keys.load_private_key(openssh_server.user_key_paths["ed25519-openssh"])
    target = f"[127.0.0.1]:{openssh_server.port}"
    files = [str(openssh_server.known_hosts_path)]
    for destinations, allowed in (
            ([parse_destination(f"{openssh_server.user}@{target}", files)], True),
            ([parse_destination("alpha", [str(known_hosts)])], False),
            ([parse_destination(f"someone-else@{target}", files)], False)):
        ssh_agent.run_client("ssh-add", "-D", check=False)
        with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
            agent.add_key(key, destinations=destinations)
            # One agent connection per SSH connection: session-bind binds it.
            auth = [sshlib.PublicKeys(*agent.signers())]
            if allowed:
                with connect(openssh_server, frontend, auth=auth) as client:
                    with client.new_session() as session:
                        assert session.output("echo in") == b"in\n"
            else:
                with pytest.raises(sshlib.AuthError):
                    connect(openssh_server, frontend, auth=auth).close()
