"""The threaded (blocking) front-end."""

from ..errors import RequestDeniedError
from .client import Client, dial
from .session import ChannelReader, ChannelWriter, Session
from .sftp import SFTPClient, SFTPFile

__all__ = ["Client", "dial", "Session", "ChannelReader", "ChannelWriter", "RequestDeniedError",
           "SFTPClient", "SFTPFile"]
