"""`sshlib.aio.connect("alias")`: sshlib.connect as a coroutine (see sshlib.connect).

Resolving the configuration, reading key files and asking the agent for
its keys are blocking file and socket work: they run in a worker thread,
so the event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConnectionLost, Timeout
from ..sshconfig import HostConfig, resolve
from ..sshconfig.apply import ConnectArgs, Passphrase, PasswordArg
from ..sshconfig.reader import ConfigFile, ExecRunner
from .client import Client, client_over, with_timeout

__all__ = ["connect", "connect_host"]

log = logging.getLogger("sshlib.aio")

RETRY_DELAY = 1.0


async def connect(destination: str, *, port: int | None = None,
                  config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None,
                  password: PasswordArg = None, passphrase: Passphrase = None,
                  options: Mapping[str, str | int | bool] | None = None,
                  user: str | None = None, timeout: float | None = None,
                  exec_runner: ExecRunner | None = None, **connect_args: Any) -> Client:
    """Connect and authenticate to `destination` as ``ssh destination`` would.

    The same arguments and errors as sshlib.connect; `timeout` (default
    ConnectTimeout, else 30 s) bounds each attempt.
    """
    hc = await asyncio.to_thread(resolve, destination, user=user, port=port,
                                 config_files=config_files, options=options,
                                 exec_runner=exec_runner)
    return await connect_host(hc, ConnectArgs(password=password, passphrase=passphrase,
                                              timeout=timeout, **connect_args))


async def connect_host(hc: HostConfig, args: ConnectArgs) -> Client:
    """connect() once the configuration is resolved."""
    config, addr = await asyncio.to_thread(hc.client_config, **vars(args))
    family = {"inet": 2, "inet6": 10}.get(hc.address_family, 0)
    local_addr = (hc.bind_address, 0) if hc.bind_address else None
    attempts = max(1, hc.connection_attempts)
    for attempt in range(1, attempts + 1):
        try:
            reader, writer = await with_timeout(
                asyncio.open_connection(hc.hostname, hc.port, family=family,
                                        local_addr=local_addr),
                config.timeout, f"connecting to {addr}")
            break
        except (OSError, Timeout) as exc:
            if attempt == attempts:
                if isinstance(exc, Timeout):
                    raise
                raise ConnectionLost(f"cannot connect to {addr}: {exc}") from exc
            log.info("connecting to %s failed (%s); attempt %d of %d", addr, exc, attempt + 1,
                     attempts)
            await asyncio.sleep(RETRY_DELAY)
    client = await client_over(reader, writer, config, addr=(hc.hostname, hc.port),
                               timeout=config.timeout)
    target = hc.agent_forward_target()
    if target:
        client.forward_agent(target)
    return client
