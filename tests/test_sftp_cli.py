"""`sshlib cp` against the test sshd: quiet off a terminal, a tqdm bar on one, exit codes."""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sftphelpers import make_tree, sha256_file, shared_dir, tree_listing, write_pattern

from sshlib.cli.cp import Remote, parse_remote


@pytest.fixture
def home(openssh_server: Any, tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh has the test user's key and the server in known_hosts."""
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    shutil.copy(openssh_server.user_key_paths["ed25519-openssh"], ssh / "id_ed25519")
    (ssh / "known_hosts").write_text("\n".join(openssh_server.known_hosts_lines()) + "\n")
    return tmp_path / "home"


@pytest.fixture
def work(openssh_server: Any) -> Iterator[Path]:
    path = shared_dir(openssh_server.user)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cp(home: Path, *args: str, tty: bool = False) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["HOME"] = str(home)
    argv = [sys.executable, "-m", "sshlib", "cp", *args]
    if not tty:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=120, check=False)
        return done.returncode, (done.stdout + done.stderr).decode()
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=120), out.decode(errors="replace")


def test_parse_remote() -> None:
    assert parse_remote("u@h:2222:/x") == Remote("u", "h", 2222, "/x")
    assert parse_remote("h:rel/path") == Remote(None, "h", 22, "rel/path")
    assert parse_remote("[::1]:22:/x") == Remote(None, "::1", 22, "/x")
    assert parse_remote("h:") == Remote(None, "h", 22, ".")
    for local in ("./a:b", "/tmp/x", "file.txt", "C:\\x"):
        assert parse_remote(local) is None, local


def test_cp_both_ways_quiet_and_exit_codes(openssh_server: Any, home: Path,
                                           work: Path) -> None:
    remote = f"{openssh_server.user}@{openssh_server.host}:{openssh_server.port}:"
    write_pattern(work / "src", 5 << 20)
    status, out = cp(home, f"{remote}{work}/src", str(work / "down"))
    assert (status, out) == (0, "")  # quiet when not on a terminal
    assert sha256_file(work / "down") == sha256_file(work / "src")
    status, out = cp(home, str(work / "src"), f"{remote}{work}/up")
    assert status == 0 and sha256_file(work / "up") == sha256_file(work / "src")
    make_tree(work / "tree")
    status, out = cp(home, "-r", f"{remote}{work}/tree", str(work / "tree2"))
    assert status == 0 and tree_listing(work / "tree2") == tree_listing(work / "tree")
    with open(work / "down", "r+b") as fh:
        fh.truncate(2 << 20)
    status, out = cp(home, "--resume", f"{remote}{work}/src", str(work / "down"))
    assert status == 0 and sha256_file(work / "down") == sha256_file(work / "src")
    status, out = cp(home, f"{remote}{work}/missing", str(work / "x"))
    assert status == 2 and "No such file" in out and "Traceback" not in out
    status, out = cp(home, str(work / "missing"), f"{remote}{work}/x")
    assert status == 1 and "Traceback" not in out
    status, out = cp(home, str(work / "src"), str(work / "x"))
    assert status == 2 and "exactly one" in out
    (home / ".ssh" / "known_hosts").write_text("")
    status, out = cp(home, f"{remote}{work}/src", str(work / "y"))
    assert (status == 2 and "known_hosts" in out.lower()) or "host key" in out.lower()


def test_cp_progress_bar_on_a_terminal(openssh_server: Any, home: Path, work: Path) -> None:
    write_pattern(work / "src", 64 << 20)
    remote = f"{openssh_server.user}@{openssh_server.host}:{openssh_server.port}:"
    status, out = cp(home, f"{remote}{work}/src", str(work / "down"), tty=True)
    assert status == 0, out
    assert "64.0M" in out and "100%" in out, out
