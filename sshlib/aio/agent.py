"""SSH agents from asyncio: the sync AgentClient with each request run in a worker thread.

Agent channels block (a Windows named pipe, Pageant's SendMessageTimeout,
an exec: relay), and one request is a few hundred bytes, so a thread per
call costs less than a second implementation of every transport.  The
protocol and the transports stay in sshlib.agent; this module only moves
the waiting off the event loop.

    async with await sshlib.aio.agent.connect("pageant") as agent:
        keys = await agent.list_keys()
        cfg = sshlib.ClientConfig(user="u", auth=[sshlib.PublicKeys(*await agent.signers())])

A cancelled call stops waiting at once; the request itself finishes (or
times out) in its thread, so every call keeps its `timeout`.

Concurrent awaits are pipelined like the sync client's threads: each client
has its own pool of `max_in_flight` worker threads (asyncio's default pool
has only a handful, which would cap the requests in flight).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TypeVar

from ..agent import discover
from ..agent import protocol as p
from ..agent.client import DEFAULT_TIMEOUT, AgentClient, AgentKey, AgentSigner
from ..agent.constraints import Destination
from ..agent.transport import MAX_IN_FLIGHT, seconds
from ..errors import AgentTimeoutError
from ..keys import PrivateKey, PublicKey

__all__ = ["AsyncAgentClient", "connect"]

_T = TypeVar("_T")
#: Seconds past a call's timeout before the front-end gives up on its worker (the sync
#: client's own timeout normally fires first, with the precise reason).
_GRACE = 1.0


async def connect(endpoint: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                  max_message: int = p.DEFAULT_MAX_MESSAGE) -> AsyncAgentClient:
    """sshlib.agent.connect() without blocking the loop (same endpoints, same discovery)."""
    client = await asyncio.to_thread(discover.connect, endpoint, timeout=timeout,
                                     max_message=max_message)
    return AsyncAgentClient(client)


class AsyncAgentClient:
    """Awaitable AgentClient methods; `.sync` is the wrapped client (its signers work too).

    Safe to use from many tasks at once: their requests are pipelined (see
    `AgentClient`).  `close` also stops this client's worker threads.
    """

    def __init__(self, client: AgentClient) -> None:
        self.sync = client
        # More workers than requests in flight: extra callers then wait inside the sync
        # client, which honours their timeouts, rather than in the pool's queue.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=MAX_IN_FLIGHT + 4, thread_name_prefix="sshlib-agent")

    async def _run(self, func: Callable[..., _T], *args: object,
                   timeout: float | None = None, **kwargs: object) -> _T:
        """`func(*args, timeout=timeout, **kwargs)` in a worker; bounded by the timeout even
        while it waits for a free worker (then it never runs)."""
        loop = asyncio.get_running_loop()
        limit = self.sync.timeout if timeout is None else timeout
        call = functools.partial(func, *args, timeout=timeout, **kwargs)
        future = loop.run_in_executor(self._pool, call)
        done, _ = await asyncio.wait({future}, timeout=None if limit is None else limit + _GRACE)
        if future in done:
            return future.result()
        future.cancel()  # still queued: it never runs; running: its own timeout ends it
        raise AgentTimeoutError(f"timed out after {seconds(limit)} waiting for a worker thread",
                                endpoint=self.endpoint)

    @property
    def max_in_flight(self) -> int:
        """Requests sent before the first is answered (1: no pipelining)."""
        return self.sync.max_in_flight

    @property
    def endpoint(self) -> str:
        return self.sync.endpoint

    async def list_keys(self, timeout: float | None = None) -> list[AgentKey]:
        return await self._run(self.sync.list_keys, timeout=timeout)

    async def signers(self, timeout: float | None = None) -> list[AgentSigner]:
        """Signers for sshlib.PublicKeys; sshlib.aio runs their signing in a thread too."""
        return await self._run(self.sync.signers, timeout=timeout)

    async def sign(self, key: AgentKey | PublicKey | bytes, data: bytes, flags: int = 0,
                   timeout: float | None = None) -> bytes:
        return await self._run(self.sync.sign, key, data, flags, timeout=timeout)

    async def add_key(self, private_key: PrivateKey, comment: str | None = None, *,
                      lifetime: int | None = None, confirm: bool = False,
                      destinations: Sequence[Destination] = (), maxsign: int | None = None,
                      extensions: Sequence[tuple[str, bytes]] = (),
                      timeout: float | None = None) -> None:
        """AgentClient.add_key (destinations, maxsign and extension constraints too)."""
        await self._run(self.sync.add_key, private_key, comment, lifetime=lifetime,
                        confirm=confirm, destinations=destinations, maxsign=maxsign,
                        extensions=extensions, timeout=timeout)

    async def remove_key(self, key: AgentKey | PublicKey | bytes,
                         timeout: float | None = None) -> None:
        await self._run(self.sync.remove_key, key, timeout=timeout)

    async def remove_all(self, timeout: float | None = None) -> None:
        await self._run(self.sync.remove_all, timeout=timeout)

    async def lock(self, passphrase: bytes, timeout: float | None = None) -> None:
        await self._run(self.sync.lock, passphrase, timeout=timeout)

    async def unlock(self, passphrase: bytes, timeout: float | None = None) -> None:
        await self._run(self.sync.unlock, passphrase, timeout=timeout)

    async def extension(self, name: str, body: bytes = b"",
                        timeout: float | None = None) -> bytes:
        return await self._run(self.sync.extension, name, body, timeout=timeout)

    async def query_extensions(self, timeout: float | None = None) -> list[str]:
        return await self._run(self.sync.query_extensions, timeout=timeout)

    async def close(self) -> None:
        """Close the stream (idempotent); calls in progress fail with AgentConnectError."""
        await asyncio.to_thread(self.sync.close)  # an exec: relay is reaped on close
        self._pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncAgentClient({self.endpoint!r})"
