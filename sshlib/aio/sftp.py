"""SFTP on asyncio: the sync SFTPClient's names as coroutines.

    async with client.sftp(timeout=30) as sftp:
        await sftp.get("remote/file", "local/file")
        async with sftp.open("remote/file", "rb") as f:
            data = await f.read()

One reader task per SFTP session parses the channel and resolves the
futures of the waiting operations; the operations themselves are the
shared sans-IO generators of `sshlib.sftp.ops` and `sshlib.sftp_transfer`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import sftp_transfer as transfer
from ..errors import SFTPError, SSHError
from ..sftp import core as c
from ..sftp import ops
from ..sftp.attrs import SFTPAttributes, SFTPName, SFTPVFSAttributes
from ..sftp.core import Reply, SFTPCore
from ..sftp.policy import sftp_window
from .client import with_timeout

if TYPE_CHECKING:
    from .client import Client
    from .session import Session

__all__ = ["SFTPClient", "SFTPFile"]

log = logging.getLogger("sshlib.sftp")
T = TypeVar("T")
READ_SIZE = 1 << 22
LocalPath = str | os.PathLike[str]
Progress = Callable[[int, int], object]


async def _result(future: asyncio.Future[T]) -> T:
    return await asyncio.shield(future)


class SFTPClient(ops.Tuning):
    """An SFTP v3 session on asyncio; see sshlib.SFTPClient for the semantics of each call.

    `timeout` bounds every wait for the server, not a whole transfer.  Several
    tasks may use one SFTPClient at once.
    """

    def __init__(self, session: Session, *, timeout: float | None = 30,
                 server_version: str = "", window: int = 2 * 1024 * 1024) -> None:
        self._session = session
        self.timeout = timeout
        self._core = SFTPCore()
        self._ctx = ops.Context(self._core, server_version=server_version, window=window)
        self._send_lock = asyncio.Lock()
        self._unsent = False  # requests queued by _send() and not yet flushed
        self._replies: dict[int, Reply] = {}
        self._waiters: dict[int, asyncio.Future[Reply]] = {}
        self._discard: set[int] = set()
        self._error: BaseException | None = None
        self._reader: asyncio.Task[None] | None = None
        self._version: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, client: Client, timeout: float | None = 30) -> SFTPClient:
        """Open a session, start the "sftp" subsystem and negotiate (Client.sftp does this)."""
        return await cls.over_session(client.new_session(timeout), timeout,
                                      server_version=client.server_version,
                                      window=sftp_window(client.config.window_size))

    @classmethod
    async def over_session(cls, session: Session, timeout: float | None = 30, *,
                           server_version: str = "",
                           window: int = 2 * 1024 * 1024) -> SFTPClient:
        """Start the "sftp" subsystem on a new, unstarted `session` and negotiate.

        For sessions that do not come from a Client's new_session() (a ControlMaster's,
        sshlib.aio.mux); `window` bounds the bytes in flight (and is asked for as the
        session's receive window where the session has one of its own), `server_version`
        enables the server's known quirks.  The session is closed if starting fails.
        """
        try:
            await session.request_subsystem("sftp", timeout)
            await session.set_window_size(window, timeout)
            sftp = cls(session, timeout=timeout, server_version=server_version, window=window)
            await session.stdin.write(sftp._core.hello(), timeout)
            sftp._reader = asyncio.ensure_future(sftp._read_loop())
            try:
                await with_timeout(_result(sftp._version), timeout,
                                   "waiting for the SFTP server's VERSION")
                await sftp._drive(ops.startup(sftp._ctx))
            except BaseException:
                await sftp.close()
                raise
        except BaseException:
            await session.close()
            raise
        return sftp

    # --- the reader task ---------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while self._error is None:
                data = await self._session.stdout.read(READ_SIZE)
                if not data:
                    raise SFTPError(c.FX_CONNECTION_LOST, "the SFTP server closed the channel")
                replies = self._core.feed(data)
                if self._core.version is not None and not self._version.done():
                    self._version.set_result(None)
                for reply in replies:
                    self._deliver(reply)
        except (SSHError, OSError) as exc:
            self._fail(exc)
        except asyncio.CancelledError:
            self._fail(SFTPError(c.FX_NO_CONNECTION, "SFTP session closed"))
            raise

    def _deliver(self, reply: Reply) -> None:
        rid = reply.id
        if rid in self._discard:
            self._discard.remove(rid)
            return
        future = self._waiters.pop(rid, None)
        if future is None:
            self._replies[rid] = reply
        elif not future.done():
            future.set_result(reply)
        else:  # another id of the same WaitAny won first; keep this one
            self._replies[rid] = reply

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            log.debug("SFTP session failed: %r", exc)
        if not self._version.done():
            self._version.set_exception(exc)
            self._version.exception()  # retrieved: nobody may be waiting
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()
        self._waiters.clear()

    # --- driving operations -----------------------------------------------------------------
    async def _drive(self, op: ops.Op[T]) -> T:
        mine: set[int] = set()  # requests issued and not yet answered or discarded
        value: Any = None
        error: BaseException | None = None
        ok = False
        try:
            while True:
                try:
                    cmd = op.send(value) if error is None else op.throw(error)
                except StopIteration as stop:
                    ok = True
                    result: T = stop.value
                    return result
                error = None
                try:
                    if isinstance(cmd, ops.Wait):
                        value = await self._wait((cmd.rid,), mine)
                    elif isinstance(cmd, ops.Send):
                        value = await self._send(cmd.build, mine)
                    elif isinstance(cmd, ops.WaitAny):
                        value = await self._wait(cmd.rids, mine)
                    elif isinstance(cmd, ops.Discard):
                        self._abandon({cmd.rid})
                        mine.discard(cmd.rid)
                        value = None
                    else:
                        value = time.monotonic()
                except (SSHError, OSError, ValueError) as exc:
                    error = exc
        finally:
            try:
                op.close()
            except RuntimeError:  # interrupted (cancelled, Ctrl-C) where its cleanup needed I/O
                pass
            if ok:  # a failed one's queued requests go with the next flush, unwaited for
                await self._push()
            if mine and not ok:  # a failed operation's replies are not wanted; a finished
                self._abandon(mine)  # one may leave some for later (an open file's writes)

    async def _send(self, build: Callable[[SFTPCore], tuple[int, ops.Parts]],
                    mine: set[int]) -> int:
        if self._error is not None:
            raise self._error
        rid, parts = build(self._core)
        mine.update(self._core.issued)
        self._core.issued.clear()
        async with self._send_lock:
            try:  # queued: the next wait (or the operation's end) sends them all at once
                await self._session.stdin.writelines(parts, self.timeout, flush=False)
                self._unsent = True
            except BaseException as exc:  # half a packet went out: the stream is lost
                self._fail(exc if isinstance(exc, SSHError) else
                           SFTPError(c.FX_CONNECTION_LOST, f"SFTP send failed: {exc!r}"))
                raise
        return rid

    async def _push(self) -> None:
        """Send what _send() queued (before waiting for a reply, and when an operation ends)."""
        if not self._unsent:
            return
        async with self._send_lock:
            self._unsent = False
            try:
                await self._session.stdin.flush(self.timeout)
            except BaseException as exc:
                self._fail(exc if isinstance(exc, SSHError) else
                           SFTPError(c.FX_CONNECTION_LOST, f"SFTP send failed: {exc!r}"))
                raise

    async def _wait(self, rids: Collection[int], mine: set[int]) -> Reply:
        for rid in rids:
            reply = self._replies.pop(rid, None)
            if reply is not None:
                mine.discard(rid)
                return reply
        if self._error is not None:
            raise self._error
        if self._unsent:  # about to wait: the requests the replies answer go out first
            await self._push()
            return await self._wait(rids, mine)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        for rid in rids:
            self._waiters[rid] = future
        try:
            reply = await with_timeout(_result(future), self.timeout,
                                       "waiting for the SFTP server")
        finally:
            for rid in rids:
                if self._waiters.get(rid) is future:
                    del self._waiters[rid]
        mine.discard(reply.id)
        return reply

    def _abandon(self, rids: set[int]) -> None:
        for rid in rids:
            if self._replies.pop(rid, None) is None and self._core.is_pending(rid):
                self._discard.add(rid)

    # --- the API: sshlib.SFTPClient's names as coroutines -------------------------------------
    async def get(self, remotepath: str, localpath: LocalPath, progress: Progress | None = None,
                  resume: bool = False, preserve: bool = False, recursive: bool = False) -> None:
        """Download a file or tree (see sshlib.SFTPClient.get)."""
        await self._drive(transfer.get(self._ctx, remotepath, localpath, progress, resume,
                                       preserve, recursive))

    async def put(self, localpath: LocalPath, remotepath: str, progress: Progress | None = None,
                  resume: bool = False, preserve: bool = False, recursive: bool = False) -> None:
        """Upload a file or tree (see sshlib.SFTPClient.put)."""
        await self._drive(transfer.put(self._ctx, localpath, remotepath, progress, resume,
                                       preserve, recursive))

    def open(self, path: str, mode: str = "rb") -> _FileOpener:
        """``async with sftp.open(p, "rb") as f`` or ``f = await sftp.open(p)``."""
        return _FileOpener(self, path, mode)

    async def copy(self, src: str, dst: str) -> None:
        """Copy a remote file to a remote path (server-side with copy-data when offered)."""
        await self._drive(ops.copy(self._ctx, src, dst))

    async def stat(self, path: str) -> SFTPAttributes:
        """Attributes of `path`, following symlinks."""
        return await self._drive(ops.stat(self._ctx, path))

    async def lstat(self, path: str) -> SFTPAttributes:
        """Attributes of `path` itself (a symlink is not followed)."""
        return await self._drive(ops.stat(self._ctx, path, c.FXP_LSTAT))

    async def setstat(self, path: str, attrs: SFTPAttributes) -> None:
        """Set the attributes that are not None in `attrs`."""
        await self._drive(ops.setstat(self._ctx, path, attrs))

    async def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of `path` (SETSTAT)."""
        await self.setstat(path, SFTPAttributes(st_mode=mode))

    async def chown(self, path: str, uid: int, gid: int) -> None:
        """Set owner and group of `path` (SFTP v3 sets both at once)."""
        await self.setstat(path, SFTPAttributes(st_uid=uid, st_gid=gid))

    async def utime(self, path: str, times: tuple[float, float] | None = None) -> None:
        """Set (atime, mtime); None means now (whole seconds)."""
        atime, mtime = times if times is not None else (time.time(), time.time())
        await self.setstat(path, SFTPAttributes(st_atime=int(atime), st_mtime=int(mtime)))

    async def truncate(self, path: str, size: int) -> None:
        """Set the size of `path` to `size` bytes."""
        await self.setstat(path, SFTPAttributes(st_size=size))

    async def statvfs(self, path: str) -> SFTPVFSAttributes:
        """File system statistics (statvfs@openssh.com)."""
        return await self._drive(ops.statvfs(self._ctx, path))

    async def listdir(self, path: str = ".") -> list[str]:
        """Names in directory `path` (without . and ..)."""
        return [e.filename for e in await self._drive(ops.scandir(self._ctx, path))]

    async def scandir(self, path: str = ".") -> Iterator[SFTPName]:
        """An iterator of SFTPName entries (.filename, .longname, .attrs) of directory `path`."""
        return iter(await self._drive(ops.scandir(self._ctx, path)))

    async def mkdir(self, path: str, mode: int = 0o777) -> None:
        """Create directory `path`; FileExistsError if something is there."""
        await self._drive(ops.mkdir(self._ctx, path, mode))

    async def makedirs(self, path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        """Create `path` and missing parents; FileExistsError if it exists unless exist_ok."""
        await self._drive(ops.makedirs(self._ctx, path, mode, exist_ok))

    async def rmdir(self, path: str) -> None:
        """Remove an empty directory (SFTPError FAILURE if it is not empty)."""
        await self._drive(ops.simple(self._ctx, "rmdir", c.FXP_RMDIR, path))

    async def remove(self, path: str) -> None:
        """Remove a file (IsADirectoryError for a directory: use rmdir)."""
        await self._drive(ops.simple(self._ctx, "remove", c.FXP_REMOVE, path))

    async def rename(self, old: str, new: str) -> None:
        """Rename, replacing `new` if it exists (posix-rename@openssh.com when offered)."""
        await self._drive(ops.rename(self._ctx, old, new))

    async def symlink(self, target: str, link: str) -> None:
        """Make `link` a symlink pointing at `target`."""
        await self._drive(ops.symlink(self._ctx, target, link))

    async def readlink(self, path: str) -> str:
        """The target a symlink points at."""
        return await self._drive(ops.one_name(self._ctx, c.FXP_READLINK, path))

    async def realpath(self, path: str = ".") -> str:
        """The canonical absolute path ("~" expanded with expand-path@openssh.com)."""
        return await self._drive(ops.one_name(self._ctx, c.FXP_REALPATH, path))

    async def exists(self, path: str) -> bool:
        """True if `path` exists (following symlinks); other errors still raise."""
        return await self._drive(ops.exists(self._ctx, path))

    async def isdir(self, path: str) -> bool:
        """True if `path` is a directory (following symlinks); False if it does not exist."""
        return await self._drive(ops.isdir(self._ctx, path))

    async def walk(self, top: str) -> AsyncIterator[tuple[str, list[str], list[str]]]:
        """``async for dirpath, dirnames, filenames in sftp.walk(top)`` (like os.walk)."""
        for triple in await self._drive(ops.walk(self._ctx, top)):
            yield triple

    async def glob(self, pattern: str) -> list[str]:
        """Paths matching a shell pattern (*, ?, [..] in any component), sorted."""
        return await self._drive(ops.glob(self._ctx, pattern))

    async def hardlink(self, old: str, new: str) -> None:
        """Make `new` a hard link to `old` (hardlink@openssh.com)."""
        await self._drive(ops.hardlink(self._ctx, old, new))

    async def close(self) -> None:
        """End the SFTP session (the SSH connection stays open)."""
        if self._error is None:
            self._fail(SFTPError(c.FX_NO_CONNECTION, "SFTP session closed"))
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        await self._session.close()

    async def __aenter__(self) -> SFTPClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class SFTPOpener:
    """What Client.sftp() returns: ``async with`` it or ``await`` it."""

    def __init__(self, client: Client | None, timeout: float | None, *,
                 start: Callable[[], Awaitable[SFTPClient]] | None = None) -> None:
        self._client = client
        self._timeout = timeout
        self._begin = start
        self._sftp: SFTPClient | None = None

    async def _start(self) -> SFTPClient:
        if self._begin is not None:  # a session that is not a Client's (sshlib.aio.mux)
            return await self._begin()
        assert self._client is not None
        return await SFTPClient.start(self._client, self._timeout)

    def __await__(self) -> Generator[Any, None, SFTPClient]:
        return self._start().__await__()

    async def __aenter__(self) -> SFTPClient:
        self._sftp = await self._start()
        return self._sftp

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._sftp is not None:
            await self._sftp.close()


class _FileOpener:
    def __init__(self, sftp: SFTPClient, path: str, mode: str) -> None:
        self._sftp = sftp
        self._path = path
        self._mode = mode
        self._file: SFTPFile | None = None

    async def _open(self) -> SFTPFile:
        state = await self._sftp._drive(ops.open_file(self._sftp._ctx, self._path, self._mode))
        return SFTPFile(self._sftp, state)

    def __await__(self) -> Generator[Any, None, SFTPFile]:
        return self._open().__await__()

    async def __aenter__(self) -> SFTPFile:
        self._file = await self._open()
        return self._file

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._file is not None:
            await self._file.close()


class SFTPFile:
    """A remote file (see sshlib.SFTPFile); read/readline/write/seek/stat are coroutines."""

    def __init__(self, sftp: SFTPClient, state: ops.FileState) -> None:
        self._sftp = sftp
        self._state = state

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._state.closed

    async def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (everything to EOF if size < 0); b"" at EOF."""
        return await self._sftp._drive(ops.file_read(self._sftp._ctx, self._state, size))

    async def readline(self, size: int = -1) -> bytes:
        """One line including its newline (at most `size` bytes if size >= 0); b"" at EOF."""
        return await self._sftp._drive(ops.file_readline(self._sftp._ctx, self._state, size))

    def __aiter__(self) -> SFTPFile:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer or send `data`; returns len(data).  Server errors surface at a later call."""
        return await self._sftp._drive(ops.file_write(self._sftp._ctx, self._state, data))

    async def flush(self) -> None:
        """Send buffered data and wait until the server confirmed every write."""
        await self._sftp._drive(ops.file_flush(self._sftp._ctx, self._state))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (whence: os.SEEK_SET, SEEK_CUR, SEEK_END); flushes writes first."""
        return await self._sftp._drive(ops.file_seek(self._sftp._ctx, self._state, offset,
                                                     whence))

    def tell(self) -> int:
        """The current position."""
        return self._state.pos

    async def stat(self) -> SFTPAttributes:
        """Attributes of the open file (FSTAT), after flushing writes."""
        await self.flush()
        return await self._sftp._drive(ops.fstat(self._sftp._ctx, self._state))

    async def close(self) -> None:
        """Flush buffered writes, wait for their acknowledgements and close the handle."""
        await self._sftp._drive(ops.file_close(self._sftp._ctx, self._state))

    async def __aenter__(self) -> SFTPFile:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
