"""`sshlib agent list/add/remove/lock/unlock/relay/doctor` as real subprocesses.

The ssh-add equivalents are checked against OpenSSH's ssh-add talking to the
same real ssh-agent (its output is the independent reference).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures", "test_agent_bridge")
import test_agent_bridge  # noqa: E402
from agentfixtures import (  # noqa: E402
    AgentProcess,
    KeySet,
    cli_env,
    framed,
    need_tool,
    private_passwd_env,
    run_cli,
)

import sshlib.agent  # noqa: E402
from sshlib.cli import main  # noqa: E402
from sshlib.cli.agent import describe_key, fingerprint  # noqa: E402
from sshlib.cli.doctor import MachineState, detect_wsl, diagnose, render_table  # noqa: E402
from sshlib.errors import AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]

sockdir = test_agent_bridge.sockdir  # the fixture, shared

KEYS = ("ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa")


def agent_cli(agent: AgentProcess, *args: str, input: bytes | None = None,
              **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m sshlib agent ARGS`` with SSH_AUTH_SOCK pointing at `agent`."""
    return run_cli("agent", *args, env=cli_env(SSH_AUTH_SOCK=agent.sock, **env), input=input)


def ssh_add(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return agent.run_client("ssh-add", *args, check=False)


# --- list ------------------------------------------------------------------------------------


def test_list_matches_ssh_add_exactly(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    for name in KEYS:
        ssh_add(ssh_agent, str(agent_keys.paths[name]))
    for ours, theirs in ((["list"], ["-l"]), (["list", "-E", "md5"], ["-l", "-E", "md5"]),
                         (["list", "-L"], ["-L"])):
        mine = agent_cli(ssh_agent, *ours)
        reference = ssh_add(ssh_agent, *theirs)
        assert (mine.returncode, mine.stdout) == (0, reference.stdout), mine.stderr
        assert len(mine.stdout.splitlines()) == len(KEYS)
    # --agent reaches the same agent without SSH_AUTH_SOCK; -E sha256 is the default.
    env = cli_env()
    env.pop("SSH_AUTH_SOCK", None)
    explicit = run_cli("agent", "list", "--agent", f"unix:{ssh_agent.sock}", "-E", "sha256",
                       env=env)
    assert explicit.stdout == ssh_add(ssh_agent, "-l").stdout


def test_list_empty_agent_like_ssh_add(ssh_agent: AgentProcess) -> None:
    mine = agent_cli(ssh_agent, "list")
    reference = ssh_add(ssh_agent, "-l")
    assert (mine.returncode, mine.stdout) == (reference.returncode, reference.stdout) == (
        1, "The agent has no identities.\n")


def test_describe_key_and_fingerprints_agree_with_ssh_keygen(agent_keys: KeySet) -> None:
    for name in KEYS:
        pub = f"{agent_keys.paths[name]}.pub"
        for hash_name in ("sha256", "md5"):
            out = subprocess.run(["ssh-keygen", "-l", "-E", hash_name, "-f", pub],
                                 capture_output=True, text=True, check=True).stdout.split()
            blob = agent_keys.keys[name].public_key.blob
            bits, label = describe_key(blob)
            assert [str(bits), fingerprint(blob, hash_name), f"({label})"] == [
                out[0], out[1], out[-1]]
    assert describe_key(b"\x00\x00") == (0, "?")


# --- add / remove ----------------------------------------------------------------------------


def test_add_plain_and_encrypted_keys(ssh_agent: AgentProcess, agent_keys: KeySet,
                                      tmp_path: Path) -> None:
    encrypted = tmp_path / "id_enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret pass", "-C", "enc key",
                    "-f", str(encrypted)], check=True, stdin=subprocess.DEVNULL)
    plain = str(agent_keys.paths["rsa"])
    done = agent_cli(ssh_agent, "add", plain, str(encrypted), "--passphrase-env", "KEYPASS",
                     KEYPASS="s3cret pass")
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"Identity added: {plain} (test rsa)\n"
                           f"Identity added: {encrypted} (enc key)\n")
    listed = ssh_add(ssh_agent, "-l").stdout
    assert "test rsa (RSA)" in listed and "enc key (ED25519)" in listed
    # The passphrase from a prompt (no terminal: getpass reads stdin), a wrong one first.
    ssh_add(ssh_agent, "-D")
    prompted = agent_cli(ssh_agent, "add", str(encrypted), input=b"wrong\ns3cret pass\n")
    assert prompted.returncode == 0, prompted.stderr
    assert f"Bad passphrase, try again for {encrypted}" in prompted.stderr
    assert ssh_add(ssh_agent, "-l").stdout.endswith("enc key (ED25519)\n")
    # A wrong passphrase three times: a clear error, nothing added.
    ssh_add(ssh_agent, "-D")
    failed = agent_cli(ssh_agent, "add", str(encrypted), input=b"a\nb\nc\n")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert ssh_add(ssh_agent, "-l").returncode == 1


def test_add_with_lifetime_and_confirm(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    path = str(agent_keys.paths["ed25519"])
    done = agent_cli(ssh_agent, "add", path, "--confirm", "--lifetime", "2")
    assert done.returncode == 0, done.stderr
    assert "Lifetime set to 2 seconds" in done.stderr
    assert "The user must confirm each use of the key" in done.stderr
    key = agent_keys.keys["ed25519"].public_key
    with sshlib.agent.connect(ssh_agent.sock, timeout=10) as agent:
        assert [k.blob for k in agent.list_keys()] == [key.blob]
        with pytest.raises(AgentRefusedError):  # ssh-agent asks askpass, which says no
            agent.sign(key, b"data")
        time.sleep(2.5)
        assert agent.list_keys() == []  # the lifetime expired


def test_remove_one_and_all(ssh_agent: AgentProcess, agent_keys: KeySet, tmp_path: Path) -> None:
    for name in ("ed25519", "rsa", "ecdsa-256"):
        ssh_add(ssh_agent, str(agent_keys.paths[name]))
    ed = str(agent_keys.paths["ed25519"])
    done = agent_cli(ssh_agent, "remove", ed)
    assert (done.returncode, done.stderr) == (0, f"Identity removed: {ed} ED25519 (test ed25519)\n")
    # A private key without a .pub next to it is loaded to find the public half.
    lone = tmp_path / "lone"
    lone.write_bytes(agent_keys.paths["rsa"].read_bytes())
    lone.chmod(0o600)
    done = agent_cli(ssh_agent, "remove", str(lone))
    assert done.returncode == 0, done.stderr
    assert ssh_add(ssh_agent, "-l").stdout.endswith("test ecdsa-256 (ECDSA)\n")
    # Removing a key the agent doesn't hold: ssh-add's message and exit status 1.
    again = agent_cli(ssh_agent, "remove", ed)
    assert again.returncode == 1 and "Could not remove identity" in again.stderr
    assert agent_cli(ssh_agent, "remove").returncode == 2  # nothing to remove given
    everything = agent_cli(ssh_agent, "remove", "--all")
    assert (everything.returncode, everything.stderr) == (0, "All identities removed.\n")
    assert ssh_add(ssh_agent, "-l").returncode == 1


def test_lock_and_unlock(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    ssh_add(ssh_agent, str(agent_keys.paths["ed25519"]))
    locked = agent_cli(ssh_agent, "lock", "--passphrase-env", "LOCKPW", LOCKPW="hunter2")
    assert (locked.returncode, locked.stderr) == (0, "Agent locked.\n")
    assert ssh_add(ssh_agent, "-l").returncode == 1  # a locked agent lists nothing
    wrong = agent_cli(ssh_agent, "unlock", "--passphrase-env", "LOCKPW", LOCKPW="nope")
    assert wrong.returncode == 2 and "refused to unlock" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    # Interactive: the password from the prompt.
    unlocked = agent_cli(ssh_agent, "unlock", input=b"hunter2\n")
    assert unlocked.returncode == 0 and unlocked.stderr.endswith("Agent unlocked.\n")
    assert ssh_add(ssh_agent, "-l").returncode == 0
    mismatch = agent_cli(ssh_agent, "lock", input=b"one\ntwo\n")
    assert mismatch.returncode == 2 and "Passwords do not match" in mismatch.stderr
    assert ssh_add(ssh_agent, "-l").returncode == 0  # not locked


@pytest.mark.parametrize("args, message", [
    (["list", "--agent", "bogus:thing"], "unknown endpoint type 'bogus'"),
    (["list", "--agent", "unix:/nonexistent/agent.sock"], "no agent socket at"),
    (["add", "/nonexistent/key"], "/nonexistent/key"),
    (["bridge", "--listen", "pipe:foo", "--to", "unix:/x"], "only be served from Windows"),
    (["relay", "--to", "bogus:thing"], "unknown endpoint type"),
])
def test_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    done = run_cli("agent", *args)
    assert done.returncode == 2, done
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_no_agent_anywhere_is_exit_2(tmp_path: Path) -> None:
    env = private_passwd_env(tmp_path, tmp_path)  # no SSH_AUTH_SOCK, no ~/.ssh/agent/
    done = run_cli("agent", "list", env=env)
    assert done.returncode == 2 and "SSH_AUTH_SOCK is not set" in done.stderr


def test_main_in_process_help_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["agent", "--help"])
    assert exited.value.code == 0
    assert "bridge" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["agent", "bridge", "--to", "unix:/x"])  # --listen missing: argparse says so
    assert exited.value.code == 2


# --- relay -----------------------------------------------------------------------------------


def test_relay_stdio_to_the_agent(ssh_agent: AgentProcess, agent_keys: KeySet) -> None:
    ssh_add(ssh_agent, str(agent_keys.paths["ed25519"]))
    relay = subprocess.Popen([sys.executable, "-m", "sshlib", "agent", "relay", "--to",
                              f"unix:{ssh_agent.sock}"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    assert relay.stdin is not None and relay.stdout is not None
    # Two requests written in one go, then one byte at a time: each is answered whole.
    relay.stdin.write(framed(b"\x0b") + framed(b"\x0b"))
    relay.stdin.flush()
    replies = []
    for _ in range(2):
        length = struct.unpack(">I", relay.stdout.read(4))[0]
        replies.append(relay.stdout.read(length))
    for byte in framed(b"\x0b"):
        relay.stdin.write(bytes([byte]))
        relay.stdin.flush()
    length = struct.unpack(">I", relay.stdout.read(4))[0]
    replies.append(relay.stdout.read(length))
    blob = agent_keys.keys["ed25519"].public_key.blob
    for reply in replies:
        assert reply[0] == 12 and blob in reply
    relay.stdin.close()
    assert relay.wait(10) == 0
    relay.stdout.close()
    assert relay.stderr is not None and relay.stderr.read() == b""
    relay.stderr.close()


def test_relay_to_a_dead_agent_answers_failure(tmp_path: Path) -> None:
    relay = subprocess.run([sys.executable, "-m", "sshlib", "agent", "relay", "--to",
                            f"unix:{tmp_path / 'nothing.sock'}"],
                           input=framed(b"\x0b") + framed(b"\x0b"), capture_output=True,
                           env=cli_env(), timeout=30)
    assert relay.returncode == 0
    assert relay.stdout == framed(b"\x05") * 2


# --- doctor ----------------------------------------------------------------------------------


def arranged_machine(tmp_path: Path, ssh_agent: AgentProcess, bridges: Any,
                     sockdir: Path) -> tuple[dict[str, str], dict[str, Path]]:
    """A fake home: a live libassuan file (a bridge to the agent) and a stale socket;
    SSH_AUTH_SOCK names the live ssh-agent."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".gnupg").mkdir()
    assuan = home / ".gnupg" / "S.gpg-agent.ssh"
    bridges([f"assuan:{assuan}"], f"unix:{ssh_agent.sock}")
    stale = sockdir / "agent.stale"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()
    (home / ".ssh" / "agent.stale").symlink_to(stale)
    runtime = tmp_path / "run"
    runtime.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = cli_env(HOME=str(home), SSH_AUTH_SOCK=ssh_agent.sock, XDG_RUNTIME_DIR=str(runtime),
                  TMPDIR=str(temp))
    for var in ("GNUPGHOME", "WSL_DISTRO_NAME", "WSL_INTEROP"):
        env.pop(var, None)
    return env, {"home": home, "assuan": assuan, "stale": stale}


def test_doctor_table_for_an_arranged_machine(ssh_agent: AgentProcess, agent_keys: KeySet,
                                              bridges: Any, sockdir: Path,
                                              tmp_path: Path) -> None:
    ssh_add(ssh_agent, str(agent_keys.paths["ed25519"]))
    ssh_add(ssh_agent, str(agent_keys.paths["rsa"]))
    env, paths = arranged_machine(tmp_path, ssh_agent, bridges, sockdir)
    done = run_cli("agent", "doctor", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = out.splitlines()
    row = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    sock_row = row[f"unix:{ssh_agent.sock}"]
    assert "SSH_AUTH_SOCK" in sock_row and "ok, 2 keys (unix socket)" in sock_row
    assuan_row = row[f"assuan:{paths['assuan']}"]
    assert "GnuPG home" in assuan_row and "ok, 2 keys (libassuan socket file)" in assuan_row
    stale_row = row[f"unix:{paths['home'] / '.ssh' / 'agent.stale'}"]
    assert "not usable: nothing listens" in stale_row and "stale" in stale_row
    for line in ssh_add(ssh_agent, "-l").stdout.splitlines():  # fingerprints as ssh-add shows
        assert f"    {line}" in lines
    assert f'    use: IdentityAgent "{ssh_agent.sock}"' in lines
    assert f'    use: export SSH_AUTH_SOCK="{ssh_agent.sock}"' in lines
    assert any(line.startswith("    use: sshlib agent bridge --listen unix:") and
               f"--to assuan:{paths['assuan']}" in line for line in lines)
    assert "note: Windows named pipes and the Pageant window: not checked (not Windows)" in lines
    assert lines[-1] == "2 usable agents found."
    # The same as JSON.
    data = json.loads(run_cli("agent", "doctor", "--json", env=env).stdout)
    agents = {a["endpoint"]: a for a in data["agents"]}
    assert agents[f"unix:{ssh_agent.sock}"]["key_count"] == 2
    assert {k["fingerprint"] for k in agents[f"unix:{ssh_agent.sock}"]["keys"]} == {
        agent_keys.keys[n].public_key.fingerprint() for n in ("ed25519", "rsa")}
    assert agents[f"assuan:{paths['assuan']}"]["reachable"] is True
    assert data["any_usable"] is True and data["wsl"]["version"] == 0


def test_doctor_finds_nothing_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    env = {**private_passwd_env(tmp_path, home), "HOME": str(home),
           "XDG_RUNTIME_DIR": str(home), "TMPDIR": str(home)}
    for var in ("SSH_AUTH_SOCK", "GNUPGHOME"):
        env.pop(var, None)
    done = run_cli("agent", "doctor", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "note: SSH_AUTH_SOCK is not set" in done.stdout
    assert done.stdout.splitlines()[-1] == "0 usable agents found."
    # SSH_AUTH_SOCK naming nothing is reported, not hidden.
    env["SSH_AUTH_SOCK"] = str(home / "gone.sock")
    done = run_cli("agent", "doctor", env=env)
    assert done.returncode == 1
    assert f"{home / 'gone.sock'}" in done.stdout and "does not exist" in done.stdout


@pytest.mark.parametrize("proc_version, environ, version", [
    ("Linux version 5.15.153.1-microsoft-standard-WSL2 (root@...)", {"WSL_DISTRO_NAME": "U"}, 2),
    ("Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com)", {"WSL_DISTRO_NAME": "U"}, 1),
    ("Linux version 6.1.0-13-amd64 (debian-kernel@lists.debian.org)", {}, 0),
])
def test_doctor_detects_wsl(tmp_path: Path, proc_version: str, environ: dict[str, str],
                            version: int) -> None:
    state = MachineState(environ, tmp_path, "linux", os.getuid(), proc_version, None,
                         (tmp_path,))
    assert detect_wsl(state).version == version
    report = diagnose(state, timeout=2)
    text = render_table(report)
    assert (f"note: WSL{version} detected" in text) == bool(version)
    if version == 2:
        assert "exec:python.exe -m sshlib agent relay --to pageant" in text
    assert report.any_usable is False


def test_doctor_uses_gnupghome_and_tmp_ssh_agent_dirs(ssh_agent: AgentProcess,
                                                      tmp_path: Path) -> None:
    """ssh-agent's default socket (TMPDIR/ssh-XXXX/agent.PID) and $GNUPGHOME are searched."""
    need_tool("ssh-agent")
    temp = tmp_path / "t"
    (temp / "ssh-abc").mkdir(parents=True)
    link = temp / "ssh-abc" / "agent.42"
    link.symlink_to(ssh_agent.sock)
    gnupg = tmp_path / "gpg"
    gnupg.mkdir()
    (gnupg / "S.gpg-agent.ssh").write_bytes(b"1\n" + bytes(16))  # a libassuan file, port 1
    state = MachineState({"GNUPGHOME": str(gnupg)}, tmp_path / "nohome", "linux", os.getuid(),
                         "", None, (temp,))
    report = diagnose(state, timeout=2)
    found = {f.endpoint: f for f in report.findings}
    assert found[f"unix:{link}"].reachable and found[f"unix:{link}"].found_via == (
        "ssh-agent temp dir")
    dead = found[f"assuan:{gnupg / 'S.gpg-agent.ssh'}"]
    assert not dead.reachable and "127.0.0.1:1" in dead.reason
