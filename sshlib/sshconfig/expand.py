"""``%`` tokens, ``${VAR}`` and ``~`` in ssh_config values, as ssh(1) expands them.

`LocalInfo` is everything about this machine and user the expansions need
(login name, uid, home, host name, environment).  It is gathered once by
`LocalInfo.current()` and passed in, so the rest of the package stays pure.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["LocalInfo", "ExpandError", "percent_expand", "tilde_expand", "connection_hash"]


class ExpandError(ValueError):
    """A bad %-token or ${VAR} (unknown token, missing variable, unclosed brace)."""


@dataclass(frozen=True)
class LocalInfo:
    """The local facts token expansion needs.

    `home` is ``$HOME`` when set, else the passwd entry's home directory
    (ssh itself always uses the passwd entry; the tests give both the same
    private directory).
    """

    user: str
    uid: int
    home: str
    hostname: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def current(cls) -> LocalInfo:
        """Read them from this process (user, uid, $HOME or passwd, gethostname, environ)."""
        home = os.environ.get("HOME", "")
        if sys.platform == "win32":
            uid, user = 0, getpass.getuser()
            home = home or os.path.expanduser("~")
        else:
            import pwd

            uid = os.getuid()
            try:
                entry = pwd.getpwuid(uid)
                user, home = entry.pw_name, home or entry.pw_dir
            except KeyError:
                user, home = getpass.getuser(), home or os.path.expanduser("~")
        return cls(user=user, uid=uid, home=home, hostname=socket.gethostname(),
                   env=dict(os.environ))

    @property
    def shorthost(self) -> str:
        """%L: the host name up to its first dot."""
        return self.hostname.split(".", 1)[0]


def connection_hash(thishost: str, host: str, port: str, user: str) -> str:
    """%C: SHA-1 over local host name, remote host, port and remote user (readconf.c)."""
    return hashlib.sha1((thishost + host + port + user).encode()).hexdigest()


def percent_expand(text: str, tokens: Mapping[str, str] | None,
                   env: Mapping[str, str] | None = None) -> str:
    """misc.c vdollar_percent_expand(): ``%x`` from `tokens`, ``${VAR}`` from `env`.

    `tokens` None means no %-expansion, `env` None no ${} expansion.
    ExpandError on an unknown token, a missing variable or a malformed one.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if env is not None and c == "$" and text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                raise ExpandError(f"environment variable {text[i:]!r} missing closing '}}'")
            name = text[i + 2:end]
            if not name:
                raise ExpandError("zero-length environment variable")
            if name not in env:
                raise ExpandError(f"env var ${{{name}}} has no value")
            out.append(env[name])
            i = end + 1
            continue
        if c != "%" or tokens is None:
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ExpandError(f"invalid format {text!r}: '%' at the end")
        key = text[i + 1]
        if key == "%":
            out.append("%")
        elif key in tokens:
            out.append(tokens[key])
        else:
            raise ExpandError(f"unknown key %{key} in {text!r}")
        i += 2
    return "".join(out)


def tilde_expand(path: str, home: str) -> str:
    """misc.c tilde_expand(): ``~`` and ``~/x`` from `home`, ``~user/x`` from passwd."""
    if not path.startswith("~"):
        return path
    rest = path[1:]
    if rest == "" or rest.startswith("/"):
        base = home
        tail = rest.lstrip("/")
    else:
        name, _, tail = rest.partition("/")
        tail = tail.lstrip("/")
        if sys.platform == "win32":
            raise ExpandError(f"~user paths are not supported on Windows: {path!r}")
        import pwd

        try:
            base = pwd.getpwnam(name).pw_dir
        except KeyError:
            raise ExpandError(f"no such user {name!r} in {path!r}") from None
    if not base.endswith("/"):
        base += "/"
    return base + tail
