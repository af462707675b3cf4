"""What the core tells its front-end.

Small immutable records named in the past tense (what happened), or for the
three places where the core needs an answer from the outside world (host key
verdict, a signature, keyboard-interactive answers), named as requests.  The
core stops processing input until such a request is answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..algorithms import Algorithms
    from ..errors import SSHError
    from ..keys import PublicKey


class Event:
    """Base class of every core event."""

    __slots__ = ()


# --- handshake and authentication -------------------------------------------

@dataclass(frozen=True, slots=True)
class HostKeyVerificationRequested(Event):
    """First key exchange done; answer with accept_host_key() or reject_host_key()."""

    key: PublicKey


@dataclass(frozen=True, slots=True)
class KexCompleted(Event):
    """A key exchange (first or rekey) finished; new keys are in use both ways."""

    algorithms: Algorithms
    first: bool


@dataclass(frozen=True, slots=True)
class AuthBannerReceived(Event):
    """The server sent a USERAUTH_BANNER (text to show the user before login).

    The text is the server's: strip terminal control characters before printing it.
    """

    message: str


@dataclass(frozen=True, slots=True)
class SignatureRequested(Event):
    """Sign `data` with `signer`; answer with provide_signature() or signature_failed()."""

    signer: Any  # keys.Signer; Any keeps this module free of import cycles at run time
    algorithm: str
    data: bytes
    #: For an agent's session-bind@openssh.com: the server's host key blob, the session
    #: id and the host key's signature over it from the key exchange (empty if unknown).
    host_key_blob: bytes = b""
    session_id: bytes = b""
    session_signature: bytes = b""


@dataclass(frozen=True, slots=True)
class PromptsRequested(Event):
    """A keyboard-interactive round; answer with answer_prompts()."""

    callback: Any  # the KeyboardInteractive method's callback
    name: str
    instruction: str
    prompts: list[Any]  # list of config.Prompt (str with .echo)


@dataclass(frozen=True, slots=True)
class AuthSucceeded(Event):
    """Authentication finished with `method`; channels can be opened now."""

    method: str


# --- connection layer ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ChannelOpened(Event):
    """The server confirmed our CHANNEL_OPEN: `channel` (our id) is ready for requests and data."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelOpenFailed(Event):
    """The server refused our CHANNEL_OPEN; `reason` is an RFC 4254 code (`messages.OPEN_*`)."""

    channel: int
    reason: int
    description: str


@dataclass(frozen=True, slots=True)
class ChannelDataReceived(Event):
    """Data arrived on `channel` (`stderr` for extended data type 1).

    The core has not given the window back yet: the front-end calls the core's
    consume method once the application has taken the bytes, which keeps buffers
    bounded by the window.  `data` may be a read-only view of the packet it came in
    (no copy is made on the hot path); it stays valid, as bytes would.
    """

    channel: int
    data: bytes | memoryview
    stderr: bool


@dataclass(frozen=True, slots=True)
class ChannelEOFReceived(Event):
    """The server will send no more data on `channel`; it may still send requests and close."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelClosed(Event):
    """Both sides sent CHANNEL_CLOSE; the channel id is free again."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelWindowAdjusted(Event):
    """The peer granted more send window: blocked writers may continue."""

    channel: int


@dataclass(frozen=True, slots=True)
class ChannelRequestReplied(Event):
    """The answer to a channel request sent with want_reply (`success` False: FAILURE)."""

    channel: int
    request: str
    success: bool


@dataclass(frozen=True, slots=True)
class ExitStatusReceived(Event):
    """The remote command exited with `status` (the `exit-status` request)."""

    channel: int
    status: int


@dataclass(frozen=True, slots=True)
class ExitSignalReceived(Event):
    """The remote command was killed by `signal` (a name such as "TERM", without "SIG")."""

    channel: int
    signal: str
    core_dumped: bool
    message: str


@dataclass(frozen=True, slots=True)
class ChannelOpenRequested(Event):
    """The server wants to open a channel to us (agent, x11, forwarded-tcpip)."""

    sender_channel: int
    kind: str
    initial_window: int
    max_packet: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class GlobalRequestReplied(Event):
    """The answer to our global request with want_reply; `data` is the reply's payload."""

    success: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(Event):
    """The connection is over; `error` says why (None: we closed it cleanly)."""

    error: SSHError | None
