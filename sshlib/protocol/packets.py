"""Binary packet framing (RFC 4253 section 6): sequence numbers and limits.

The actual sealing and opening is done by `sshlib.cipher`; this layer cuts the
incoming byte stream into packets, bounds their size before buffering the
body, tracks sequence numbers and counts bytes for rekeying.
"""

from __future__ import annotations

from ..cipher import (
    SEAL_OVERHEAD,
    PacketOpener,
    PacketSealer,
    plaintext_opener,
    plaintext_sealer,
)
from ..compression import SLACK as _COMPRESSION_SLACK
from ..errors import ProtocolError
from .rand import Random

#: Largest packet_length we accept (RFC 4253 requires >= 35000; OpenSSH uses 256 KiB).
MAX_PACKET_LENGTH = 256 * 1024
_SEQ_MASK = 0xFFFFFFFF
_EMPTY_VIEW = memoryview(b"")
#: Output buffer kept between flushes; one that grew past _OUT_KEEP is dropped after use.
#: It starts small (a connection that only runs a command needs a few KiB; at
#: 64 KiB, 1,000 idle fan-out connections held 60 MiB) and doubles as bulk sends need.
_OUT_INITIAL = 4 * 1024
_OUT_KEEP = 4 * 1024 * 1024
#: Room kept beyond each payload for sealing (and a compressed payload's growth).
_ROOM = SEAL_OVERHEAD + _COMPRESSION_SLACK


class PacketLayer:
    """Turns payloads into wire bytes and wire bytes into payloads.

    Incoming bytes are not copied into a reassembly buffer when they need not
    be: `feed` keeps the caller's bytes object and `next_payload` opens every
    packet that lies wholly inside it through a memoryview.  Only a packet cut
    by a read boundary is assembled in `_partial` (at most one packet, grown
    only as far as the packet needs).  The stream is ``_partial`` followed by
    ``_data[_pos:]``.

    Outgoing packets are sealed straight into one reused buffer, `_out`, up to
    `_out_pos`; `data_to_send` copies that out once.
    """

    def __init__(self, rng: Random) -> None:
        self._sealer: PacketSealer = plaintext_sealer(rng)
        self._opener: PacketOpener = plaintext_opener()
        self._rng = rng
        self.seq_out = 0
        self.seq_in = 0
        self._partial = bytearray()
        self._data = b""
        self._view = _EMPTY_VIEW  # of _data; bytes never resize, so it need not be released
        self._pos = 0
        self._pending_length = -1  # packet_length of the packet being assembled
        self._out = bytearray(_OUT_INITIAL)
        self._out_view = memoryview(self._out)
        self._out_pos = 0
        self._spare: bytearray | None = None  # the other buffer of data_to_send_view()
        self.bytes_in = 0  # since the last rekey
        self.bytes_out = 0
        self.packets_in = 0
        self.packets_out = 0
        self._bytes_in_before = 0  # wire bytes of the key sets before the current one
        self._bytes_out_before = 0

    # --- outgoing ---------------------------------------------------------
    def send(self, payload: bytes | memoryview, head: bytes = b"") -> None:
        """Seal `head` + `payload` into a packet with the current sealer and queue it (sequence
        number +1).  Passing a message's header as `head` spares joining it to the data first.
        """
        pos = self._out_pos
        need = pos + len(head) + len(payload) + _ROOM
        if need > len(self._out):
            self._grow(need)
        size = self._sealer.seal_into(self.seq_out, payload, self._out_view[pos:], head)
        self._out_pos = pos + size
        self.seq_out = (self.seq_out + 1) & _SEQ_MASK
        self.packets_out += 1
        self.bytes_out += size

    def _grow(self, need: int) -> None:
        out = bytearray(max(need, 2 * len(self._out)))
        out[:self._out_pos] = self._out_view[:self._out_pos]
        self._out_view.release()
        self._out = out
        self._out_view = memoryview(out)

    def data_to_send(self) -> bytes:
        """Take the queued wire bytes (b"" when none); the buffer is reused or shrunk afterwards."""
        pos = self._out_pos
        if not pos:
            return b""
        data = self._out_view[:pos].tobytes()
        self._out_pos = 0
        if len(self._out) > _OUT_KEEP:  # one big burst: don't hold on to its buffer
            self._out_view.release()
            self._out = bytearray(_OUT_INITIAL)
            self._out_view = memoryview(self._out)
        return data

    def data_to_send_view(self) -> memoryview:
        """As data_to_send(), without copying: a view of the output buffer itself.

        The view stays valid until the next data_to_send_view() call, when its
        buffer is reused: the caller must have sent it all by then (a sender that
        sends each batch to the end before taking the next, as the threaded
        front-end's does).
        """
        pos = self._out_pos
        if not pos:
            return _EMPTY_VIEW
        full = self._out
        self._out_view.release()
        spare = self._spare
        self._spare = full if len(full) <= _OUT_KEEP else None
        self._out = spare if spare is not None else bytearray(_OUT_INITIAL)
        self._out_view = memoryview(self._out)
        self._out_pos = 0
        return memoryview(full)[:pos]

    def has_data_to_send(self) -> bool:
        """True when packets are queued for `data_to_send()`."""
        return self._out_pos > 0

    @property
    def sealer(self) -> PacketSealer:
        """The protection applied to outgoing packets now."""
        return self._sealer

    @property
    def opener(self) -> PacketOpener:
        """The protection removed from incoming packets now."""
        return self._opener

    def set_sealer(self, sealer: PacketSealer, reset_seq: bool) -> None:
        """Protect outgoing packets with `sealer` from the next one on; `reset_seq` for strict KEX.
        """
        self._sealer = sealer
        if reset_seq:
            self.seq_out = 0

    # --- incoming ---------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Add bytes from the peer; `next_payload()` then cuts packets from them.

        A bytes object is kept by reference, not copied (other buffers are copied, as they
        could change).  Unread bytes from before stay in front, in order.
        """
        if not isinstance(data, bytes):  # we keep a reference: it must not change under us
            data = bytes(data)
        if self._pos < len(self._data):  # unread bytes left (processing paused): keep order
            self._partial += self._view[self._pos:]
        self._data = data
        self._view = memoryview(data)
        self._pos = 0

    def set_opener(self, opener: PacketOpener, reset_seq: bool) -> None:
        """Open incoming packets with `opener` from the next one on; `reset_seq` for strict KEX."""
        self._opener = opener
        if reset_seq:
            self.seq_in = 0

    def next_payload(self) -> tuple[int, bytes] | None:
        """The next complete packet as (sequence number, payload), or None."""
        opener = self._opener
        data = self._data
        pos = self._pos
        length = self._pending_length
        if not self._partial:
            # Fast path: the packet lies inside the last bytes object fed.
            avail = len(data) - pos
            if length < 0:
                head_size = opener.head_size
                if avail < head_size:
                    self._stash()
                    return None
                length = self._check_length(opener.packet_length(
                    self.seq_in, data[pos:pos + head_size]))
            total = 4 + length + opener.mac_size
            if avail < total:
                self._pending_length = length
                self._stash()
                return None
            seq = self.seq_in
            end = pos + total
            payload = opener.open(seq, self._view[pos:end])
            if end == len(data):
                self._drop_data()
            else:
                self._pos = end
        else:
            seq, total, payload = self._from_partial(opener, length)
            if total < 0:
                return None
        self._pending_length = -1
        self.seq_in = (seq + 1) & _SEQ_MASK
        self.packets_in += 1
        self.bytes_in += total
        return seq, payload

    def _check_length(self, length: int) -> int:
        if length > MAX_PACKET_LENGTH or length < 5:
            raise ProtocolError(f"bad packet length {length} (limit {MAX_PACKET_LENGTH})")
        return length

    def _stash(self) -> None:
        """Move the unread tail (less than one packet) into `_partial`."""
        if self._pos < len(self._data):
            self._partial += self._view[self._pos:]
        self._drop_data()

    def _drop_data(self) -> None:
        self._data = b""
        self._view = _EMPTY_VIEW
        self._pos = 0

    def _top_up(self, want: int) -> bool:
        """Move bytes from `_data` into `_partial` until it holds `want`; False if short."""
        buf = self._partial
        need = want - len(buf)
        if need > 0:
            pos = self._pos
            take = min(need, len(self._data) - pos)
            if take > 0:
                buf += self._view[pos:pos + take]
                self._pos = pos + take
                if self._pos == len(self._data):
                    self._drop_data()
        return len(buf) >= want

    def _from_partial(self, opener: PacketOpener, length: int) -> tuple[int, int, bytes]:
        """The packet that starts in `_partial`: (seq, wire size, payload), size -1 if short."""
        buf = self._partial
        if length < 0:
            head_size = opener.head_size
            if not self._top_up(head_size):
                return 0, -1, b""
            length = self._check_length(opener.packet_length(self.seq_in,
                                                             bytes(buf[:head_size])))
            self._pending_length = length
        total = 4 + length + opener.mac_size
        if not self._top_up(total):
            return 0, -1, b""
        seq = self.seq_in
        with memoryview(buf) as view:
            payload = opener.open(seq, view[:total])
        del buf[:total]
        return seq, total, payload

    @property
    def total_bytes_in(self) -> int:
        """Wire bytes of every packet received (the version line not included)."""
        return self._bytes_in_before + self.bytes_in

    @property
    def total_bytes_out(self) -> int:
        """Wire bytes of every packet queued to send (the version line not included)."""
        return self._bytes_out_before + self.bytes_out

    def reset_counters(self) -> None:
        """A key exchange finished: restart the per-key byte and packet counts (totals keep
        growing).
        """
        self._bytes_in_before += self.bytes_in
        self._bytes_out_before += self.bytes_out
        self.bytes_in = self.bytes_out = 0
        self.packets_in = self.packets_out = 0
