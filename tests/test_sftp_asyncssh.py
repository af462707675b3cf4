"""Interop with a second SFTP server: asyncssh's, in a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from sftphelpers import make_tree, open_sftp, sha256_file, tree_listing, write_pattern

import sshlib

SERVER = Path(__file__).resolve().parent / "asyncssh_sftp_server.py"


@pytest.fixture(scope="module")
def asyncssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    work = tmp_path_factory.mktemp("asyncssh-sftp")
    proc = subprocess.Popen([sys.executable, str(SERVER), str(work)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("PORT "), (line, proc.stderr.read() if proc.stderr else b"")
        yield work, int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def sftp(frontend: Any, asyncssh_server: tuple[Path, int]) -> Iterator[Any]:
    work, port = asyncssh_server
    host_key = (work / "host_key.pub").read_text().split()
    known = work / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    cfg = sshlib.ClientConfig(
        user=os.environ.get("USER", "root") or "root",
        auth=[sshlib.PublicKeys(sshlib.load_private_key(work / "client_key"))],
        host_key_callback=sshlib.knownhosts.callback(known), timeout=30)
    with frontend.dial(f"127.0.0.1:{port}", cfg) as client:
        assert "AsyncSSH" in client.server_version
        with open_sftp(frontend, client) as s:
            yield s


def test_calls_against_asyncssh(sftp: Any, tmp_path: Path) -> None:
    w = str(tmp_path)
    with sftp.open(w + "/f", "wb") as f:
        f.write(b"hello\nthere\n")
    with sftp.open(w + "/f", "rb") as f:
        assert f.readline() == b"hello\n" and f.read() == b"there\n"
    assert sftp.stat(w + "/f").st_size == 12
    sftp.chmod(w + "/f", 0o600)
    assert sftp.stat(w + "/f").st_mode & 0o777 == 0o600
    sftp.mkdir(w + "/d")
    sftp.makedirs(w + "/d/e/f", exist_ok=True)
    assert sorted(sftp.listdir(w + "/d")) == ["e"]
    sftp.symlink("f", w + "/link")  # asyncssh takes the standard argument order from us
    assert os.readlink(tmp_path / "link") == "f" and sftp.readlink(w + "/link") == "f"
    sftp.rename(w + "/f", w + "/g")
    assert sftp.exists(w + "/g") and not sftp.exists(w + "/f")
    sftp.copy(w + "/g", w + "/h")
    assert (tmp_path / "h").read_bytes() == b"hello\nthere\n"
    assert sftp.glob(w + "/[gh]") == [w + "/g", w + "/h"]
    with pytest.raises(FileNotFoundError):
        sftp.stat(w + "/missing")
    with pytest.raises(FileExistsError):
        sftp.mkdir(w + "/d")
    sftp.remove(w + "/h")
    sftp.rmdir(w + "/d/e/f")


def test_transfers_against_asyncssh(sftp: Any, tmp_path: Path) -> None:
    write_pattern(tmp_path / "src", 20 << 20)
    sftp.get(str(tmp_path / "src"), str(tmp_path / "down"))
    sftp.put(str(tmp_path / "src"), str(tmp_path / "up"))
    assert sha256_file(tmp_path / "down") == sha256_file(tmp_path / "up") == sha256_file(
        tmp_path / "src")
    make_tree(tmp_path / "tree")
    sftp.get(str(tmp_path / "tree"), str(tmp_path / "t-down"), recursive=True)
    sftp.put(str(tmp_path / "tree"), str(tmp_path / "t-up"), recursive=True, preserve=True)
    want = tree_listing(tmp_path / "tree")
    assert tree_listing(tmp_path / "t-down") == want == tree_listing(tmp_path / "t-up")
