"""The threaded (blocking) front-end."""

from ..errors import RequestDeniedError
from .client import Client, dial
from .session import ChannelReader, ChannelWriter, Session
from .stream import Listener, NewChannel, Stream

__all__ = ["Client", "dial", "Session", "ChannelReader", "ChannelWriter", "RequestDeniedError",
           "Stream", "Listener", "NewChannel"]
