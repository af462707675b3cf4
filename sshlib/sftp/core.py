"""The sans-IO SFTP v3 client core: bytes in, parsed replies out.

`SFTPCore` frames requests (``request()`` returns the id and the bytes to
send), negotiates the version and extensions, and turns the server's byte
stream into reply objects with ``feed()``.  It never does I/O and never
blocks.  Everything it accepts is bounded:

* a packet longer than ``max_packet`` is refused from its length field,
  before any of it is buffered;
* a DATA reply may not be longer than the READ it answers asked for
  (checked from the first 9 bytes, again before buffering);
* a reply must answer an outstanding request id, with a reply type that
  request can get (a HANDLE for an OPEN, DATA or STATUS for a READ, ...);
* a NAME reply's count is checked against the bytes left in the packet.

Any violation raises SFTPProtocolError and the core stays broken (every later
call raises it again): the front-end then fails every waiter and closes the
channel.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import (
    SFTPError,
    SFTPFileExistsError,
    SFTPIsADirectoryError,
    SFTPNoSuchFileError,
    SFTPNotADirectoryError,
    SFTPPermissionError,
    SFTPProtocolError,
    SFTPUnsupportedError,
)
from .attrs import SFTPAttributes, SFTPName, decode_attrs, encode_attrs

__all__ = ["SFTPCore", "Status", "Handle", "Data", "Name", "Attrs", "ExtendedReply", "Reply",
           "status_error", "STATUS_ERRORS"]

# --- packet types and status codes (filexfer-02 sections 3 and 7) ----------------------------
FXP_INIT, FXP_VERSION, FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 1, 2, 3, 4, 5, 6
FXP_LSTAT, FXP_FSTAT, FXP_SETSTAT, FXP_FSETSTAT, FXP_OPENDIR, FXP_READDIR = 7, 8, 9, 10, 11, 12
FXP_REMOVE, FXP_MKDIR, FXP_RMDIR, FXP_REALPATH, FXP_STAT, FXP_RENAME = 13, 14, 15, 16, 17, 18
FXP_READLINK, FXP_SYMLINK = 19, 20
FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 101, 102, 103, 104, 105
FXP_EXTENDED, FXP_EXTENDED_REPLY = 200, 201

FX_OK, FX_EOF, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, FX_FAILURE = 0, 1, 2, 3, 4
FX_BAD_MESSAGE, FX_NO_CONNECTION, FX_CONNECTION_LOST, FX_OP_UNSUPPORTED = 5, 6, 7, 8
# Codes from later drafts that some v3 servers send anyway.
FX_FILE_ALREADY_EXISTS, FX_NOT_A_DIRECTORY, FX_FILE_IS_A_DIRECTORY = 11, 19, 24

#: open() pflags
FXF_READ, FXF_WRITE, FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_EXCL = 1, 2, 4, 8, 0x10, 0x20

#: Status code -> exception class (a registry: add a code here, not a branch elsewhere).
STATUS_ERRORS: dict[int, type[SFTPError]] = {
    FX_NO_SUCH_FILE: SFTPNoSuchFileError,
    FX_PERMISSION_DENIED: SFTPPermissionError,
    FX_OP_UNSUPPORTED: SFTPUnsupportedError,
    FX_FILE_ALREADY_EXISTS: SFTPFileExistsError,
    FX_NOT_A_DIRECTORY: SFTPNotADirectoryError,
    FX_FILE_IS_A_DIRECTORY: SFTPIsADirectoryError,
}

#: Reply types each request type may get (besides STATUS, which any request may get).
_REPLIES: dict[int, int] = {
    FXP_OPEN: FXP_HANDLE, FXP_OPENDIR: FXP_HANDLE, FXP_READ: FXP_DATA,
    FXP_READDIR: FXP_NAME, FXP_REALPATH: FXP_NAME, FXP_READLINK: FXP_NAME,
    FXP_STAT: FXP_ATTRS, FXP_LSTAT: FXP_ATTRS, FXP_FSTAT: FXP_ATTRS,
}
#: Extended requests whose success is an EXTENDED_REPLY (others answer with STATUS or NAME).
EXTENDED_REPLIES: dict[str, int] = {
    "statvfs@openssh.com": FXP_EXTENDED_REPLY, "fstatvfs@openssh.com": FXP_EXTENDED_REPLY,
    "limits@openssh.com": FXP_EXTENDED_REPLY, "expand-path@openssh.com": FXP_NAME,
    "home-directory": FXP_NAME,
}

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">IBI")  # length, type, request id
_READ_TAIL = struct.Struct(">QI")
#: Smallest NAME entry: empty filename, empty longname, attrs with no flags.
_MIN_NAME_ENTRY = 12
#: Default bound on one incoming packet (OpenSSH's own limit is 256 KiB).
DEFAULT_MAX_PACKET = 1 << 20


def status_error(code: int, message: str, path: str | None = None) -> SFTPError:
    """The exception for a failed STATUS reply (FAILURE and unknown codes: plain SFTPError)."""
    return STATUS_ERRORS.get(code, SFTPError)(code, message, path)


# --- replies ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Status:
    """SSH_FXP_STATUS: `code` (SSH_FX_*) and the server's `message`."""

    id: int
    code: int
    message: str


@dataclass(slots=True)
class Handle:
    """SSH_FXP_HANDLE: the opaque handle of an opened file or directory."""

    id: int
    handle: bytes


@dataclass(slots=True)
class Data:
    """SSH_FXP_DATA: bytes read (a view into the fed chunk when that was immutable bytes)."""

    id: int
    data: memoryview | bytes


@dataclass(slots=True)
class Name:
    """SSH_FXP_NAME: directory entries (or the one name of REALPATH/READLINK)."""

    id: int
    names: list[SFTPName]


@dataclass(slots=True)
class Attrs:
    """SSH_FXP_ATTRS: the attributes of a STAT, LSTAT or FSTAT."""

    id: int
    attrs: SFTPAttributes


@dataclass(slots=True)
class ExtendedReply:
    """SSH_FXP_EXTENDED_REPLY: the raw payload of an extension's answer."""

    id: int
    payload: bytes


Reply = Status | Handle | Data | Name | Attrs | ExtendedReply


def _string(data: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 4 > end:
        raise SFTPProtocolError("SFTP packet truncated (string length)")
    (length,) = _U32.unpack_from(data, pos)
    pos += 4
    if length > end - pos:
        raise SFTPProtocolError(f"SFTP string of {length} bytes runs past its packet")
    return bytes(data[pos:pos + length]), pos + length


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def path_bytes(path: str | bytes) -> bytes:
    """Paths travel as UTF-8; undecodable local names round-trip via surrogateescape."""
    return path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape")


def encode_string(value: bytes | str) -> bytes:
    raw = path_bytes(value)
    return _U32.pack(len(raw)) + raw


class SFTPCore:
    """One SFTP v3 client conversation, without I/O (see the module docstring).

    Not thread-safe: front-ends call it under their own lock.
    """

    def __init__(self, *, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self.max_packet = max_packet
        self.version: int | None = None
        self.extensions: dict[str, bytes] = {}
        self._next_id = 0
        #: request id -> (reply type expected besides STATUS, max DATA length for a READ)
        self._pending: dict[int, tuple[int, int]] = {}
        self._buf = bytearray()
        self._broken: SFTPProtocolError | None = None
        #: Ids issued since the front-end last cleared this (it tracks who owns which).
        self.issued: list[int] = []

    # --- outgoing --------------------------------------------------------------------------
    def hello(self) -> bytes:
        """The INIT packet (version 3) to send first."""
        return _U32.pack(5) + bytes((FXP_INIT,)) + _U32.pack(3)

    def has_extension(self, name: str, version: bytes = b"1") -> bool:
        """True if the server's VERSION announced extension `name` at `version`."""
        return self.extensions.get(name) == version

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def _new_id(self, expect: int, max_data: int = 0) -> int:
        if self._broken is not None:
            raise self._broken
        if self.version is None:
            raise SFTPProtocolError("SFTP request before the server's VERSION")
        rid = self._next_id
        while rid in self._pending:  # after 2**32 requests, skip ids still in flight
            rid = (rid + 1) & 0xFFFFFFFF
        self._next_id = (rid + 1) & 0xFFFFFFFF
        self._pending[rid] = (expect, max_data)
        self.issued.append(rid)
        return rid

    def request(self, kind: int, *fields: bytes | str | int | SFTPAttributes) -> tuple[int, bytes]:
        """Frame request `kind` with `fields` (str/bytes -> string, int -> uint32,
        SFTPAttributes -> ATTRS); returns (request id, packet)."""
        rid = self._new_id(_REPLIES.get(kind, FXP_STATUS))
        return rid, self._frame(kind, rid, fields)

    def extended(self, name: str, *fields: bytes | str | int | SFTPAttributes,
                 raw: bytes = b"") -> tuple[int, bytes]:
        """An EXTENDED request (`raw` is appended after the fields, already encoded)."""
        rid = self._new_id(EXTENDED_REPLIES.get(name, FXP_STATUS))
        return rid, self._frame(FXP_EXTENDED, rid, (name, *fields), raw)

    def _frame(self, kind: int, rid: int, fields: Iterable[bytes | str | int | SFTPAttributes],
               raw: bytes = b"") -> bytes:
        parts = [bytes((kind,)), _U32.pack(rid)]
        for item in fields:
            if isinstance(item, int):
                parts.append(_U32.pack(item))
            elif isinstance(item, SFTPAttributes):
                parts.append(encode_attrs(item))
            else:
                parts.append(encode_string(item))
        parts.append(raw)
        body = b"".join(parts)
        return _U32.pack(len(body)) + body

    def read(self, handle: bytes, offset: int, length: int) -> tuple[int, bytes]:
        """A READ request; the DATA reply may not exceed `length`."""
        rid = self._new_id(FXP_DATA, length)
        body_len = 1 + 4 + 4 + len(handle) + 12
        return rid, (_HEAD.pack(body_len, FXP_READ, rid) + _U32.pack(len(handle)) + handle
                     + _READ_TAIL.pack(offset, length))

    def write_header(self, handle: bytes, offset: int, length: int) -> tuple[int, bytes]:
        """The bytes of a WRITE request up to its data: send the `length` data bytes right after."""
        rid = self._new_id(FXP_STATUS)
        body_len = 1 + 4 + 4 + len(handle) + 12 + length
        return rid, (_HEAD.pack(body_len, FXP_WRITE, rid) + _U32.pack(len(handle)) + handle
                     + _READ_TAIL.pack(offset, length))

    @staticmethod
    def write_header_size(handle: bytes) -> int:
        """Bytes of a WRITE request before its data, for a buffer that reserves room for it."""
        return 4 + 1 + 4 + 4 + len(handle) + 12

    def is_pending(self, rid: int) -> bool:
        """True while request `rid` has been sent and not answered."""
        return rid in self._pending

    # --- incoming --------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Reply]:
        """Take bytes from the server; return the replies they completed, in order."""
        if self._broken is not None:
            raise self._broken
        try:
            return self._feed(data)
        except SFTPProtocolError as exc:
            self._broken = exc
            self._buf.clear()
            raise

    def _feed(self, data: bytes) -> list[Reply]:
        replies: list[Reply] = []
        view = memoryview(data)
        if self._buf:  # finish the packet that straddled the last chunk: copy only it
            view = self._complete(view, replies)
            if self._buf:
                return replies
        used = self._parse(view, replies)  # the rest in place: DATA lent, not copied
        if used < len(view):
            self._buf += view[used:]
        return replies

    def _complete(self, view: memoryview, replies: list[Reply]) -> memoryview:
        """Move bytes from `view` into the partial packet; parse it once whole."""
        buf = self._buf
        if len(buf) < 4:
            take = min(4 - len(buf), len(view))
            buf += view[:take]
            view = view[take:]
            if len(buf) < 4:
                return view
        (length,) = _U32.unpack_from(buf, 0)
        if length > self.max_packet or length < 5:  # before buffering any of it
            raise SFTPProtocolError(f"SFTP packet length {length} outside 5..{self.max_packet}")
        take = min(4 + length - len(buf), len(view))
        if take > 0:
            buf += view[:take]
            view = view[take:]
        if len(buf) >= 4 + length or len(buf) >= 9:
            whole = memoryview(buf)
            try:
                used = self._parse(whole, replies)
            finally:
                whole.release()
            if used:
                buf.clear()
        return view

    def _parse(self, view: memoryview, replies: list[Reply]) -> int:
        """Parse every complete packet in `view`; return the bytes used.

        A view over immutable bytes lends DATA payloads without copying; a view
        over our own buffer has them copied out (the buffer changes after)."""
        pos = 0
        total = len(view)
        lend = view.readonly
        while total - pos >= 4:
            (length,) = _U32.unpack_from(view, pos)
            if length > self.max_packet or length < 5:
                raise SFTPProtocolError(
                    f"SFTP packet length {length} outside 5..{self.max_packet}")
            if self.version is None:
                if total - pos < 4 + length:
                    break
                self._version(view[pos + 4:pos + 4 + length])
                pos += 4 + length
                continue
            if total - pos >= 9:
                self._check_head(view, pos, length)
            if total - pos < 4 + length:
                break
            replies.append(self._reply(view, pos + 4, pos + 4 + length, lend))
            pos += 4 + length
        return pos

    def _check_head(self, view: memoryview, pos: int, length: int) -> None:
        _, kind, rid = _HEAD.unpack_from(view, pos)
        expect = self._pending.get(rid)
        if expect is None:
            raise SFTPProtocolError(f"SFTP reply (type {kind}) for request id {rid}, "
                                    "which is not outstanding")
        if kind != FXP_STATUS and kind != expect[0]:
            raise SFTPProtocolError(f"SFTP reply type {kind} to a request that expects "
                                    f"{expect[0]} or a STATUS")
        if kind == FXP_DATA and length > 9 + expect[1]:
            raise SFTPProtocolError(f"SFTP DATA reply of {length - 9} bytes to a READ of "
                                    f"{expect[1]}")

    def _version(self, body: memoryview) -> None:
        if body[0] != FXP_VERSION or len(body) < 5:
            raise SFTPProtocolError(f"expected SFTP VERSION, got packet type {body[0]}")
        (version,) = _U32.unpack_from(body, 1)
        if version != 3:
            raise SFTPProtocolError(f"server speaks SFTP version {version}; we speak 3")
        pos, end = 5, len(body)
        while pos < end:
            name, pos = _string(body, pos, end)
            value, pos = _string(body, pos, end)
            self.extensions[_text(name)] = value
        self.version = version

    def _reply(self, view: memoryview, pos: int, end: int, lend: bool) -> Reply:
        kind = view[pos]
        (rid,) = _U32.unpack_from(view, pos + 1)
        del self._pending[rid]  # _check_head made sure it is there
        pos += 5
        reply: Reply
        if kind == FXP_DATA:
            if pos + 4 > end:
                raise SFTPProtocolError("SFTP DATA truncated")
            (length,) = _U32.unpack_from(view, pos)
            if length != end - pos - 4:
                raise SFTPProtocolError("SFTP DATA length disagrees with its packet")
            chunk = view[pos + 4:end]
            return Data(rid, chunk if lend else bytes(chunk))
        if kind == FXP_STATUS:
            if pos + 4 > end:
                raise SFTPProtocolError("SFTP STATUS truncated")
            (code,) = _U32.unpack_from(view, pos)
            pos += 4
            message = b""
            if pos < end:  # v3 servers may leave out message and language tag
                message, pos = _string(view, pos, end)
                if pos < end:
                    _, pos = _string(view, pos, end)
            reply = Status(rid, code, _text(message))
        elif kind == FXP_HANDLE:
            handle, pos = _string(view, pos, end)
            if len(handle) > 256:
                raise SFTPProtocolError(f"SFTP handle of {len(handle)} bytes (limit 256)")
            reply = Handle(rid, handle)
        elif kind == FXP_NAME:
            reply, pos = self._names(rid, view, pos, end)
        elif kind == FXP_ATTRS:
            attrs, pos = decode_attrs(view[:end], pos)
            reply = Attrs(rid, attrs)
        elif kind == FXP_EXTENDED_REPLY:
            reply = ExtendedReply(rid, bytes(view[pos:end]))
            pos = end
        else:
            raise SFTPProtocolError(f"unknown SFTP reply type {kind}")
        if pos != end:
            raise SFTPProtocolError(f"{end - pos} trailing bytes in SFTP reply type {kind}")
        return reply

    def _names(self, rid: int, view: memoryview, pos: int, end: int) -> tuple[Name, int]:
        if pos + 4 > end:
            raise SFTPProtocolError("SFTP NAME truncated")
        (count,) = _U32.unpack_from(view, pos)
        pos += 4
        if count * _MIN_NAME_ENTRY > end - pos:
            raise SFTPProtocolError(f"SFTP NAME claims {count} entries in {end - pos} bytes")
        names = []
        bounded = view[:end]
        for _ in range(count):
            filename, pos = _string(view, pos, end)
            longname, pos = _string(view, pos, end)
            attrs, pos = decode_attrs(bounded, pos)
            names.append(SFTPName(_text(filename), _text(longname), attrs))
        return Name(rid, names), pos


def decode_u64s(payload: bytes, count: int) -> tuple[int, ...]:
    """`count` uint64 values (statvfs, limits replies); extra trailing fields are allowed."""
    if len(payload) < 8 * count:
        raise SFTPProtocolError(f"extended reply of {len(payload)} bytes; wanted {8 * count}")
    return struct.unpack_from(f">{count}Q", payload)


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)
