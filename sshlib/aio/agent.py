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
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from ..agent import discover
from ..agent import protocol as p
from ..agent.client import DEFAULT_TIMEOUT, AgentClient, AgentKey, AgentSigner
from ..keys import PrivateKey, PublicKey

__all__ = ["AsyncAgentClient", "connect"]


async def connect(endpoint: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                  max_message: int = p.DEFAULT_MAX_MESSAGE) -> AsyncAgentClient:
    """sshlib.agent.connect() without blocking the loop (same endpoints, same discovery)."""
    client = await asyncio.to_thread(discover.connect, endpoint, timeout=timeout,
                                     max_message=max_message)
    return AsyncAgentClient(client)


class AsyncAgentClient:
    """Awaitable AgentClient methods; `.sync` is the wrapped client (its signers work too)."""

    def __init__(self, client: AgentClient) -> None:
        self.sync = client

    @property
    def endpoint(self) -> str:
        """The endpoint string; `sshlib.agent.open_stream(endpoint)` reaches the same agent."""
        return self.sync.endpoint

    async def list_keys(self, timeout: float | None = None) -> list[AgentKey]:
        """AgentClient.list_keys in a worker thread: every key the agent offers (none while locked).
        """
        return await asyncio.to_thread(self.sync.list_keys, timeout)

    async def signers(self, timeout: float | None = None) -> list[AgentSigner]:
        """Signers for sshlib.PublicKeys; sshlib.aio runs their signing in a thread too."""
        return await asyncio.to_thread(self.sync.signers, timeout)

    async def sign(self, key: AgentKey | PublicKey | bytes, data: bytes, flags: int = 0,
                   timeout: float | None = None) -> bytes:
        """AgentClient.sign in a worker thread: the signature blob over `data`.

        AgentRefusedError when the agent refuses (unknown key, denied confirmation);
        AgentTimeoutError after `timeout` (the client's default when None).
        """
        return await asyncio.to_thread(self.sync.sign, key, data, flags, timeout)

    async def add_key(self, private_key: PrivateKey, comment: str | None = None, *,
                      lifetime: int | None = None, confirm: bool = False,
                      timeout: float | None = None) -> None:
        """AgentClient.add_key in a worker thread: hand the key to the agent.

        `lifetime` (seconds) and `confirm` become agent constraints; AgentRefusedError
        if the agent does not accept the key or a constraint.
        """
        await asyncio.to_thread(self.sync.add_key, private_key, comment, lifetime=lifetime,
                                confirm=confirm, timeout=timeout)

    async def remove_key(self, key: AgentKey | PublicKey | bytes,
                         timeout: float | None = None) -> None:
        """AgentClient.remove_key in a worker thread; AgentRefusedError if the agent does not hold
        the key.
        """
        await asyncio.to_thread(self.sync.remove_key, key, timeout)

    async def remove_all(self, timeout: float | None = None) -> None:
        """AgentClient.remove_all in a worker thread: the agent forgets every key."""
        await asyncio.to_thread(self.sync.remove_all, timeout)

    async def lock(self, passphrase: bytes, timeout: float | None = None) -> None:
        """AgentClient.lock in a worker thread: no keys listed, nothing signed until `unlock`."""
        await asyncio.to_thread(self.sync.lock, passphrase, timeout)

    async def unlock(self, passphrase: bytes, timeout: float | None = None) -> None:
        """AgentClient.unlock in a worker thread; AgentRefusedError for a wrong passphrase."""
        await asyncio.to_thread(self.sync.unlock, passphrase, timeout)

    async def extension(self, name: str, body: bytes = b"",
                        timeout: float | None = None) -> bytes:
        """AgentClient.extension in a worker thread: the reply body; AgentRefusedError on FAILURE.
        """
        return await asyncio.to_thread(self.sync.extension, name, body, timeout)

    async def query_extensions(self, timeout: float | None = None) -> list[str]:
        """AgentClient.query_extensions in a worker thread: the names, [] if the agent cannot say.
        """
        return await asyncio.to_thread(self.sync.query_extensions, timeout)

    async def close(self) -> None:
        """Close the agent connection (in a worker thread); later calls raise AgentConnectError."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncAgentClient({self.endpoint!r})"
