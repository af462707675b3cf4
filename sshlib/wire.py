"""SSH wire data types (RFC 4251 section 5): reading and writing.

`Reader` raises `DecodeError` on any truncation so that no parser can read past
its input, and `check_end()` catches trailing garbage.
"""

from __future__ import annotations

import struct

from .errors import DecodeError

__all__ = [
    "Reader",
    "Writer",
    "string",
    "mpint",
    "uint32",
    "name_list",
    "boolean",
    "byte",
]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def uint32(value: int) -> bytes:
    """Encodes an unsigned 32-bit big-endian integer; `struct.error` if out of range."""
    return _U32.pack(value)


def uint64(value: int) -> bytes:
    """Encodes an unsigned 64-bit big-endian integer; `struct.error` if out of range."""
    return _U64.pack(value)


def byte(value: int) -> bytes:
    """Encodes one byte (0-255); `ValueError` otherwise."""
    return bytes((value,))


def boolean(value: bool) -> bytes:
    """Encodes an SSH boolean: 1 for true, 0 for false."""
    return b"\x01" if value else b"\x00"


def string(value: bytes | bytearray | memoryview | str) -> bytes:
    """Encodes an SSH string: a uint32 length, then the bytes (a `str` is sent as UTF-8)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _U32.pack(len(value)) + bytes(value)


def mpint(value: int) -> bytes:
    """Two's complement, big-endian, minimal length (RFC 4251 section 5)."""
    if value == 0:
        return b"\x00\x00\x00\x00"
    if value > 0:
        length = value.bit_length() // 8 + 1  # room for a clear sign bit
        raw = value.to_bytes(length, "big")
    else:
        length = (-value).bit_length() // 8 + 1
        raw = value.to_bytes(length, "big", signed=True)
    return _U32.pack(len(raw)) + raw


def name_list(names: list[str] | tuple[str, ...]) -> bytes:
    """Encodes a comma-separated name-list; names must be ASCII and contain no comma."""
    return string(",".join(names).encode("ascii"))


class Writer:
    """Accumulates an SSH message; methods chain."""

    __slots__ = ("_parts",)

    def __init__(self, first: bytes | int | None = None) -> None:
        self._parts: list[bytes] = []
        if isinstance(first, int):
            self._parts.append(bytes((first,)))
        elif first is not None:
            self._parts.append(first)

    def byte(self, value: int) -> Writer:
        """Appends one byte."""
        self._parts.append(bytes((value,)))
        return self

    def boolean(self, value: bool) -> Writer:
        """Appends an SSH boolean."""
        self._parts.append(b"\x01" if value else b"\x00")
        return self

    def uint32(self, value: int) -> Writer:
        """Appends a big-endian uint32."""
        self._parts.append(_U32.pack(value))
        return self

    def uint64(self, value: int) -> Writer:
        """Appends a big-endian uint64."""
        self._parts.append(_U64.pack(value))
        return self

    def string(self, value: bytes | bytearray | memoryview | str) -> Writer:
        """Appends a length-prefixed string (a `str` as UTF-8)."""
        self._parts.append(string(value))
        return self

    def mpint(self, value: int) -> Writer:
        """Appends an mpint (see `mpint()`)."""
        self._parts.append(mpint(value))
        return self

    def name_list(self, names: list[str] | tuple[str, ...]) -> Writer:
        """Appends a name-list."""
        self._parts.append(name_list(names))
        return self

    def raw(self, value: bytes) -> Writer:
        """Appends bytes as they are, with no length prefix."""
        self._parts.append(value)
        return self

    def getvalue(self) -> bytes:
        """The message so far, as one `bytes` (the writer can keep growing)."""
        return b"".join(self._parts)

    __bytes__ = getvalue


class Reader:
    """Reads SSH data types from a buffer, refusing to run past its end."""

    __slots__ = ("_data", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self._pos = pos
        self._end = len(self._data)

    @property
    def remaining(self) -> int:
        """Bytes not yet read."""
        return self._end - self._pos

    def _take(self, count: int) -> bytes:
        pos = self._pos
        end = pos + count
        if count < 0 or end > self._end:
            raise DecodeError(
                f"message truncated: wanted {count} bytes at offset {pos}, "
                f"{self._end - pos} left")
        self._pos = end
        return self._data[pos:end]

    def byte(self) -> int:
        """Reads one byte; `DecodeError` at the end of the buffer."""
        if self._pos >= self._end:
            raise DecodeError("message truncated: wanted a byte")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def boolean(self) -> bool:
        """Reads an SSH boolean (any non-zero byte is true, as RFC 4251 says)."""
        return self.byte() != 0

    def uint32(self) -> int:
        """Reads a big-endian uint32; `DecodeError` if fewer than 4 bytes are left."""
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def uint64(self) -> int:
        """Reads a big-endian uint64; `DecodeError` if fewer than 8 bytes are left."""
        value: int = _U64.unpack(self._take(8))[0]
        return value

    def string(self, max_length: int | None = None) -> bytes:
        """Reads a length-prefixed string.

        Raises `DecodeError` when the announced length runs past the buffer or over
        `max_length`, so a hostile length never makes a big allocation.
        """
        length = self.uint32()
        if max_length is not None and length > max_length:
            raise DecodeError(f"string of {length} bytes exceeds limit of {max_length}")
        return self._take(length)

    def text(self, max_length: int | None = None) -> str:
        """Reads a string and decodes it as UTF-8; `DecodeError` if it is not UTF-8."""
        raw = self.string(max_length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid UTF-8: {exc}") from None

    def mpint(self) -> int:
        """Reads an mpint (two's complement, big-endian); the empty string is 0."""
        raw = self.string()
        if not raw:
            return 0
        return int.from_bytes(raw, "big", signed=True)

    def name_list(self) -> list[str]:
        """Reads a name-list; `DecodeError` if it is not ASCII. Empty gives `[]`."""
        raw = self.string()
        if not raw:
            return []
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("name-list is not ASCII") from None
        return text.split(",")

    def raw(self, count: int) -> bytes:
        """Reads exactly `count` bytes; `DecodeError` if fewer are left."""
        return self._take(count)

    def rest(self) -> bytes:
        """Reads everything that is left (possibly nothing)."""
        return self._take(self._end - self._pos)

    def check_end(self) -> None:
        """Raises `DecodeError` if any byte is left unread: every parser ends with it."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} unexpected trailing bytes in message")
