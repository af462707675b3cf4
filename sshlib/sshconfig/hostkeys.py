"""StrictHostKeyChecking as a host key callback, and safe appends to known_hosts.

`HostKeyPolicy` checks the server's key against the user and global
known_hosts files (under HostKeyAlias when set).  A changed key is always
refused.  An unknown key is refused (``yes``, and ``ask`` without an ask
callback), or accepted and appended to the first user file (``accept-new``,
``no``), hashed when HashKnownHosts is on.

`append_known_host()` writes one whole line with a single ``write()`` on
an ``O_APPEND`` descriptor while holding an exclusive ``flock`` on the file,
after re-reading it under that lock: any number of threads, tasks and
processes adding hosts at once leave one well-formed line per new host and
no duplicates.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence

from ..errors import UnknownHostKeyError
from ..keys import PublicKey
from ..knownhosts import KnownHosts, hash_hostname, normalize

__all__ = ["HostKeyPolicy", "append_known_host", "AskCallback"]

log = logging.getLogger("sshlib.sshconfig")

#: (host, port, key) -> True to trust (and record) an unknown key.
AskCallback = Callable[[str, int, PublicKey], bool]

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _thread_lock(path: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(path, threading.Lock())


def append_known_host(path: str, name: str, key: PublicKey, *, hashed: bool) -> bool:
    """Append ``name key`` to known_hosts file `path` unless it is there already.

    `name` is the lookup string (``host`` or ``[host]:port``).  Returns
    False when the key was already recorded.  Creates the file (0600) and a
    missing ~/.ssh (0700).  OSError if the file cannot be written.
    """
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    entry = (hash_hostname(name) if hashed else name) + " " + key.openssh() + "\n"
    with _thread_lock(path):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _lock(fd)
            with open(path, "rb") as fh:
                existing = fh.read().decode("utf-8", "replace")
            db = KnownHosts.from_lines(existing.splitlines(), path)
            if any(e.key == key and e.marker is None for e in db.lookup(name)):
                return False
            data = entry.encode()
            if existing and not existing.endswith("\n"):
                data = b"\n" + data
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {path}")
            os.fsync(fd)
            return True
        finally:
            os.close(fd)  # closing drops the flock


def _lock(fd: int) -> None:
    if sys.platform == "win32":  # msvcrt locks a byte range instead
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)


class HostKeyPolicy:
    """A host key callback implementing StrictHostKeyChecking over known_hosts files.

    Files are read when the callback runs (each connection sees keys added
    by earlier ones).  Thread-safe.
    """

    def __init__(self, user_files: Sequence[str], global_files: Sequence[str], *,
                 strict: str = "yes", alias: str | None = None, hash_new: bool = False,
                 ask: AskCallback | None = None) -> None:
        if strict not in ("yes", "no", "ask", "accept-new"):
            raise ValueError(f"unknown StrictHostKeyChecking value {strict!r}")
        self.user_files = list(user_files)
        self.global_files = list(global_files)
        self.strict = strict
        self.alias = alias
        self.hash_new = hash_new
        self.ask = ask

    def _name(self, hostname: str, port: int) -> tuple[str, int]:
        return (self.alias, 22) if self.alias else (hostname, port)

    def _db(self) -> KnownHosts:
        return KnownHosts.from_files([*self.user_files, *self.global_files])

    def host_key_algorithms(self, hostname: str, port: int) -> list[str]:
        """Key types known for the host, to offer first (as OpenSSH does)."""
        return self._db().host_key_algorithms(*self._name(hostname, port))

    def __call__(self, hostname: str, port: int, key: PublicKey) -> None:
        host, lookup_port = self._name(hostname, port)
        db = self._db()
        try:
            db.check(host, lookup_port, key)
            return
        except UnknownHostKeyError as exc:
            unknown = exc
        accept = self.strict in ("accept-new", "no") or (
            self.strict == "ask" and self.ask is not None and self.ask(host, lookup_port, key))
        if not accept:
            raise unknown
        if not self.user_files:
            log.warning("accepting new host key for %s, but no UserKnownHostsFile to record it",
                        host)
            return
        name = normalize(host, lookup_port)
        target = self.user_files[0]
        try:
            if append_known_host(target, name, key, hashed=self.hash_new):
                log.info("permanently added %s (%s) to %s", name, key.key_type, target)
        except OSError as exc:
            log.warning("could not record the host key of %s in %s: %s", name, target, exc)

    def __repr__(self) -> str:
        return f"HostKeyPolicy(strict={self.strict!r}, files={self.user_files + self.global_files})"

