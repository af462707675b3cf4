"""SFTP against OpenSSH's sftp-server (the test sshd's internal-sftp), on both front-ends."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import connect
from sftphelpers import (
    cut_connection,
    make_tree,
    open_sftp,
    own,
    sha256_file,
    shared_dir,
    tree_listing,
    write_pattern,
)

import sshlib


@pytest.fixture
def work(openssh_server: Any) -> Iterator[Path]:
    path = shared_dir(openssh_server.user)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def sftp(frontend: Any, openssh_server: Any) -> Iterator[Any]:
    with connect(openssh_server, frontend) as client:
        with open_sftp(frontend, client) as s:
            yield s


def test_open_modes_read_write_seek(sftp: Any, work: Path) -> None:
    p = str(work / "f.bin")
    with sftp.open(p, "wb") as f:
        assert f.write(b"line one\nline two\n") == 18
        f.write(b"x" * 600_000)
        assert f.tell() == 600_018
    with sftp.open(p, "ab") as f:
        f.write(b"\ntail")
    assert (work / "f.bin").read_bytes() == b"line one\nline two\n" + b"x" * 600_000 + b"\ntail"
    with sftp.open(p, "rb") as f:
        assert f.readline() == b"line one\n"
        assert f.read(4) == b"line"
        assert f.tell() == 13
        assert f.stat().st_size == 600_023
        f.seek(-5, os.SEEK_END)
        assert f.read() == b"\ntail"
        assert f.read() == b""
        f.seek(0)
        assert len(f.read()) == 600_023
    with sftp.open(p, "r+b") as f:
        f.seek(5)
        f.write(b"ONE")
        f.seek(0)
        assert f.read(9) == b"line ONE\n"
    with pytest.raises(FileExistsError):
        sftp.open(p, "xb")
    with sftp.open(str(work / "new"), "xb") as f:
        f.write(b"fresh")
    assert (work / "new").read_bytes() == b"fresh"
    with pytest.raises(ValueError):
        sftp.open(p, "rt")


def test_attributes(sftp: Any, work: Path, openssh_server: Any) -> None:
    p = work / "a.txt"
    p.write_bytes(b"12345")
    own(p, openssh_server.user)
    a = sftp.stat(str(p))
    st = os.stat(p)
    assert (a.st_size, a.st_uid, a.st_gid, a.st_mode) == (5, st.st_uid, st.st_gid, st.st_mode)
    assert a.st_mtime == int(st.st_mtime) and a.is_file() and not a.is_dir()
    sftp.chmod(str(p), 0o640)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o640
    sftp.utime(str(p), (1_000_000_000, 1_100_000_000))
    assert (os.stat(p).st_atime, os.stat(p).st_mtime) == (1_000_000_000, 1_100_000_000)
    sftp.truncate(str(p), 2)
    assert p.read_bytes() == b"12"
    sftp.chown(str(p), st.st_uid, st.st_gid)
    sftp.setstat(str(p), sshlib.SFTPAttributes(st_mode=0o600, st_size=1))
    assert (sftp.stat(str(p)).st_size, stat.S_IMODE(os.stat(p).st_mode)) == (1, 0o600)
    os.symlink("a.txt", work / "l")
    assert sftp.lstat(str(work / "l")).is_symlink()
    assert sftp.stat(str(work / "l")).is_file()


def test_directories_and_names(sftp: Any, work: Path) -> None:
    w = str(work)
    sftp.mkdir(w + "/d", 0o755)
    sftp.makedirs(w + "/d/e/f", exist_ok=True)
    sftp.makedirs(w + "/d/e/f", exist_ok=True)
    with pytest.raises(FileExistsError):
        sftp.makedirs(w + "/d/e/f")
    (work / "d" / "x.txt").write_bytes(b"x")
    (work / "d" / "y.log").write_bytes(b"y")
    assert sorted(sftp.listdir(w + "/d")) == ["e", "x.txt", "y.log"]
    entries = {e.filename: e for e in sftp.scandir(w + "/d")}
    assert entries["e"].attrs.is_dir() and entries["x.txt"].attrs.st_size == 1
    assert "x.txt" in entries["x.txt"].longname
    assert sftp.glob(w + "/d/*.txt") == [w + "/d/x.txt"]
    assert sftp.glob(w + "/*/e") == [w + "/d/e"]
    assert sftp.glob(w + "/d/nothing*") == []
    assert list(sftp.walk(w + "/d")) == [(w + "/d", ["e"], ["x.txt", "y.log"]),
                                         (w + "/d/e", ["f"], []), (w + "/d/e/f", [], [])]
    sftp.rename(w + "/d/x.txt", w + "/d/y.log")  # posix-rename replaces the target
    assert (work / "d" / "y.log").read_bytes() == b"x"
    sftp.symlink("y.log", w + "/d/link")
    assert sftp.readlink(w + "/d/link") == "y.log"
    assert os.readlink(work / "d" / "link") == "y.log"
    assert sftp.realpath(w + "/d/e/../y.log") == os.path.realpath(work / "d" / "y.log")
    assert sftp.realpath("~").startswith("/")
    assert sftp.exists(w + "/d/link") and not sftp.exists(w + "/nope")
    assert sftp.isdir(w + "/d/e") and not sftp.isdir(w + "/d/y.log")
    sftp.remove(w + "/d/link")
    sftp.rmdir(w + "/d/e/f")
    assert not (work / "d" / "e" / "f").exists()


def test_statvfs_hardlink_copy(sftp: Any, work: Path, openssh_server: Any) -> None:
    vfs = sftp.statvfs(str(work))
    ref = os.statvfs(work)
    assert (vfs.f_bsize, vfs.f_blocks, vfs.f_namemax) == (ref.f_bsize, ref.f_blocks,
                                                          ref.f_namemax)
    write_pattern(work / "src", 3_000_000)
    own(work / "src", openssh_server.user)  # Linux protects hard links to others' files
    sftp.hardlink(str(work / "src"), str(work / "hard"))
    assert os.stat(work / "src").st_ino == os.stat(work / "hard").st_ino
    assert "copy-data" in sftp.extensions
    sftp.copy(str(work / "src"), str(work / "copy1"))  # server-side
    assert sha256_file(work / "copy1") == sha256_file(work / "src")


def test_copy_without_copy_data(sftp: Any, work: Path) -> None:
    """The client-side fallback: hide copy-data as if the server had not offered it."""
    core = sftp._core if hasattr(sftp, "_core") else sftp.aio._core  # test-only peek
    del core.extensions["copy-data"]
    write_pattern(work / "src", 9_000_000)
    sftp.copy(str(work / "src"), str(work / "dst"))
    assert sha256_file(work / "dst") == sha256_file(work / "src")


def test_error_mapping(sftp: Any, work: Path) -> None:
    w = str(work)
    with pytest.raises(FileNotFoundError) as missing:
        sftp.stat(w + "/missing")
    assert isinstance(missing.value, sshlib.SFTPNoSuchFileError)
    assert missing.value.code == 2 and missing.value.message
    secret = work / "secret"
    secret.write_bytes(b"s")
    secret.chmod(0)
    if os.geteuid() == 0:
        with pytest.raises(PermissionError) as denied:
            sftp.open(str(secret), "rb")
        assert isinstance(denied.value, sshlib.SFTPError) and denied.value.code == 3
    (work / "dir").mkdir()
    with pytest.raises(FileExistsError):
        sftp.mkdir(w + "/dir")
    with pytest.raises(NotADirectoryError):
        sftp.listdir(w + "/secret")
    with pytest.raises(NotADirectoryError):
        sftp.stat(w + "/secret/child")
    with pytest.raises(IsADirectoryError):
        sftp.open(w + "/dir", "rb")
    with pytest.raises(IsADirectoryError):
        sftp.remove(w + "/dir")
    with pytest.raises(FileNotFoundError):
        sftp.get(w + "/missing", str(work / "local"))
    with pytest.raises(IsADirectoryError):
        sftp.get(w + "/dir", str(work / "local"))
    with pytest.raises(sshlib.SFTPError) as not_empty:
        (work / "dir" / "f").write_bytes(b"")
        sftp.rmdir(w + "/dir")
    assert isinstance(not_empty.value, OSError) and not_empty.value.code == 4


def test_get_put_and_progress(sftp: Any, work: Path) -> None:
    write_pattern(work / "src", 40 << 20)
    calls: list[tuple[float, int, int]] = []
    sftp.get(str(work / "src"), str(work / "got"),
             progress=lambda done, total: calls.append((time.monotonic(), done, total)))
    assert sha256_file(work / "got") == sha256_file(work / "src")
    assert calls[-1][1:] == (40 << 20, 40 << 20)
    span = calls[-1][0] - calls[0][0]
    assert len(calls) <= span * 10 + 2
    sftp.put(str(work / "src"), str(work / "put"))
    assert sha256_file(work / "put") == sha256_file(work / "src")
    (work / "empty").write_bytes(b"")
    sftp.get(str(work / "empty"), str(work / "empty2"))
    assert (work / "empty2").read_bytes() == b""


@pytest.mark.parametrize("direction", ["get", "put"])
def test_resume_after_cut(frontend: Any, openssh_server: Any, work: Path, direction: str) -> None:
    size = 192 << 20
    write_pattern(work / "src", size)
    dst = work / "dst"
    with connect(openssh_server, frontend) as client, open_sftp(frontend, client) as s:
        # One request at a time: slow enough that progress calls (10/s at most) land well
        # before the end; the cut comes at a third, the finished prefix is "about half".
        getattr(s, "aio", s).max_requests = 1

        def cut(done: int, total: int) -> None:
            if done >= total // 3:
                cut_connection(frontend, client)
                raise RuntimeError("cut")  # aio closes a moment later: stop right here

        with pytest.raises((sshlib.SSHError, OSError, RuntimeError)):
            getattr(s, direction)(str(work / "src"), str(dst), progress=cut)
    partial = dst.stat().st_size
    assert 0 < partial < size, partial
    with open(work / "src", "rb") as a, open(dst, "rb") as b:
        assert a.read(partial) == b.read(partial)  # what arrived is a prefix
    seen: list[int] = []
    with connect(openssh_server, frontend) as client, open_sftp(frontend, client) as s:
        getattr(s, direction)(str(work / "src"), str(dst), resume=True,
                              progress=lambda done, total: seen.append(done))
    assert sha256_file(dst) == sha256_file(work / "src")
    assert seen[-1] == size


def test_recursive_trees(sftp: Any, work: Path) -> None:
    make_tree(work / "tree")
    expected = tree_listing(work / "tree")
    sftp.get(str(work / "tree"), str(work / "down"), recursive=True)
    assert tree_listing(work / "down") == expected
    sftp.put(str(work / "tree"), str(work / "up"), recursive=True)
    assert tree_listing(work / "up") == expected
    with pytest.raises(IsADirectoryError):
        sftp.put(str(work / "tree"), str(work / "up2"))


def test_preserve(sftp: Any, work: Path) -> None:
    for name in ("p1.txt", "p2.txt"):  # one source each: reading one may touch its atime
        (work / name).write_bytes(b"keep my times")
        os.chmod(work / name, 0o604)
        os.utime(work / name, (1_200_000_000, 1_300_000_000))
    sftp.get(str(work / "p1.txt"), str(work / "g.txt"), preserve=True)
    sftp.put(str(work / "p2.txt"), str(work / "u.txt"), preserve=True)
    for p in (work / "g.txt", work / "u.txt"):
        st = os.stat(p)
        assert (stat.S_IMODE(st.st_mode), st.st_atime, st.st_mtime) == (
            0o604, 1_200_000_000, 1_300_000_000), p
    make_tree(work / "t")
    os.utime(work / "t" / "a" / "b", (1_000_000_000, 1_000_000_000))
    sftp.get(str(work / "t"), str(work / "t2"), recursive=True, preserve=True)
    assert os.stat(work / "t2" / "a" / "b").st_mtime == 1_000_000_000


def test_one_gib_both_ways(openssh_server: Any, work: Path) -> None:
    """1 GiB down and up with equal sha256 (threaded front-end; aio moves 192 MiB above)."""
    size = 1 << 30
    write_pattern(work / "src", size)
    want = sha256_file(work / "src")
    with connect(openssh_server) as client, client.sftp(timeout=60) as s:
        s.get(str(work / "src"), str(work / "down"))
        assert sha256_file(work / "down") == want
        os.remove(work / "down")
        s.put(str(work / "src"), str(work / "up"))
    assert os.path.getsize(work / "up") == size and sha256_file(work / "up") == want
