"""``vsock:CID:PORT``: AF_VSOCK, how a WSL2 (Hyper-V) guest reaches a host-side agent bridge.

The host is CID 2; a Windows listener registers the Hyper-V socket service
GUID ``"%08x-facb-11e6-bd58-64006a7986d3" % PORT``.  Python has AF_VSOCK on
Linux only; elsewhere this endpoint raises AgentUnsupportedError.
"""

from __future__ import annotations

import socket

from ..errors import AgentConnectError, AgentUnsupportedError
from .transport import SocketTransport, seconds

__all__ = ["open_vsock", "vsock_socket", "VMADDR_CID_HOST"]

#: The CID of the hypervisor host (Windows, seen from a WSL2 guest).
VMADDR_CID_HOST = 2


def vsock_socket(endpoint: str) -> socket.socket:
    """A new AF_VSOCK stream socket, or AgentUnsupportedError saying why there is none."""
    family = getattr(socket, "AF_VSOCK", None)
    if family is None:
        raise AgentUnsupportedError(
            "AF_VSOCK is not available on this platform (Python has it on Linux only)",
            endpoint=endpoint)
    try:
        return socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise AgentUnsupportedError(
            f"cannot create an AF_VSOCK socket: {exc.strerror or exc} "
            f"(no vsock transport in this kernel or VM?)", endpoint=endpoint) from None


def open_vsock(cid: int, port: int, timeout: float | None, endpoint: str) -> SocketTransport:
    """Connects to an agent over AF_VSOCK (`cid` 2 is the host, as seen from WSL2).

    `AgentUnsupportedError` where Python or the kernel lacks vsock,
    `AgentConnectError` on a refused or timed-out connect.
    """
    sock = vsock_socket(endpoint)
    try:
        sock.settimeout(timeout)
        sock.connect((cid, port))
    except TimeoutError:
        sock.close()
        raise AgentConnectError(f"timed out after {seconds(timeout)} connecting to vsock CID {cid} "
                                f"port {port}", endpoint=endpoint) from None
    except OSError as exc:
        sock.close()
        raise AgentConnectError(f"cannot connect to vsock CID {cid} port {port}: "
                                f"{exc.strerror or exc}", endpoint=endpoint) from None
    return SocketTransport(sock, endpoint)
