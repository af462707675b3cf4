"""`sshlib config HOST` as a real subprocess: the same lines ``ssh -G HOST`` prints.

Every line sshlib prints (except the algorithm lists, which are sshlib's)
must appear in ssh -G's output for the same files and private HOME.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sshg import PrivateHome

ALGORITHM_KEYS = ("ciphers ", "macs ", "kexalgorithms ", "hostkeyalgorithms ",
                  "pubkeyacceptedalgorithms ")


def sshlib_cli(home: PrivateHome, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sshlib", *args], env=home.ssh_env(),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_config_prints_like_ssh_g(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    home.write("config", "Host web*\n  HostName %h.example.com\n  User deploy\n"
                         "  IdentityFile ~/.ssh/id_web\n  LocalForward 8080 localhost:80\n"
                         "Host *\n  SendEnv LANG\n  ServerAliveInterval 20\n")
    done = sshlib_cli(home, "config", "-l", "override", "-o", "Port=2200", "web1")
    assert done.returncode == 0, done.stderr
    ssh = home.run("ssh", "-G", "-l", "override", "-o", "Port=2200", "web1")
    assert ssh.returncode == 0, ssh.stderr
    ours = done.stdout.splitlines()
    assert ours[:4] == ["host web1", "user override", "hostname web1.example.com", "port 2200"]
    theirs = set(ssh.stdout.splitlines())
    missing = [line for line in ours if line not in theirs and not line.startswith(ALGORITHM_KEYS)]
    assert not missing, missing
    assert "identityfile ~/.ssh/id_web" in ours and "localforward 8080 [localhost]:80" in ours


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    bad = home.write("bad", "Host *\n  Bogus yes\n")
    done = sshlib_cli(home, "config", "-F", str(bad), "x")
    assert done.returncode == 2
    assert done.stderr.strip() == f"sshlib config: {bad} line 2: Bad configuration option: bogus"
