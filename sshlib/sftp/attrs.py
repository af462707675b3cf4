"""SFTP v3 file attributes (draft-ietf-secsh-filexfer-02 section 5) and directory entries."""

from __future__ import annotations

import stat as _stat
import struct
from dataclasses import dataclass, field

from ..errors import SFTPProtocolError

__all__ = ["SFTPAttributes", "SFTPName", "SFTPVFSAttributes", "decode_attrs", "encode_attrs",
           "ATTR_SIZE", "ATTR_UIDGID", "ATTR_PERMISSIONS", "ATTR_ACMODTIME", "ATTR_EXTENDED"]

ATTR_SIZE = 0x00000001
ATTR_UIDGID = 0x00000002
ATTR_PERMISSIONS = 0x00000004
ATTR_ACMODTIME = 0x00000008
ATTR_EXTENDED = 0x80000000

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_2U32 = struct.Struct(">II")
#: At most this many extended attribute pairs per ATTRS (bounded by the packet anyway).
MAX_EXTENDED = 1024


@dataclass
class SFTPAttributes:
    """File attributes, shaped like os.stat_result: a field is None when the server left it out.

    Pass one to setstat() with only the fields to change set.
    """

    st_size: int | None = None
    st_uid: int | None = None
    st_gid: int | None = None
    st_mode: int | None = None
    st_atime: int | None = None
    st_mtime: int | None = None
    extended: list[tuple[bytes, bytes]] = field(default_factory=list)

    def is_dir(self) -> bool:
        """True if st_mode says directory (False when the mode is unknown)."""
        return self.st_mode is not None and _stat.S_ISDIR(self.st_mode)

    def is_file(self) -> bool:
        """True if st_mode says regular file (False when the mode is unknown)."""
        return self.st_mode is not None and _stat.S_ISREG(self.st_mode)

    def is_symlink(self) -> bool:
        """True if st_mode says symlink (only lstat() and directory listings can say so)."""
        return self.st_mode is not None and _stat.S_ISLNK(self.st_mode)


@dataclass(frozen=True)
class SFTPName:
    """One directory entry (scandir, readdir, realpath): name, `ls -l` style line, attributes."""

    filename: str
    longname: str
    attrs: SFTPAttributes

    def is_dir(self) -> bool:
        """True if the entry is a directory (listings do not follow symlinks)."""
        return self.attrs.is_dir()

    def is_file(self) -> bool:
        """True if the entry is a regular file."""
        return self.attrs.is_file()

    def is_symlink(self) -> bool:
        """True if the entry is a symlink."""
        return self.attrs.is_symlink()


@dataclass(frozen=True)
class SFTPVFSAttributes:
    """statvfs@openssh.com: the fields of POSIX statvfs(3)."""

    f_bsize: int
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int
    f_favail: int
    f_fsid: int
    f_flag: int
    f_namemax: int


def encode_attrs(attrs: SFTPAttributes | None) -> bytes:
    """ATTRS on the wire; uid and gid (and atime and mtime) go together, as v3 requires."""
    if attrs is None:
        return b"\0\0\0\0"
    flags = 0
    parts: list[bytes] = []
    if attrs.st_size is not None:
        flags |= ATTR_SIZE
        parts.append(_U64.pack(attrs.st_size))
    if attrs.st_uid is not None or attrs.st_gid is not None:
        if attrs.st_uid is None or attrs.st_gid is None:
            raise ValueError("SFTP v3 sets uid and gid together: give both")
        flags |= ATTR_UIDGID
        parts.append(_2U32.pack(attrs.st_uid, attrs.st_gid))
    if attrs.st_mode is not None:
        flags |= ATTR_PERMISSIONS
        parts.append(_U32.pack(attrs.st_mode & 0xFFFFFFFF))
    if attrs.st_atime is not None or attrs.st_mtime is not None:
        if attrs.st_atime is None or attrs.st_mtime is None:
            raise ValueError("SFTP v3 sets atime and mtime together: give both")
        flags |= ATTR_ACMODTIME
        parts.append(_2U32.pack(int(attrs.st_atime) & 0xFFFFFFFF,
                                int(attrs.st_mtime) & 0xFFFFFFFF))
    if attrs.extended:
        flags |= ATTR_EXTENDED
        parts.append(_U32.pack(len(attrs.extended)))
        for name, value in attrs.extended:
            parts.append(_U32.pack(len(name)) + name + _U32.pack(len(value)) + value)
    return _U32.pack(flags) + b"".join(parts)


def _need(data: bytes | memoryview, pos: int, count: int) -> None:
    if pos + count > len(data):
        raise SFTPProtocolError(f"ATTRS truncated: wanted {count} bytes at offset {pos}")


def _string(data: bytes | memoryview, pos: int) -> tuple[bytes, int]:
    _need(data, pos, 4)
    (length,) = _U32.unpack_from(data, pos)
    pos += 4
    _need(data, pos, length)
    return bytes(data[pos:pos + length]), pos + length


def decode_attrs(data: bytes | memoryview, pos: int) -> tuple[SFTPAttributes, int]:
    """Parse ATTRS at `pos`; returns the attributes and the offset after them."""
    _need(data, pos, 4)
    (flags,) = _U32.unpack_from(data, pos)
    pos += 4
    attrs = SFTPAttributes()
    if flags & ATTR_SIZE:
        _need(data, pos, 8)
        (attrs.st_size,) = _U64.unpack_from(data, pos)
        pos += 8
    if flags & ATTR_UIDGID:
        _need(data, pos, 8)
        attrs.st_uid, attrs.st_gid = _2U32.unpack_from(data, pos)
        pos += 8
    if flags & ATTR_PERMISSIONS:
        _need(data, pos, 4)
        (attrs.st_mode,) = _U32.unpack_from(data, pos)
        pos += 4
    if flags & ATTR_ACMODTIME:
        _need(data, pos, 8)
        attrs.st_atime, attrs.st_mtime = _2U32.unpack_from(data, pos)
        pos += 8
    if flags & ATTR_EXTENDED:
        _need(data, pos, 4)
        (count,) = _U32.unpack_from(data, pos)
        pos += 4
        if count > MAX_EXTENDED or count * 8 > len(data) - pos:
            raise SFTPProtocolError(f"ATTRS claims {count} extended pairs; the packet is shorter")
        for _ in range(count):
            name, pos = _string(data, pos)
            value, pos = _string(data, pos)
            attrs.extended.append((name, value))
    return attrs, pos
