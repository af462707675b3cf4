"""Agent forwarding for the asyncio front-end: one task per forwarded channel.

Framing and the upstream exchange are the threaded front-end's
(`sync.agentfwd.exchange`); agent transports are blocking (some Windows ones
only have blocking calls), so every upstream step runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import SSHError
from ..sync.agentfwd import IO_TIMEOUT, MAX_MESSAGE, AgentForwarder, exchange
from .channel import AioChannel

log = logging.getLogger("sshlib.agentfwd")


async def serve_agent_channel(forwarder: AgentForwarder, channel: AioChannel) -> None:
    """Relay framed requests from `channel` to a fresh local agent stream until EOF."""
    upstream: Any = None
    try:
        upstream = await asyncio.to_thread(forwarder.open_upstream)
        while True:
            request = await _read_message(channel)
            if request is None:
                break
            reply = await asyncio.to_thread(exchange, upstream, request)
            await channel.write(reply, False, IO_TIMEOUT)
    except (SSHError, OSError) as exc:
        log.info("agent forwarding channel %d ended: %s", channel.id, exc)
    except asyncio.CancelledError:
        raise
    except Exception:  # never let a bug end the task silently
        log.exception("agent forwarding channel %d failed", channel.id)
    finally:
        if upstream is not None:
            upstream.close()
        channel.send_eof()
        channel.close()


async def _read_message(channel: AioChannel) -> bytes | None:
    """One framed agent request from the channel, or None at EOF."""
    from ..agent.protocol import frame_length

    head = await _read_exact(channel, 4)
    if head is None:
        return None
    length = frame_length(head, MAX_MESSAGE, "forwarded agent channel")
    body = await _read_exact(channel, length)
    if body is None:
        raise SSHError("forwarded agent channel closed mid-request")
    return head + body


async def _read_exact(channel: AioChannel, count: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < count:
        chunk = await channel.read(0, count - got, None)
        if not chunk:
            if got:
                raise SSHError("forwarded agent channel closed mid-message")
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
