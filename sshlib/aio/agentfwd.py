"""Agent forwarding for the asyncio front-end: one task per forwarded channel.

Framing, the endpoint and the upstream exchange are front-end neutral
(`sshlib.agentfwd`); agent transports are blocking (some Windows ones only
have blocking calls), so every upstream step runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..agentfwd import (
    IO_TIMEOUT,
    READ_SIZE,
    AgentForwarder,
    AgentFrames,
    exchange,
    register,
)
from ..channelstate import StreamChannel
from ..errors import SSHError
from .channel import AioChannel, AioDriver

log = logging.getLogger("sshlib.agentfwd")


def register_agent_forwarding(driver: AioDriver, target: object) -> None:
    """Serve the server's agent channels from `target`, one task per channel."""
    def start(forwarder: AgentForwarder, channel: StreamChannel) -> None:
        assert isinstance(channel, AioChannel)
        driver.spawn(serve_agent_channel(forwarder, channel))

    register(driver, target, start)


async def serve_agent_channel(forwarder: AgentForwarder, channel: AioChannel) -> None:
    """Relay framed requests from `channel` to a fresh local agent stream until EOF."""
    upstream: Any = None
    frames = AgentFrames()
    try:
        upstream = await asyncio.to_thread(forwarder.open_upstream)
        while True:
            data = await channel.read(0, READ_SIZE, None)
            if not data:
                frames.finish()
                break
            for request in frames.feed(data):
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
