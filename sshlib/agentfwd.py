"""Agent forwarding, the part both front-ends share: endpoint, framing, one exchange.

Each forwarded channel (auth-agent@openssh.com, or the draft's agent-connect)
gets its own upstream connection to the local agent (so connection state such
as session-bind stays per channel, as OpenSSH does).  A front-end relays whole
messages: `AgentFrames` splits what arrives on the channel into framed
requests (no I/O, bounded by MAX_MESSAGE), `exchange()` passes one request
upstream and returns the framed reply.  Messages over the cap end the channel
instead of being buffered.  The threaded front-end runs the relay in a thread,
the asyncio one in a task with the upstream calls in worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .agent.protocol import frame_length
from .errors import SSHError

if TYPE_CHECKING:
    from .channelstate import StreamChannel
    from .driver import Driver, OpenRequest

log = logging.getLogger("sshlib.agentfwd")

#: Channel kinds a forwarded agent arrives on; forward_agent() registers a handler for each.
AGENT_CHANNEL_KINDS = ("auth-agent@openssh.com", "agent-connect")
AGENT_CHANNEL = AGENT_CHANNEL_KINDS[0]
MAX_MESSAGE = 256 * 1024
IO_TIMEOUT = 120.0  # an agent may wait for a confirmation prompt
READ_SIZE = 64 * 1024

__all__ = ["AGENT_CHANNEL", "AGENT_CHANNEL_KINDS", "AgentForwarder", "AgentFrames", "exchange",
           "register"]


def register(driver: Driver, target: Any,
             serve: Callable[[AgentForwarder, StreamChannel], None]) -> None:
    """Accept the server's agent channels (each kind in AGENT_CHANNEL_KINDS) for `target`.

    serve(forwarder, channel) must start the relay without blocking (a thread or a task).
    """
    forwarder = AgentForwarder(target)

    def handler(request: OpenRequest) -> None:
        serve(forwarder, request.accept())

    for kind in AGENT_CHANNEL_KINDS:
        driver.handle_channel_open(kind, handler)


class AgentForwarder:
    """Where forwarded agent channels go: an endpoint string or an AgentClient's endpoint."""

    def __init__(self, target: Any) -> None:
        self._endpoint: str | None = getattr(target, "endpoint", target)
        if not isinstance(self._endpoint, str) and self._endpoint is not None:
            raise TypeError("forward_agent() takes an endpoint string or an AgentClient")

    def open_upstream(self) -> Any:
        """A new blocking stream to the local agent (one per forwarded channel)."""
        from .agent import open_stream  # sshlib.agent loads only when forwarding is used

        return open_stream(self._endpoint)


class AgentFrames:
    """Splits a byte stream into framed agent messages (4-byte length + body)."""

    def __init__(self, what: str = "forwarded agent channel") -> None:
        self._buffer = bytearray()
        self._what = what

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message now complete (framing included)."""
        self._buffer += data
        messages: list[bytes] = []
        while len(self._buffer) >= 4:
            length = frame_length(bytes(self._buffer[:4]), MAX_MESSAGE, self._what)
            if len(self._buffer) < 4 + length:
                break
            messages.append(bytes(self._buffer[:4 + length]))
            del self._buffer[:4 + length]
        return messages

    def finish(self) -> None:
        """At EOF: raise if a message was cut off."""
        if self._buffer:
            raise SSHError(f"{self._what} closed mid-message")


def exchange(upstream: Any, request: bytes) -> bytes:
    """Pass one framed request to the local agent and return its framed reply (blocking)."""
    upstream.send_all(request, timeout=IO_TIMEOUT)
    head = upstream.recv_exact(4, timeout=IO_TIMEOUT)
    length = frame_length(head, MAX_MESSAGE, upstream.endpoint)
    body = upstream.recv_exact(length, timeout=IO_TIMEOUT)
    if len(body) != length:
        raise SSHError("local agent closed the connection mid-reply")
    return bytes(head + body)
