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
    return _U32.pack(value)


def uint64(value: int) -> bytes:
    return _U64.pack(value)


def byte(value: int) -> bytes:
    return bytes((value,))


def boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def string(value: bytes | bytearray | memoryview | str) -> bytes:
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
        self._parts.append(bytes((value,)))
        return self

    def boolean(self, value: bool) -> Writer:
        self._parts.append(b"\x01" if value else b"\x00")
        return self

    def uint32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def uint64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(value))
        return self

    def string(self, value: bytes | bytearray | memoryview | str) -> Writer:
        self._parts.append(string(value))
        return self

    def mpint(self, value: int) -> Writer:
        self._parts.append(mpint(value))
        return self

    def name_list(self, names: list[str] | tuple[str, ...]) -> Writer:
        self._parts.append(name_list(names))
        return self

    def raw(self, value: bytes) -> Writer:
        self._parts.append(value)
        return self

    def getvalue(self) -> bytes:
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
        if self._pos >= self._end:
            raise DecodeError("message truncated: wanted a byte")
        value = self._data[self._pos]
        self._pos += 1
        return value

    def boolean(self) -> bool:
        return self.byte() != 0

    def uint32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def uint64(self) -> int:
        value: int = _U64.unpack(self._take(8))[0]
        return value

    def string(self, max_length: int | None = None) -> bytes:
        length = self.uint32()
        if max_length is not None and length > max_length:
            raise DecodeError(f"string of {length} bytes exceeds limit of {max_length}")
        return self._take(length)

    def text(self, max_length: int | None = None) -> str:
        raw = self.string(max_length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string is not valid UTF-8: {exc}") from None

    def mpint(self) -> int:
        raw = self.string()
        if not raw:
            return 0
        return int.from_bytes(raw, "big", signed=True)

    def name_list(self) -> list[str]:
        raw = self.string()
        if not raw:
            return []
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("name-list is not ASCII") from None
        return text.split(",")

    def raw(self, count: int) -> bytes:
        return self._take(count)

    def rest(self) -> bytes:
        return self._take(self._end - self._pos)

    def check_end(self) -> None:
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} unexpected trailing bytes in message")
