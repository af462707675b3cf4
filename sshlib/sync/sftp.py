"""SFTP on the threaded front-end: `client.sftp(timeout=30)` -> SFTPClient.

The protocol and every operation live in `sshlib.sftp` (sans-IO) and
`sshlib.sftp_transfer`; this module only drives them over the session's
stdin/stdout.  An SFTPClient may be used from several threads at once: each
call's requests are tagged, and whichever caller is waiting reads the channel
and hands the other callers their replies.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import sftp_transfer as transfer
from ..errors import SFTPError, SSHError, Timeout
from ..sftp import core as c
from ..sftp import ops
from ..sftp.attrs import SFTPAttributes, SFTPName, SFTPVFSAttributes
from ..sftp.core import Reply, SFTPCore
from ..sftp.policy import sftp_window
from .channel import deadline_after

if TYPE_CHECKING:
    from .client import Client
    from .session import Session

__all__ = ["SFTPClient", "SFTPFile"]

log = logging.getLogger("sshlib.sftp")
T = TypeVar("T")
#: Bytes taken from the channel per read (the channel buffer is bounded by its window).
READ_SIZE = 1 << 22
LocalPath = str | os.PathLike[str]
Progress = Callable[[int, int], object]


class SFTPClient(ops.Tuning):
    """An SFTP v3 session (OpenSSH extensions used when the server offers them).

    `timeout` bounds every wait for the server (each reply, each send), not a
    whole transfer: a 1 GiB get may take longer than `timeout`, but a server
    that stops answering for that long raises sshlib.Timeout.  Failed requests
    raise sshlib.SFTPError subclasses that are also FileNotFoundError,
    PermissionError, ...; a server that breaks the protocol raises
    SFTPProtocolError and the session is closed.  Thread-safe.
    """

    def __init__(self, session: Session, *, timeout: float | None = 30,
                 server_version: str = "", window: int = 2 * 1024 * 1024) -> None:
        self._session = session
        self.timeout = timeout
        self._core = SFTPCore()
        self._ctx = ops.Context(self._core, server_version=server_version, window=window)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._unsent = False  # requests queued by _send() and not yet flushed (send lock)
        self._replies: dict[int, Reply] = {}
        self._discard: set[int] = set()
        self._reading = False
        self._error: BaseException | None = None

    @classmethod
    def start(cls, client: Client, timeout: float | None = 30) -> SFTPClient:
        """Open a session, start the "sftp" subsystem and negotiate (Client.sftp calls this)."""
        session = client.new_session(timeout)
        try:
            session.request_subsystem("sftp", timeout)
            window = sftp_window(client.config.window_size)
            session.set_window_size(window, timeout)
            sftp = cls(session, timeout=timeout, server_version=client.server_version,
                       window=window)
            sftp._handshake()
        except BaseException:
            session.close()
            raise
        return sftp

    @classmethod
    def over_session(cls, session: Session, timeout: float | None = 30, *,
                     server_version: str = "", window: int = 2 * 1024 * 1024) -> SFTPClient:
        """Start the "sftp" subsystem on a new, unstarted `session` and negotiate.

        For sessions that do not come from a Client's new_session() (a ControlMaster's,
        sshlib.mux); `window` bounds the bytes in flight (and is asked for as the session's
        receive window where the session has one of its own), `server_version` enables
        the server's known quirks.  The session is closed if starting fails.
        """
        try:
            session.request_subsystem("sftp", timeout)
            session.set_window_size(window, timeout)
            sftp = cls(session, timeout=timeout, server_version=server_version, window=window)
            sftp._handshake()
        except BaseException:
            session.close()
            raise
        return sftp

    def _handshake(self) -> None:
        deadline = deadline_after(self.timeout)
        self._session.stdin.write(self._core.hello(), self.timeout)
        while self._core.version is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout("timed out waiting for the SFTP server's VERSION")
            data = self._session.stdout.read(65536, left)
            if not data:
                raise SFTPError(c.FX_CONNECTION_LOST, "the server closed the SFTP channel "
                                "before its VERSION")
            self._core.feed(data)
        self._drive(ops.startup(self._ctx))

    # --- driving operations ------------------------------------------------------------------
    def _drive(self, op: ops.Op[T]) -> T:
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
                    value = self._do(cmd, mine)
                except BaseException as exc:  # hand it to the operation (its cleanup runs)
                    error = exc
        finally:
            try:
                op.close()
            except RuntimeError:  # interrupted (cancelled, Ctrl-C) where its cleanup needed I/O
                pass
            try:
                self._push()
            except BaseException:
                if ok:
                    raise
            if mine and not ok:  # a failed operation's replies are not wanted; a finished
                self._abandon(mine)  # one may leave some for later (an open file's writes)

    def _do(self, cmd: ops.Cmd, mine: set[int]) -> Any:
        if isinstance(cmd, ops.Wait):
            return self._wait((cmd.rid,), mine)
        if isinstance(cmd, ops.Send):
            return self._send(cmd.build, mine)
        if isinstance(cmd, ops.WaitAny):
            return self._wait(cmd.rids, mine)
        if isinstance(cmd, ops.Discard):
            self._abandon({cmd.rid})
            mine.discard(cmd.rid)
            return None
        return time.monotonic()

    def _send(self, build: Callable[[SFTPCore], tuple[int, ops.Parts]], mine: set[int]) -> int:
        with self._lock:
            if self._error is not None:
                raise self._error
            rid, parts = build(self._core)
            mine.update(self._core.issued)
            self._core.issued.clear()
        with self._send_lock:
            try:  # queued: the next wait (or the operation's end) sends them all at once
                self._session.stdin.writelines(parts, self.timeout, flush=False)
                self._unsent = True
            except BaseException as exc:  # a packet went out half-sent: the stream is lost
                with self._lock:
                    self._fail(exc)
                raise
        return rid

    def _push(self) -> None:
        """Send the requests _send() queued (before waiting, and when an operation ends)."""
        if not self._unsent:
            return
        with self._send_lock:
            self._unsent = False
            try:
                self._session.stdin.flush(self.timeout)
            except BaseException as exc:
                with self._lock:
                    self._fail(exc)
                raise

    def _pop(self, rids: Collection[int]) -> Reply | None:
        replies = self._replies
        if len(rids) == 1:
            for rid in rids:
                return replies.pop(rid, None)
        for rid in replies:
            if rid in rids:
                return replies.pop(rid)
        return None

    def _wait(self, rids: Collection[int], mine: set[int]) -> Reply:
        deadline = deadline_after(self.timeout)
        with self._cond:
            while True:
                reply = self._pop(rids)
                if reply is not None:
                    mine.discard(reply.id)
                    return reply
                if self._error is not None:
                    raise self._error
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout("timed out waiting for the SFTP server")
                if self._unsent:  # about to block: what replies to them wait for goes out
                    self._lock.release()
                    try:
                        self._push()
                    finally:
                        self._lock.acquire()
                    continue
                if self._reading:
                    self._cond.wait(left)
                    continue
                self._reading = True
                self._lock.release()
                try:
                    data = self._session.stdout.read(READ_SIZE, left)
                except Timeout:
                    data = None
                except BaseException as exc:
                    self._lock.acquire()
                    self._reading = False
                    self._fail(exc)
                    raise
                self._lock.acquire()
                self._reading = False
                if data is not None:
                    self._absorb(data)
                self._cond.notify_all()

    def _absorb(self, data: bytes) -> None:
        if not data:
            self._fail(SFTPError(c.FX_CONNECTION_LOST, "the SFTP server closed the channel"))
            return
        try:
            replies = self._core.feed(data)
        except SSHError as exc:
            self._fail(exc)
            return
        for reply in replies:
            if reply.id in self._discard:
                self._discard.remove(reply.id)
                if isinstance(reply, c.Status) and reply.code not in (c.FX_OK, c.FX_EOF):
                    log.debug("SFTP request %d failed unobserved: %s", reply.id, reply.message)
            else:
                self._replies[reply.id] = reply

    def _abandon(self, rids: set[int]) -> None:
        with self._lock:
            for rid in rids:
                if self._replies.pop(rid, None) is None and self._core.is_pending(rid):
                    self._discard.add(rid)

    def _fail(self, exc: BaseException) -> None:  # lock held
        if self._error is None:
            self._error = exc
            log.debug("SFTP session failed: %r", exc)
            threading.Thread(target=self._session.close, daemon=True).start()
        self._cond.notify_all()

    # --- transfers -------------------------------------------------------------------------
    def get(self, remotepath: str, localpath: LocalPath, progress: Progress | None = None,
            resume: bool = False, preserve: bool = False, recursive: bool = False) -> None:
        """Download a file (or, with recursive=True, a directory tree).

        progress(bytes_done, bytes_total) is called at most ~10 times a second
        and once at the end.  resume=True continues from the local file's size
        (refused if it is larger than the remote file).  preserve=True copies
        permissions and access/modification times.  Symlinks in a tree are
        recreated as symlinks.
        """
        self._drive(transfer.get(self._ctx, remotepath, localpath, progress, resume, preserve,
                                 recursive))

    def put(self, localpath: LocalPath, remotepath: str, progress: Progress | None = None,
            resume: bool = False, preserve: bool = False, recursive: bool = False) -> None:
        """Upload a file or tree; the options are those of get()."""
        self._drive(transfer.put(self._ctx, localpath, remotepath, progress, resume, preserve,
                                 recursive))

    def open(self, path: str, mode: str = "rb") -> SFTPFile:
        """Open a remote file: "rb", "wb", "ab", "r+b", "xb" (binary only); buffered, seekable."""
        return SFTPFile(self, self._drive(ops.open_file(self._ctx, path, mode)))

    def copy(self, src: str, dst: str) -> None:
        """Copy a remote file to a remote path (server-side with copy-data when offered)."""
        self._drive(ops.copy(self._ctx, src, dst))

    # --- attributes ------------------------------------------------------------------------
    def stat(self, path: str) -> SFTPAttributes:
        """Attributes of `path`, following symlinks."""
        return self._drive(ops.stat(self._ctx, path))

    def lstat(self, path: str) -> SFTPAttributes:
        """Attributes of `path` itself (a symlink is not followed)."""
        return self._drive(ops.stat(self._ctx, path, c.FXP_LSTAT))

    def setstat(self, path: str, attrs: SFTPAttributes) -> None:
        """Set the attributes that are not None in `attrs`."""
        self._drive(ops.setstat(self._ctx, path, attrs))

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of `path` (SETSTAT)."""
        self.setstat(path, SFTPAttributes(st_mode=mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        """Set owner and group of `path` (SFTP v3 sets both at once)."""
        self.setstat(path, SFTPAttributes(st_uid=uid, st_gid=gid))

    def utime(self, path: str, times: tuple[float, float] | None = None) -> None:
        """Set (atime, mtime); None means now (whole seconds: SFTP v3 has no fractions)."""
        atime, mtime = times if times is not None else (time.time(), time.time())
        self.setstat(path, SFTPAttributes(st_atime=int(atime), st_mtime=int(mtime)))

    def truncate(self, path: str, size: int) -> None:
        """Set the size of `path` to `size` bytes."""
        self.setstat(path, SFTPAttributes(st_size=size))

    def statvfs(self, path: str) -> SFTPVFSAttributes:
        """File system statistics (statvfs@openssh.com; SFTPUnsupportedError without it)."""
        return self._drive(ops.statvfs(self._ctx, path))

    # --- directories and names ------------------------------------------------------------
    def listdir(self, path: str = ".") -> list[str]:
        """Names in directory `path` (without . and ..), in the server's order."""
        return [e.filename for e in self.scandir(path)]

    def scandir(self, path: str = ".") -> Iterator[SFTPName]:
        """Entries with .filename, .longname and .attrs (the listing is read up front)."""
        return iter(self._drive(ops.scandir(self._ctx, path)))

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        """Create directory `path`; FileExistsError if something is there."""
        self._drive(ops.mkdir(self._ctx, path, mode))

    def makedirs(self, path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        """Create `path` and missing parents; FileExistsError if it exists unless exist_ok."""
        self._drive(ops.makedirs(self._ctx, path, mode, exist_ok))

    def rmdir(self, path: str) -> None:
        """Remove an empty directory (SFTPError FAILURE if it is not empty)."""
        self._drive(ops.simple(self._ctx, "rmdir", c.FXP_RMDIR, path))

    def remove(self, path: str) -> None:
        """Remove a file (IsADirectoryError for a directory: use rmdir)."""
        self._drive(ops.simple(self._ctx, "remove", c.FXP_REMOVE, path))

    def rename(self, old: str, new: str) -> None:
        """Rename, replacing `new` if it exists (posix-rename@openssh.com when offered)."""
        self._drive(ops.rename(self._ctx, old, new))

    def symlink(self, target: str, link: str) -> None:
        """Make `link` a symlink pointing at `target`."""
        self._drive(ops.symlink(self._ctx, target, link))

    def readlink(self, path: str) -> str:
        """The target a symlink points at."""
        return self._drive(ops.one_name(self._ctx, c.FXP_READLINK, path))

    def realpath(self, path: str = ".") -> str:
        """The canonical absolute path ("~" expanded with expand-path@openssh.com)."""
        return self._drive(ops.one_name(self._ctx, c.FXP_REALPATH, path))

    def exists(self, path: str) -> bool:
        """True if `path` exists (following symlinks); other errors still raise."""
        return self._drive(ops.exists(self._ctx, path))

    def isdir(self, path: str) -> bool:
        """True if `path` is a directory (following symlinks); False if it does not exist."""
        return self._drive(ops.isdir(self._ctx, path))

    def walk(self, top: str) -> Iterator[tuple[str, list[str], list[str]]]:
        """(dirpath, dirnames, filenames) like os.walk, top-down; symlinks count as files."""
        return iter(self._drive(ops.walk(self._ctx, top)))

    def glob(self, pattern: str) -> list[str]:
        """Paths matching a shell pattern (*, ?, [..] in any component), sorted."""
        return self._drive(ops.glob(self._ctx, pattern))

    def hardlink(self, old: str, new: str) -> None:
        """Make `new` a hard link to `old` (hardlink@openssh.com)."""
        self._drive(ops.hardlink(self._ctx, old, new))

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """End the SFTP session (the SSH connection stays open)."""
        with self._lock:
            if self._error is None:
                self._error = SFTPError(c.FX_NO_CONNECTION, "SFTP session closed")
            self._cond.notify_all()
        self._session.close()

    def __enter__(self) -> SFTPClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SFTPFile:
    """A remote file from SFTPClient.open(): read/readline/write buffered, seek/tell, stat.

    Writes are pipelined: write() returns once data is buffered or sent, and
    errors from the server surface at a later write(), flush() or close().
    Not thread-safe on its own (use one file per thread).
    """

    def __init__(self, sftp: SFTPClient, state: ops.FileState) -> None:
        self._sftp = sftp
        self._state = state

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._state.closed

    def readable(self) -> bool:
        """True if opened for reading."""
        return self._state.readable

    def writable(self) -> bool:
        """True if opened for writing."""
        return self._state.writable

    def seekable(self) -> bool:
        """Always True: SFTP files are read and written at explicit offsets."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (everything to EOF if size < 0); b"" at EOF."""
        return self._sftp._drive(ops.file_read(self._sftp._ctx, self._state, size))

    def readline(self, size: int = -1) -> bytes:
        """One line including its newline (at most `size` bytes if size >= 0); b"" at EOF."""
        return self._sftp._drive(ops.file_readline(self._sftp._ctx, self._state, size))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer or send `data`; returns len(data).  Server errors surface at a later call."""
        return self._sftp._drive(ops.file_write(self._sftp._ctx, self._state, data))

    def flush(self) -> None:
        """Send buffered data and wait until the server confirmed every write."""
        self._sftp._drive(ops.file_flush(self._sftp._ctx, self._state))

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (whence: os.SEEK_SET, SEEK_CUR, SEEK_END); flushes writes first."""
        return self._sftp._drive(ops.file_seek(self._sftp._ctx, self._state, offset, whence))

    def tell(self) -> int:
        """The current position."""
        return self._state.pos

    def stat(self) -> SFTPAttributes:
        """Attributes of the open file (FSTAT), after flushing writes."""
        self.flush()
        return self._sftp._drive(ops.fstat(self._sftp._ctx, self._state))

    def close(self) -> None:
        """Flush buffered writes, wait for their acknowledgements and close the handle."""
        self._sftp._drive(ops.file_close(self._sftp._ctx, self._state))

    def __enter__(self) -> SFTPFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
