"""The sans-IO mux codec (sshlib.mux.protocol): known bytes, matching replies, bad input."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from test_core_units import _io_imports

from sshlib.errors import MuxProtocolError
from sshlib.mux import protocol as mp


def packet(*fields: int | bytes | str) -> bytes:
    """uint32 for ints, SSH strings for bytes/str, framed with the packet length."""
    body = b""
    for f in fields:
        if isinstance(f, int):
            body += struct.pack(">I", f)
        else:
            raw = f.encode() if isinstance(f, str) else f
            body += struct.pack(">I", len(raw)) + raw
    return struct.pack(">I", len(body)) + body


HELLO = packet(mp.MSG_HELLO, 4)


def ready() -> mp.MuxProtocol:
    proto = mp.MuxProtocol()
    assert proto.data_to_send() == HELLO
    assert proto.receive_data(HELLO) == [mp.HelloReceived(4, ())]
    return proto


def test_codec_is_sans_io() -> None:
    bad, seen = _io_imports(["sshlib.mux.protocol"])
    assert not bad, bad
    assert "sshlib.wire" in seen


def test_aio_mux_does_not_reach_the_threaded_front_end() -> None:
    """sshlib.aio.mux shares the codec and fds.py, never sync (not even through sshlib.mux)."""
    _, seen = _io_imports(["sshlib.aio.mux"])
    assert {"sshlib.mux.protocol", "sshlib.mux.fds", "sshlib.aio.session"} <= seen
    assert not [m for m in seen if m.startswith(("sshlib.sync", "sshlib.mux.client",
                                                  "sshlib.mux.pipes"))]
    _, seen = _io_imports(["sshlib.mux.client"])
    assert not [m for m in seen if m.startswith("sshlib.aio")]


def test_import_sshlib_does_not_load_mux() -> None:
    """sshlib.mux and sshlib.aio.mux load on first use, not with `import sshlib`."""
    code = ("import sys, sshlib, sshlib.aio; "
            "assert not [m for m in sys.modules if '.mux' in m], sorted(sys.modules); "
            "assert sshlib.mux.MuxClient and sshlib.aio.mux.MuxClient and sshlib.agent.AgentClient")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_requests_encode_as_openssh_mux_c() -> None:
    proto = ready()
    assert proto.alive_check() == 0
    assert proto.data_to_send() == packet(mp.C_ALIVE_CHECK, 0)
    assert proto.new_session("uname -a", tty=True, term="xterm", env=["A=1", "B=two"]) == 1
    # mux.c's layout: the four flags are uint32 (PROTOCOL.mux says bool), escape 0xffffffff.
    assert proto.data_to_send() == packet(mp.C_NEW_SESSION, 1, b"", 1, 0, 0, 0, mp.NO_ESCAPE,
                                          "xterm", "uname -a", "A=1", "B=two")
    assert proto.new_stdio_forward("db", 5432) == 2
    # and the stdio-forward port is a uint32 (PROTOCOL.mux says string)
    assert proto.data_to_send() == packet(mp.C_NEW_STDIO_FWD, 2, b"", "db", 5432)
    proto.open_forward(mp.FWD_LOCAL, "127.0.0.1", 8080, "web", 80)
    assert proto.data_to_send() == packet(mp.C_OPEN_FWD, 3, 1, "127.0.0.1", 8080, "web", 80)
    proto.close_forward(mp.FWD_LOCAL, "127.0.0.1", 8080, "/run/app.sock", mp.PORT_STREAMLOCAL)
    assert proto.data_to_send() == packet(mp.C_CLOSE_FWD, 4, 1, "127.0.0.1", 8080,
                                          "/run/app.sock", 0xFFFFFFFE)
    proto.terminate()
    proto.stop_listening()
    assert proto.data_to_send() == packet(mp.C_TERMINATE, 5) + packet(mp.C_STOP_LISTENING, 6)
    assert proto.pending == 7


def test_replies_match_their_requests_byte_by_byte() -> None:
    proto = ready()
    alive, session, fwd = proto.alive_check(), proto.new_session(""), proto.open_forward(
        mp.FWD_REMOTE, "", 0, "localhost", 22)
    stream = (packet(mp.S_ALIVE, alive, 4242) + packet(mp.S_SESSION_OPENED, session, 7)
              + packet(mp.S_REMOTE_PORT, fwd, 40001) + packet(mp.S_TTY_ALLOC_FAIL, 7)
              + packet(mp.S_EXIT_MESSAGE, 7, 3))
    events = []
    for i in range(len(stream)):  # any fragmentation gives the same events
        events += proto.receive_data(stream[i:i + 1])
    assert events == [mp.AliveReported(alive, 4242), mp.SessionOpened(session, 7),
                      mp.RemotePortAllocated(fwd, 40001), mp.TtyAllocFailed(7),
                      mp.ExitReported(7, 3)]
    assert proto.pending == 0
    assert proto.receive_data(b"") == [mp.MasterClosed(clean=True)]


def test_failures_carry_the_reason() -> None:
    proto = ready()
    a, b = proto.terminate(), proto.open_forward(mp.FWD_LOCAL, "", 1, "h", 2)
    assert proto.receive_data(packet(mp.S_PERMISSION_DENIED, a, "Permission denied")
                              + packet(mp.S_FAILURE, b, "Port forwarding failed")) == [
        mp.RequestFailed(a, "Permission denied", True),
        mp.RequestFailed(b, "Port forwarding failed", False)]


@pytest.mark.parametrize(("data", "message"), [
    (packet(0x80000001, 0), "expected MUX_MSG_HELLO"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "exceeds the limit"),
    (packet(mp.MSG_HELLO, 3), "unsupported mux protocol version 3"),
    (HELLO + HELLO, "HELLO twice"),
    (HELLO + packet(mp.S_OK, 99), "never made"),
    (HELLO + packet(mp.S_ALIVE, 0, 1) + packet(mp.S_ALIVE, 0, 1), "never made"),
    (HELLO + packet(mp.S_SESSION_OPENED, 0, 1), "does not answer"),
    (HELLO + packet(0x8000000F, 0), "does not answer"),
    (HELLO + packet(mp.S_EXIT_MESSAGE, 5, 0), "unknown session"),
    (HELLO + packet(mp.S_ALIVE, 0), "truncated"),
    (HELLO + packet(mp.S_ALIVE, 0, 1, 2), "trailing"),
    (HELLO + packet(mp.S_FAILURE, 0, b"x" * 70000), "exceeds limit"),
    (HELLO + b"\x00\x00\x00\x01\x00", "truncated"),
    (struct.pack(">I", mp.MAX_PACKET + 1), "exceeds the limit"),
])
def test_bad_input_is_a_typed_error(data: bytes, message: str) -> None:
    proto = mp.MuxProtocol()
    proto.alive_check()
    with pytest.raises(MuxProtocolError, match=message):
        proto.receive_data(data)
    assert proto.closed
    assert proto.receive_data(HELLO) == []


def test_exit_reported_once_per_session() -> None:
    proto = ready()
    rid = proto.new_session("true")
    proto.receive_data(packet(mp.S_SESSION_OPENED, rid, 3) + packet(mp.S_EXIT_MESSAGE, 3, 0))
    with pytest.raises(MuxProtocolError, match="sent twice"):
        proto.receive_data(packet(mp.S_EXIT_MESSAGE, 3, 0))


def test_partial_packet_at_close_is_reported() -> None:
    proto = ready()
    proto.receive_data(b"\x00\x00")
    assert proto.receive_data(b"") == [mp.MasterClosed(clean=False)]


@pytest.mark.parametrize("call", [
    lambda p: p.new_session("a\0b"),
    lambda p: p.new_session("x", env=["NOVALUE"]),
    lambda p: p.new_session("x", env=["=x"]),
    lambda p: p.new_stdio_forward("h", 70000),
    lambda p: p.open_forward(9, "", 1, "h", 2),
    lambda p: p.open_forward(mp.FWD_LOCAL, "", -1, "h", 2),
])
def test_bad_requests_are_refused_before_sending(call: object) -> None:
    proto = ready()
    with pytest.raises(ValueError):
        call(proto)  # type: ignore[operator]
    assert proto.data_to_send() == b""
