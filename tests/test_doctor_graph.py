"""`sshlib agent doctor --format dot|svg`: a real ssh-agent, a stale socket, real Graphviz."""

from __future__ import annotations

import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures", "test_agent_bridge")
from agentfixtures import AgentProcess, KeySet, need_tool  # noqa: E402
from test_agent_bridge import cli_env, run_cli  # noqa: E402

from sshlib.cli.doctor import Finding, MachineState, Report, WslInfo, diagnose  # noqa: E402
from sshlib.cli.doctor_graph import render_dot  # noqa: E402

pytest_plugins = ["agentfixtures"]

SVG = "{http://www.w3.org/2000/svg}"


def _machine(tmp_path: Path, ssh_agent: AgentProcess) -> tuple[dict[str, str], Path]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    stale = home / ".ssh" / "agent.stale"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()
    for d in ("run", "tmp"):
        (tmp_path / d).mkdir()
    env = cli_env(HOME=str(home), SSH_AUTH_SOCK=ssh_agent.sock,
                  XDG_RUNTIME_DIR=str(tmp_path / "run"), TMPDIR=str(tmp_path / "tmp"))
    for var in ("GNUPGHOME", "WSL_DISTRO_NAME", "WSL_INTEROP"):
        env.pop(var, None)
    return env, stale


def test_doctor_draws_what_it_found(ssh_agent: AgentProcess, agent_keys: KeySet,
                                    tmp_path: Path) -> None:
    need_tool("dot")
    ssh_agent.run_client("ssh-add", str(agent_keys.paths["ed25519"]))
    env, stale = _machine(tmp_path, ssh_agent)
    done = run_cli("agent", "doctor", "--format", "dot", env=env)
    assert done.returncode == 0, done.stderr
    src = done.stdout
    assert src.startswith("digraph agent_doctor {") and src.rstrip().endswith("}")
    assert f"unix:{ssh_agent.sock}" in src and "ok, 1 key (unix socket)" in src
    assert agent_keys.keys["ed25519"].public_key.fingerprint() in src
    assert f'export SSH_AUTH_SOCK=\\"{ssh_agent.sock}\\"' in src  # the line to use, quoted
    assert f"unix:{stale}" in src and "not usable: nothing listens" in src
    assert "1 usable agent found" in src
    # dot accepts it
    check = subprocess.run(["dot", "-Tsvg"], input=src, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr

    done = run_cli("agent", "doctor", "--svg", env=env)
    assert done.returncode == 0, done.stderr
    root = ET.fromstring(done.stdout)
    assert root.tag == f"{SVG}svg"
    assert float(root.attrib["width"].removesuffix("pt")) > 100
    text = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert f"unix:{ssh_agent.sock}" in text and "ok, 1 key (unix socket)" in text
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert {"machine", "ep0", "ep1", "use0"} <= set(titles), titles


def test_doctor_exit_status_follows_the_findings_in_every_format(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    env = cli_env(HOME=str(home), XDG_RUNTIME_DIR=str(home), TMPDIR=str(home),
                  SSH_AUTH_SOCK=str(home / "gone.sock"))
    done = run_cli("agent", "doctor", "--format", "dot", env=env)
    assert done.returncode == 1
    assert "0 usable agents found" in done.stdout and "does not exist" in done.stdout


def test_doctor_svg_without_graphviz_is_one_clear_line(tmp_path: Path) -> None:
    env = cli_env(PATH=str(tmp_path), HOME=str(tmp_path), SSH_AUTH_SOCK=str(tmp_path / "x"))
    done = run_cli("agent", "doctor", "--format", "svg", env=env)
    assert done.returncode == 2
    assert "needs Graphviz's dot (apt-get install graphviz)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_render_dot_quotes_what_the_machine_says() -> None:
    hostile = Finding('pipe:a"b\\c', "SSH_AUTH_SOCK", "named pipe", False,
                      reason='evil "} digraph x {')
    report = Report("win32", WslInfo(0, "", ()), [hostile], ['note "quoted"'])
    src = render_dot(report)
    assert 'pipe:a\\"b\\\\c' in src and 'evil \\"} digraph x {' in src
    check = subprocess.run([need_tool("dot"), "-Tsvg"], input=src, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert src.count("digraph") == 2  # ours, and the quoted one inside a label


def test_render_dot_for_an_arranged_state_in_process(ssh_agent: AgentProcess,
                                                     tmp_path: Path) -> None:
    env, _stale = _machine(tmp_path, ssh_agent)
    state = MachineState(env, Path(env["HOME"]), "linux", None, "", None, ())
    src = render_dot(diagnose(state, timeout=5.0))
    assert "ok, 0 keys (unix socket)" in src
