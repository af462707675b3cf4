"""`ConfiguredMuxClient` for asyncio: sshlib.aio.connect() over a running ControlMaster.

The counterpart of sshlib.mux.connected on sshlib.aio.mux; see there and
docs/mux.md.  sshlib.aio.connect() returns it when the master that
ControlPath/ControlMaster name answers.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import replace
from types import TracebackType

from ..forwardspec import Spec
from ..mux.fds import BUFFER_LIMIT, ConnectedBase
from .mux import Forward, MuxClient, MuxSession
from .sftp import SFTPClient, SFTPOpener
from .stream import Stream

if sys.platform == "win32":
    raise ImportError("sshlib.mux needs Unix sockets that pass descriptors (POSIX only)")

log = logging.getLogger("sshlib.aio")

__all__ = ["ConfiguredMuxClient"]


class ConfiguredMuxClient(ConnectedBase[MuxClient, Forward]):
    """sshlib.aio.connect()'s client when an OpenSSH ControlMaster answered (see
    sshlib.mux.ConfiguredMuxClient): the sshlib.aio.Client surface a master can carry.

    new_session() returns a session at once whose control connection opens on
    first use (as sshlib.aio.Client's does); dial/forward_*/close are coroutines;
    sftp() is used as ``async with client.sftp() as sftp`` or awaited.
    """

    def new_session(self, timeout: float | None = None) -> MuxSession:
        """A MuxSession with the configuration's session options pre-set; its control
        connection opens on first use within `timeout` (default: the client's)."""
        return self.mux.new_session(self._wait(timeout), setup=self.session_setup)

    async def dial(self, network: str, address: str, timeout: float | None = None) -> Stream:
        """A Stream to "host:port" opened by the master ("tcp" only, as ssh -W)."""
        return await self.mux.dial(network, address, self._wait(timeout))

    async def forward_local(self, listen: Spec, target: Spec, *,
                            timeout: float | None = None) -> Forward:
        """ssh -L through the master (it listens); closed with this client."""
        return self._keep(await self.mux.forward_local(listen, target, self._wait(timeout)))

    async def forward_remote(self, server_listen: Spec, local_target: Spec, *,
                             timeout: float | None = None) -> Forward:
        """ssh -R through the master; closed with this client."""
        return self._keep(await self.mux.forward_remote(server_listen, local_target,
                                                        self._wait(timeout)))

    async def forward_dynamic(self, listen: Spec, *, timeout: float | None = None) -> Forward:
        """ssh -D through the master (it runs the SOCKS proxy); closed with this client."""
        return self._keep(await self.mux.forward_dynamic(listen, self._wait(timeout)))

    def sftp(self, timeout: float | None = 30) -> SFTPOpener:
        """An SFTP session over a mux session's "sftp" subsystem (see the threaded
        ConfiguredMuxClient.sftp): ``async with client.sftp() as sftp`` or ``await``."""
        setup = replace(self.session_setup, pty=False)  # RequestTTY: never for SFTP

        async def start() -> SFTPClient:
            session = self.mux.new_session(self._wait(timeout), setup=setup)
            return await SFTPClient.over_session(session, timeout, window=BUFFER_LIMIT)
        return SFTPOpener(None, timeout, start=start)

    async def close(self) -> None:
        """Close the forwards this client opened, its sessions and streams, and the control
        connection; the master and its SSH connection stay up."""
        forwards = self._take_forwards()
        try:
            for forward in forwards:
                try:
                    await forward.close()
                except Exception as exc:  # the master went away, or already dropped it
                    log.debug("closing %r through the master failed: %s", forward, exc)
        finally:
            await self.mux.close()

    async def __aenter__(self) -> ConfiguredMuxClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
