"""Agent forwarding for threads: one relay thread per forwarded agent channel.

Framing, the endpoint and the upstream exchange are front-end neutral
(`sshlib.agentfwd`); this module only registers the channel-open handlers
and runs the relay loop in a thread.
"""

from __future__ import annotations

import logging
import threading

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
from .channel import ChannelIO, ThreadDriver

log = logging.getLogger("sshlib.agentfwd")


def register_agent_forwarding(driver: ThreadDriver, target: object) -> None:
    """Serve the server's agent channels from `target`, one relay thread per channel."""
    def start(forwarder: AgentForwarder, channel: StreamChannel) -> None:
        assert isinstance(channel, ChannelIO)
        threading.Thread(target=_serve, args=(forwarder, channel), daemon=True,
                         name=f"sshlib-agentfwd-{channel.id}").start()

    register(driver, target, start)


def _serve(forwarder: AgentForwarder, channel: ChannelIO) -> None:
    upstream = None
    frames = AgentFrames()
    try:
        upstream = forwarder.open_upstream()
        while True:
            data = channel.read(0, READ_SIZE, None)
            if not data:
                frames.finish()
                break
            for request in frames.feed(data):
                channel.write(exchange(upstream, request), False, IO_TIMEOUT)
    except (SSHError, OSError) as exc:
        log.info("agent forwarding channel %d ended: %s", channel.id, exc)
    except Exception:  # never let a bug kill the thread silently
        log.exception("agent forwarding channel %d failed", channel.id)
    finally:
        if upstream is not None:
            upstream.close()
        try:
            channel.send_eof(IO_TIMEOUT)
            channel.close(IO_TIMEOUT)
        except SSHError:
            pass
