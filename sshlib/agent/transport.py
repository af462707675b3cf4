"""The byte-stream interface every agent channel provides, and the socket-based one.

An agent endpoint only has to move bytes: `send_all`, `recv`, `recv_exact`
and `close`, each bounded by a timeout.  The protocol and the client live
above this, so adding a channel (a Windows named pipe, Pageant's shared
memory window) means writing one small class in its own module.

Channels that are not streams (Pageant's WM_COPYDATA window answers one whole
message per call) subclass `MessageTransport`, which turns such an exchange
function into a stream, so the client and agent forwarding need no special case.

`max_in_flight` says how many requests a client may send on the stream
before the first is answered: 32 for sockets, pipes and relays (stream agents
answer in order), 1 (strictly one at a time) for `MessageTransport` and for
any transport that does not set it.

Errors: an expired timeout is AgentTimeoutError, any OS-level failure
AgentConnectError; end of stream is *not* an error here (`recv` returns b"",
`recv_exact` returns short) because only the caller knows whether it came in
the middle of a reply.
"""

from __future__ import annotations

import abc
import socket
import threading
import time
import typing

from ..errors import AgentConnectError, AgentTimeoutError
from .protocol import DEFAULT_MAX_MESSAGE, frame_length

__all__ = [
    "seconds",
    "Transport",
    "BaseTransport",
    "SocketTransport",
    "MessageTransport",
    "Deadline",
    "MAX_IN_FLIGHT",
]

#: Requests a stream transport lets a client pipeline (Go's agent client uses 32 too).
MAX_IN_FLIGHT = 32

_RECV_CHUNK = 65536


def seconds(value: float | None) -> str:
    """A timeout for messages: 1.49971 -> "1.5 s", 30.0 -> "30 s"."""
    if value is None:
        return "forever"
    return f"{value:.2f}".rstrip("0").rstrip(".") + " s"


@typing.runtime_checkable
class Transport(typing.Protocol):
    """A connected byte stream to one agent.

    `timeout` is in seconds; None waits forever (callers in sshlib always pass
    one).  Implementations must allow one thread sending while another
    receives, and `close` from any thread must wake both.
    """

    @property
    def endpoint(self) -> str:
        """The endpoint string this stream was opened for (it appears in every error)."""
        ...

    def send_all(self, data: bytes, timeout: float | None) -> None:
        """Send every byte of `data`, or raise."""
        ...

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to `max_bytes` bytes as soon as any arrive; b"" at end of stream."""
        ...

    def recv_exact(self, count: int, timeout: float | None) -> bytes:
        """Exactly `count` bytes, or fewer only if the stream ended first."""
        ...

    def close(self) -> None:
        """Release the stream (idempotent); blocked calls in other threads end."""
        ...


class Deadline:
    """A point in time several operations share, so one timeout bounds a whole request."""

    __slots__ = ("_end", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        """Seconds left, never negative and never raising (None: unlimited)."""
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())

    def remaining(self, endpoint: str | None = None, what: str = "the agent") -> float | None:
        """Seconds left (None: unlimited); AgentTimeoutError once it has passed."""
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise AgentTimeoutError(f"timed out after {seconds(self.timeout)} waiting for {what}",
                                    endpoint=endpoint)
        return left


class BaseTransport(abc.ABC):
    """Shared `recv_exact` and endpoint bookkeeping for concrete transports.

    `max_in_flight` is 1 here: a subclass whose agent reads the stream
    sequentially (so answers in order) raises it.
    """

    max_in_flight: int = 1

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint

    @property
    def endpoint(self) -> str:
        """The endpoint string this stream was opened for (it appears in every error)."""
        return self._endpoint

    @abc.abstractmethod
    def send_all(self, data: bytes, timeout: float | None) -> None:
        """Sends every byte of `data` within `timeout` seconds.

        Raises `AgentTimeoutError` when time runs out and `AgentConnectError` when the
        stream is closed or broken; after either, what reached the agent is unknown.
        """

    @abc.abstractmethod
    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to `max_bytes` bytes as soon as any arrive; `b""` at the end of the stream.

        Raises `AgentTimeoutError` when nothing arrives within `timeout` seconds.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Releases the stream; idempotent, and from any thread it wakes blocked calls."""

    def recv_exact(self, count: int, timeout: float | None) -> bytes:
        """Exactly `count` bytes, or fewer only if the stream ended first.

        `timeout` bounds the whole read, not each piece: `AgentTimeoutError` when it runs out.
        """
        deadline = Deadline(timeout)
        parts: list[bytes] = []
        got = 0
        while got < count:
            chunk = self.recv(count - got, deadline.remaining(self._endpoint))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def __enter__(self) -> BaseTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._endpoint}>"


def _os_message(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class SocketTransport(BaseTransport):
    """A connected stream socket (AF_UNIX, TCP, AF_VSOCK, the Cygwin and libassuan bridges).

    Reads and writes go through two socket objects sharing one connection, so
    their timeouts are independent when one thread sends while another receives.
    Agents on sockets answer in order, so clients may pipeline.
    """

    max_in_flight = MAX_IN_FLIGHT

    def __init__(self, sock: socket.socket, endpoint: str) -> None:
        super().__init__(endpoint)
        self._rsock = sock
        self._wsock = sock.dup()
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (for select()-based relays)."""
        return self._rsock

    def _check_open(self) -> None:
        if self._closed:
            raise AgentConnectError("the connection is closed", endpoint=self._endpoint)

    def send_all(self, data: bytes, timeout: float | None) -> None:
        self._check_open()
        deadline = Deadline(timeout)
        view = memoryview(data)
        try:
            while view:
                self._wsock.settimeout(deadline.remaining(self._endpoint, "the agent to read"))
                sent = self._wsock.send(view)
                view = view[sent:]
        except TimeoutError:
            raise AgentTimeoutError(f"timed out after {seconds(timeout)} sending to the agent",
                                    endpoint=self._endpoint) from None
        except OSError as exc:
            raise AgentConnectError(f"sending to the agent failed: {_os_message(exc)}",
                                    endpoint=self._endpoint) from None

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        self._check_open()
        try:
            self._rsock.settimeout(timeout)
            return self._rsock.recv(min(max_bytes, _RECV_CHUNK))
        except TimeoutError:
            raise AgentTimeoutError(f"timed out after {seconds(timeout)} waiting for the agent",
                                    endpoint=self._endpoint) from None
        except OSError as exc:
            if self._closed:
                return b""
            raise AgentConnectError(f"reading from the agent failed: {_os_message(exc)}",
                                    endpoint=self._endpoint) from None

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._rsock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
        except OSError:
            pass
        self._wsock.close()
        self._rsock.close()


class MessageTransport(BaseTransport):
    """A stream over a channel that carries one whole request and reply per call.

    Subclasses implement `_exchange(request_frame, timeout) -> reply_frame`.
    Bytes sent are buffered until they form a complete frame; then the
    exchange runs in the sending thread and the reply becomes readable, so a
    reader thread (as agent forwarding uses) simply waits for it.  One request
    at a time (`max_in_flight` 1): `send_all` returns only once it is answered.
    """

    max_in_flight = 1

    def __init__(self, endpoint: str, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        super().__init__(endpoint)
        self.max_message = max_message
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False

    @abc.abstractmethod
    def _exchange(self, request: bytes, timeout: float | None) -> bytes:
        """Deliver one framed request and return the framed reply."""

    def _release(self) -> None:
        """Free channel resources; called once by close()."""

    def send_all(self, data: bytes, timeout: float | None) -> None:
        deadline = Deadline(timeout)
        with self._send_lock:
            if self._closed:
                raise AgentConnectError("the connection is closed", endpoint=self._endpoint)
            self._outgoing += data
            while len(self._outgoing) >= 4:
                length = frame_length(bytes(self._outgoing[:4]), self.max_message,
                                      self._endpoint)
                if len(self._outgoing) < 4 + length:
                    break
                request = bytes(self._outgoing[:4 + length])
                del self._outgoing[:4 + length]
                reply = self._exchange(request, deadline.remaining(self._endpoint))
                with self._cond:
                    self._incoming += reply
                    self._cond.notify_all()

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        deadline = Deadline(timeout)
        with self._cond:
            while not self._incoming:
                if self._closed:
                    return b""
                self._cond.wait(deadline.remaining(self._endpoint))
            chunk = bytes(self._incoming[:max_bytes])
            del self._incoming[:max_bytes]
            return chunk

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._release()
