"""What ssh_config asks of every new session: environment, agent forwarding, pty, command.

`SessionSetup` is front-end neutral; sshlib.connect and sshlib.aio.connect
return clients whose new sessions apply it before their program starts
(as ``ssh`` does before it runs the command):

* SendEnv: each local variable whose name matches a pattern, then SetEnv's
  pairs, as ``env`` requests (a server that refuses them, i.e. without
  AcceptEnv, is logged at debug, as ssh ignores it);
* ForwardAgent: ``auth-agent-req@openssh.com``;
* RequestTTY ``yes``/``force``: a pty (``$TERM``, else xterm); ``auto`` and ``no``
  ask for none, since a library has no terminal.

RemoteCommand is carried here and in HostConfig.remote_command, but never
run on its own: a library's caller says what each session runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .lexer import match_pattern

if TYPE_CHECKING:
    from .hostconfig import HostConfig

__all__ = ["SessionSetup", "session_setup"]


@dataclass(frozen=True)
class SessionSetup:
    """The requests each new session sends before its program starts (see module doc)."""

    env: dict[str, str] = field(default_factory=dict)
    agent_forwarding: bool = False
    pty: bool = False
    term: str = "xterm"
    remote_command: str | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to send."""
        return not (self.env or self.agent_forwarding or self.pty or self.remote_command)


def session_setup(hc: HostConfig, environ: Mapping[str, str] | None = None) -> SessionSetup:
    """The SessionSetup for `hc`, with SendEnv matched against `environ` (default os.environ)."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for name in sorted(environ):
        if any(match_pattern(name, pattern) for pattern in hc.send_env):
            env[name] = environ[name]
    env.update(hc.set_env)
    return SessionSetup(env=env, agent_forwarding=hc.agent_forward_target() is not None,
                        pty=hc.request_tty in ("yes", "force"),
                        term=environ.get("TERM") or "xterm",
                        remote_command=hc.remote_command)
