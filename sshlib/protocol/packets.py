"""Binary packet framing (RFC 4253 section 6): sequence numbers and limits.

The actual sealing and opening is done by `sshlib.cipher`; this layer cuts the
incoming byte stream into packets, bounds their size before buffering the
body, tracks sequence numbers and counts bytes for rekeying.
"""

from __future__ import annotations

from ..cipher import PacketOpener, PacketSealer, plaintext_opener, plaintext_sealer
from ..errors import ProtocolError
from .rand import Random

#: Largest packet_length we accept (RFC 4253 requires >= 35000; OpenSSH uses 256 KiB).
MAX_PACKET_LENGTH = 256 * 1024
_SEQ_MASK = 0xFFFFFFFF


class PacketLayer:
    """Turns payloads into wire bytes and wire bytes into payloads."""

    def __init__(self, rng: Random) -> None:
        self._sealer: PacketSealer = plaintext_sealer(rng)
        self._opener: PacketOpener = plaintext_opener()
        self._rng = rng
        self.seq_out = 0
        self.seq_in = 0
        self._inbuf = bytearray()
        self._pending_length = -1  # packet_length of the packet being assembled
        self._outbuf: list[bytes] = []
        self.bytes_in = 0  # since the last rekey
        self.bytes_out = 0
        self.packets_in = 0
        self.packets_out = 0

    # --- outgoing ---------------------------------------------------------
    def send(self, payload: bytes) -> None:
        wire = self._sealer.seal(self.seq_out, payload)
        self.seq_out = (self.seq_out + 1) & _SEQ_MASK
        self.packets_out += 1
        self.bytes_out += len(wire)
        self._outbuf.append(wire)

    def data_to_send(self) -> bytes:
        if not self._outbuf:
            return b""
        data = b"".join(self._outbuf) if len(self._outbuf) > 1 else self._outbuf[0]
        self._outbuf.clear()
        return data

    def has_data_to_send(self) -> bool:
        return bool(self._outbuf)

    def set_sealer(self, sealer: PacketSealer, reset_seq: bool) -> None:
        self._sealer = sealer
        if reset_seq:
            self.seq_out = 0

    # --- incoming ---------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._inbuf += data

    def set_opener(self, opener: PacketOpener, reset_seq: bool) -> None:
        self._opener = opener
        if reset_seq:
            self.seq_in = 0

    def next_payload(self) -> tuple[int, bytes] | None:
        """The next complete packet as (sequence number, payload), or None."""
        buf = self._inbuf
        opener = self._opener
        length = self._pending_length
        if length < 0:
            head_size = opener.head_size
            if len(buf) < head_size:
                return None
            length = opener.packet_length(self.seq_in, bytes(buf[:head_size]))
            if length > MAX_PACKET_LENGTH or length < 5:
                raise ProtocolError(f"bad packet length {length} (limit {MAX_PACKET_LENGTH})")
            self._pending_length = length
        total = 4 + length + opener.mac_size
        if len(buf) < total:
            return None
        seq = self.seq_in
        with memoryview(buf) as view:
            payload = opener.open(seq, view[:total])
        del buf[:total]
        self._pending_length = -1
        self.seq_in = (seq + 1) & _SEQ_MASK
        self.packets_in += 1
        self.bytes_in += total
        return seq, payload

    def reset_counters(self) -> None:
        self.bytes_in = self.bytes_out = 0
        self.packets_in = self.packets_out = 0
