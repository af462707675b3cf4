"""Payload compression (RFC 4253 6.2, OpenSSH's zlib@openssh.com): a registry of methods.

A method compresses each packet's payload before it is sealed and inflates it
after it is opened.  The packet layer never sees compression: when a method is
active for a direction, the transport installs a `CompressingSealer` or
`DecompressingOpener` around that direction's cipher, so an uncompressed
connection runs exactly the code it ran before compression existed.

Both zlib methods keep one deflate stream per direction, flushed with
Z_PARTIAL_FLUSH after every packet (as OpenSSH does; any inflater decodes it).
``zlib`` starts with the first NEWKEYS, ``zlib@openssh.com`` ("delayed") only
once authentication has succeeded, so with the delayed method nothing an
unauthenticated peer sends is ever inflated (plain ``zlib``, which sshlib offers
second, inflates from the first encrypted packet; the bound below holds for both).
Like OpenSSH, every NEWKEYS (rekey) starts fresh streams.

Inflating is bounded: a payload that would inflate past `MAX_PAYLOAD` bytes
raises ProtocolError before more than that much memory is used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import algorithms as algs
from .cipher import SEAL_OVERHEAD, PacketOpener, PacketSealer
from .errors import ProtocolError

#: Largest payload we inflate: the largest packet we accept (OpenSSH: 256 KiB).
MAX_PAYLOAD = 256 * 1024
#: Extra bytes a compressed payload of up to 256 KiB may need beyond its input (zlib's
#: stored-block headers, ~5 per 16 KiB, the stream header and a flush marker); the
#: packet layer keeps this much room beyond SEAL_OVERHEAD for every packet.
SLACK = 128


class Deflater(Protocol):
    """One direction's compressor: payload in, compressed payload out."""

    def __call__(self, payload: bytes | memoryview) -> bytes: ...


class Inflater(Protocol):
    """One direction's decompressor; raises ProtocolError past `MAX_PAYLOAD`."""

    def __call__(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class Method:
    """A compression method: its name, when it starts, and its stream factories."""

    name: str
    #: True: start after USERAUTH_SUCCESS (zlib@openssh.com); False: at NEWKEYS.
    delayed: bool
    new_deflater: Callable[[], Deflater]
    new_inflater: Callable[[], Inflater]


def _zlib_deflater() -> Deflater:
    stream = zlib.compressobj(6)
    compress, flush = stream.compress, stream.flush

    def deflate(payload: bytes | memoryview) -> bytes:
        return compress(payload) + flush(zlib.Z_PARTIAL_FLUSH)
    return deflate


def _zlib_inflater() -> Inflater:
    stream = zlib.decompressobj()
    limit = MAX_PAYLOAD

    def inflate(data: bytes) -> bytes:
        try:
            # One byte more than allowed tells "exactly at the limit" from "past it"
            # without ever producing more than limit + 1 bytes.
            out = stream.decompress(data, limit + 1)
        except zlib.error as exc:
            raise ProtocolError(f"compressed packet does not inflate: {exc}") from None
        if len(out) > limit or stream.unconsumed_tail:
            raise ProtocolError(f"compressed packet inflates past {limit} bytes "
                                "(a decompression bomb?)")
        if stream.eof:
            raise ProtocolError("the peer ended its compression stream")
        return out
    return inflate


#: Every method we implement, by name; "none" has no entry.
METHODS: dict[str, Method] = {
    algs.COMPRESSION_ZLIB_OPENSSH: Method(algs.COMPRESSION_ZLIB_OPENSSH, True,
                                          _zlib_deflater, _zlib_inflater),
    algs.COMPRESSION_ZLIB: Method(algs.COMPRESSION_ZLIB, False, _zlib_deflater, _zlib_inflater),
}


def method(name: str) -> Method | None:
    """The method called `name`, None for "none"; KeyError for a name we do not know."""
    if name == algs.COMPRESSION_NONE:
        return None
    return METHODS[name]


class CompressingSealer:
    """A sealer that deflates each payload, then seals it with the wrapped cipher."""

    __slots__ = ("_deflate", "_inner")

    def __init__(self, inner: PacketSealer, deflate: Deflater) -> None:
        self._inner = inner
        self._deflate = deflate

    def seal(self, seq: int, payload: bytes) -> bytes:
        """Deflate `payload` (on this direction's one stream), then seal it; not thread-safe."""
        return self._inner.seal(seq, self._deflate(payload))

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        """As PacketSealer.seal_into; `out` needs ``len(payload) + SEAL_OVERHEAD + SLACK``."""
        packed = self._deflate(b"".join((head, payload)) if head else payload)
        if len(packed) + SEAL_OVERHEAD > len(out):  # only for payloads far past any limit
            raise ProtocolError(f"payload of {len(payload)} bytes is too large to send")
        return self._inner.seal_into(seq, packed, out)


class DecompressingOpener:
    """An opener that inflates each payload the wrapped cipher opens."""

    __slots__ = ("_inflate", "_inner", "head_size", "mac_size")

    def __init__(self, inner: PacketOpener, inflate: Inflater) -> None:
        self._inner = inner
        self._inflate = inflate
        self.head_size = inner.head_size
        self.mac_size = inner.mac_size

    def packet_length(self, seq: int, head: bytes) -> int:
        """As the wrapped opener's: the packet length from its first bytes (compression does not
        change framing).
        """
        return self._inner.packet_length(seq, head)

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        """Open the packet, then inflate its payload.

        ProtocolError if it does not inflate or would inflate past MAX_PAYLOAD (a decompression
        bomb); errors of the wrapped opener (a bad MAC) pass through.
        """
        return self._inflate(self._inner.open(seq, packet))


def offered(enabled: bool) -> list[str]:
    """The compression name-list for KEXINIT: ours in preference order, or only none."""
    if not enabled:
        return [algs.COMPRESSION_NONE]
    return [algs.COMPRESSION_ZLIB_OPENSSH, algs.COMPRESSION_ZLIB, algs.COMPRESSION_NONE]
