"""Channel multiplexing (RFC 4254): channel table, flow control, requests.

Flow control is explicit: incoming data only counts against the window we
advertised, and credit goes back (WINDOW_ADJUST) only when the front-end calls
`consume()` because the application actually read the data.  So a front-end's
buffer per channel can never exceed the window it advertised.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import messages as m
from ..errors import ChannelClosedError, DecodeError, ProtocolError
from ..wire import Reader, Writer, uint32
from .events import (
    ChannelClosed,
    ChannelDataReceived,
    ChannelEOFReceived,
    ChannelOpened,
    ChannelOpenFailed,
    ChannelOpenRequested,
    ChannelRequestReplied,
    ChannelWindowAdjusted,
    Event,
    ExitSignalReceived,
    ExitStatusReceived,
    GlobalRequestReplied,
)

log = logging.getLogger("sshlib.connection")

MAX_WINDOW = 0xFFFFFFFF
#: Credit goes back once the application read this fraction of the window (1/8: 256 KiB of
#: the default 2 MiB).  Half the window (what sshlib did before) leaves a quarter of it idle
#: on average: over a 20 ms round trip an SFTP get ran at 0.65x OpenSSH's throughput, with
#: 1/8 at 0.92x (OpenSSH's ssh sends credit after 3 packets); see docs/performance.md.
ADJUST_FRACTION = 8
RETIRED_KEEP = 4096  # closed channel ids remembered, so late messages for them are ignored
_DATA = m.MSG_CHANNEL_DATA
_EXT_DATA = m.MSG_CHANNEL_EXTENDED_DATA
# After the message number: uint32 recipient channel, [uint32 data type,] uint32 length.
_DATA_HEAD = struct.Struct(">II").unpack_from
_EXT_DATA_HEAD = struct.Struct(">III").unpack_from


@dataclass
class ChannelState:
    """What the core knows about one channel."""

    local_id: int
    kind: str
    local_window: int
    local_window_size: int
    local_max_packet: int
    remote_id: int = -1
    remote_window: int = 0
    remote_max_packet: int = 0
    open: bool = False
    eof_sent: bool = False
    eof_received: bool = False
    close_sent: bool = False
    close_received: bool = False
    unacknowledged: int = 0  # consumed bytes not yet returned as window
    pending_requests: deque[str] = field(default_factory=deque)


class Connection:
    """The ssh-connection service: our side of every channel and global request."""

    def __init__(self, send: Callable[[bytes], None], window_size: int, max_packet: int, *,
                 send_parts: Callable[[memoryview, bytes], None] | None = None) -> None:
        """`send` queues one payload; `send_parts(data, head)`, if given, queues the payload
        `head` + `data` without joining them first (channel data's hot path)."""
        self._send = send
        self._send_parts = send_parts
        self._window_size = window_size
        self._max_packet = max_packet
        self._channels: dict[int, ChannelState] = {}
        self._next_id = 0
        self._global_pending = 0
        # Who is waiting for each pending reply, oldest first: False for the front-end,
        # True for the core's own keepalives (their replies produce no event).
        self._global_internal: deque[bool] = deque()
        # Ids of channels closed both ways.  Some servers send a request reply (or more)
        # after their CHANNEL_CLOSE; OpenSSH ignores those, and so do we (a second
        # CHANNEL_CLOSE stays a protocol error).
        self._retired: dict[int, None] = {}

    # --- commands --------------------------------------------------------------
    def open_channel(self, kind: str, extra: bytes = b"") -> int:
        """Queue CHANNEL_OPEN for a channel of `kind` and return its local id.

        `extra` is the type-specific data (see sshlib.protocol.forwarding).  The answer comes
        as ChannelOpened or ChannelOpenFailed.
        """
        local_id = self._allocate_id()
        self._channels[local_id] = ChannelState(local_id, kind, self._window_size,
                                                self._window_size, self._max_packet)
        self._send(Writer(m.MSG_CHANNEL_OPEN).string(kind).uint32(local_id)
                   .uint32(self._window_size).uint32(self._max_packet).raw(extra).getvalue())
        return local_id

    def accept_channel(self, sender_channel: int, kind: str, initial_window: int,
                       max_packet: int) -> int:
        """Confirm a server-initiated channel (agent forwarding and the like)."""
        local_id = self._allocate_id()
        ch = ChannelState(local_id, kind, self._window_size, self._window_size, self._max_packet,
                          remote_id=sender_channel, remote_window=initial_window,
                          remote_max_packet=max_packet, open=True)
        self._channels[local_id] = ch
        self._send(Writer(m.MSG_CHANNEL_OPEN_CONFIRMATION).uint32(sender_channel)
                   .uint32(local_id).uint32(self._window_size).uint32(self._max_packet)
                   .getvalue())
        return local_id

    def reject_channel(self, sender_channel: int, reason: int, description: str) -> None:
        """Queue CHANNEL_OPEN_FAILURE for a server-opened channel (RFC 4254 reason code)."""
        self._send(Writer(m.MSG_CHANNEL_OPEN_FAILURE).uint32(sender_channel).uint32(reason)
                   .string(description).string("").getvalue())

    def send_data(self, channel: int, data: bytes | memoryview, stderr: bool = False) -> int:
        """Send as much of `data` as the peer's window allows; return how much was taken."""
        ch = self._usable(channel)
        if ch.eof_sent:
            raise ChannelClosedError("cannot send data after EOF")
        count = min(len(data), ch.remote_window)
        if count <= 0:
            return 0
        step = ch.remote_max_packet
        view = memoryview(data)[:count]
        head = (bytes((_EXT_DATA,)) + uint32(ch.remote_id) + uint32(m.EXTENDED_DATA_STDERR)
                if stderr else bytes((_DATA,)) + uint32(ch.remote_id))
        send_parts = self._send_parts
        for start in range(0, count, step):
            chunk = view[start:start + step]
            if send_parts is not None:
                send_parts(chunk, head + uint32(len(chunk)))
            else:
                self._send(b"".join((head, uint32(len(chunk)), chunk)))
        ch.remote_window -= count
        return count

    def window_available(self, channel: int) -> int:
        """Bytes the server's window lets us send on `channel` now; ChannelClosedError if it is not
        open.
        """
        return self._usable(channel).remote_window

    def consume(self, channel: int, count: int) -> None:
        """The application read `count` bytes: give the window back in batches (each an eighth
        of the window, ADJUST_FRACTION, or whatever is read once less than a packet is left)."""
        ch = self._channels.get(channel)
        if ch is None or ch.close_sent or ch.close_received:
            return
        ch.unacknowledged += count
        if ch.unacknowledged and (ch.unacknowledged >= ch.local_window_size // ADJUST_FRACTION
                                  or ch.local_window < ch.local_max_packet):
            grant = ch.unacknowledged
            ch.unacknowledged = 0
            self._grant(ch, grant)

    def set_window_size(self, channel: int, size: int) -> None:
        """Let the server send up to `size` bytes ahead of what was consumed on `channel`.

        A window can only grow (SSH has no way to take credit back): a smaller `size`
        changes nothing.  The extra credit goes out at once as a WINDOW_ADJUST.
        """
        if not 0 < size <= MAX_WINDOW:
            raise ValueError(f"window size {size} is outside 1..{MAX_WINDOW}")
        ch = self._channels.get(channel)
        if ch is None or not ch.open or ch.close_sent or ch.close_received:
            return
        grant = size - ch.local_window_size
        if grant <= 0:
            return
        ch.local_window_size = size
        self._grant(ch, grant)

    def _grant(self, ch: ChannelState, grant: int) -> None:
        """Give the server `grant` more bytes of window on `ch` (one WINDOW_ADJUST)."""
        ch.local_window += grant
        self._send(Writer(m.MSG_CHANNEL_WINDOW_ADJUST).uint32(ch.remote_id).uint32(grant)
                   .getvalue())

    def send_request(self, channel: int, request: str, payload: bytes = b"",
                     want_reply: bool = True) -> None:
        """Queue a CHANNEL_REQUEST; with `want_reply` the answer comes as ChannelRequestReplied.

        Replies are matched to requests in order.  ChannelClosedError if the channel is not open
        (or closing).
        """
        ch = self._usable(channel)
        if want_reply:
            ch.pending_requests.append(request)
        self._send(Writer(m.MSG_CHANNEL_REQUEST).uint32(ch.remote_id).string(request)
                   .boolean(want_reply).raw(payload).getvalue())

    def send_eof(self, channel: int) -> None:
        """Queue CHANNEL_EOF once; does nothing for a channel not open, already at EOF or closing.
        """
        ch = self._channels.get(channel)
        if ch is None or not ch.open or ch.eof_sent or ch.close_sent:
            return
        ch.eof_sent = True
        self._send(Writer(m.MSG_CHANNEL_EOF).uint32(ch.remote_id).getvalue())

    def close_channel(self, channel: int) -> None:
        """Queue CHANNEL_CLOSE once; does nothing for a channel unknown, not open yet or already
        closing.

        The channel is forgotten when the server's CHANNEL_CLOSE arrives (ChannelClosed).
        """
        ch = self._channels.get(channel)
        if ch is None or ch.close_sent or not ch.open:
            return
        ch.close_sent = True
        self._send(Writer(m.MSG_CHANNEL_CLOSE).uint32(ch.remote_id).getvalue())
        if ch.close_received:
            del self._channels[channel]

    def global_request(self, name: str, payload: bytes = b"", want_reply: bool = True, *,
                       internal: bool = False) -> None:
        """Queue a GLOBAL_REQUEST; with `want_reply` the answer comes as GlobalRequestReplied.

        Replies come in request order; the caller matches them by counting.  `internal`
        ones (keepalives) are answered to nobody.
        """
        if want_reply:
            self._global_pending += 1
            self._global_internal.append(internal)
        self._send(Writer(m.MSG_GLOBAL_REQUEST).string(name).boolean(want_reply).raw(payload)
                   .getvalue())

    def channel_ids(self) -> list[int]:
        """Local ids of the channels not yet closed both ways (opening ones included)."""
        return list(self._channels)

    # --- incoming --------------------------------------------------------------
    def handle(self, msg_type: int, payload: bytes) -> list[Event]:
        """Process one connection-layer message (numbers 80-127); returns the events it yields.

        Raises ProtocolError or DecodeError on a message that breaks the protocol (unknown
        channel, data beyond the window, a second CLOSE); the caller ends the connection.
        Messages for recently closed channels are ignored.
        """
        if msg_type == _DATA or msg_type == _EXT_DATA:
            return self._on_data(msg_type, payload)
        r = Reader(payload)
        r.byte()
        if (m.MSG_CHANNEL_OPEN_CONFIRMATION <= msg_type <= m.MSG_CHANNEL_FAILURE
                and msg_type != m.MSG_CHANNEL_CLOSE and self._is_retired(payload)):
            return []
        if msg_type == m.MSG_CHANNEL_WINDOW_ADJUST:
            ch = self._lookup(r.uint32())
            grant = r.uint32()
            r.check_end()
            if ch.remote_window + grant > MAX_WINDOW:
                raise ProtocolError("window adjust would make the send window exceed 2**32-1")
            ch.remote_window += grant
            return [ChannelWindowAdjusted(ch.local_id)]
        if msg_type == m.MSG_CHANNEL_OPEN_CONFIRMATION:
            ch = self._lookup(r.uint32(), opening=True)
            ch.remote_id = r.uint32()
            ch.remote_window = r.uint32()
            ch.remote_max_packet = r.uint32()
            if ch.remote_max_packet == 0:
                raise ProtocolError("server's maximum packet size for the channel is 0")
            ch.remote_max_packet = min(ch.remote_max_packet, 256 * 1024 - 1024)
            r.rest()  # channel-type specific data
            ch.open = True
            return [ChannelOpened(ch.local_id)]
        if msg_type == m.MSG_CHANNEL_OPEN_FAILURE:
            ch = self._lookup(r.uint32(), opening=True)
            reason = r.uint32()
            description = r.text()
            r.text()  # language
            r.check_end()
            del self._channels[ch.local_id]
            return [ChannelOpenFailed(ch.local_id, reason, description)]
        if msg_type == m.MSG_CHANNEL_EOF:
            ch = self._lookup(r.uint32())
            r.check_end()
            ch.eof_received = True
            return [ChannelEOFReceived(ch.local_id)]
        if msg_type == m.MSG_CHANNEL_CLOSE:
            ch = self._lookup(r.uint32())
            r.check_end()
            if ch.close_received:
                raise ProtocolError("second CHANNEL_CLOSE for one channel")
            ch.close_received = True
            if not ch.close_sent:
                ch.close_sent = True
                self._send(Writer(m.MSG_CHANNEL_CLOSE).uint32(ch.remote_id).getvalue())
            self._retire(ch.local_id)
            # Requests still waiting for a reply stay unanswered (the front-end sees the
            # close); a reply arriving later is ignored as a message for a closed channel.
            return [ChannelClosed(ch.local_id)]
        if msg_type == m.MSG_CHANNEL_REQUEST:
            return self._on_channel_request(r)
        if msg_type in (m.MSG_CHANNEL_SUCCESS, m.MSG_CHANNEL_FAILURE):
            ch = self._lookup(r.uint32())
            r.check_end()
            if not ch.pending_requests:
                raise ProtocolError("channel request reply with no request pending")
            name = ch.pending_requests.popleft()
            return [ChannelRequestReplied(ch.local_id, name, msg_type == m.MSG_CHANNEL_SUCCESS)]
        if msg_type == m.MSG_CHANNEL_OPEN:
            kind = r.text(256)
            sender = r.uint32()
            window = r.uint32()
            max_packet = r.uint32()
            return [ChannelOpenRequested(sender, kind, window, max_packet, r.rest())]
        if msg_type == m.MSG_GLOBAL_REQUEST:
            name = r.text(256)
            want_reply = r.boolean()
            log.debug("server global request %r (want_reply=%s): refusing", name, want_reply)
            if want_reply:
                self._send(bytes((m.MSG_REQUEST_FAILURE,)))
            return []
        if msg_type in (m.MSG_REQUEST_SUCCESS, m.MSG_REQUEST_FAILURE):
            if self._global_pending <= 0:
                raise ProtocolError("global request reply with no request pending")
            self._global_pending -= 1
            if self._global_internal.popleft():
                return []
            return [GlobalRequestReplied(msg_type == m.MSG_REQUEST_SUCCESS, r.rest())]
        raise ProtocolError(f"unexpected {m.name(msg_type)}")

    def _on_data(self, msg_type: int, payload: bytes) -> list[Event]:
        # Hot path (one call per 32 KiB packet): parse by hand instead of through Reader.
        size = len(payload)
        if msg_type == _DATA:
            if size < 9:
                raise DecodeError("truncated CHANNEL_DATA")
            channel, length = _DATA_HEAD(payload, 1)
            offset = 9
        else:
            if size < 13:
                raise DecodeError("truncated CHANNEL_EXTENDED_DATA")
            channel, data_type, length = _EXT_DATA_HEAD(payload, 1)
            offset = 13
        if length != size - offset:
            raise DecodeError("channel data length does not match the packet")
        ch = self._channels.get(channel)
        if ch is None and channel in self._retired:
            log.debug("ignoring %d bytes for closed channel %d", length, channel)
            return []
        if ch is None or not ch.open:
            ch = self._lookup(channel)  # raises the right ProtocolError
        if ch.eof_received:
            raise ProtocolError("channel data after EOF")
        if length > ch.local_window:
            raise ProtocolError(
                f"server sent {length} bytes with only {ch.local_window} bytes of window left")
        if length > ch.local_max_packet:
            raise ProtocolError(f"server sent {length} bytes, more than our maximum packet")
        ch.local_window -= length
        if msg_type == _DATA:
            return [ChannelDataReceived(ch.local_id, memoryview(payload)[9:], False)]
        if data_type != m.EXTENDED_DATA_STDERR:
            # Unknown extended data type: drop it, but keep the window honest.
            self.consume(ch.local_id, length)
            return []
        return [ChannelDataReceived(ch.local_id, memoryview(payload)[13:], True)]

    def _on_channel_request(self, r: Reader) -> list[Event]:
        ch = self._lookup(r.uint32())
        request = r.text(256)
        want_reply = r.boolean()
        events: list[Event] = []
        if request == "exit-status":
            status = r.uint32()
            r.check_end()
            events.append(ExitStatusReceived(ch.local_id, status))
        elif request == "exit-signal":
            signal = r.text(64)
            core = r.boolean()
            message = r.text(4096)
            r.text()  # language
            r.check_end()
            events.append(ExitSignalReceived(ch.local_id, signal, core, message))
        else:
            log.debug("refusing channel request %r on channel %d", request, ch.local_id)
            if want_reply:
                self._send(Writer(m.MSG_CHANNEL_FAILURE).uint32(ch.remote_id).getvalue())
            return []
        if want_reply:  # odd for exit-status, but answer politely
            self._send(Writer(m.MSG_CHANNEL_SUCCESS).uint32(ch.remote_id).getvalue())
        return events

    # --- helpers -----------------------------------------------------------------
    def _retire(self, channel: int) -> None:
        del self._channels[channel]
        self._retired[channel] = None
        if len(self._retired) > RETIRED_KEEP:
            del self._retired[next(iter(self._retired))]

    def _is_retired(self, payload: bytes) -> bool:
        if len(payload) < 5:
            return False
        channel = int.from_bytes(payload[1:5], "big")
        if channel in self._channels or channel not in self._retired:
            return False
        log.debug("ignoring %s for closed channel %d", m.name(payload[0]), channel)
        return True

    def _allocate_id(self) -> int:
        while self._next_id in self._channels:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        local_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return local_id

    def _lookup(self, channel: int, opening: bool = False) -> ChannelState:
        ch = self._channels.get(channel)
        if ch is None:
            raise ProtocolError(f"message for unknown channel {channel}")
        if opening == ch.open:
            state = "already open" if ch.open else "not open yet"
            raise ProtocolError(f"unexpected message for channel {channel}: {state}")
        return ch

    def _usable(self, channel: int) -> ChannelState:
        ch = self._channels.get(channel)
        if ch is None or not ch.open or ch.close_sent or ch.close_received:
            raise ChannelClosedError(f"channel {channel} is not open")
        return ch
