"""The SSH agent protocol, sans-IO: message encoding, framing and reply parsing.

Nothing here touches a socket, so every transport (Unix socket, named pipe,
Pageant's shared memory, a relay process, a forwarded SSH channel) shares one
implementation of the byte layout.  References: OpenSSH PROTOCOL.agent and
draft-ietf-sshm-ssh-agent (now RFC 9987).

Framing is ``uint32 length || payload``; the first payload byte is the message
type.  A length over the cap is refused *before* any buffer of that size
exists, so a hostile or broken agent cannot make us allocate gigabytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import AgentProtocolError, DecodeError
from ..wire import Reader, Writer

__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "SSH_AGENT_FAILURE",
    "SSH_AGENT_SUCCESS",
    "SSH_AGENTC_REQUEST_IDENTITIES",
    "SSH_AGENT_IDENTITIES_ANSWER",
    "SSH_AGENTC_SIGN_REQUEST",
    "SSH_AGENT_SIGN_RESPONSE",
    "SSH_AGENTC_ADD_IDENTITY",
    "SSH_AGENTC_REMOVE_IDENTITY",
    "SSH_AGENTC_REMOVE_ALL_IDENTITIES",
    "SSH_AGENTC_LOCK",
    "SSH_AGENTC_UNLOCK",
    "SSH_AGENTC_ADD_ID_CONSTRAINED",
    "SSH_AGENTC_EXTENSION",
    "SSH_AGENT_EXTENSION_FAILURE",
    "SSH_AGENT_EXTENSION_RESPONSE",
    "SSH_AGENT_CONSTRAIN_LIFETIME",
    "SSH_AGENT_CONSTRAIN_CONFIRM",
    "SSH_AGENT_CONSTRAIN_MAXSIGN",
    "SSH_AGENT_CONSTRAIN_EXTENSION",
    "SSH_AGENT_RSA_SHA2_256",
    "SSH_AGENT_RSA_SHA2_512",
    "FAILURE_TYPES",
    "frame",
    "frame_length",
    "FrameDecoder",
    "request_identities",
    "sign_request",
    "add_identity",
    "remove_identity",
    "remove_all_identities",
    "lock",
    "unlock",
    "extension",
    "session_bind_body",
    "lifetime_constraint",
    "confirm_constraint",
    "Reply",
    "parse_reply",
    "parse_identities",
    "parse_sign_response",
    "parse_query_names",
    "sign_flags_for_algorithm",
]

#: OpenSSH, Win32-OpenSSH and PuTTY >= 0.71 all cap a message at 256 KiB.
DEFAULT_MAX_MESSAGE = 256 * 1024

# Replies
SSH_AGENT_FAILURE = 5
SSH_AGENT_SUCCESS = 6
SSH_AGENT_IDENTITIES_ANSWER = 12
SSH_AGENT_SIGN_RESPONSE = 14
SSH_AGENT_EXTENSION_FAILURE = 28
SSH_AGENT_EXTENSION_RESPONSE = 29

# Requests
SSH_AGENTC_REQUEST_IDENTITIES = 11
SSH_AGENTC_SIGN_REQUEST = 13
SSH_AGENTC_ADD_IDENTITY = 17
SSH_AGENTC_REMOVE_IDENTITY = 18
SSH_AGENTC_REMOVE_ALL_IDENTITIES = 19
SSH_AGENTC_LOCK = 22
SSH_AGENTC_UNLOCK = 23
SSH_AGENTC_ADD_ID_CONSTRAINED = 25
SSH_AGENTC_EXTENSION = 27

# Key constraints
SSH_AGENT_CONSTRAIN_LIFETIME = 1
SSH_AGENT_CONSTRAIN_CONFIRM = 2
SSH_AGENT_CONSTRAIN_MAXSIGN = 3
SSH_AGENT_CONSTRAIN_EXTENSION = 255

# Sign request flags
SSH_AGENT_RSA_SHA2_256 = 0x02
SSH_AGENT_RSA_SHA2_512 = 0x04

#: Reply types that mean "no": the standard two, plus 30 (SSH_COM_AGENT2_FAILURE)
#: and 102 (SSH2_AGENT_FAILURE of old ssh.com agents) which some agents send.
FAILURE_TYPES = frozenset({SSH_AGENT_FAILURE, SSH_AGENT_EXTENSION_FAILURE, 30, 102})

_KNOWN_REPLIES = frozenset({SSH_AGENT_SUCCESS, SSH_AGENT_IDENTITIES_ANSWER,
                            SSH_AGENT_SIGN_RESPONSE, SSH_AGENT_EXTENSION_RESPONSE}) | FAILURE_TYPES

_U32 = struct.Struct(">I")


# --- framing ------------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """``uint32 length || payload``: one message as it travels on every stream channel."""
    return _U32.pack(len(payload)) + payload


def frame_length(header: bytes, max_length: int = DEFAULT_MAX_MESSAGE,
                 endpoint: str | None = None) -> int:
    """The payload length from a 4-byte header, refused if empty or over `max_length`.

    Called before reading (and so before allocating) the body.
    """
    if len(header) != 4:
        raise AgentProtocolError(f"message header is {len(header)} bytes, expected 4",
                                 endpoint=endpoint)
    length: int = _U32.unpack(header)[0]
    if length == 0:
        raise AgentProtocolError("agent sent an empty message", endpoint=endpoint)
    if length > max_length:
        raise AgentProtocolError(
            f"agent message of {length} bytes exceeds the limit of {max_length} bytes",
            endpoint=endpoint)
    return length


class FrameDecoder:
    """Splits a byte stream into agent messages; for relays that see arbitrary chunks.

    `feed` returns every message completed by the new data.  A header announcing
    more than `max_length` raises AgentProtocolError at once, before the body
    arrives or is buffered.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_MESSAGE, endpoint: str | None = None) -> None:
        self.max_length = max_length
        self.endpoint = endpoint
        self._buffer = bytearray()
        self._need: int | None = None  # payload length once the header is in

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message (0 at a message boundary)."""
        return len(self._buffer) + (4 if self._need is not None else 0)

    @property
    def expected(self) -> int | None:
        """Payload length of the message in progress once its header is in, else None."""
        return self._need

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buffer) < 4:
                    return messages
                self._need = frame_length(bytes(self._buffer[:4]), self.max_length,
                                          self.endpoint)
                del self._buffer[:4]
            if len(self._buffer) < self._need:
                return messages
            messages.append(bytes(self._buffer[:self._need]))
            del self._buffer[:self._need]
            self._need = None


# --- requests -----------------------------------------------------------------------------


def request_identities() -> bytes:
    return bytes((SSH_AGENTC_REQUEST_IDENTITIES,))


def sign_request(key_blob: bytes, data: bytes, flags: int = 0) -> bytes:
    return Writer(SSH_AGENTC_SIGN_REQUEST).string(key_blob).string(data).uint32(flags).getvalue()


def lifetime_constraint(seconds: int) -> bytes:
    if not 0 < seconds <= 0xFFFFFFFF:
        raise ValueError(f"key lifetime must be 1..{0xFFFFFFFF} seconds, not {seconds}")
    return Writer(SSH_AGENT_CONSTRAIN_LIFETIME).uint32(seconds).getvalue()


def confirm_constraint() -> bytes:
    return bytes((SSH_AGENT_CONSTRAIN_CONFIRM,))


def add_identity(key_type: str, private_fields: bytes, comment: str,
                 constraints: Sequence[bytes] = ()) -> bytes:
    """ADD_IDENTITY, or ADD_ID_CONSTRAINED when any constraint is given.

    `private_fields` are the type-specific fields exactly as in openssh-key-v1
    (PROTOCOL.agent uses the same layout), see PrivateKey._private_fields.
    """
    kind = SSH_AGENTC_ADD_ID_CONSTRAINED if constraints else SSH_AGENTC_ADD_IDENTITY
    writer = Writer(kind).string(key_type).raw(private_fields).string(comment)
    for constraint in constraints:
        writer.raw(constraint)
    return writer.getvalue()


def remove_identity(key_blob: bytes) -> bytes:
    return Writer(SSH_AGENTC_REMOVE_IDENTITY).string(key_blob).getvalue()


def remove_all_identities() -> bytes:
    return bytes((SSH_AGENTC_REMOVE_ALL_IDENTITIES,))


def lock(passphrase: bytes) -> bytes:
    return Writer(SSH_AGENTC_LOCK).string(passphrase).getvalue()


def unlock(passphrase: bytes) -> bytes:
    return Writer(SSH_AGENTC_UNLOCK).string(passphrase).getvalue()


def extension(name: str, body: bytes = b"") -> bytes:
    """EXTENSION: the name, then the body raw (OpenSSH's layout, not a nested string)."""
    return Writer(SSH_AGENTC_EXTENSION).string(name).raw(body).getvalue()


def session_bind_body(host_key_blob: bytes, session_id: bytes, signature: bytes,
                      is_forwarding: bool) -> bytes:
    """Body of ``session-bind@openssh.com`` (PROTOCOL.agent section 1)."""
    return (Writer().string(host_key_blob).string(session_id).string(signature)
            .boolean(is_forwarding).getvalue())


def sign_flags_for_algorithm(algorithm: str) -> int:
    """RFC 8332 names to the SIGN_REQUEST flags that ask for them; 0 for anything else."""
    if algorithm == "rsa-sha2-256":
        return SSH_AGENT_RSA_SHA2_256
    if algorithm == "rsa-sha2-512":
        return SSH_AGENT_RSA_SHA2_512
    return 0


# --- replies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A decoded reply: its type and the bytes after the type byte."""

    type: int
    body: bytes = field(repr=False)

    @property
    def is_failure(self) -> bool:
        return self.type in FAILURE_TYPES


def parse_reply(payload: bytes, endpoint: str | None = None) -> Reply:
    """Split a reply payload; an empty payload or unknown type is an AgentProtocolError."""
    if not payload:
        raise AgentProtocolError("agent sent an empty message", endpoint=endpoint)
    kind = payload[0]
    if kind not in _KNOWN_REPLIES:
        raise AgentProtocolError(f"agent sent unknown reply type {kind}", endpoint=endpoint)
    return Reply(kind, payload[1:])


def _expect(reply: Reply, kind: int, what: str, endpoint: str | None) -> None:
    if reply.type != kind:
        raise AgentProtocolError(f"agent answered {what} with message type {reply.type}",
                                 endpoint=endpoint)


def parse_identities(reply: Reply, endpoint: str | None = None) -> list[tuple[bytes, str]]:
    """IDENTITIES_ANSWER -> [(key blob, comment)]; the count is checked against the bytes."""
    _expect(reply, SSH_AGENT_IDENTITIES_ANSWER, "a key list request", endpoint)
    try:
        reader = Reader(reply.body)
        count = reader.uint32()
        # Each entry needs at least 8 bytes: refuse an absurd count before looping.
        if count > reader.remaining // 8:
            raise DecodeError(f"{count} keys announced in {reader.remaining} bytes")
        keys: list[tuple[bytes, str]] = []
        for _ in range(count):
            blob = reader.string()
            comment = reader.string().decode("utf-8", "replace")
            keys.append((blob, comment))
        reader.check_end()
    except DecodeError as exc:
        raise AgentProtocolError(f"malformed key list: {exc}", endpoint=endpoint) from None
    return keys


def parse_sign_response(reply: Reply, endpoint: str | None = None) -> bytes:
    """SIGN_RESPONSE -> the signature blob (string algorithm || string signature)."""
    _expect(reply, SSH_AGENT_SIGN_RESPONSE, "a sign request", endpoint)
    try:
        reader = Reader(reply.body)
        signature = reader.string()
        reader.check_end()
        inner = Reader(signature)
        name = inner.string(256)
        inner.string()
        if name.startswith((b"sk-", b"webauthn-sk-")):
            inner.byte()  # security keys add flags and a counter (PROTOCOL.u2f)
            inner.uint32()
        inner.check_end()
    except DecodeError as exc:
        raise AgentProtocolError(f"malformed signature: {exc}", endpoint=endpoint) from None
    return signature


def _names(reader: Reader, count: int | None) -> list[str] | None:
    """Read `count` (or all remaining) strings as extension names; None if they aren't."""
    names: list[str] = []
    try:
        while (reader.remaining if count is None else len(names) < count):
            raw = reader.string(1024)
            if not raw or any(b < 0x21 or b > 0x7E for b in raw):
                return None
            names.append(raw.decode("ascii"))
        reader.check_end()
    except DecodeError:
        return None
    return names


def parse_query_names(body: bytes) -> list[str] | None:
    """Extension names from a ``query`` reply body, in whichever layout the agent used.

    Agents disagree (Pageant: flat strings after SUCCESS; the draft: a string
    list, sometimes prefixed by a count or by the echoed name "query"; some
    wrap the lot in one more string).  Try each reading and keep the first
    that consumes the body exactly and yields printable names.  None if no
    reading works.
    """
    if not body:
        return []

    def flat() -> list[str] | None:
        return _names(Reader(body), None)

    def counted() -> list[str] | None:
        reader = Reader(body)
        count = reader.uint32() if reader.remaining >= 4 else -1
        if count < 0 or count > reader.remaining // 4:
            return None
        return _names(reader, count)

    def wrapped() -> list[str] | None:
        try:
            reader = Reader(body)
            inner = reader.string()
            reader.check_end()
        except DecodeError:
            return None
        return parse_query_names(inner) if inner != body else None

    for reading in (flat, counted, wrapped):
        names = reading()
        if names is not None:
            return names
    return None
