"""sshlib.mux: use a running OpenSSH ControlMaster (``ssh -M``) instead of logging in again.

    import sshlib
    with sshlib.mux.connect("~/.ssh/cm-alice@host:22") as m:    # the master's ControlPath
        print(m.check())                                         # the master's pid
        with m.new_session() as s:
            print(s.output("uname -a"))
        conn = m.dial("tcp", "db:5432")                           # an sshlib.Stream
        fw = m.forward_local("127.0.0.1:0", "web:80"); fw.close()

The client side of OpenSSH's multiplexing protocol (PROTOCOL.mux, version 4):
`protocol` is the sans-IO codec, `control` one control connection, `pipes`
the descriptors a session's stdio travels over (passed with SCM_RIGHTS, as
ssh(1) passes its own), `client` the threaded API.  POSIX only.  See docs/mux.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MuxConnectError, MuxError, MuxProtocolError, MuxRefusedError, MuxTimeoutError

if TYPE_CHECKING:
    from .client import DEFAULT_TIMEOUT, Forward, MuxClient, MuxSession, connect
    from .connected import ConfiguredMuxClient

_CLIENT_NAMES = frozenset({"connect", "MuxClient", "MuxSession", "Forward",
                           "DEFAULT_TIMEOUT"})


def __getattr__(name: str) -> Any:
    """The threaded client loads on first use, so sshlib.aio.mux can share the codec
    without importing the threaded front-end."""
    if name in _CLIENT_NAMES:
        from . import client

        return getattr(client, name)
    if name == "ConfiguredMuxClient":  # what sshlib.connect() returns over a master
        from .connected import ConfiguredMuxClient

        return ConfiguredMuxClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["connect", "MuxClient", "MuxSession", "Forward", "DEFAULT_TIMEOUT",
           "ConfiguredMuxClient", "MuxError",
           "MuxConnectError", "MuxProtocolError", "MuxRefusedError", "MuxTimeoutError"]
