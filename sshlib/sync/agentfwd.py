"""Agent forwarding: serve the server's auth-agent@openssh.com channels.

Each forwarded channel gets its own upstream connection to the local agent
(so connection state such as session-bind stays per channel, as OpenSSH
does), and one thread that relays whole messages: read a framed request from
the channel, pass it upstream, pass the framed reply back.  Messages over the
size cap end that channel instead of being buffered.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..driver import AGENT_CHANNEL
from ..errors import SSHError

if TYPE_CHECKING:
    from .channel import ChannelIO

log = logging.getLogger("sshlib.agentfwd")

__all__ = ["AGENT_CHANNEL", "AgentForwarder", "exchange"]
MAX_MESSAGE = 256 * 1024
IO_TIMEOUT = 120.0  # an agent may wait for a confirmation prompt


class AgentForwarder:
    """Bridges forwarded agent channels to a local agent endpoint."""

    def __init__(self, target: Any, session_bind: tuple[bytes, bytes, bytes] | None = None
                 ) -> None:
        # target: an endpoint string ("unix:/path", "pageant", ...) or an AgentClient
        self._endpoint: str | None = getattr(target, "endpoint", target)
        if not isinstance(self._endpoint, str) and self._endpoint is not None:
            raise TypeError("forward_agent() takes an endpoint string or an AgentClient")
        #: (host key blob, session id, exchange signature) of the connection forwarding.
        self._session_bind = session_bind

    def open_upstream(self) -> Any:
        """A new blocking stream to the local agent (one per forwarded channel).

        Like OpenSSH, it starts with session-bind@openssh.com (is_forwarding
        true) so the agent can apply ``ssh-add -h`` constraints to the hops;
        an agent that answers FAILURE is used all the same.
        """
        from ..agent import open_stream  # sshlib.agent loads only when forwarding is used
        from ..agent import protocol as p

        upstream = open_stream(self._endpoint)
        if self._session_bind is not None:
            body = p.session_bind_body(*self._session_bind, True)
            request = p.extension("session-bind@openssh.com", body)
            try:
                exchange(upstream, len(request).to_bytes(4, "big") + request)
            except BaseException:
                upstream.close()
                raise
        return upstream

    def start(self, channel: ChannelIO) -> None:
        thread = threading.Thread(target=self._serve, args=(channel,), daemon=True,
                                  name=f"sshlib-agentfwd-{channel.id}")
        thread.start()

    def _serve(self, channel: ChannelIO) -> None:
        upstream = None
        try:
            upstream = self.open_upstream()
            while True:
                request = _read_message(channel)
                if request is None:
                    break
                channel.write(exchange(upstream, request), False, IO_TIMEOUT)
        except (SSHError, OSError) as exc:
            log.info("agent forwarding channel %d ended: %s", channel.id, exc)
        except Exception:  # never let a bug kill the thread silently
            log.exception("agent forwarding channel %d failed", channel.id)
        finally:
            if upstream is not None:
                upstream.close()
            channel.send_eof()
            channel.close()


def exchange(upstream: Any, request: bytes) -> bytes:
    """Pass one framed request to the local agent and return its framed reply (blocking)."""
    from ..agent.protocol import frame_length

    upstream.send_all(request, timeout=IO_TIMEOUT)
    head = upstream.recv_exact(4, timeout=IO_TIMEOUT)
    length = frame_length(head, MAX_MESSAGE, upstream.endpoint)
    body = upstream.recv_exact(length, timeout=IO_TIMEOUT)
    if len(body) != length:
        raise SSHError("local agent closed the connection mid-reply")
    return bytes(head + body)


def _read_message(channel: ChannelIO) -> bytes | None:
    """One framed agent request from the channel, or None at EOF."""
    from ..agent.protocol import frame_length

    head = _read_exact(channel, 4)
    if head is None:
        return None
    length = frame_length(head, MAX_MESSAGE, "forwarded agent channel")
    body = _read_exact(channel, length)
    if body is None:
        raise SSHError("forwarded agent channel closed mid-request")
    return head + body


def _read_exact(channel: ChannelIO, count: int) -> bytes | None:
    parts: list[bytes] = []
    got = 0
    while got < count:
        chunk = channel.read(0, count - got, None)
        if not chunk:
            if got:
                raise SSHError("forwarded agent channel closed mid-message")
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
