"""Bad input: a scripted hostile SFTP server behind a real sshd, and the core on raw bytes."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import connect
from hypothesis import given, settings
from hypothesis import strategies as st
from sftphelpers import open_sftp

import sshlib
from sshlib.sftp import core as c
from sshlib.sftp.attrs import SFTPAttributes, decode_attrs, encode_attrs
from sshlib.sftp.core import SFTPCore
from sshlib.sftp.policy import ReadPlan, open_flags

HOSTILE = Path(__file__).resolve().parent / "sftp_hostile_server.py"
PYTHON = "/usr/bin/python3"  # the login user cannot reach a pyenv shim under /root



@pytest.mark.parametrize(("scenario", "call", "error"), [
    ("wrong-id", "stat", sshlib.SFTPProtocolError),
    ("unsolicited", "stat", sshlib.SFTPProtocolError),
    ("oversized", "listdir", sshlib.SFTPProtocolError),
    ("huge-name", "listdir", sshlib.SFTPProtocolError),
    ("truncated", "stat", sshlib.SFTPError),
    ("stall", "get", sshlib.Timeout),
    ("data-too-long", "get", sshlib.SFTPProtocolError),
])
def test_hostile_server(frontend: Any, openssh_factory: Any, tmp_path: Path, scenario: str,
                        call: str, error: type[BaseException]) -> None:
    server = openssh_factory({"Subsystem": f"sftp {PYTHON} {HOSTILE} {scenario}"})
    with connect(server, frontend) as client:
        t0 = time.monotonic()
        with pytest.raises(error):
            with open_sftp(frontend, client, timeout=3) as s:
                if call == "stat":
                    s.stat("/x")
                elif call == "listdir":
                    s.listdir("/")
                else:
                    s.get("/x", str(tmp_path / "x"))
        assert time.monotonic() - t0 < 20
        if scenario != "stall":  # the connection survives a broken SFTP session
            client.send_keepalive(timeout=10)


# --- the core on bytes -----------------------------------------------------------------------
def _core() -> SFTPCore:
    core = SFTPCore(max_packet=1 << 16)
    assert core.hello() == b"\0\0\0\x05\x01\0\0\0\x03"
    version = bytes([2]) + struct.pack(">I", 3) + struct.pack(">I", 5) + b"ext-a" \
        + struct.pack(">I", 1) + b"1"
    assert core.feed(struct.pack(">I", len(version)) + version) == []
    assert core.version == 3 and core.has_extension("ext-a")
    return core


def _packet(kind: int, rid: int, body: bytes) -> bytes:
    payload = bytes([kind]) + struct.pack(">I", rid) + body
    return struct.pack(">I", len(payload)) + payload


def test_core_frames_and_parses_byte_by_byte() -> None:
    core = _core()
    rid, pkt = core.request(c.FXP_STAT, "/tmp/ä")
    assert pkt == _packet(c.FXP_STAT, rid, struct.pack(">I", 7) + "/tmp/ä".encode())
    attrs = SFTPAttributes(st_size=5, st_uid=1, st_gid=2, st_mode=0o100644, st_atime=3,
                           st_mtime=4, extended=[(b"a", b"b")])
    wire = _packet(c.FXP_ATTRS, rid, encode_attrs(attrs))
    got: list[c.Reply] = []
    for i in range(len(wire)):  # one byte at a time
        got += core.feed(wire[i:i + 1])
    assert got == [c.Attrs(rid, attrs)]
    rid2, _ = core.read(b"h", 0, 10)
    (reply,) = core.feed(_packet(c.FXP_DATA, rid2, struct.pack(">I", 4) + b"abcd"))
    assert isinstance(reply, c.Data) and bytes(reply.data) == b"abcd"
    rid3, _ = core.request(c.FXP_REMOVE, "x")
    (st,) = core.feed(_packet(c.FXP_STATUS, rid3, struct.pack(">I", 2)))  # no message: v3 ok
    assert st == c.Status(rid3, 2, "")
    assert decode_attrs(encode_attrs(None), 0)[0] == SFTPAttributes()


@pytest.mark.parametrize(("name", "wire"), [
    ("length over the limit", struct.pack(">I", (1 << 16) + 1)),
    ("length too small", struct.pack(">I", 2) + b"\x65\0"),
    ("unknown id", _packet(c.FXP_STATUS, 999, struct.pack(">I", 0))),
    ("wrong reply type", _packet(c.FXP_HANDLE, 0, struct.pack(">I", 1) + b"h")),
    ("huge NAME count", _packet(c.FXP_NAME, 1, struct.pack(">I", 0xFFFFFFFF) + b"\0" * 24)),
    ("DATA longer than asked", _packet(c.FXP_DATA, 2, struct.pack(">I", 11) + b"x" * 11)),
    ("string past the end", _packet(c.FXP_STATUS, 0, struct.pack(">II", 4, 50) + b"ab")),
    ("trailing bytes", _packet(c.FXP_STATUS, 0, struct.pack(">III", 0, 0, 0) + b"!")),
    ("attrs extended count", _packet(c.FXP_ATTRS, 3, struct.pack(">II", 0x80000000, 10**6))),
])
def test_core_refuses_bad_replies(name: str, wire: bytes) -> None:
    core = _core()
    core.request(c.FXP_REMOVE, "a")        # id 0: STATUS only
    core.request(c.FXP_REALPATH, ".")      # id 1: NAME
    core.read(b"h", 0, 10)                 # id 2: DATA of at most 10
    core.request(c.FXP_STAT, "a")          # id 3: ATTRS
    with pytest.raises(sshlib.SFTPProtocolError):
        core.feed(wire)
    with pytest.raises(sshlib.SFTPProtocolError):  # and it stays broken
        core.feed(b"")


def test_oversized_length_refused_before_buffering() -> None:
    core = _core()
    core.request(c.FXP_REMOVE, "a")
    with pytest.raises(sshlib.SFTPProtocolError):
        core.feed(struct.pack(">I", 0x7FFFFFFF) + b"\x65")  # 5 bytes: refused at once
    core = _core()
    core.request(c.FXP_REMOVE, "a")
    core.feed(b"\0\0")  # the length arrives in two pieces, then a lot of data
    with pytest.raises(sshlib.SFTPProtocolError):
        core.feed(b"\x7f\xff" + b"\0" * (1 << 20))
    assert not core._buf  # nothing of it was kept (test-only peek)


def test_status_mapping_and_modes() -> None:
    assert isinstance(c.status_error(2, "x"), FileNotFoundError)
    assert isinstance(c.status_error(3, "x"), PermissionError)
    assert isinstance(c.status_error(11, "x"), FileExistsError)
    assert isinstance(c.status_error(19, "x"), NotADirectoryError)
    assert isinstance(c.status_error(24, "x"), IsADirectoryError)
    err = c.status_error(4, "Failure", "/p")
    assert type(err) is sshlib.SFTPError and isinstance(err, OSError)
    assert (err.code, err.message, err.filename) == (4, "Failure", "/p")
    assert open_flags("rb") == c.FXF_READ
    assert open_flags("xb") == c.FXF_WRITE | c.FXF_CREAT | c.FXF_EXCL
    with pytest.raises(ValueError):
        open_flags("rt")


def test_read_plan_short_reads_and_eof() -> None:
    plan = ReadPlan(0, 100, 40, 2)
    assert [plan.next(), plan.next(), plan.next()] == [(0, 40), (40, 40), None]
    plan.on_data(0, 40, 30)          # short: the rest is asked again
    assert plan.next() == (30, 10)
    plan.on_data(40, 40, 40)
    assert plan.next() == (80, 20)
    plan.on_data(30, 10, 10)
    plan.on_eof(80)
    assert plan.done and plan.end == 80
    with pytest.raises(sshlib.SFTPProtocolError):
        ReadPlan(0, 10, 10, 1).on_data(0, 10, 0)  # an empty DATA would loop forever


def test_aio_cancel_mid_transfer(openssh_factory: Any, tmp_path: Path) -> None:
    """Cancelling a task stuck in get() raises CancelledError there (not the RuntimeError of a
    generator whose cleanup wanted I/O), and closing afterwards does not hang."""
    import asyncio

    from helpers import config

    import sshlib.aio

    server = openssh_factory({"Subsystem": f"sftp {PYTHON} {HOSTILE} stall"})

    async def go() -> None:
        async with sshlib.aio.dial("tcp", server.address, config(server)) as client:
            async with client.sftp(timeout=30) as s:
                task = asyncio.ensure_future(s.get("/x", str(tmp_path / "x")))
                await asyncio.sleep(0.5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert task.cancelled()
    asyncio.run(asyncio.wait_for(go(), 30))


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
@settings(max_examples=300, deadline=None)
def test_core_fuzz_only_typed_errors(noise: bytes, chunk: int) -> None:
    """Random server bytes after VERSION, in random pieces: replies or SFTPProtocolError,
    and the buffer never holds more than one packet's worth."""
    core = _core()
    for kind in (c.FXP_REMOVE, c.FXP_REALPATH, c.FXP_STAT, c.FXP_OPEN):
        core.request(kind, "p")
    core.read(b"h", 0, 64)
    try:
        for i in range(0, len(noise), chunk):
            core.feed(noise[i:i + chunk])
            assert len(core._buf) <= core.max_packet + 4  # test-only peek
    except sshlib.SFTPProtocolError:
        pass


def test_parallel_and_pacer() -> None:
    """parallel() interleaves operations and hands each its own reply; the pacer's rate."""
    from sshlib.sftp import ops
    from sshlib.sftp.policy import ProgressPacer
    from sshlib.sftp_transfer import parallel

    core = _core()
    seen: list[tuple[str, int]] = []

    def op(name: str) -> ops.Op[None]:
        for _ in range(2):
            reply = yield from ops.call(c.FXP_STAT, name)
            seen.append((name, reply.id))

    gen = parallel((op(n) for n in "abc"), 2)
    cmd = next(gen)
    waiting: list[int] = []
    while True:
        if isinstance(cmd, ops.Send):
            rid, _ = cmd.build(core)
            waiting.append(rid)
            value: Any = rid
        else:
            assert isinstance(cmd, ops.WaitAny)
            rid = waiting.pop()  # answer the newest first: order must not matter
            assert rid in cmd.rids
            value = c.Attrs(rid, SFTPAttributes())
        try:
            cmd = gen.send(value)
        except StopIteration:
            break
    assert sorted(n for n, _ in seen) == ["a", "a", "b", "b", "c", "c"]
    calls: list[tuple[int, int]] = []
    pacer = ProgressPacer(lambda d, t: calls.append((d, t)), 100, now=0.0)
    for i in range(10):
        pacer.add(10, now=i * 0.01)  # 10 updates in 0.1 s: one call, plus the last
    pacer.finish()
    assert calls == [(10, 100), (100, 100)]
