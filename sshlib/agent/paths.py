"""Where OpenSSH looks: home directories and OpenSSH >= 10.1's ``~/.ssh/agent/`` sockets.

OpenSSH >= 10.1's ssh-agent (and sshd, for forwarded agents) makes its socket
as ``~/.ssh/agent/s.<hostname hash>.<tag>.<random>`` instead of
``/tmp/ssh-XXXX/agent.PID``: tag ``agent`` for ssh-agent, ``sshd`` for the
socket sshd makes for a forwarded agent; the hostname hash keeps hosts apart
when the home directory is shared.  ssh-agent finds ``~`` through $HOME, and
the passwd entry when $HOME is unset (misc.c get_homedir); ssh-add reads
known_hosts under the passwd entry's home (tilde_expand_filename).  So the
search covers both homes, $HOME's first.

`agent_home_sockets` lists the sockets best first: this host's before other
hosts', ssh-agent's own before sshd's forwarded ones, newest first.  It only
looks at the directory (lstat); whether a socket is live is up to whoever
connects to it (a stale socket refuses the connection at once).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["user_home", "agent_homes", "hostname_hash", "AgentDirSocket", "agent_home_sockets",
           "AGENT_DIR"]

#: Relative to the home directory.
AGENT_DIR = os.path.join(".ssh", "agent")
_PRESENTATION = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_HASH_LEN = 10
_MAX_SOCKETS = 64


def user_home() -> str:
    """The current user's home directory from the passwd entry (Windows: the profile)."""
    if sys.platform == "win32":
        return os.path.expanduser("~")
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # no passwd entry (some containers)
        return os.path.expanduser("~")


def agent_homes(environ: Mapping[str, str] | None = None,
                passwd_home: str | None = None) -> list[str]:
    """Homes whose ``.ssh/agent`` to search: $HOME (as ssh-agent uses it), then passwd's."""
    env = os.environ if environ is None else environ
    homes = [h for h in (env.get("HOME", ""), passwd_home or user_home()) if h]
    unique: list[str] = []
    for home in homes:
        if os.path.normpath(home) not in (os.path.normpath(h) for h in unique):
            unique.append(home)
    return unique


def hostname_hash(hostname: str | None = None) -> str:
    """The 10 characters OpenSSH puts in a socket name for this host (misc-agent.c)."""
    name = socket.gethostname() if hostname is None else hostname
    digest = hashlib.sha512(name.encode()).digest()
    return "".join(_PRESENTATION[b % len(_PRESENTATION)] for b in digest)[:_HASH_LEN]


@dataclass(frozen=True)
class AgentDirSocket:
    """A socket in a ``~/.ssh/agent/`` directory."""

    path: str
    mtime: float
    tag: str          # "agent" (ssh-agent), "sshd" (a forwarded agent), or what the name says
    this_host: bool   # its hostname hash is this host's

    def describe(self) -> str:
        """Why it ranks where it does, for the doctor."""
        what = "ssh-agent" if self.tag == "agent" else (
            "sshd's forwarded agent" if self.tag == "sshd" else f"tag {self.tag!r}")
        host = "this host" if self.this_host else "another host (shared home?)"
        from time import localtime, strftime

        return f"{what}, {host}, made {strftime('%Y-%m-%d %H:%M:%S', localtime(self.mtime))}"


def _sockets_in(directory: str, our_hash: str, uid: int | None) -> Iterable[AgentDirSocket]:
    try:
        names = sorted(os.listdir(directory))[:_MAX_SOCKETS * 4]
    except OSError:
        return
    for name in names:
        parts = name.split(".")
        if len(parts) < 4 or parts[0] != "s":
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISSOCK(info.st_mode) or (uid is not None and info.st_uid != uid):
            continue
        yield AgentDirSocket(path, info.st_mtime, parts[2], parts[1] == our_hash)


def agent_home_sockets(homes: Iterable[str], hostname: str | None = None,
                       uid: int | None = None) -> list[AgentDirSocket]:
    """OpenSSH >= 10.1 agent sockets under each home's ``.ssh/agent``, best first.

    `uid`: keep only sockets this user owns (default: the current user on
    POSIX).  Windows has no such directory: [].
    """
    if sys.platform == "win32":
        return []
    if uid is None:
        uid = os.getuid()
    our_hash = hostname_hash(hostname)
    found: dict[str, AgentDirSocket] = {}
    for home in homes:
        for entry in _sockets_in(os.path.join(home, AGENT_DIR), our_hash, uid):
            found.setdefault(os.path.realpath(entry.path), entry)
    ranked = sorted(found.values(),
                    key=lambda s: (not s.this_host, s.tag != "agent", -s.mtime, s.path))
    return ranked[:_MAX_SOCKETS]
