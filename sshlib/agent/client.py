"""AgentClient: the agent protocol over any `Transport`, safe to share between threads.

Concurrent callers share one stream: requests are pipelined, up to the
transport's ``max_in_flight`` unanswered at once (32 on sockets; strictly one
at a time for Pageant's window and transports that do not say), and each
reply goes to the oldest request, since agents answer in order and the
protocol has no request ids (see `sshlib.agent.pipeline`).  A transport or
framing failure, or the oldest request timing out, leaves the stream
unusable: every waiter fails at once and every later call fails fast with the
original reason (open a new client, or use `open_stream` for a fresh raw
stream).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import (
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentRefusedError,
    DecodeError,
    KeyLoadError,
)
from ..keys import PrivateKey, PublicKey, parse_public_key
from ..wire import Reader
from . import protocol as p
from .constraints import (
    Destination,
    destination_constraint,
    extension_constraint,
    maxsign_constraint,
)
from .pipeline import MAX_IN_FLIGHT, Pipeline, transport_max_in_flight
from .transport import Deadline, Transport

__all__ = ["AgentClient", "AgentKey", "AgentSigner", "DEFAULT_TIMEOUT"]

log = logging.getLogger("sshlib.agent")

#: Seconds a request may take by default: long enough for a confirm or
#: passphrase prompt on the agent's side, short enough never to hang for good.
DEFAULT_TIMEOUT = 30.0

SESSION_BIND = "session-bind@openssh.com"


def _blob_fingerprint(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _blob_type(blob: bytes) -> str:
    try:
        return Reader(blob).string(256).decode("ascii", "replace")
    except DecodeError:
        return "?"


@dataclass(frozen=True, eq=False)
class AgentKey:
    """A key the agent holds: its public blob, comment and (if sshlib supports it) key.

    `public_key` is None for key types sshlib does not parse (DSA, unknown
    types; certificates give a `sshlib.keys.Certificate`).  Such keys are
    still listed and can still be removed or used with `AgentClient.sign`,
    but they cannot act as a `Signer`.
    """

    blob: bytes = field(repr=False)
    comment: str
    public_key: PublicKey | None = field(repr=False)
    _client: AgentClient | None = field(default=None, repr=False, compare=False)

    @property
    def key_type(self) -> str:
        """The key type name from the blob (works for unsupported types too)."""
        return self.public_key.key_type if self.public_key is not None else _blob_type(self.blob)

    def fingerprint(self) -> str:
        """``SHA256:...`` as ``ssh-add -l`` prints it."""
        return _blob_fingerprint(self.blob)

    @property
    def signer(self) -> AgentSigner:
        """This key as a `sshlib.Signer` (for `sshlib.PublicKeys`)."""
        if self._client is None:
            raise AgentError("this AgentKey is not bound to an agent client")
        if self.public_key is None:
            raise AgentError(f"sshlib cannot authenticate with {self.key_type} keys "
                             f"({self.fingerprint()})", endpoint=self._client.endpoint)
        return AgentSigner(self._client, self.public_key, self.comment)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentKey):
            return NotImplemented
        return self.blob == other.blob

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        comment = f" {self.comment!r}" if self.comment else ""
        return f"<AgentKey {self.key_type} {self.fingerprint()}{comment}>"


class AgentSigner:
    """A key held by an agent, implementing `sshlib.keys.Signer`.

    The algorithm names RFC 8332 adds for RSA keys become SIGN_REQUEST flags;
    the agent's answer must be a signature with exactly the requested
    algorithm, since a server would reject any other.
    """

    def __init__(self, client: AgentClient, public_key: PublicKey, comment: str = "") -> None:
        self.client = client
        self._public_key = public_key
        self.comment = comment

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        key = self._public_key
        if algorithm is None:
            algorithm = key.signature_algorithms[0]
        elif algorithm not in key.signature_algorithms:
            raise ValueError(f"a {key.key_type} key cannot sign with {algorithm!r}")
        # A certificate algorithm (rsa-sha2-512-cert-v01@...) signs as the plain one.
        wanted = key.signature_name(algorithm)
        signature = self.client.sign(key, data, flags=p.sign_flags_for_algorithm(wanted))
        got = _blob_type(signature)
        if got != wanted:
            raise AgentProtocolError(f"asked for a {wanted} signature, the agent made {got}",
                                     endpoint=self.client.endpoint)
        return signature

    def bind_session(self, host_key_blob: bytes, session_id: bytes, signature: bytes) -> bool:
        """Send session-bind@openssh.com before authenticating (the driver calls this).

        Lets the agent enforce ``ssh-add -h`` destination constraints.  False if
        the agent does not accept it (older agents, or a socket already bound to
        another connection: use one agent connection per SSH connection for
        constrained keys); authentication goes on either way.
        """
        return self.client.session_bind(host_key_blob, session_id, signature, False)

    def __repr__(self) -> str:
        return f"<AgentSigner {self._public_key.key_type} {self._public_key.fingerprint()}>"


class AgentClient:
    """A connection to one SSH agent (see `sshlib.agent.connect`).

    Every method takes `timeout` (seconds, default `self.timeout`) that bounds
    the whole call, including waiting for another thread's request to finish.
    Errors are `sshlib.errors.AgentError` subclasses naming the endpoint:
    AgentRefusedError when the agent answers FAILURE, AgentProtocolError for
    a reply we cannot accept, AgentConnectError when the stream fails,
    AgentTimeoutError when the agent is too slow.

    Thread-safe: any number of threads may call at once.  Their requests are
    pipelined (`max_in_flight`: the transport's limit, at most 32, or what the
    caller passes; 1 turns pipelining off).  A caller whose own deadline
    passes while earlier requests are still unanswered gets AgentTimeoutError
    and the others carry on; if the oldest request is overdue (its timeout
    counted from when the agent got to it) the agent is taken as hung and
    every waiter fails at once.
    """

    def __init__(self, transport: Transport, *, timeout: float = DEFAULT_TIMEOUT,
                 max_message: int = p.DEFAULT_MAX_MESSAGE,
                 max_in_flight: int | None = None) -> None:
        self.timeout = timeout
        self.max_message = max_message
        self._max_in_flight = max_in_flight
        self._pipe = self._pipeline(transport)
        self._swap_lock = threading.Lock()
        self._closed = False

    # --- plumbing -----------------------------------------------------------------------

    def _pipeline(self, transport: Transport) -> Pipeline:
        limit = min(transport_max_in_flight(transport), MAX_IN_FLIGHT)
        if self._max_in_flight is not None:
            limit = max(1, min(limit, self._max_in_flight))
        return Pipeline(transport, max_in_flight=limit, max_message=self.max_message)

    @property
    def endpoint(self) -> str:
        """The endpoint string; `sshlib.agent.open_stream(endpoint)` reaches the same agent."""
        return self._pipe.endpoint

    @property
    def transport(self) -> Transport:
        """The stream in use now (a reconnect after a hang-up replaces it)."""
        return self._pipe.transport

    @property
    def max_in_flight(self) -> int:
        """Requests this client sends before the first is answered (1: no pipelining)."""
        return self._pipe.max_in_flight

    @property
    def closed(self) -> bool:
        return self._closed

    def open_stream(self, timeout: float | None = None) -> Transport:
        """A new, independent raw stream to the same agent (one per forwarded channel)."""
        from .discover import open_stream

        return open_stream(self.endpoint, timeout=self.timeout if timeout is None else timeout)

    def close(self) -> None:
        """Close the stream; calls in progress in other threads fail with AgentConnectError."""
        self._closed = True
        self._pipe.fail(AgentConnectError("the client is closed", endpoint=self.endpoint))

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<AgentClient {self.endpoint}{state}>"

    def request(self, payload: bytes, timeout: float | None = None) -> p.Reply:
        """Send one request payload and return the decoded reply (any type, even FAILURE)."""
        endpoint = self.endpoint
        deadline = Deadline(self.timeout if timeout is None else timeout)
        if not payload:
            raise AgentError("an agent request needs at least a message type", endpoint=endpoint)
        if len(payload) > self.max_message:
            raise AgentError(f"request of {len(payload)} bytes exceeds the limit of "
                             f"{self.max_message} bytes", endpoint=endpoint)
        if self._closed:
            raise AgentConnectError("the client is closed", endpoint=endpoint)
        body = self._pipe.exchange(payload, deadline)
        reply = p.parse_reply(body, endpoint)  # the stream is in step even if this fails
        log.debug("agent %s: request type %d -> reply type %d (%d bytes)",
                  endpoint, payload[0], reply.type, len(body))
        return reply

    def _refused(self, reply: p.Reply, what: str) -> AgentRefusedError:
        return AgentRefusedError(f"the agent refused to {what} (reply type {reply.type})",
                                 endpoint=self.endpoint)

    def _simple(self, payload: bytes, what: str, timeout: float | None) -> None:
        """A request whose only good answer is SUCCESS."""
        reply = self.request(payload, timeout)
        if reply.is_failure:
            raise self._refused(reply, what)
        if reply.type != p.SSH_AGENT_SUCCESS:
            raise AgentProtocolError(f"agent answered the request to {what} with message "
                                     f"type {reply.type}", endpoint=self.endpoint)

    # --- requests -----------------------------------------------------------------------

    def list_keys(self, timeout: float | None = None) -> list[AgentKey]:
        """Every key the agent offers (an empty list while it is locked)."""
        reply = self.request(p.request_identities(), timeout)
        if reply.is_failure:
            raise self._refused(reply, "list its keys")
        keys: list[AgentKey] = []
        for blob, comment in p.parse_identities(reply, self.endpoint):
            public_key: PublicKey | None
            try:
                public_key = parse_public_key(blob)
            except KeyLoadError as exc:
                log.debug("agent %s: key %s: %s", self.endpoint, _blob_fingerprint(blob), exc)
                public_key = None
            keys.append(AgentKey(blob, comment, public_key, self))
        return keys

    def signers(self, timeout: float | None = None) -> list[AgentSigner]:
        """`Signer`s for every agent key sshlib can authenticate with, in the agent's order."""
        return [AgentSigner(self, key.public_key, key.comment)
                for key in self.list_keys(timeout) if key.public_key is not None]

    def sign(self, key: AgentKey | PublicKey | bytes, data: bytes, flags: int = 0,
             timeout: float | None = None) -> bytes:
        """The agent's signature blob (string algorithm || string signature) over `data`.

        `flags`: 0, or SSH_AGENT_RSA_SHA2_256 (2) / SSH_AGENT_RSA_SHA2_512 (4)
        to get rsa-sha2-256/512 from an RSA key.
        """
        blob = _key_blob(key)
        reply = self.request(p.sign_request(blob, data, flags), timeout)
        if reply.is_failure:
            raise self._refused(reply, f"sign with key {_blob_fingerprint(blob)}")
        return p.parse_sign_response(reply, self.endpoint)

    def add_key(self, private_key: PrivateKey, comment: str | None = None, *,
                lifetime: int | None = None, confirm: bool = False,
                destinations: Sequence[Destination] = (), maxsign: int | None = None,
                extensions: Sequence[tuple[str, bytes]] = (),
                timeout: float | None = None) -> None:
        """Hand `private_key` to the agent; `comment` defaults to the key's own.

        `lifetime` (seconds) makes the agent forget the key afterwards;
        `confirm` makes it ask the user before every signature;
        `destinations` (`sshlib.agent.constraints.Destination`, e.g. from
        `parse_destination("user@host")`) limits the hosts it may be used for,
        like ``ssh-add -h`` (the agent checks them against session-bind);
        `maxsign` caps the number of signatures; `extensions` are further
        (name, body) constraint extensions.  An agent that does not know a
        constraint refuses the key: AgentRefusedError.
        """
        constraints: list[bytes] = []
        if lifetime is not None:
            constraints.append(p.lifetime_constraint(lifetime))
        if confirm:
            constraints.append(p.confirm_constraint())
        if maxsign is not None:
            constraints.append(maxsign_constraint(maxsign))
        if destinations:
            constraints.append(destination_constraint(destinations))
        constraints.extend(extension_constraint(name, body) for name, body in extensions)
        public_key = private_key.public_key
        payload = p.add_identity(public_key.key_type, private_key.private_fields(),
                                 private_key.comment if comment is None else comment,
                                 constraints)
        self._simple(payload, f"add key {public_key.fingerprint()}", timeout)

    def remove_key(self, key: AgentKey | PublicKey | bytes, timeout: float | None = None) -> None:
        blob = _key_blob(key)
        self._simple(p.remove_identity(blob), f"remove key {_blob_fingerprint(blob)}", timeout)

    def remove_all(self, timeout: float | None = None) -> None:
        self._simple(p.remove_all_identities(), "remove all keys", timeout)

    def lock(self, passphrase: bytes, timeout: float | None = None) -> None:
        """Lock the agent: it lists no keys and signs nothing until `unlock`."""
        self._simple(p.lock(passphrase), "lock", timeout)

    def unlock(self, passphrase: bytes, timeout: float | None = None) -> None:
        """Unlock; AgentRefusedError for a wrong passphrase (or an agent not locked)."""
        self._simple(p.unlock(passphrase), "unlock (wrong passphrase?)", timeout)

    def extension(self, name: str, body: bytes = b"", timeout: float | None = None) -> bytes:
        """Send an EXTENSION request; returns the reply contents after the type byte.

        SUCCESS and EXTENSION_RESPONSE are both answers; FAILURE and
        EXTENSION_FAILURE raise AgentRefusedError.
        """
        return self._extension_reply(name, body, timeout).body

    def _extension_reply(self, name: str, body: bytes, timeout: float | None) -> p.Reply:
        reply = self.request(p.extension(name, body), timeout)
        if reply.is_failure:
            raise self._refused(reply, f"run extension {name!r}")
        if reply.type not in (p.SSH_AGENT_SUCCESS, p.SSH_AGENT_EXTENSION_RESPONSE):
            raise AgentProtocolError(f"agent answered extension {name!r} with message type "
                                     f"{reply.type}", endpoint=self.endpoint)
        return reply

    def _probe(self, name: str, body: bytes, timeout: float | None) -> p.Reply | None:
        """An extension request that may fail harmlessly: None if the agent does not know it.

        FAILURE is the proper "no".  Some agents hang up instead (they close the
        stream on unknown messages); then, if the endpoint can be reopened, the
        client reconnects so that it stays usable, and the answer is also None.
        """
        pipe = self._pipe
        try:
            return self._extension_reply(name, body, timeout)
        except AgentRefusedError:
            return None
        except AgentConnectError:
            if not pipe.hung_up or not self._reconnect(pipe, timeout):
                raise
            log.info("agent %s hung up on extension %r; reconnected", self.endpoint, name)
            return None

    def _reconnect(self, broken: Pipeline, timeout: float | None) -> bool:
        """Replace the `broken` stream with a fresh one (unless another thread already did)."""
        try:
            transport = self.open_stream(timeout)
        except AgentError as exc:
            log.debug("agent %s: cannot reconnect: %s", self.endpoint, exc)
            return False
        with self._swap_lock:
            if self._closed or self._pipe is not broken:
                transport.close()
                return not self._closed
            self._pipe = self._pipeline(transport)
        return True

    def query_extensions(self, timeout: float | None = None) -> list[str]:
        """Extension names the agent says it supports, via the ``query`` extension.

        An agent that does not implement ``query`` answers FAILURE; that gives
        [] (nothing can be discovered), not an error.  The names are what
        ``ssh-add -Q`` prints: an EXTENSION_RESPONSE starts with the echoed
        request name (RFC 9987; OpenSSH >= 10.3), which is not one of them.
        """
        reply = self._probe("query", b"", timeout)
        if reply is None:
            return []
        body = reply.body
        echo = p.frame(b"query")
        if reply.type == p.SSH_AGENT_EXTENSION_RESPONSE and body.startswith(echo):
            body = body[len(echo):]
        names = p.parse_query_names(body)
        if names is None:
            raise AgentProtocolError("cannot parse the agent's answer to 'query'",
                                     endpoint=self.endpoint)
        return names

    def session_bind(self, host_key: PublicKey | bytes, session_id: bytes, signature: bytes,
                     is_forwarding: bool, timeout: float | None = None) -> bool:
        """Tell the agent which server this connection authenticates to (OpenSSH >= 8.9).

        `signature` is the host key's signature over `session_id` from the key
        exchange.  Returns False when the agent does not accept it (FAILURE, or
        hanging up, after which the client reconnects): many agents do not know
        the extension, and the connection must carry on without it.
        """
        blob = host_key.blob if isinstance(host_key, PublicKey) else bytes(host_key)
        body = p.session_bind_body(blob, session_id, signature, is_forwarding)
        if self._probe(SESSION_BIND, body, timeout) is None:
            log.debug("agent %s does not accept %s", self.endpoint, SESSION_BIND)
            return False
        return True


def _key_blob(key: AgentKey | PublicKey | bytes | bytearray | memoryview) -> bytes:
    if isinstance(key, (AgentKey, PublicKey)):
        return key.blob
    return bytes(key)
