"""`ConfiguredMuxClient`: sshlib.connect() over a running ControlMaster (threaded).

sshlib.connect() tries the master that ControlPath/ControlMaster name (see
sshlib.sshconfig.control) and, when one answers, returns this instead of a
ConfiguredClient: the Client surface a master can carry, over a `MuxClient`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from types import TracebackType

from ..forwardspec import Spec
from ..sync.sftp import SFTPClient
from ..sync.stream import Stream
from .client import Forward, MuxClient, MuxSession
from .fds import BUFFER_LIMIT, ConnectedBase

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.client")

__all__ = ["ConfiguredMuxClient"]


class ConfiguredMuxClient(ConnectedBase[MuxClient, Forward]):
    """sshlib.connect()'s client when an OpenSSH ControlMaster answered at the ControlPath.

    Everything runs over the master's one authenticated connection; sshlib
    itself does no handshake, no authentication and no host key check (the
    master did).  What it offers is the part of sshlib.Client a master can
    carry: `new_session()` (the configuration's SendEnv/SetEnv, RequestTTY and
    ForwardAgent pre-set, as far as the master passes them on: docs/mux.md),
    `dial()` ("tcp" only), `forward_local`/`forward_remote`/`forward_dynamic`
    (the master listens; they are closed with this client), `sftp()`,
    `close()` and a with-block.  `mux` is the MuxClient underneath (check(),
    terminate(), ...), `control_path` the master's socket, `host_config` the
    resolved HostConfig; `hostname`/`port` are the configured ones (the
    protocol does not say where the master is connected).  Thread-safe as a
    MuxClient is.  Closing it leaves the master running.
    """

    def new_session(self, timeout: float | None = None) -> MuxSession:
        """A MuxSession with the session options of the configuration pre-set.

        Its control connection is opened now, within `timeout` (default: the
        client's); MuxConnectError if the master went away since connect().
        """
        return self.mux.new_session(self._wait(timeout), setup=self.session_setup)

    def dial(self, network: str, address: str, timeout: float | None = None) -> Stream:
        """A Stream to "host:port" opened by the master (MUX_C_NEW_STDIO_FWD, as ssh -W).

        Only "tcp" (a master opens every stdio forward as direct-tcpip; ValueError
        otherwise); MuxRefusedError if the server refuses.
        """
        return self.mux.dial(network, address, self._wait(timeout))

    def forward_local(self, listen: Spec, target: Spec, *,
                      timeout: float | None = None) -> Forward:
        """ssh -L through the master: it listens at `listen` (specs as Client.forward_local;
        port 0 picks a free port here) until the forward or this client is closed."""
        return self._keep(self.mux.forward_local(listen, target, self._wait(timeout)))

    def forward_remote(self, server_listen: Spec, local_target: Spec, *,
                       timeout: float | None = None) -> Forward:
        """ssh -R through the master: the server listens, the master connects to
        `local_target` (on the master's machine); closed with this client."""
        return self._keep(self.mux.forward_remote(server_listen, local_target,
                                                  self._wait(timeout)))

    def forward_dynamic(self, listen: Spec, *, timeout: float | None = None) -> Forward:
        """ssh -D through the master: it runs the SOCKS proxy; closed with this client."""
        return self._keep(self.mux.forward_dynamic(listen, self._wait(timeout)))

    def sftp(self, timeout: float | None = 30) -> SFTPClient:
        """An SFTP session over a mux session's "sftp" subsystem (see docs/mux.md).

        The same SFTPClient as Client.sftp(); requests in flight are bounded by the 2 MiB a
        mux session buffers, so flow control stays the master's channel window and ours.
        The server's version string is not known through a master (its OpenSSH quirks are
        then not applied: symlink() takes its arguments in the SFTP draft's order).  The
        session gets the configuration's environment, never RequestTTY's pty.
        """
        setup = replace(self.session_setup, pty=False)  # RequestTTY: never for SFTP
        return SFTPClient.over_session(self.mux.new_session(self._wait(timeout), setup=setup),
                                       timeout, window=BUFFER_LIMIT)

    def close(self) -> None:
        """Close the forwards this client opened, its sessions and streams, and the control
        connection; the master and its SSH connection stay up."""
        forwards = self._take_forwards()
        try:
            for forward in forwards:
                try:
                    forward.close()
                except Exception as exc:  # the master went away, or already dropped it
                    log.debug("closing %r through the master failed: %s", forward, exc)
        finally:
            self.mux.close()

    def __enter__(self) -> ConfiguredMuxClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
