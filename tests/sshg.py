"""Run the real ``ssh -G`` (and ``ssh``) against a private HOME, for the ssh_config tests.

ssh takes ``~`` and ``%d`` from the passwd entry, not from $HOME, so each
`PrivateHome` gives ssh a passwd entry (same name and uid as this process,
home = the private directory) through Debian's libnss-wrapper
(``LD_PRELOAD=libnss_wrapper.so``).  sshlib gets the same facts as a
`LocalInfo`, so both sides resolve ``~``, ``%d``, ``%u`` and ``%i`` alike.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
from collections import defaultdict
from pathlib import Path

from sshlib.sshconfig import LocalInfo

NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"


def require_nss_wrapper() -> None:
    if not os.path.exists(NSS_WRAPPER):
        raise RuntimeError(
            f"{NSS_WRAPPER} is missing: the ssh_config oracle tests need Debian's libnss-wrapper "
            "(apt-get install libnss-wrapper; scripts/test.sh installs it)")


class PrivateHome:
    """A throwaway home directory that both ssh (via nss_wrapper) and sshlib use."""

    def __init__(self, root: Path, extra_env: dict[str, str] | None = None) -> None:
        require_nss_wrapper()
        self.root = root
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
        me = pwd.getpwuid(os.getuid())
        self.user = me.pw_name
        self.uid = me.pw_uid
        self.passwd = root / "passwd"
        self.group = root / "group"
        self.passwd.write_text(f"{me.pw_name}:x:{me.pw_uid}:{me.pw_gid}::{self.home}:/bin/sh\n")
        self.group.write_text(f"g{me.pw_gid}:x:{me.pw_gid}:\n")
        self.env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "SHELL": "/bin/sh", **(extra_env or {})}

    def local(self) -> LocalInfo:
        return LocalInfo(user=self.user, uid=self.uid, home=str(self.home),
                         hostname=socket.gethostname(), env=dict(self.env))

    def ssh_env(self) -> dict[str, str]:
        return {**self.env, "LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(self.passwd),
                "NSS_WRAPPER_GROUP": str(self.group)}

    def write(self, name: str, text: str) -> Path:
        path = Path(name) if name.startswith("/") else self.home / ".ssh" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
        return path

    def ssh_g(self, config: Path, host: str, *args: str) -> tuple[int, dict[str, list[str]], str]:
        """``ssh -F config -G [args] host`` -> (status, key -> values, stderr)."""
        done = subprocess.run(["ssh", "-F", str(config), "-G", *args, host],
                              env=self.ssh_env(), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        values: dict[str, list[str]] = defaultdict(list)
        for line in done.stdout.splitlines():
            key, _, value = line.partition(" ")
            values[key].append(value)
        return done.returncode, dict(values), done.stderr

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.ssh_env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
