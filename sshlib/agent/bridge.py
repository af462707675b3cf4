"""Serve agent requests arriving on one channel from an agent on another.

    bridge = Bridge([open_listener("unix:/tmp/a.sock")], "pipe:openssh-ssh-agent")
    bridge.start(); ...; bridge.close()

Why it is built this way (the failures of today's bridges, docs/agent.md):

- every accepted client is served in its own thread, so a slow, silent or
  hostile client never delays another; the number of clients served at once
  is bounded (`max_clients`), beyond that connections wait in the backlog;
- the upstream stream is opened lazily, on the client's first complete
  request, one per client, and closed with it: per-connection agent state
  such as ``session-bind`` stays with the right client;
- whole messages are forwarded: each frame is checked against the size cap
  before its body is read; a bad frame drops that client (with a log line),
  never the bridge;
- when the upstream agent is unreachable or dies mid-request, the client gets
  SSH_AGENT_FAILURE for that request (ssh-add reports an error instead of
  hanging) and the next request tries a fresh upstream stream;
- with `retries` > 0, a request that is safe to repeat (`RETRYABLE`: list
  keys, sign, remove all, the ``query`` extension, ``session-bind``) is
  re-sent on a fresh upstream stream when the upstream could not be reached,
  broke, closed, sent a broken frame or did not answer within the request
  timeout (a hung upstream is cut then, with a log line).  An *answer* is
  never retried: SSH_AGENT_FAILURE and every other reply go to the client as
  they are.  Requests that change state in a way a lost reply makes unsafe
  to repeat (add, remove one key, lock, unlock, smartcard keys with their PIN
  tries, unknown extensions) are never re-sent.  A fresh upstream stream first
  gets the client's earlier successful ``session-bind`` messages again, so
  the agent still knows which host the connection is for.

`StreamServer` is the per-client loop; the ``relay`` command runs it over
stdin/stdout.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence

from ..errors import (
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentTimeoutError,
    SSHError,
)
from . import protocol as p
from .discover import Endpoint, open_stream
from .listeners import Listener, ListenerClosed, PendingClient
from .transport import BaseTransport, Deadline, Transport, seconds

__all__ = [
    "Bridge",
    "StreamServer",
    "FdTransport",
    "DEFAULT_MAX_CLIENTS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "FAILURE_FRAME",
    "RETRYABLE",
    "is_retryable",
]

log = logging.getLogger("sshlib.agent.bridge")

#: Clients served at once: far above 300 parallel ssh-add or ansible forks,
#: small enough to bound threads and memory (each holds at most one message).
DEFAULT_MAX_CLIENTS = 1024
#: Seconds a client may sit idle between requests before it is disconnected.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds the upstream agent may take to answer (a confirm prompt included),
#: and a client to finish sending a request it started.
DEFAULT_REQUEST_TIMEOUT = 120.0
#: Seconds to open the upstream stream, or run a listener's handshake.
DEFAULT_CONNECT_TIMEOUT = 10.0

FAILURE_FRAME = p.frame(bytes((p.SSH_AGENT_FAILURE,)))

#: Request types a bridge may send again after a transport failure: repeating
#: them changes nothing in the agent (a sign request only signs once more; with
#: a ``maxsign`` key that spends one more of its signatures, with a confirm key
#: it asks the user again).
RETRYABLE = frozenset({p.SSH_AGENTC_REQUEST_IDENTITIES, p.SSH_AGENTC_SIGN_REQUEST,
                       p.SSH_AGENTC_REMOVE_ALL_IDENTITIES})
#: Extensions that are safe to repeat (session-bind: on a fresh upstream stream,
#: which has no binding yet).
RETRYABLE_EXTENSIONS = frozenset({"query", "session-bind@openssh.com"})
_SESSION_BIND = "session-bind@openssh.com"
_MAX_BACKOFF = 0.5


def _extension_name(request: bytes) -> str | None:
    """The name in a framed EXTENSION request, or None (not one, or malformed)."""
    if len(request) < 9 or request[4] != p.SSH_AGENTC_EXTENSION:
        return None
    length = int.from_bytes(request[5:9], "big")
    if 9 + length > len(request):
        return None
    return request[9:9 + length].decode("ascii", "replace")


def is_retryable(request: bytes) -> bool:
    """Whether a framed request may be re-sent after the upstream failed (see RETRYABLE)."""
    if len(request) < 5:
        return False
    if request[4] in RETRYABLE:
        return True
    return _extension_name(request) in RETRYABLE_EXTENSIONS


class _ClientGone(Exception):
    """The client closed its end or broke the protocol: stop serving it."""


class StreamServer:
    """Forwards one client's requests, message by message, to a lazily opened upstream."""

    def __init__(self, client: Transport, upstream: str | Endpoint, *,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
                 request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
                 connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
                 max_message: int = p.DEFAULT_MAX_MESSAGE,
                 opener: Callable[[str | Endpoint, float | None], Transport] | None = None,
                 name: str = "client", retries: int = 0) -> None:
        if retries < 0:
            raise ValueError("retries cannot be negative")
        self.client = client
        self.retries = retries
        self._binds: list[bytes] = []  # session-binds the agent accepted, to replay
        self.upstream_endpoint = upstream
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_message = max_message
        self.name = name
        self._opener = opener or (lambda ep, t: open_stream(ep, timeout=t))
        self._upstream: Transport | None = None
        self.requests = 0
        self.failures = 0
        self.retried = 0

    # --- the client side ---------------------------------------------------------------

    def _read_request(self) -> bytes | None:
        """The next framed request from the client, or None at a clean end of stream."""
        endpoint = self.client.endpoint
        try:
            header = self.client.recv_exact(4, self.idle_timeout)
        except AgentTimeoutError:
            raise _ClientGone(f"idle for {seconds(self.idle_timeout)}") from None
        except AgentError as exc:
            raise _ClientGone(exc.reason) from None
        if not header:
            return None
        if len(header) < 4:
            raise _ClientGone(f"closed after {len(header)} bytes of a message header")
        try:
            length = p.frame_length(header, self.max_message, endpoint)
        except AgentProtocolError as exc:
            raise _ClientGone(exc.reason.replace("agent message", "request")) from None
        try:
            body = self.client.recv_exact(length, self.request_timeout)
        except AgentError as exc:
            raise _ClientGone(f"while sending a {length}-byte request: {exc.reason}") from None
        if len(body) < length:
            raise _ClientGone(f"closed after {len(body)} of {length} request bytes")
        return header + body

    def _reply(self, data: bytes) -> None:
        try:
            self.client.send_all(data, self.request_timeout)
        except AgentError as exc:
            raise _ClientGone(f"cannot send the reply: {exc.reason}") from None

    # --- the upstream side -------------------------------------------------------------

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _open_upstream(self) -> Transport:
        upstream = self._opener(self.upstream_endpoint, self.connect_timeout)
        self._upstream = upstream
        for bind in self._binds:  # a fresh stream: tell the agent the host again
            reply = self._exchange(upstream, bind)
            if reply[4:5] != bytes((p.SSH_AGENT_SUCCESS,)):
                raise AgentConnectError("the agent refused the session-bind replayed on a "
                                        "new connection", endpoint=upstream.endpoint)
        return upstream

    def _forward(self, request: bytes) -> bytes:
        """The upstream agent's framed reply to `request`; AgentError if it fails."""
        upstream = self._upstream if self._upstream is not None else self._open_upstream()
        reply = self._exchange(upstream, request)
        if reply[4:5] == bytes((p.SSH_AGENT_SUCCESS,)) and \
                _extension_name(request) == _SESSION_BIND:
            self._binds.append(request)
        return reply

    def _exchange(self, upstream: Transport, request: bytes) -> bytes:
        endpoint = upstream.endpoint
        deadline = Deadline(self.request_timeout)
        upstream.send_all(request, deadline.remaining(endpoint))
        header = upstream.recv_exact(4, deadline.remaining(endpoint))
        if len(header) < 4:
            raise AgentProtocolError("the agent closed the connection without answering",
                                     endpoint=endpoint)
        length = p.frame_length(header, self.max_message, endpoint)
        body = upstream.recv_exact(length, deadline.remaining(endpoint))
        if len(body) < length:
            raise AgentProtocolError(f"the agent closed the connection mid-reply ({len(body)} "
                                     f"of {length} bytes)", endpoint=endpoint)
        return header + body

    def _answer(self, request: bytes) -> bytes:
        """The reply for the client: the agent's, or FAILURE once every attempt failed."""
        attempts = 1 + (self.retries if self.retries and is_retryable(request) else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._forward(request)
            except AgentError as exc:
                self._drop_upstream()
                if isinstance(exc, AgentTimeoutError):
                    what = (f"upstream hung: no answer within {seconds(self.request_timeout)}, "
                            f"connection cut")
                else:
                    what = f"upstream failed: {exc}"
                if attempt < attempts:
                    self.retried += 1
                    log.warning("%s: request type %d: %s; retrying (%d of %d)", self.name,
                                request[4], what, attempt, attempts - 1)
                    time.sleep(min(0.005 * 2 ** attempt, _MAX_BACKOFF))
                    continue
                self.failures += 1
                tried = f" after {attempts} attempts" if attempts > 1 else ""
                log.warning("%s: request type %d: %s; answered FAILURE%s", self.name,
                            request[4], what, tried)
        return FAILURE_FRAME

    # --- the loop ----------------------------------------------------------------------

    def serve(self) -> str:
        """Serve until the client leaves; returns why it ended (for the log line)."""
        try:
            while True:
                request = self._read_request()
                if request is None:
                    return "closed"
                self.requests += 1
                self._reply(self._answer(request))
        except _ClientGone as exc:
            return str(exc)
        finally:
            self._drop_upstream()
            self.client.close()


class Bridge:
    """Serves every client of `listeners` from the agent at `upstream`.

    `start` launches one accept thread per listener; `close` (any thread, or
    a signal handler via `request_stop`) stops accepting, removes socket files
    and disconnects clients.  `wait` blocks until then.  `retries`: how often a
    safe request is re-sent after an upstream failure (module docstring).
    """

    def __init__(self, listeners: Sequence[Listener], upstream: str | Endpoint, *,
                 max_clients: int = DEFAULT_MAX_CLIENTS,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
                 request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
                 connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
                 max_message: int = p.DEFAULT_MAX_MESSAGE, retries: int = 0) -> None:
        if max_clients < 1:
            raise ValueError("max_clients must be at least 1")
        self.retries = retries
        self.listeners = list(listeners)
        self.upstream = upstream
        self.max_clients = max_clients
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_message = max_message
        self._slots = threading.BoundedSemaphore(max_clients)
        self._lock = threading.Lock()
        self._clients: dict[int, Transport | PendingClient] = {}
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()
        self._closed = False
        self._started = False
        self._next_id = 0
        self.served = 0

    @property
    def active_clients(self) -> int:
        """Clients connected now, including those still waiting for the upstream agent
        (thread-safe).
        """
        with self._lock:
            return len(self._clients)

    def start(self) -> None:
        """Start one accept thread per listener and return at once.

        A bridge starts once (entering ``with`` starts it): a second call, or a call after
        `close`, raises SSHError and changes nothing.  Clients past `max_clients` are not
        accepted until a slot frees (they wait unserved).
        """
        with self._lock:
            if self._closed:
                raise SSHError("agent bridge: start() after close(); make a new Bridge")
            if self._started:
                raise SSHError("agent bridge: start() called twice; it is serving already")
            self._started = True
        for listener in self.listeners:
            thread = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True,
                                      name=f"agent-bridge-accept {listener.endpoint}")
            self._threads.append(thread)
            thread.start()
            log.info("listening on %s, forwarding to %s", listener.endpoint, self.upstream)

    def _accept_loop(self, listener: Listener) -> None:
        warned = False
        while not self._closed:
            if not self._slots.acquire(blocking=False):
                if not warned:
                    log.warning("%s: %d clients connected, the limit: new ones wait",
                                listener.endpoint, self.max_clients)
                    warned = True
                while not self._slots.acquire(timeout=0.5):
                    if self._closed:
                        return
            else:
                warned = False
            try:
                pending = listener.accept()
            except ListenerClosed:
                self._slots.release()
                return
            except AgentError as exc:
                self._slots.release()
                log.error("%s", exc)
                time.sleep(0.1)  # e.g. out of file descriptors: don't spin
                continue
            with self._lock:
                if self._closed:
                    pending.abort()
                    self._slots.release()
                    return
                self._next_id += 1
                client_id = self._next_id
                self._clients[client_id] = pending
            threading.Thread(target=self._serve_client, args=(listener, pending, client_id),
                             daemon=True, name=f"agent-bridge-client-{client_id}").start()

    def _serve_client(self, listener: Listener, pending: PendingClient, client_id: int) -> None:
        name = f"{listener.endpoint} client {client_id} ({pending.peer})"
        started = time.monotonic()
        server: StreamServer | None = None
        try:
            try:
                transport = pending.open(self.connect_timeout)
            except AgentError as exc:
                log.warning("%s: refused: %s", name, exc.reason)
                return
            except OSError as exc:
                log.warning("%s: refused: %s", name, exc)
                pending.abort()
                return
            with self._lock:
                if self._closed:
                    transport.close()
                    return
                self._clients[client_id] = transport
            server = StreamServer(transport, self.upstream, idle_timeout=self.idle_timeout,
                                  request_timeout=self.request_timeout,
                                  connect_timeout=self.connect_timeout,
                                  max_message=self.max_message, name=name,
                                  retries=self.retries)
            why = server.serve()
            log.info("%s: %d request(s) (%d answered FAILURE), %d retried, in %.2f s, "
                     "ended: %s", name, server.requests, server.failures, server.retried,
                     time.monotonic() - started, why)
        except Exception:  # never let one client take the bridge down
            log.exception("%s: unexpected error", name)
        finally:
            with self._lock:
                self._clients.pop(client_id, None)
                self.served += 1
            self._slots.release()

    def close(self) -> None:
        """Stop listening, remove socket files, disconnect every client (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients = list(self._clients.values())
        for listener in self.listeners:
            try:
                listener.close()
            except Exception:
                log.exception("closing %s", listener.endpoint)
        for client in clients:
            if isinstance(client, PendingClient):
                client.abort()
            else:
                client.close()
        for thread in self._threads:
            thread.join(5)
        self._stopped.set()
        log.info("bridge stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `close` has finished; False if `timeout` passed first."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Bridge:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FdTransport(BaseTransport):
    """A stream over two file descriptors (the relay's stdin and stdout).

    On POSIX, `recv` honours its timeout with select(); Windows cannot select
    on pipes, so there a read waits until data or end of input arrives (the
    relay has no idle timeout anyway).
    """

    def __init__(self, read_fd: int, write_fd: int, endpoint: str = "stdio") -> None:
        super().__init__(endpoint)
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._closed = False
        if sys.platform == "win32":  # no CRLF translation on the agent stream
            import msvcrt

            msvcrt.setmode(read_fd, os.O_BINARY)
            msvcrt.setmode(write_fd, os.O_BINARY)

    def send_all(self, data: bytes, timeout: float | None) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._write_fd, view):]
        except OSError as exc:
            raise AgentConnectError(f"writing failed: {exc.strerror or exc}",
                                    endpoint=self.endpoint) from None

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        if self._closed:
            return b""
        try:
            if timeout is not None and sys.platform != "win32":
                ready, _, _ = select.select([self._read_fd], [], [], timeout)
                if not ready:
                    raise AgentTimeoutError(f"nothing to read for {seconds(timeout)}",
                                            endpoint=self.endpoint)
            return os.read(self._read_fd, min(max_bytes, 65536))
        except OSError as exc:
            raise AgentConnectError(f"reading failed: {exc.strerror or exc}",
                                    endpoint=self.endpoint) from None

    def close(self) -> None:
        self._closed = True  # the descriptors belong to the process; it exits next
