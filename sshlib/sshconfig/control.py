"""ControlPath/ControlMaster: whether connect() tries a running master, as ssh(1) decides.

Pure and platform neutral (no socket is touched here): both front-ends ask
`master_path()` and then try the master themselves.  OpenSSH's rules
(ssh.c, mux.c muxclient()): with a ControlPath (not ``none``) and
ControlMaster ``no`` (the default), ``auto`` or ``autoask``, ssh first tries
the master at the expanded path and uses it if it answers; with ``yes`` or
``ask`` it connects directly and becomes the master itself.  sshlib never
becomes a master: where ssh would (``auto`` with nobody listening, ``yes``,
``ask``), it connects directly and the socket stays as it was (ssh removes
a stale socket only because it is about to listen there).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hostconfig import HostConfig

__all__ = ["master_path", "mux_timeout", "TRY_MASTER", "DEFAULT_MUX_TIMEOUT"]

log = logging.getLogger("sshlib.client")

#: ControlMaster values (as ``ssh -G`` spells them) for which ssh tries an existing master.
TRY_MASTER = frozenset({"false", "no", "auto", "autoask"})
#: Seconds to reach a master when neither ConnectTimeout nor timeout= says (a socket that
#: accepts but never answers must not hold connect() up for long).
DEFAULT_MUX_TIMEOUT = 10.0


def master_path(hc: HostConfig, *, wanted: bool = True) -> str | None:
    """The ControlPath connect() should try for `hc`, or None to connect directly.

    `wanted` False (connect(control_master=False)) always says None.  The reason
    for a None is logged at debug level on the sshlib.client logger.
    """
    g = hc.as_ssh_g()
    path = g.get("controlpath")
    if not wanted or not isinstance(path, str) or not path or path.lower() == "none":
        return None
    state = str(g.get("controlmaster", "false"))
    if state not in TRY_MASTER:
        log.debug("ControlMaster %s: ssh would become the master; sshlib cannot, and "
                  "connects to %s directly", state, hc.hostname)
        return None
    if sys.platform == "win32":
        log.debug("ControlPath %s ignored: ControlMaster sockets are POSIX only", path)
        return None
    return path


def mux_timeout(hc: HostConfig, timeout: float | None) -> float:
    """Seconds to reach the master: connect()'s `timeout`, else ConnectTimeout, else
    DEFAULT_MUX_TIMEOUT (never unlimited: a silent socket must not hold connect() up)."""
    if timeout is not None:
        return timeout
    return hc.connect_timeout if hc.connect_timeout is not None else DEFAULT_MUX_TIMEOUT
