"""Where OpenSSH looks: the user's home directory as the OpenSSH tools find it.

OpenSSH takes ``~`` from the passwd entry of the current user, not from
``$HOME`` (ssh, ssh-add, ssh-agent alike), so sshlib does the same where it
must find the same files (known_hosts for ``ssh-add -h``, ``~/.ssh/agent/``).
On Windows, which has no passwd database, it is the profile directory.
"""

from __future__ import annotations

import os
import sys

__all__ = ["user_home"]


def user_home() -> str:
    """The current user's home directory from the passwd entry (Windows: the profile)."""
    if sys.platform == "win32":
        return os.path.expanduser("~")
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # no passwd entry (some containers)
        return os.path.expanduser("~")
