"""The asyncio front-end: the sync API with ``await``, on the same sans-IO core.

    import sshlib, sshlib.aio
    async with sshlib.aio.dial("tcp", "example.com:22", cfg) as client:
        async with client.new_session() as s:
            print(await s.output("uname -a"))

    async for r in sshlib.aio.run_on(["web1", "web2:2222"], "uptime", cfg, limit=100):
        print(r.address, r.exit_status, r.stdout or r.error)

See docs/aio.md.
"""

from typing import TYPE_CHECKING, Any

from ..errors import RequestDeniedError
from .channel import AioChannel
from .client import Client, client_over, dial
from .connect import connect
from .fanout import HostResult, HostSpec, run_on, run_one
from .session import ChannelReader, ChannelWriter, Session
from .sftp import SFTPClient, SFTPFile
from .stream import Listener, NewChannel, Stream

__all__ = ["Client", "dial", "client_over", "Session", "ChannelReader", "ChannelWriter",
           "AioChannel", "HostResult", "HostSpec", "run_on", "run_one", "RequestDeniedError",
           "Stream", "Listener", "NewChannel", "SFTPClient", "SFTPFile", "connect", "mux"]

if TYPE_CHECKING:
    from . import mux


def __getattr__(name: str) -> Any:
    """`sshlib.aio.mux` (the ControlMaster client) loads on first use."""
    if name == "mux":
        import importlib

        return importlib.import_module(".mux", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
