"""run_on(): one command on many hosts at once, results as they complete.

Each host gets its own connection (dial, one session, close), at most
`limit` at a time, and at most `timeout` seconds from the start of its dial
to its result.  Failures are results too: a host that refuses, times out or
fails authentication yields a HostResult with `error` set instead of ending
the iteration, so one bad host never hides the others' output.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any

from ..config import ClientConfig
from ..driver import split_address
from ..errors import SSHError, Timeout
from .client import dial

#: "host", "host:port", (host, port) or (host, port, config for this host).
HostSpec = str | tuple[str, int] | tuple[str, int, ClientConfig]


@dataclasses.dataclass(frozen=True)
class HostResult:
    """What one host answered: output and exit status, or the error that stopped it."""

    host: str
    port: int
    stdout: bytes = b""
    stderr: bytes = b""  # the last 64 KiB
    exit_status: int | None = None
    exit_signal: str | None = None
    error: SSHError | OSError | None = None
    elapsed: float = 0.0  # seconds from the start of the dial

    @property
    def ok(self) -> bool:
        """True when the command ran and exited 0."""
        return self.error is None and self.exit_status == 0

    @property
    def address(self) -> str:
        """"host:port" as given ("[v6]:port" for IPv6 literals), for messages and tables."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse(spec: HostSpec, config: ClientConfig | None) -> tuple[str, int, ClientConfig | None]:
    if isinstance(spec, str):
        if config is None:  # an alias / destination for the OpenSSH configuration
            return spec, 0, None
        host, port = split_address(spec)
        return host, port, config
    if len(spec) == 3:
        return spec[0], int(spec[1]), spec[2]
    return spec[0], int(spec[1]), config


async def run_one(host: str, port: int, command: str | bytes, config: ClientConfig | None,
                  timeout: float | None, connect_args: dict[str, Any] | None = None) -> HostResult:
    """Dial, run `command`, collect its output and exit status, close; never raises SSHError.

    `config` None: `host` is a destination resolved through the OpenSSH
    configuration, as sshlib.aio.connect(host, **connect_args) does.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def attempt() -> HostResult:
        async with await _open(host, port, config, connect_args or {}) as client:
            async with client.new_session() as session:
                collected = await session.collect(command)
                return HostResult(host, port, collected.stdout, collected.stderr_tail,
                                  session.exit_status, session.exit_signal,
                                  elapsed=loop.time() - start)

    try:
        if timeout is None:
            return await attempt()
        return await asyncio.wait_for(attempt(), timeout)
    except asyncio.TimeoutError:
        error: SSHError | OSError = Timeout(f"{host}:{port}: no result within {timeout} s")
    except (SSHError, OSError) as exc:
        error = exc
    return HostResult(host, port, error=error, elapsed=loop.time() - start)


def _open(host: str, port: int, config: ClientConfig | None,
          connect_args: dict[str, Any]) -> Awaitable[Any]:
    if config is not None:
        return dial("tcp", f"[{host}]:{port}", config)
    from .connect import connect

    return connect(host, port=port or None, **connect_args)


async def run_on(hosts: Iterable[HostSpec], command: str | bytes,
                 config: ClientConfig | None = None, *, limit: int = 100,
                 timeout: float | None = 60.0,
                 connect_args: dict[str, Any] | None = None) -> AsyncIterator[HostResult]:
    """Run `command` on every host, at most `limit` at once; yield HostResults as they finish.

        async for result in sshlib.aio.run_on(["web1", "web2:2222"], "uptime", cfg):
            print(result.address, result.exit_status, result.stdout or result.error)

    Without `config`, each host string is an alias resolved through the
    OpenSSH configuration exactly as sshlib.aio.connect(alias, **connect_args)
    does (HostName, Port, User, keys, known_hosts...); `connect_args` passes
    config_files, password, options and the like.  HostResult.host is then
    the alias and port 0 unless a (host, port) tuple gave one.

    `timeout` bounds each host (dial + command); config.timeout still bounds
    the dial itself.  Leaving the loop early cancels the hosts still running
    (wrap it in contextlib.aclosing() to make that immediate).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    specs = iter(hosts)
    running: set[asyncio.Task[HostResult]] = set()
    try:
        exhausted = False
        while True:
            while not exhausted and len(running) < limit:
                spec = next(specs, None)
                if spec is None:
                    exhausted = True
                    break
                host, port, host_config = _parse(spec, config)
                running.add(asyncio.ensure_future(
                    run_one(host, port, command, host_config, timeout, connect_args)))
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
