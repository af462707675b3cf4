"""SFTP test helpers: the aio SFTP client behind sync-shaped calls, trees, hashes."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sshlib.aio


class _Proxy:
    """An aio object whose coroutine methods become blocking calls on the frontend's loop."""

    def __init__(self, frontend: Any, target: Any) -> None:
        self._fe = frontend
        self.aio = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        fe = self._fe

        def call(*args: Any, **kwargs: Any) -> Any:
            return fe.run(attr(*args, **kwargs))
        return call



class AioSFTP(_Proxy):
    """sshlib.aio.SFTPClient with the threaded API."""

    def open(self, path: str, mode: str = "rb") -> AioFile:
        async def go() -> sshlib.aio.SFTPFile:
            return await self.aio.open(path, mode)
        return AioFile(self._fe, self._fe.run(go()))

    def walk(self, top: str) -> Iterator[tuple[str, list[str], list[str]]]:
        async def go() -> list[tuple[str, list[str], list[str]]]:
            return [t async for t in self.aio.walk(top)]
        return iter(self._fe.run(go()))

    def __enter__(self) -> AioSFTP:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fe.run(self.aio.close())


class AioFile(_Proxy):
    def __enter__(self) -> AioFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fe.run(self.aio.close())


def open_sftp(frontend: Any, client: Any, timeout: float = 30) -> Any:
    """client.sftp(timeout) on either front-end, with the threaded API."""
    if frontend.name == "sync":
        return client.sftp(timeout=timeout)

    async def go() -> sshlib.aio.SFTPClient:
        return await client.aio.sftp(timeout=timeout)
    return AioSFTP(frontend, frontend.run(go()))


def cut_connection(frontend: Any, client: Any) -> None:
    """Close the SSH connection from inside a progress callback (either front-end)."""
    if frontend.name == "sync":
        client.close()
    else:
        asyncio.get_running_loop().create_task(client.aio.close())


def shared_dir(owner: str) -> Path:
    """A fresh directory both this process and the server's login user can write."""
    path = Path(tempfile.mkdtemp(prefix="sshlib-sftp-"))
    path.chmod(0o777)
    if os.geteuid() == 0:
        import pwd
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def write_pattern(path: str | Path, size: int) -> None:
    """`size` bytes of incompressible data, quick to make: a random block, varied per MiB."""
    seed = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        left, index = size, 0
        while left > 0:
            block = index.to_bytes(8, "big") + seed[8:]
            fh.write(block[:left])
            left -= len(block)
            index += 1


def make_tree(root: Path) -> None:
    """Nested dirs, an empty file, non-ASCII names, symlinks to a file and a dir."""
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "a" / "ünïcødé-файл.bin").write_bytes(os.urandom(70000))
    (root / "a" / "b" / "c" / "deep.txt").write_bytes(b"deep\n" * 1000)
    (root / "a" / "b" / "日本").mkdir()
    (root / "a" / "b" / "日本" / "x").write_bytes(os.urandom(300000))
    os.symlink("a/b/c/deep.txt", root / "link-to-file")
    os.symlink("a/b", root / "link-to-dir")


def tree_listing(root: Path) -> dict[str, Any]:
    """relative path -> ("dir") / ("link", target) / ("file", sha256)."""
    out: dict[str, Any] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def own(path: str | Path, user: str) -> None:
    """Hand a file the test made (as root) to the server's login user."""
    if os.geteuid() == 0:
        import pwd
        entry = pwd.getpwnam(user)
        os.lchown(path, entry.pw_uid, entry.pw_gid)
