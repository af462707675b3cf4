"""``vsock:CID:PORT``: serve agent clients over AF_VSOCK (a VM host or guest side).

Linux only (Python has AF_VSOCK there); ``vsock:any:PORT`` listens on every
CID.  Without kernel support this raises AgentUnsupportedError, never a raw
OSError.
"""

from __future__ import annotations

from ...errors import AgentConnectError
from ..vsock import vsock_socket
from . import BACKLOG, SocketListener

__all__ = ["VsockListener"]


class VsockListener(SocketListener):
    """Listens on AF_VSOCK `cid:port` (Linux; port 0 picks one, shown in `endpoint`).

    Raises `AgentUnsupportedError` where the kernel has no vsock transport and
    `AgentConnectError` when the address cannot be bound. vsock has no peer
    credentials: anyone who can reach the port can use the agent.
    """

    def __init__(self, cid: int, port: int) -> None:
        endpoint = f"vsock:{cid}:{port}"
        sock = vsock_socket(endpoint)
        try:
            sock.bind((cid, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise AgentConnectError(f"cannot listen on vsock CID {cid} port {port}: "
                                    f"{exc.strerror or exc}", endpoint=endpoint) from None
        bound = sock.getsockname()
        super().__init__(sock, f"vsock:{bound[0]}:{bound[1]}")
