"""Every SFTP client operation as a sans-IO generator, shared by both front-ends.

An operation yields commands and gets their results sent back:

* ``Send(build)``: the front-end calls ``build(core)`` under its lock, which
  frames a request and returns ``(request id, parts)``; it sends the parts
  (in order, nothing between them) and sends back the id;
* ``Wait(rid)``: sends back the reply to request `rid`;
* ``WaitAny(rids)``: sends back the first reply to arrive for any of `rids`;
* ``Discard(rid)``: the reply to `rid` is not wanted (dropped on arrival);
* ``NOW``: sends back a monotonic clock reading (progress pacing).

The sync front-end drives a generator with blocking calls, the asyncio one
with awaits; the logic (error mapping, pipelining, buffering) lives here once.
"""

from __future__ import annotations

import io
import posixpath
from collections import deque
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import (
    SFTPError,
    SFTPFileExistsError,
    SFTPIsADirectoryError,
    SFTPNoSuchFileError,
    SFTPNotADirectoryError,
    SFTPProtocolError,
    SFTPUnsupportedError,
)
from . import core as c
from .attrs import SFTPAttributes, SFTPName, SFTPVFSAttributes
from .core import SFTPCore, decode_u64s, encode_u64, path_bytes, status_error
from .policy import (
    DEFAULT_REQUESTS,
    Limits,
    ProgressPacer,
    ReadPlan,
    choose_depth,
    glob_match,
    glob_parts,
    has_magic,
    join,
    open_flags,
)

T = TypeVar("T")
Parts = Sequence[bytes | bytearray | memoryview]


@dataclass(slots=True)
class Send:
    """Command: frame requests with build(core) under the front-end's lock and send the parts."""

    build: Callable[[SFTPCore], tuple[int, Parts]]


@dataclass(slots=True)
class Wait:
    """Command: wait for the reply to request `rid` (it is sent back)."""

    rid: int


@dataclass(slots=True)
class WaitAny:
    """Command: wait for the first reply to any of `rids` (it is sent back)."""

    rids: Collection[int]


@dataclass(slots=True)
class Discard:
    """Command: the reply to `rid` is not wanted; drop it when it arrives."""

    rid: int


class _Now:
    pass


NOW = _Now()
Cmd = Send | Wait | WaitAny | Discard | _Now
Op = Generator[Cmd, Any, T]

#: Servers that take SYMLINK's arguments in OpenSSH's (reversed) order, by SSH version string.
OPENSSH_SYMLINK_ORDER = ("OpenSSH", "paramiko")


@dataclass
class Context:
    """What operations need to know about one SFTP session (set up by `startup`)."""

    core: SFTPCore
    server_version: str = ""
    window: int = 2 * 1024 * 1024
    limits: Limits = field(default_factory=Limits)
    #: Requests kept in flight per transfer (see docs/sftp.md).
    max_requests: int = DEFAULT_REQUESTS
    #: Bytes per READ and WRITE request (from limits@openssh.com when offered).
    block_size: int = 0
    #: Files transferred at once by recursive get/put.
    parallel_files: int = 32

    @property
    def read_depth(self) -> int:
        """READs kept in flight: twice the channel window in blocks, within max_requests."""
        return choose_depth(self.block_size, self.window, self.max_requests)

    @property
    def write_depth(self) -> int:
        """WRITEs left unacknowledged at most (max_requests)."""
        return self.max_requests

    def openssh_symlink(self) -> bool:
        """True if the server takes SYMLINK's arguments in OpenSSH's reversed order."""
        return any(name in self.server_version for name in OPENSSH_SYMLINK_ORDER)


class Tuning:
    """The tuning knobs both front-ends' SFTPClient share (see docs/sftp.md)."""

    _ctx: Context

    @property
    def extensions(self) -> dict[str, bytes]:
        """Extensions the server announced (name -> version)."""
        return dict(self._ctx.core.extensions)

    @property
    def max_requests(self) -> int:
        """Requests kept in flight per transfer (64, like OpenSSH's sftp)."""
        return self._ctx.max_requests

    @max_requests.setter
    def max_requests(self, value: int) -> None:
        self._ctx.max_requests = max(1, value)

    @property
    def block_size(self) -> int:
        """Bytes per READ/WRITE request (from limits@openssh.com, else 32 KiB)."""
        return self._ctx.block_size

    @block_size.setter
    def block_size(self, value: int) -> None:
        self._ctx.block_size = max(512, value)

    @property
    def parallel_files(self) -> int:
        """Files recursive get/put move at once."""
        return self._ctx.parallel_files

    @parallel_files.setter
    def parallel_files(self, value: int) -> None:
        self._ctx.parallel_files = max(1, value)


# --- plumbing ----------------------------------------------------------------------------------
def _build(kind: int, fields: tuple[Any, ...]) -> Callable[[SFTPCore], tuple[int, Parts]]:
    def build(core: SFTPCore) -> tuple[int, Parts]:
        rid, packet = core.request(kind, *fields)
        return rid, (packet,)
    return build


def send(kind: int, *fields: Any) -> Op[int]:
    rid: int = yield Send(_build(kind, fields))
    return rid


def call(kind: int, *fields: Any) -> Op[c.Reply]:
    rid: int = yield Send(_build(kind, fields))
    reply: c.Reply = yield Wait(rid)
    return reply


def call_extended(name: str, *fields: Any, raw: bytes = b"") -> Op[c.Reply]:
    def build(core: SFTPCore) -> tuple[int, Parts]:
        rid, packet = core.extended(name, *fields, raw=raw)
        return rid, (packet,)
    rid: int = yield Send(build)
    reply: c.Reply = yield Wait(rid)
    return reply


def check_status(reply: c.Reply, path: str | None = None) -> None:
    """Raise unless `reply` is STATUS OK."""
    if isinstance(reply, c.Status):
        if reply.code != c.FX_OK:
            raise status_error(reply.code, reply.message, path)
        return
    raise SFTPProtocolError(f"expected a STATUS reply, got {type(reply).__name__}")


def _expect(reply: c.Reply, kind: type[T], path: str | None) -> T:
    if isinstance(reply, kind):
        return reply
    if isinstance(reply, c.Status):
        if reply.code == c.FX_OK:
            raise SFTPProtocolError(f"STATUS OK where a {kind.__name__} reply was due")
        raise status_error(reply.code, reply.message, path)
    raise SFTPProtocolError(f"expected {kind.__name__}, got {type(reply).__name__}")


def startup(ctx: Context) -> Op[None]:
    """After VERSION: ask for limits@openssh.com when offered and size the pipeline."""
    if ctx.core.has_extension("limits@openssh.com"):
        reply = yield from call_extended("limits@openssh.com")
        ctx.limits = Limits.decode(_expect(reply, c.ExtendedReply, None).payload)
        if ctx.limits.max_handles:
            ctx.parallel_files = max(1, min(ctx.parallel_files, ctx.limits.max_handles // 2))
    if not ctx.block_size:
        ctx.block_size = min(ctx.limits.read_block(), ctx.limits.write_block())


# --- error refinement ------------------------------------------------------------------------
def _kind(ctx: Context, path: str) -> Op[str]:
    """'missing', 'dir' or 'other' (for error diagnosis only; follows symlinks)."""
    reply = yield from call(c.FXP_STAT, path)
    if isinstance(reply, c.Attrs):
        return "dir" if reply.attrs.is_dir() else "other"
    return "missing"


def diagnose(ctx: Context, exc: SFTPError, op: str, path: str) -> Op[SFTPError]:
    """v3 servers say FAILURE or NO_SUCH_FILE for EEXIST, EISDIR and ENOTDIR: find out
    which by looking at the path and its parent (costs round trips only on errors)."""
    if type(exc) not in (SFTPError, SFTPNoSuchFileError):
        return exc
    kind = yield from _kind(ctx, path)
    parent = posixpath.dirname(path.rstrip("/"))
    parent_kind = (yield from _kind(ctx, parent)) if parent else "dir"
    cls: type[SFTPError] | None = None
    if parent_kind == "other":
        cls = SFTPNotADirectoryError
    elif isinstance(exc, SFTPNoSuchFileError):
        if op in ("listdir", "rmdir") and kind == "other":
            cls = SFTPNotADirectoryError
    elif op in ("mkdir", "symlink", "hardlink", "create") and kind != "missing":
        cls = SFTPFileExistsError
    elif op in ("remove", "open", "create") and kind == "dir":
        cls = SFTPIsADirectoryError
    elif op == "rmdir" and kind == "other":
        cls = SFTPNotADirectoryError
    if cls is None:
        return exc
    return cls(exc.code, exc.message, path)


def checked(ctx: Context, op: str, path: str, reply: c.Reply) -> Op[None]:
    try:
        check_status(reply, path)
    except SFTPError as exc:
        raise (yield from diagnose(ctx, exc, op, path)) from None


# --- path operations -----------------------------------------------------------------------------
def stat(ctx: Context, path: str, kind: int = c.FXP_STAT) -> Op[SFTPAttributes]:
    reply = yield from call(kind, path)
    try:
        return _expect(reply, c.Attrs, path).attrs
    except SFTPError as exc:
        raise (yield from diagnose(ctx, exc, "stat", path)) from None


def setstat(ctx: Context, path: str, attrs: SFTPAttributes) -> Op[None]:
    reply = yield from call(c.FXP_SETSTAT, path, attrs)
    check_status(reply, path)


def exists(ctx: Context, path: str, kind: int = c.FXP_STAT) -> Op[bool]:
    reply = yield from call(kind, path)
    if isinstance(reply, c.Status) and reply.code == c.FX_NO_SUCH_FILE:
        return False
    _expect(reply, c.Attrs, path)
    return True


def isdir(ctx: Context, path: str) -> Op[bool]:
    reply = yield from call(c.FXP_STAT, path)
    if isinstance(reply, c.Status) and reply.code == c.FX_NO_SUCH_FILE:
        return False
    return _expect(reply, c.Attrs, path).attrs.is_dir()


def scandir(ctx: Context, path: str) -> Op[list[SFTPName]]:
    """Every entry of directory `path` except . and .. (the whole listing is read first)."""
    reply = yield from call(c.FXP_OPENDIR, path)
    try:
        handle = _expect(reply, c.Handle, path).handle
    except SFTPError as exc:
        raise (yield from diagnose(ctx, exc, "listdir", path)) from None
    names: list[SFTPName] = []
    try:
        while True:
            reply = yield from call(c.FXP_READDIR, handle)
            if isinstance(reply, c.Status) and reply.code == c.FX_EOF:
                break
            names.extend(n for n in _expect(reply, c.Name, path).names
                          if n.filename not in (".", ".."))
    finally:
        rid = yield from send(c.FXP_CLOSE, handle)
        yield Discard(rid)
    return names


def mkdir(ctx: Context, path: str, mode: int = 0o777) -> Op[None]:
    reply = yield from call(c.FXP_MKDIR, path, SFTPAttributes(st_mode=mode))
    yield from checked(ctx, "mkdir", path, reply)


def makedirs(ctx: Context, path: str, mode: int = 0o777, exist_ok: bool = False) -> Op[None]:
    parts = [p for p in path.split("/") if p]
    current = "/" if path.startswith("/") else ""
    for i, part in enumerate(parts):
        current = join(current, part) if current != "/" else "/" + part
        kind = yield from _kind(ctx, current)
        if kind == "dir":
            if i == len(parts) - 1 and not exist_ok:
                raise SFTPFileExistsError(c.FX_FAILURE, "directory exists", current)
            continue
        if kind == "other":
            raise SFTPFileExistsError(c.FX_FAILURE, "exists and is not a directory", current)
        yield from mkdir(ctx, current, mode)


def simple(ctx: Context, op: str, kind: int, path: str, *more: Any) -> Op[None]:
    """rmdir, remove and the like: one request, a STATUS, errors diagnosed."""
    reply = yield from call(kind, path, *more)
    yield from checked(ctx, op, path, reply)


def rename(ctx: Context, old: str, new: str) -> Op[None]:
    if ctx.core.has_extension("posix-rename@openssh.com"):
        reply = yield from call_extended("posix-rename@openssh.com", old, new)
    else:
        reply = yield from call(c.FXP_RENAME, old, new)
    yield from checked(ctx, "rename", old, reply)


def symlink(ctx: Context, target: str, link: str) -> Op[None]:
    args = (target, link) if ctx.openssh_symlink() else (link, target)
    reply = yield from call(c.FXP_SYMLINK, *args)
    yield from checked(ctx, "symlink", link, reply)


def one_name(ctx: Context, kind: int, path: str) -> Op[str]:
    """READLINK and REALPATH: a NAME reply with exactly one entry."""
    if kind == c.FXP_REALPATH and path.startswith("~") and ctx.core.has_extension(
            "expand-path@openssh.com"):
        reply = yield from call_extended("expand-path@openssh.com", path)
    else:
        reply = yield from call(kind, path)
    names = _expect(reply, c.Name, path).names
    if len(names) != 1:
        raise SFTPProtocolError(f"expected one name in the reply, got {len(names)}")
    return names[0].filename


def _require(ctx: Context, name: str, version: bytes = b"1") -> None:
    if not ctx.core.has_extension(name, version):
        raise SFTPUnsupportedError(c.FX_OP_UNSUPPORTED, f"server does not offer {name}")


def statvfs(ctx: Context, path: str) -> Op[SFTPVFSAttributes]:
    _require(ctx, "statvfs@openssh.com", b"2")
    reply = yield from call_extended("statvfs@openssh.com", path)
    return SFTPVFSAttributes(*decode_u64s(_expect(reply, c.ExtendedReply, path).payload, 11))


def hardlink(ctx: Context, old: str, new: str) -> Op[None]:
    _require(ctx, "hardlink@openssh.com")
    reply = yield from call_extended("hardlink@openssh.com", old, new)
    yield from checked(ctx, "hardlink", new, reply)


def walk(ctx: Context, top: str) -> Op[list[tuple[str, list[str], list[str]]]]:
    """os.walk's triples, top-down; symlinks are listed with the files and never followed."""
    result: list[tuple[str, list[str], list[str]]] = []
    todo = [top]
    while todo:
        current = todo.pop(0)
        entries = yield from scandir(ctx, current)
        dirs = sorted(e.filename for e in entries if e.is_dir())
        files = sorted(e.filename for e in entries if not e.is_dir())
        result.append((current, dirs, files))
        todo[0:0] = [join(current, d) for d in dirs]
    return result


def glob(ctx: Context, pattern: str) -> Op[list[str]]:
    """Paths matching a shell pattern (`*`, `?`, `[...]` per component; no `**`)."""
    base, parts = glob_parts(pattern)
    if not parts:
        found = yield from exists(ctx, pattern, c.FXP_LSTAT)
        return [pattern] if found else []
    current = [base]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        following: list[str] = []
        for directory in current:
            if not has_magic(part):
                candidate = join(directory, part)
                if (yield from exists(ctx, candidate, c.FXP_LSTAT)):
                    following.append(candidate)
                continue
            try:
                entries = yield from scandir(ctx, directory or ".")
            except (FileNotFoundError, NotADirectoryError):
                continue
            following.extend(join(directory, e.filename) for e in entries
                             if glob_match(e.filename, part) and (last or e.is_dir()))
        current = following
    return sorted(current)


# --- open files ------------------------------------------------------------------------------
@dataclass
class FileState:
    """A remote file opened by open(): position, read-ahead and unsent write buffers."""

    path: str
    handle: bytes
    flags: int
    pos: int = 0
    rbuf: bytearray = field(default_factory=bytearray)
    wbuf: bytearray = field(default_factory=bytearray)
    wstart: int = 0
    pending: deque[int] = field(default_factory=deque)
    closed: bool = False

    @property
    def readable(self) -> bool:
        """True if the file was opened for reading."""
        return bool(self.flags & c.FXF_READ)

    @property
    def writable(self) -> bool:
        """True if the file was opened for writing."""
        return bool(self.flags & c.FXF_WRITE)


def open_file(ctx: Context, path: str, mode: str) -> Op[FileState]:
    flags = open_flags(mode)
    reply = yield from call(c.FXP_OPEN, path, flags, SFTPAttributes())
    try:
        handle = _expect(reply, c.Handle, path).handle
    except SFTPError as exc:
        op = "create" if flags & c.FXF_EXCL else "open"
        raise (yield from diagnose(ctx, exc, op, path)) from None
    state = FileState(path, handle, flags)
    if flags & (c.FXF_APPEND | c.FXF_READ):
        try:
            attrs = yield from fstat(ctx, state)
            if attrs.is_dir():
                raise SFTPIsADirectoryError(c.FX_FAILURE, "is a directory", path)
        except BaseException:
            yield from close_handle(ctx, handle, wait=False)
            raise
        if flags & c.FXF_APPEND:
            state.pos = attrs.st_size or 0
    return state


def close_handle(ctx: Context, handle: bytes, wait: bool = True, path: str | None = None
                 ) -> Op[None]:
    rid = yield from send(c.FXP_CLOSE, handle)
    if wait:
        check_status((yield Wait(rid)), path)
    else:
        yield Discard(rid)


def fstat(ctx: Context, st: FileState) -> Op[SFTPAttributes]:
    reply = yield from call(c.FXP_FSTAT, st.handle)
    return _expect(reply, c.Attrs, st.path).attrs


def download(ctx: Context, handle: bytes, start: int, end: int,
             sink: Callable[[int, bytes | memoryview], object], path: str | None = None,
             pacer: ProgressPacer | None = None) -> Op[int]:
    """Pipelined READs of [start, end), each DATA handed to sink(offset, data) as it
    arrives; returns where the file really ended (end, or earlier at EOF)."""
    plan = ReadPlan(start, end, ctx.block_size, ctx.read_depth)
    inflight: dict[int, tuple[int, int]] = {}
    try:
        while not plan.done:
            yield from issue_reads(plan, handle, inflight)
            rid = next(iter(inflight))
            reply = yield Wait(rid)
            off, asked = inflight.pop(rid)
            if isinstance(reply, c.Data):
                got = len(reply.data)
                plan.on_data(off, asked, got)
                sink(off, reply.data)
                if pacer is not None:
                    pacer.add(got, (yield NOW))
            elif isinstance(reply, c.Status) and reply.code == c.FX_EOF:
                plan.on_eof(off)
            else:
                _expect(reply, c.Data, path)
    finally:
        for rid in inflight:
            yield Discard(rid)
    return plan.end


def read_range(ctx: Context, handle: bytes, offset: int, length: int,
               path: str | None = None) -> Op[bytearray]:
    """Bytes [offset, offset+length) with pipelined READs into one preallocated buffer;
    shorter only if the file ends first."""
    buf = bytearray(length)

    def sink(off: int, data: bytes | memoryview) -> None:
        buf[off - offset:off - offset + len(data)] = data
    end = yield from download(ctx, handle, offset, offset + length, sink, path)
    del buf[end - offset:]
    return buf


def issue_reads(plan: ReadPlan, handle: bytes, inflight: dict[int, tuple[int, int]]) -> Op[None]:
    """Send every READ the plan allows now (one Send command, many packets)."""
    wanted: list[tuple[int, int]] = []
    while (req := plan.next()) is not None:
        wanted.append(req)
    if not wanted:
        return

    def build(core: SFTPCore) -> tuple[int, Parts]:
        parts = []
        for off, length in wanted:
            rid, packet = core.read(handle, off, length)
            inflight[rid] = (off, length)
            parts.append(packet)
        return -1, (b"".join(parts),)
    yield Send(build)


def _take(st: FileState, count: int) -> bytes:
    out = bytes(st.rbuf[:count])
    del st.rbuf[:count]
    st.pos += len(out)
    return out


def _readable(st: FileState) -> None:
    if st.closed:
        raise ValueError("I/O operation on closed SFTP file")
    if not st.readable:
        raise io.UnsupportedOperation("SFTP file not open for reading")


def file_read(ctx: Context, st: FileState, size: int = -1) -> Op[bytes]:
    _readable(st)
    yield from file_flush(ctx, st)
    if size < 0:
        attrs = yield from fstat(ctx, st)
        ahead = st.pos + len(st.rbuf)
        chunks = [_take(st, len(st.rbuf))]
        want = max((attrs.st_size or 0) - ahead, ctx.block_size)
        while True:
            data = yield from read_range(ctx, st.handle, ahead, want, st.path)
            chunks.append(bytes(data))
            st.pos += len(data)
            ahead += len(data)
            if len(data) < want:
                return b"".join(chunks)
            want = ctx.block_size
    if len(st.rbuf) < size:
        need = size - len(st.rbuf)
        ahead = st.pos + len(st.rbuf)
        if need >= ctx.block_size:
            data = yield from read_range(ctx, st.handle, ahead, need, st.path)
        else:
            data = yield from read_range(ctx, st.handle, ahead, ctx.block_size, st.path)
        st.rbuf += data
    return _take(st, size)


def file_readline(ctx: Context, st: FileState, limit: int = -1) -> Op[bytes]:
    _readable(st)
    yield from file_flush(ctx, st)
    start = 0
    while True:
        index = st.rbuf.find(b"\n", start)
        if index >= 0:
            end = index + 1
            break
        if 0 <= limit <= len(st.rbuf):
            end = limit
            break
        start = len(st.rbuf)
        data = yield from read_range(ctx, st.handle, st.pos + len(st.rbuf), ctx.block_size,
                                     st.path)
        if not data:
            end = len(st.rbuf)
            break
        st.rbuf += data
    if 0 <= limit < end:
        end = limit
    return _take(st, end)


def _send_write(st: FileState, offset: int, data: bytes | bytearray | memoryview) -> Op[int]:
    def build(core: SFTPCore) -> tuple[int, Parts]:
        rid, header = core.write_header(st.handle, offset, len(data))
        return rid, (header, data)
    rid: int = yield Send(build)
    return rid


def _ack_oldest(st: FileState) -> Op[None]:
    rid = st.pending.popleft()
    try:
        check_status((yield Wait(rid)), st.path)
    except BaseException:
        st.pending.clear()  # the front-end drops the rest of a failed operation's replies
        raise


def file_write(ctx: Context, st: FileState, data: bytes | bytearray | memoryview) -> Op[int]:
    """Buffer `data`; full blocks go out at once (big writes straight from `data`)."""
    if st.closed:
        raise ValueError("I/O operation on closed SFTP file")
    if not st.writable:
        raise io.UnsupportedOperation("SFTP file not open for writing")
    view = memoryview(data).cast("B")
    count = len(view)
    if st.rbuf:
        st.rbuf.clear()
    block = ctx.block_size
    if not st.wbuf:
        st.wstart = st.pos
    if st.wbuf and len(st.wbuf) + count >= block:
        fill = block - len(st.wbuf)
        st.wbuf += view[:fill]
        view = view[fill:]
        yield from _flush_block(ctx, st, st.wbuf)
        st.wbuf = bytearray()
    while len(view) >= block:
        yield from _flush_block(ctx, st, view[:block])
        view = view[block:]
    st.wbuf += view
    st.pos += count
    return count


def _flush_block(ctx: Context, st: FileState, data: bytes | bytearray | memoryview) -> Op[None]:
    st.pending.append((yield from _send_write(st, st.wstart, data)))
    st.wstart += len(data)
    while len(st.pending) >= ctx.write_depth:
        yield from _ack_oldest(st)


def file_flush(ctx: Context, st: FileState) -> Op[None]:
    """Send buffered writes and wait until the server acknowledged all of them."""
    if st.wbuf:
        data, st.wbuf = st.wbuf, bytearray()
        st.pending.append((yield from _send_write(st, st.wstart, data)))
        st.wstart += len(data)
    while st.pending:
        yield from _ack_oldest(st)


def file_seek(ctx: Context, st: FileState, offset: int, whence: int = 0) -> Op[int]:
    yield from file_flush(ctx, st)
    if whence == 0:
        target = offset
    elif whence == 1:
        target = st.pos + offset
    elif whence == 2:
        attrs = yield from fstat(ctx, st)
        target = (attrs.st_size or 0) + offset
    else:
        raise ValueError(f"invalid whence {whence}")
    if target < 0:
        raise ValueError("negative seek position")
    if target != st.pos:
        st.rbuf.clear()
        st.pos = target
    return target


def file_close(ctx: Context, st: FileState) -> Op[None]:
    if st.closed:
        return
    try:
        yield from file_flush(ctx, st)
    finally:
        st.closed = True
        yield from close_handle(ctx, st.handle, path=st.path)


def copy(ctx: Context, src: str, dst: str) -> Op[None]:
    """Server-side copy-data when offered, else read and write through this client."""
    s = yield from open_file(ctx, src, "rb")
    try:
        d = yield from open_file(ctx, dst, "wb")
        try:
            if ctx.core.has_extension("copy-data"):
                raw = (encode_u64(0) + encode_u64(0) + c.encode_string(d.handle) + encode_u64(0))
                reply = yield from call_extended("copy-data", s.handle, raw=raw)
                check_status(reply, dst)
            else:
                while True:
                    data = yield from read_range(ctx, s.handle, s.pos, 8 << 20, src)
                    s.pos += len(data)
                    yield from file_write(ctx, d, data)
                    if len(data) < 8 << 20:
                        break
        finally:
            yield from file_close(ctx, d)
    finally:
        yield from file_close(ctx, s)


__all__ = ["Context", "Send", "Wait", "WaitAny", "Discard", "NOW", "Op", "Cmd", "FileState",
           "path_bytes"]
