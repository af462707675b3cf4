"""FIFO request pipelining over one agent stream, shared by any number of threads.

The agent protocol has no request ids: replies come back in the order the
requests went out (OpenSSH's agent, and any agent that reads one stream
sequentially, answers that way).  So a `Pipeline` keeps the requests on the
wire in a queue and hands each reply to the oldest one, with up to
`max_in_flight` requests sent before the first is answered.  Latency between
client and agent (a WSL2 relay, a forwarded agent, a bridge) then costs one
round trip per batch instead of one per request.

How many requests a stream may have in flight is a property of the
transport: ``transport.max_in_flight`` (`SocketTransport` 32; 1, strictly one
at a time, for Pageant's window and for any transport that does not say).

No thread of its own: whichever waiting caller finds nobody reading becomes
the reader until its own reply is in, delivering replies to the others on
the way.  Bytes read stay in a `FrameDecoder`, so a reader that gives up at
its own deadline loses nothing; another caller carries on reading.

Failure rules:

- the oldest request on the wire not answered within its timeout, counted
  from when it became the oldest (the agent works on one request at a time),
  means the agent is hung: the stream is failed, and every waiter gets an
  AgentTimeoutError at once;
- a request whose caller's deadline passes before that is abandoned (its
  reply, when it comes, is dropped) and its caller gets AgentTimeoutError;
  the others carry on, as they did when requests waited on a lock;
- end of stream, a broken frame, a send that fails or a reply nobody asked
  for fail the stream: every waiter gets the error at once and every later
  request fails fast with the original reason.
"""

from __future__ import annotations

import collections
import threading

from ..errors import AgentConnectError, AgentError, AgentProtocolError, AgentTimeoutError
from . import protocol as p
from .transport import MAX_IN_FLIGHT, Deadline, Transport, seconds

__all__ = ["Pipeline", "MAX_IN_FLIGHT", "transport_max_in_flight"]

_READ_CHUNK = 65536


def transport_max_in_flight(transport: Transport) -> int:
    """What `transport` allows (its ``max_in_flight``), 1 if it does not say."""
    value = getattr(transport, "max_in_flight", 1)
    return value if isinstance(value, int) and value >= 1 else 1


class _Waiter:
    __slots__ = ("deadline", "head_deadline", "payload", "error", "abandoned", "done", "wake")

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        #: Set once it is the oldest request on the wire (the one the agent works on):
        #: its own deadline if it was sent to an idle stream, else a fresh one then.
        self.head_deadline: Deadline | None = None
        self.payload: bytes | None = None
        self.error: AgentError | None = None
        self.abandoned = False
        self.done = False
        self.wake = threading.Event()  # set when done, or when it is this waiter's turn to read


def _same_kind(exc: AgentError, endpoint: str, reason: str) -> AgentError:
    """A new exception of `exc`'s class (each waiter raises its own object)."""
    return type(exc)(reason, endpoint=endpoint)


class Pipeline:
    """One stream's in-flight requests; thread-safe (see the module docstring).

    `exchange(payload, deadline)` returns the reply payload or raises an
    AgentError subclass within the deadline.
    """

    def __init__(self, transport: Transport, *, max_in_flight: int, max_message: int) -> None:
        self.transport = transport
        self.endpoint = transport.endpoint
        self.max_in_flight = max(1, max_in_flight)
        self._decoder = p.FrameDecoder(max_message, self.endpoint)
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)  # a slot in the queue came free
        self._send_lock = threading.Lock()
        self._reading = False
        self.broken: AgentError | None = None
        #: The agent closed the stream, at a message boundary, instead of answering.
        self.hung_up = False

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (abandoned ones included)."""
        with self._lock:
            return len(self._queue)

    # --- failing ------------------------------------------------------------------------

    def fail(self, exc: AgentError) -> None:
        """Mark the stream unusable, fail every waiter at once, close the transport."""
        with self._lock:
            self._fail_locked(exc)
        self.transport.close()

    def _fail_locked(self, exc: AgentError) -> None:
        if self.broken is None:
            self.broken = exc
        waiters = list(self._queue)
        self._queue.clear()
        for index, waiter in enumerate(waiters):
            waiter.error = exc if index == 0 else _same_kind(
                exc, self.endpoint, f"{exc.reason} (an earlier request of {len(waiters)} "
                                    f"in flight)")
            waiter.done = True
            waiter.wake.set()
        self._space.notify_all()

    def _check_usable(self) -> None:
        if self.broken is not None:
            raise AgentConnectError(
                f"connection unusable after an earlier error: {self.broken.reason}",
                endpoint=self.endpoint)

    def _head_timeout(self, head: _Waiter) -> AgentTimeoutError:
        phase = "finish its reply" if self._decoder.pending else "answer"
        return AgentTimeoutError(f"timed out: the agent did not {phase} within "
                                 f"{seconds(head.deadline.timeout)}", endpoint=self.endpoint)

    def _head_overdue(self) -> _Waiter | None:
        """The oldest request if the agent has worked on it longer than its timeout."""
        if not self._queue:
            return None
        head = self._queue[0]
        if head.head_deadline is not None and head.head_deadline.left() == 0:
            return head
        return None

    def _give_up_locked(self, waiter: _Waiter) -> None:
        """`waiter`'s deadline passed unanswered: fail the stream if it is the oldest request
        and the agent has had all that time for it (hung), else abandon it alone."""
        if self._head_overdue() is waiter:
            self._fail_locked(self._head_timeout(waiter))
            return
        ahead = 0
        for other in self._queue:
            if other is waiter:
                break
            ahead += 1
        waiter.abandoned = True
        waiter.done = True
        timeout = seconds(waiter.deadline.timeout)
        waiter.error = AgentTimeoutError(
            f"timed out after {timeout} waiting for another request on this connection "
            f"({ahead} earlier unanswered)" if ahead else
            f"timed out after {timeout}: the agent was still busy with earlier requests "
            f"when it got to this one", endpoint=self.endpoint)
        if not self._reading:
            # It may have been woken to read next just as it gave up: pass that on.
            self._wake_next_reader()

    # --- the request --------------------------------------------------------------------

    def exchange(self, payload: bytes, deadline: Deadline) -> bytes:
        """Send `payload` and return the reply payload (framing removed)."""
        waiter = _Waiter(deadline)
        self._send(payload, waiter)
        self._wait(waiter)
        if waiter.error is not None:
            if self.broken is not None:
                self.transport.close()
            raise waiter.error
        assert waiter.payload is not None
        return waiter.payload

    def _slot_timeout(self, deadline: Deadline) -> AgentTimeoutError:
        return AgentTimeoutError(
            f"timed out after {seconds(deadline.timeout)} waiting for another request on "
            f"this connection ({len(self._queue)} unanswered)", endpoint=self.endpoint)

    def _send(self, payload: bytes, waiter: _Waiter) -> None:
        deadline = waiter.deadline
        left = deadline.left()
        if not self._send_lock.acquire(timeout=-1 if left is None else left):
            with self._lock:
                raise self._slot_timeout(deadline)
        try:
            with self._lock:
                while True:
                    self._check_usable()
                    if len(self._queue) < self.max_in_flight:
                        break
                    left = deadline.left()
                    if left == 0:
                        raise self._slot_timeout(deadline)
                    self._space.wait(left)
                if not self._queue:
                    waiter.head_deadline = deadline  # the agent starts on it at once
                self._queue.append(waiter)
            error: AgentError | None = None
            try:
                self.transport.send_all(p.frame(payload), deadline.remaining(self.endpoint))
            except AgentTimeoutError:
                # Part of a frame may be on the wire: the stream is out of step.
                error = AgentTimeoutError(f"timed out: the agent did not accept the request "
                                          f"within {seconds(deadline.timeout)}",
                                          endpoint=self.endpoint)
            except AgentError as exc:
                error = exc
            except OSError as exc:  # a third-party Transport that lets one through
                error = AgentConnectError(f"the connection failed: {exc}", endpoint=self.endpoint)
            if error is not None:
                self.fail(error)
        finally:
            self._send_lock.release()

    def _wait(self, waiter: _Waiter) -> None:
        """Until `waiter` is done: sleep while another thread reads, else read."""
        while True:
            with self._lock:
                if waiter.done:
                    return
                reader = not self._reading
                if reader:
                    self._reading = True
            if reader:
                try:
                    while not waiter.done:
                        self._read_once(waiter)
                finally:
                    self._hand_over()
                return
            if not waiter.wake.wait(waiter.deadline.left()):
                with self._lock:
                    if not waiter.done:
                        self._give_up_locked(waiter)
            waiter.wake.clear()

    def _hand_over(self) -> None:
        """Stop reading; wake the oldest live waiter to read next."""
        with self._lock:
            self._reading = False
            self._wake_next_reader()

    def _wake_next_reader(self) -> None:
        """Wake the oldest waiter still waiting (lock held): nobody reads for it otherwise."""
        for other in self._queue:
            if not other.done:
                other.wake.set()
                break

    def _read_once(self, waiter: _Waiter) -> None:
        """Read once and deliver the replies it completes (the caller is the only reader)."""
        with self._lock:
            if waiter.done:
                return
            head = self._queue[0]
            head_left = head.head_deadline.left() if head.head_deadline is not None else None
            limits = [t for t in (waiter.deadline.left(), head_left) if t is not None]
        timeout = min(limits) if limits else None
        try:
            if timeout is not None and timeout <= 0:
                raise AgentTimeoutError("deadline passed", endpoint=self.endpoint)
            data = self.transport.recv(_READ_CHUNK, timeout)
        except AgentTimeoutError:
            with self._lock:
                overdue = self._head_overdue()
                if overdue is not None:
                    self._fail_locked(self._head_timeout(overdue))
                elif not waiter.done and waiter.deadline.left() == 0:
                    self._give_up_locked(waiter)
            return
        except AgentError as exc:
            self.fail(exc)
            return
        except OSError as exc:
            self.fail(AgentConnectError(f"the connection failed: {exc}", endpoint=self.endpoint))
            return
        if self.broken is not None:  # failed (and closed) by another thread meanwhile
            return
        if not data:
            self.fail(self._end_of_stream())
            return
        try:
            replies = self._decoder.feed(data)
        except AgentProtocolError as exc:
            self.fail(exc)
            return
        with self._lock:
            for reply in replies:
                if not self._queue:
                    self._fail_locked(AgentProtocolError(
                        "the agent sent a reply nobody asked for", endpoint=self.endpoint))
                    return
                answered = self._queue.popleft()
                answered.payload = reply
                if not answered.abandoned:
                    answered.done = True
                    answered.wake.set()
                self._space.notify()
            if self._queue and self._queue[0].head_deadline is None:
                # Now the oldest: the agent gets its whole timeout for it from here.
                nxt = self._queue[0]
                nxt.head_deadline = Deadline(nxt.deadline.timeout)

    def _end_of_stream(self) -> AgentError:
        pending = self._decoder.pending
        expected = self._decoder.expected
        if pending == 0:
            self.hung_up = True
            return AgentConnectError("the agent closed the connection without answering",
                                     endpoint=self.endpoint)
        if expected is None:
            return AgentProtocolError(f"the agent closed the connection after {pending} bytes "
                                      f"of a reply", endpoint=self.endpoint)
        return AgentProtocolError(f"the agent closed the connection mid-reply: got "
                                  f"{pending - 4} of {expected} bytes", endpoint=self.endpoint)
