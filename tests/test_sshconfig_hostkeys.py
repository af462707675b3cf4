"""known_hosts appends under contention: processes and threads adding hosts at once.

Every new host must end up as exactly one well-formed line (the same host
added by several writers: once), whatever the interleaving.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

import sshlib
from sshlib.knownhosts import KnownHosts
from sshlib.sshconfig.hostkeys import HostKeyPolicy, append_known_host

KEY_BYTES = ed25519.Ed25519PrivateKey.generate().public_key()


def _openssh_line() -> str:
    import base64

    from cryptography.hazmat.primitives import serialization

    raw = KEY_BYTES.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    blob = (b"\x00\x00\x00\x0bssh-ed25519" + len(raw).to_bytes(4, "big") + raw)
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def _writer(path: str, start: int, count: int, hashed: bool) -> None:
    key = sshlib.parse_openssh_public_key(_openssh_line())
    threads = [threading.Thread(target=lambda j=j: append_known_host(
        path, f"host{start + j}", key, hashed=hashed)) for j in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_processes_and_threads_append_one_line_per_host(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "known_hosts")  # the directory does not exist yet
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, i * 50, 75, False)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    text = Path(path).read_text()
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 225  # 300 adds of 225 distinct hosts
    db = KnownHosts.from_lines(lines[:-1])
    assert sorted(e.hosts for e in db.entries) == sorted(f"host{i}" for i in range(225))
    assert (Path(path).stat().st_mode & 0o777) == 0o600


def test_policy_accept_new_records_and_then_knows(tmp_path: Path) -> None:
    key = sshlib.parse_openssh_public_key(_openssh_line())
    known = tmp_path / "kh"
    policy = HostKeyPolicy([str(known)], [], strict="accept-new", hash_new=True)
    policy("example.com", 2222, key)
    policy("example.com", 2222, key)
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("|1|")
    assert KnownHosts.from_file(known).lookup("example.com", 2222)[0].key == key
    assert policy.host_key_algorithms("example.com", 2222)[0] == "ssh-ed25519"
    strict = HostKeyPolicy([str(tmp_path / "none")], [str(known)], strict="yes")
    strict("example.com", 2222, key)  # known through the global file
    try:
        strict("other.example.com", 22, key)
    except sshlib.UnknownHostKeyError:
        pass
    else:
        raise AssertionError("an unknown host was accepted under StrictHostKeyChecking yes")
    aliased = HostKeyPolicy([str(known)], [], strict="yes", alias="example.com")
    try:
        aliased("127.0.0.1", 2222, key)  # the alias is looked up on port 22: not known there
    except sshlib.UnknownHostKeyError:
        pass
    else:
        raise AssertionError("HostKeyAlias lookup ignored the alias")


def test_several_user_files_new_keys_go_to_the_first(tmp_path: Path) -> None:
    key = sshlib.parse_openssh_public_key(_openssh_line())
    first, second = tmp_path / "kh1", tmp_path / "kh2"
    second.write_text(f"known.example.com {key.openssh()}\n")
    policy = HostKeyPolicy([str(first), str(second)], [], strict="accept-new")
    policy("known.example.com", 22, key)  # found in the second file: nothing written
    assert not first.exists()
    policy("new.example.com", 22, key)
    assert first.read_text() == f"new.example.com {key.openssh()}\n"
    assert second.read_text() == f"known.example.com {key.openssh()}\n"
