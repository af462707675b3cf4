"""``vsock:CID:PORT``: serve agent clients over AF_VSOCK (a VM host or guest side).

Linux only (Python has AF_VSOCK there); ``vsock:any:PORT`` listens on every
CID.  Without kernel support this raises AgentUnsupportedError, never a raw
OSError.
"""

from __future__ import annotations

from ...errors import AgentConnectError
from ..vsock import vsock_socket
from . import BACKLOG, VMADDR_CID_ANY, SocketListener

__all__ = ["VsockListener", "VMADDR_PORT_ANY"]

#: Bind to this port to let the kernel pick a free one (vsock's port 0 is a real port).
VMADDR_PORT_ANY = 0xFFFFFFFF


class VsockListener(SocketListener):
    """Listens on AF_VSOCK `cid:port` (Linux; port 0 picks one, shown in `endpoint`).

    Raises `AgentUnsupportedError` where the kernel has no vsock transport and
    `AgentConnectError` when the address cannot be bound. vsock has no peer
    credentials: anyone who can reach the port can use the agent.
    """

    def __init__(self, cid: int, port: int) -> None:
        """Listen on `cid` (VMADDR_CID_ANY: every CID) and `port` (0: a free one).

        The endpoint names the port bound and says ``any`` for VMADDR_CID_ANY, so
        ``vsock:any:0`` becomes, e.g., ``vsock:any:1234567`` (what a client on the
        other side of the VM boundary dials, with the CID it knows us by).
        """
        endpoint = f"vsock:{_cid_name(cid)}:{port}"
        sock = vsock_socket(endpoint)
        try:
            sock.bind((cid, port or VMADDR_PORT_ANY))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise AgentConnectError(f"cannot listen on vsock CID {cid} port {port}: "
                                    f"{exc.strerror or exc}", endpoint=endpoint) from None
        bound_cid, bound_port = sock.getsockname()[:2]
        super().__init__(sock, f"vsock:{_cid_name(bound_cid)}:{bound_port}")


def _cid_name(cid: int) -> str:
    return "any" if cid == VMADDR_CID_ANY else str(cid)
