"""get/put between local files and an SFTP server, as operations both front-ends drive.

The SFTP protocol work stays in the sans-IO `sshlib.sftp` package; this module
adds the local side (files, directories, symlinks), so it does local file I/O
and nothing else: network traffic still goes through the Send/Wait commands
of `sshlib.sftp.ops`.

* A download keeps up to `Context.read_depth` READs in flight (ReadPlan) and
  writes each DATA reply straight into the local file, in file order, so an
  interrupted download always leaves a prefix of the remote file (what
  resume=True relies on).
* An upload reads each block into one preallocated buffer behind the WRITE
  header and sends it from there, with up to `Context.write_depth` WRITEs
  unacknowledged.
* Trees run `Context.parallel_files` files at once, multiplexed in one
  operation (`parallel`), not in threads.
"""

from __future__ import annotations

import os
import posixpath
import stat as _stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from io import FileIO
from typing import Any

from .errors import SFTPError, SFTPIsADirectoryError, SFTPNotADirectoryError
from .sftp import core as c
from .sftp.attrs import SFTPAttributes, SFTPName
from .sftp.core import SFTPCore
from .sftp.ops import (
    NOW,
    Context,
    Discard,
    Op,
    Parts,
    Send,
    Wait,
    WaitAny,
    _expect,
    call,
    check_status,
    close_handle,
    diagnose,
    download,
    isdir,
    makedirs,
    mkdir,
    one_name,
    scandir,
    send,
    stat,
    symlink,
)
from .sftp.policy import ProgressPacer, WritePlan

__all__ = ["get", "put", "parallel"]

LocalPath = str | os.PathLike[str]
ProgressCallback = Callable[[int, int], object]


def parallel(ops: Iterable[Op[Any]], limit: int) -> Op[None]:
    """Run operations concurrently, at most `limit` at a time, in one operation.

    Each waits for one reply at a time; their other commands pass straight
    through.  The first error stops the rest (they are closed) and is raised.
    """
    todo: Iterator[Op[Any]] = iter(ops)
    waiting: dict[int, Op[Any]] = {}
    running = 0

    def step(gen: Op[Any], value: Any) -> Op[bool]:
        """Advance `gen` until it waits (True) or finishes (False)."""
        while True:
            try:
                cmd = gen.send(value)
            except StopIteration:
                return False
            if isinstance(cmd, Wait):
                waiting[cmd.rid] = gen
                return True
            value = yield cmd

    try:
        while True:
            while running < limit:
                gen = next(todo, None)
                if gen is None:
                    break
                running += 1
                if not (yield from step(gen, None)):
                    running -= 1
            if not running:
                return
            reply: c.Reply = yield WaitAny(waiting.keys())
            gen = waiting.pop(reply.id)
            if not (yield from step(gen, reply)):
                running -= 1
    finally:
        for gen in waiting.values():
            try:
                gen.close()
            except RuntimeError:
                pass  # its cleanup wanted I/O; the front-end drops the replies


# --- downloads -------------------------------------------------------------------------------
class _InOrder:
    """Writes blocks to a local file strictly in file order (out-of-order ones wait)."""

    def __init__(self, fh: FileIO, start: int) -> None:
        self.fh = fh
        self.next = start
        self.held: dict[int, bytes | memoryview] = {}
        fh.seek(start)

    def write(self, offset: int, data: bytes | memoryview) -> None:
        if offset != self.next:
            self.held[offset] = data
            return
        self._put(data)
        while self.next in self.held:
            self._put(self.held.pop(self.next))

    def _put(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = self.fh.write(view)
            view = view[written:]
        self.next += len(data)


def get_file(ctx: Context, remote: str, local: LocalPath, attrs: SFTPAttributes,
             pacer: ProgressPacer, resume: bool, preserve: bool) -> Op[None]:
    size = attrs.st_size if attrs.st_size is not None else 1 << 62
    reply = yield from call(c.FXP_OPEN, remote, c.FXF_READ, SFTPAttributes())
    try:
        handle = _expect(reply, c.Handle, remote).handle
    except SFTPError as exc:
        raise (yield from diagnose(ctx, exc, "open", remote)) from None
    try:
        start = 0
        if resume and os.path.exists(local):
            start = os.path.getsize(local)
            if start > size:
                raise SFTPError(c.FX_FAILURE, f"cannot resume: the local file has {start} "
                                f"bytes, the remote one {size}", remote)
        pacer.done += start
        with open(local, "r+b" if start else "wb", buffering=0) as fh:
            writer = _InOrder(fh, start)
            end = yield from download(ctx, handle, start, size, writer.write, remote, pacer)
            if fh.seek(0, os.SEEK_END) > end:
                fh.truncate(end)
    finally:
        yield from close_handle(ctx, handle, wait=False)
    if preserve:
        _preserve_local(local, attrs)


def _preserve_local(local: LocalPath, attrs: SFTPAttributes) -> None:
    if attrs.st_atime is not None and attrs.st_mtime is not None:
        os.utime(local, (attrs.st_atime, attrs.st_mtime), follow_symlinks=False)
    if attrs.st_mode is not None and not _stat.S_ISLNK(attrs.st_mode):
        os.chmod(local, _stat.S_IMODE(attrs.st_mode))


def _remote_tree(ctx: Context, top: str) -> Op[list[tuple[str, SFTPName]]]:
    """Every entry under `top` as (path relative to top, entry), parents before children.
    The directories of each level are listed at once (`parallel`)."""
    found: list[tuple[str, SFTPName]] = []
    listings: dict[str, list[SFTPName]] = {}

    def listing(rel: str) -> Op[None]:
        listings[rel] = yield from scandir(ctx, posixpath.join(top, rel) if rel else top)
    level = [""]
    while level:
        yield from parallel((listing(rel) for rel in level), ctx.parallel_files)
        following: list[str] = []
        for rel in level:
            for entry in sorted(listings[rel], key=lambda e: e.filename):
                path = posixpath.join(rel, entry.filename) if rel else entry.filename
                found.append((path, entry))
                if entry.is_dir():
                    following.append(path)
        level = following
    return found


def get(ctx: Context, remote: str, local: LocalPath, progress: ProgressCallback | None,
        resume: bool, preserve: bool, recursive: bool) -> Op[None]:
    """The operation behind SFTPClient.get (a file, or a tree with recursive=True)."""
    attrs = yield from stat(ctx, remote)
    now = yield NOW
    if not attrs.is_dir():
        pacer = ProgressPacer(progress, attrs.st_size or 0, now)
        yield from get_file(ctx, remote, local, attrs, pacer, resume, preserve)
        pacer.finish()
        return
    if not recursive:
        raise SFTPIsADirectoryError(c.FX_FAILURE, "is a directory (use recursive=True)", remote)
    tree = yield from _remote_tree(ctx, remote)
    os.makedirs(local, exist_ok=True)
    files: list[tuple[str, str, SFTPAttributes]] = []
    dirs: list[tuple[str, SFTPAttributes]] = [(os.fspath(local), attrs)]
    for rel, entry in tree:
        rpath = posixpath.join(remote, rel)
        lpath = os.path.join(local, *rel.split("/"))
        if entry.is_dir():
            os.makedirs(lpath, exist_ok=True)
            dirs.append((lpath, entry.attrs))
        elif entry.is_symlink():
            target = yield from one_name(ctx, c.FXP_READLINK, rpath)
            if os.path.lexists(lpath):
                os.remove(lpath)
            os.symlink(target, lpath)
        else:
            files.append((rpath, lpath, entry.attrs))
    pacer = ProgressPacer(progress, sum(a.st_size or 0 for _, _, a in files), now)
    yield from parallel((get_file(ctx, r, lp, a, pacer, resume, preserve) for r, lp, a in files),
                        ctx.parallel_files)
    pacer.finish()
    if preserve:
        for lpath, dattrs in reversed(dirs):
            _preserve_local(lpath, dattrs)


# --- uploads ---------------------------------------------------------------------------------
def put_file(ctx: Context, local: LocalPath, remote: str, pacer: ProgressPacer, resume: bool,
             preserve: bool) -> Op[None]:
    info = os.stat(local)
    size = info.st_size
    start = 0
    flags = c.FXF_WRITE | c.FXF_CREAT | c.FXF_TRUNC
    if resume:
        try:
            rattrs = yield from stat(ctx, remote)
        except FileNotFoundError:
            pass
        else:
            start = rattrs.st_size or 0
            if start > size:
                raise SFTPError(c.FX_FAILURE, f"cannot resume: the remote file has {start} "
                                f"bytes, the local one {size}", remote)
            flags = c.FXF_WRITE | c.FXF_CREAT
    create = SFTPAttributes(st_mode=_stat.S_IMODE(info.st_mode)) if preserve else SFTPAttributes()
    reply = yield from call(c.FXP_OPEN, remote, flags, create)
    try:
        handle = _expect(reply, c.Handle, remote).handle
    except SFTPError as exc:
        raise (yield from diagnose(ctx, exc, "open", remote)) from None
    pacer.done += start
    closed = False
    try:
        with open(local, "rb", buffering=0) as fh:
            fh.seek(start)
            yield from _send_blocks(ctx, fh, handle, remote, WritePlan(
                start, size, ctx.block_size, ctx.write_depth), pacer)
        if preserve:
            times = SFTPAttributes(st_mode=_stat.S_IMODE(info.st_mode),
                                   st_atime=int(info.st_atime), st_mtime=int(info.st_mtime))
            check_status((yield from call(c.FXP_FSETSTAT, handle, times)), remote)
        closed = True
        yield from close_handle(ctx, handle, path=remote)
    finally:
        if not closed:
            yield from close_handle(ctx, handle, wait=False)


def _send_blocks(ctx: Context, fh: FileIO, handle: bytes, remote: str, plan: WritePlan,
                 pacer: ProgressPacer) -> Op[None]:
    head = SFTPCore.write_header_size(handle)
    buf = bytearray(head + min(plan.block, max(0, plan.end - plan.next_offset)))
    view = memoryview(buf)
    pending: deque[tuple[int, int]] = deque()
    try:
        while not plan.done:
            while (req := plan.next()) is not None:
                offset, length = req
                got = _read_into(fh, view[head:head + length])
                if got < length:
                    plan.shorten(offset + got)
                if not got:
                    plan.on_ack()
                    break

                def build(core: SFTPCore, offset: int = offset, got: int = got
                          ) -> tuple[int, Parts]:
                    rid, header = core.write_header(handle, offset, got)
                    view[:head] = header
                    return rid, (view[:head + got],)
                pending.append(((yield Send(build)), got))
            if pending:
                rid, count = pending.popleft()
                check_status((yield Wait(rid)), remote)
                plan.on_ack()
                pacer.add(count, (yield NOW))
    finally:
        for rid, _ in pending:
            yield Discard(rid)


def _read_into(fh: FileIO, view: memoryview) -> int:
    total = 0
    while total < len(view):
        got = fh.readinto(view[total:])
        if not got:
            break
        total += got
    return total


def put(ctx: Context, local: LocalPath, remote: str, progress: ProgressCallback | None,
        resume: bool, preserve: bool, recursive: bool) -> Op[None]:
    """The operation behind SFTPClient.put (a file, or a tree with recursive=True)."""
    now = yield NOW
    if not os.path.isdir(local):
        pacer = ProgressPacer(progress, os.path.getsize(local), now)
        yield from put_file(ctx, local, remote, pacer, resume, preserve)
        pacer.finish()
        return
    if not recursive:
        raise SFTPIsADirectoryError(c.FX_FAILURE, "is a directory (use recursive=True)",
                                    os.fspath(local))
    yield from makedirs(ctx, remote, exist_ok=True)
    files: list[tuple[str, str]] = []
    dirs: list[tuple[str, str]] = [(os.fspath(local), remote)]
    for top, dirnames, filenames in os.walk(local):
        rel = os.path.relpath(top, local)
        rtop = remote if rel == "." else posixpath.join(remote, *rel.split(os.sep))
        for name in sorted(dirnames) + sorted(filenames):
            lpath = os.path.join(top, name)
            rpath = posixpath.join(rtop, name)
            if os.path.islink(lpath):
                yield from _replace_symlink(ctx, os.readlink(lpath), rpath)
            elif name in dirnames:
                yield from _ensure_dir(ctx, rpath)  # its parent exists by now: one request
                dirs.append((lpath, rpath))
            else:
                files.append((lpath, rpath))
    pacer = ProgressPacer(progress, sum(os.path.getsize(lp) for lp, _ in files), now)
    yield from parallel((put_file(ctx, lp, rp, pacer, resume, preserve) for lp, rp in files),
                        ctx.parallel_files)
    pacer.finish()
    if preserve:
        for lpath, rpath in reversed(dirs):
            info = os.stat(lpath)
            attrs = SFTPAttributes(st_mode=_stat.S_IMODE(info.st_mode),
                                   st_atime=int(info.st_atime), st_mtime=int(info.st_mtime))
            check_status((yield from call(c.FXP_SETSTAT, rpath, attrs)), rpath)


def _ensure_dir(ctx: Context, path: str) -> Op[None]:
    try:
        yield from mkdir(ctx, path)
    except FileExistsError:
        if not (yield from isdir(ctx, path)):
            raise


def _replace_symlink(ctx: Context, target: str, rpath: str) -> Op[None]:
    reply = yield from call(c.FXP_LSTAT, rpath)
    if isinstance(reply, c.Attrs):
        if reply.attrs.is_dir():
            raise SFTPNotADirectoryError(c.FX_FAILURE, "a directory is in the symlink's way",
                                         rpath)
        rid = yield from send(c.FXP_REMOVE, rpath)
        check_status((yield Wait(rid)), rpath)
    yield from symlink(ctx, target, rpath)
