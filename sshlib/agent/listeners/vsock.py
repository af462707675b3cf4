"""``vsock:CID:PORT``: serve agent clients over AF_VSOCK (a VM host or guest side).

Linux only (Python has AF_VSOCK there); ``vsock:any:PORT`` listens on every
CID.  Without kernel support this raises AgentUnsupportedError, never a raw
OSError.
"""

from __future__ import annotations

import socket

from ...errors import AgentConnectError, AgentUnsupportedError
from . import BACKLOG, SocketListener

__all__ = ["VsockListener"]


class VsockListener(SocketListener):
    def __init__(self, cid: int, port: int) -> None:
        endpoint = f"vsock:{cid}:{port}"
        family = getattr(socket, "AF_VSOCK", None)
        if family is None:
            raise AgentUnsupportedError(
                "AF_VSOCK is not available on this platform (Python has it on Linux only)",
                endpoint=endpoint)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise AgentUnsupportedError(
                f"cannot create an AF_VSOCK socket: {exc.strerror or exc} (no vsock transport "
                f"in this kernel or VM?)", endpoint=endpoint) from None
        try:
            sock.bind((cid, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise AgentConnectError(f"cannot listen on vsock CID {cid} port {port}: "
                                    f"{exc.strerror or exc}", endpoint=endpoint) from None
        bound = sock.getsockname()
        super().__init__(sock, f"vsock:{bound[0]}:{bound[1]}")
