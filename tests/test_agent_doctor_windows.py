"""The doctor on Windows (under Wine): two programs serving one agent pipe name.

Win32-OpenSSH, 1Password, Bitwarden and gpg-agent all serve
``openssh-ssh-agent``; when two run, each client reaches whichever has a free
pipe instance.  Two Windows agent processes (tests/winfixtures/winagent.py)
here serve one pipe name, each with a different key; the doctor must name
both server processes, warn, and say which one answered (whose key it lists).
The pipe name is unique per run: the Wine prefix, and so the pipe namespace,
is shared with other test runs.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures", "wine")
from agentfixtures import need_tool  # noqa: E402
from wine import WindowsPython, win_json  # noqa: E402

pytest_plugins = ["agentfixtures", "wine"]

SHARED = f"sshlib-dup-{secrets.token_hex(4)}"

_DOCTOR = r'''
import dataclasses
from pathlib import Path
from sshlib.cli.doctor import MachineState, diagnose, render_table
state = MachineState({"SSH_AUTH_SOCK": ARGS["sock"]}, Path("C:/nohome"), "win32", None, "",
                     None, ())
report = diagnose(state, timeout=10)
print(json.dumps({"findings": [dataclasses.asdict(f) for f in report.findings],
                  "notes": report.notes, "table": render_table(report),
                  "picked": report.picked}))
'''


def start(windows_python: WindowsPython, key: Path) -> tuple[subprocess.Popen[bytes], Any]:
    process = windows_python.popen(["-m", "winagent", "serve", "--key",
                                    windows_python.winpath(key), "--shared-pipe", SHARED,
                                    "--instances", "2"])
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        assert process.stderr is not None
        raise AssertionError(process.stderr.read().decode(errors="replace"))
    return process, json.loads(line)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    made = {}
    for name in ("one", "two"):
        path = tmp_path / f"id_{name}.key"
        subprocess.run([need_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", name,
                        "-f", str(path)], check=True, stdin=subprocess.DEVNULL, timeout=60)
        made[name] = path
    return made


@pytest.fixture
def agents() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_doctor_names_both_listeners_of_one_pipe(windows_python: WindowsPython,
                                                 keys: dict[str, Path], agents: list[Any],
                                                 ) -> None:
    sock = f"\\\\.\\pipe\\{SHARED}"
    first, info_one = start(windows_python, keys["one"])
    agents.append(first)

    # One program: no warning; the doctor knows which process answered.
    out = win_json(windows_python, _DOCTOR, {"sock": sock})
    (finding,) = [f for f in out["findings"] if f["endpoint"] == f"pipe:{SHARED}"]
    assert finding["reachable"], finding
    assert [entry.split()[:2] for entry in finding["listeners"]] == [
        ["PID", str(info_one["pid"])]]
    assert finding["answered_by"].startswith(f"PID {info_one['pid']} (")
    assert "python.exe" in finding["answered_by"].lower()
    assert not any(n.startswith("warning:") for n in out["notes"])

    second, info_two = start(windows_python, keys["two"])
    agents.append(second)
    out = win_json(windows_python, _DOCTOR, {"sock": sock})
    (finding,) = [f for f in out["findings"] if f["endpoint"] == f"pipe:{SHARED}"]
    pids = {int(entry.split()[1]) for entry in finding["listeners"]}
    assert pids == {info_one["pid"], info_two["pid"]}, finding
    warnings = [n for n in out["notes"] if n.startswith("warning:")]
    assert len(warnings) == 1 and f"2 programs listen on pipe pipe:{SHARED}" in warnings[0]
    # "Which one answered": the PID named, and the key listed is that process's own.
    answered = int(finding["answered_by"].split()[1])
    by_pid = {info_one["pid"]: "one", info_two["pid"]: "two"}
    assert [k["comment"] for k in finding["keys"]] == [by_pid[answered]]
    assert f"answered by: PID {answered}" in out["table"]
    assert warnings[0] in out["table"]
    assert out["picked"] == f"pipe:{SHARED}"
