"""sshlib.agent: talk to an SSH agent over whichever channel it listens on.

    import sshlib, sshlib.agent
    with sshlib.agent.connect() as agent:                 # SSH_AUTH_SOCK
        cfg = sshlib.ClientConfig(user="u", auth=[sshlib.PublicKeys(*agent.signers())], ...)

Endpoint strings (docs/agent.md): ``unix:PATH`` or a bare path, ``tcp:HOST:PORT``,
``vsock:CID:PORT``, ``exec:COMMAND``, ``cygwin:PATH``, ``assuan:PATH``, and on
Windows ``pipe:NAME``, ``pageant-pipe``, ``pageant-window`` and ``pageant``
(ctypes only; elsewhere they raise AgentUnsupportedError).

Layers: `protocol` (sans-IO messages and framing), `transport` (the byte
stream interface), one module per channel, `client` (AgentClient) and
`discover` (endpoint strings and `connect`).
"""

from __future__ import annotations

from ..errors import (
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentRefusedError,
    AgentTimeoutError,
    AgentUnsupportedError,
)
from .client import DEFAULT_TIMEOUT, AgentClient, AgentKey, AgentSigner
from .constraints import Destination, Hop, HostKeySpec, parse_destination
from .discover import Endpoint, connect, default_endpoints, open_stream, parse_endpoint
from .protocol import DEFAULT_MAX_MESSAGE, SSH_AGENT_RSA_SHA2_256, SSH_AGENT_RSA_SHA2_512
from .transport import BaseTransport, MessageTransport, SocketTransport, Transport

__all__ = [
    "connect",
    "open_stream",
    "parse_endpoint",
    "default_endpoints",
    "Endpoint",
    "AgentClient",
    "AgentKey",
    "AgentSigner",
    "Transport",
    "BaseTransport",
    "SocketTransport",
    "MessageTransport",
    "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_MESSAGE",
    "SSH_AGENT_RSA_SHA2_256",
    "SSH_AGENT_RSA_SHA2_512",
    "Destination",
    "Hop",
    "HostKeySpec",
    "parse_destination",
    "AgentError",
    "AgentConnectError",
    "AgentUnsupportedError",
    "AgentProtocolError",
    "AgentRefusedError",
    "AgentTimeoutError",
]
