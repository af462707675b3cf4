"""The threaded (blocking) front-end."""

from .client import Client, dial
from .session import ChannelReader, ChannelWriter, RequestDeniedError, Session

__all__ = ["Client", "dial", "Session", "ChannelReader", "ChannelWriter", "RequestDeniedError"]
