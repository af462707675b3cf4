"""``assuan:PATH``: a libassuan (GnuPG / Gpg4win) socket file.

On Windows libassuan emulates Unix sockets with a TCP port on 127.0.0.1 and
a file holding the port in ASCII decimal, a newline, then a 16-byte random
nonce.  The client proves it read the file by sending the nonce first;
nothing comes back, and the raw agent stream follows.  gpg-agent >= 2.1.6
writes its ssh socket in the Cygwin format instead; either file works here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import AgentConnectError, AgentError
from .cygwin import CYGWIN_MAGIC, open_cygwin_data, read_socket_file
from .tcp import connect_tcp
from .transport import Deadline, SocketTransport

__all__ = ["AssuanSocketFile", "is_assuan_data", "parse_assuan_socket_file",
           "open_assuan", "open_assuan_data"]

_NONCE_LEN = 16
_FILE_RE = re.compile(rb"([0-9]{1,5})\n(.{16})", re.DOTALL)


@dataclass(frozen=True)
class AssuanSocketFile:
    """The parsed contents of a libassuan socket file: the TCP port on 127.0.0.1 and the nonce."""

    port: int
    nonce: bytes = field(repr=False)


def is_assuan_data(data: bytes) -> bool:
    """Whether `data` has the libassuan socket file layout (port, newline, 16 bytes)."""
    return _FILE_RE.fullmatch(data) is not None


def parse_assuan_socket_file(data: bytes, endpoint: str | None = None) -> AssuanSocketFile:
    """Parses a libassuan socket file (`PORT\n` then 16 nonce bytes).

    Raises `AgentConnectError` for any other layout or a port outside 1-65535.
    """
    match = _FILE_RE.fullmatch(data)
    if match is None:
        raise AgentConnectError(
            f"not a libassuan socket file (want a port, a newline and {_NONCE_LEN} nonce "
            f"bytes; got {len(data)} bytes)", endpoint=endpoint)
    port = int(match[1])
    if not 0 < port < 65536:
        raise AgentConnectError(f"libassuan socket file names port {port}", endpoint=endpoint)
    return AssuanSocketFile(port, match[2])


def open_assuan_data(data: bytes, path: str, timeout: float | None,
                     endpoint: str) -> SocketTransport:
    """Connects using socket file contents already read from `path` (the sniffer has them).

    Connects to 127.0.0.1:PORT and sends the nonce; nothing comes back, so a wrong
    nonce only shows as the agent closing the stream. `timeout` bounds connect and
    nonce together; failures are `AgentConnectError` naming the port.
    """
    info = parse_assuan_socket_file(data, endpoint)
    deadline = Deadline(timeout)
    sock = connect_tcp("127.0.0.1", info.port, timeout, endpoint)
    transport = SocketTransport(sock, endpoint)
    try:
        transport.send_all(info.nonce, deadline.remaining(endpoint))
    except AgentError as exc:
        transport.close()
        raise AgentConnectError(f"sending the libassuan nonce to port {info.port} (from "
                                f"{path}) failed: {exc.reason}", endpoint=endpoint) from None
    return transport


def open_assuan(path: str, timeout: float | None, endpoint: str) -> SocketTransport:
    """Read the socket file at `path` and connect; a Cygwin-format file is accepted too."""
    data = read_socket_file(path, endpoint)
    if data.startswith(CYGWIN_MAGIC):
        return open_cygwin_data(data, path, timeout, endpoint)
    return open_assuan_data(data, path, timeout, endpoint)
