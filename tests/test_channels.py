"""Channel behaviour against a scripted server, on both front-ends: the channel-open
registry, late messages for closed channels, back-pressure timeouts, line reads that
time out, and combined output order."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeserver import (
    CHANNEL_CLOSE,
    CHANNEL_OPEN,
    CHANNEL_OPEN_CONFIRMATION,
    CHANNEL_OPEN_FAILURE,
    CHANNEL_SUCCESS,
    FakeServer,
    Parser,
    ServerSide,
    sshstr,
    u32,
)
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib.channelstate import StreamChannel


@pytest.fixture(autouse=True)
def _frontend_connect(monkeypatch: pytest.MonkeyPatch, frontend: Any) -> Iterator[None]:
    def connect(fs: FakeServer, timeout: float = 5.0, **overrides: Any) -> Any:
        return frontend.client(fs.client_sock, fs.config(**overrides), addr=("fake", 22),
                               timeout=timeout)

    monkeypatch.setattr(FakeServer, "connect", connect)
    yield


def open_from_server(s: ServerSide, kind: str, sender: int, extra: bytes = b"") -> None:
    s.send_payload(bytes((CHANNEL_OPEN,)) + sshstr(kind) + u32(sender) + u32(1 << 20)
                   + u32(32768) + extra)


def open_answer(s: ServerSide) -> tuple[int, Parser]:
    payload = s.recv_message(CHANNEL_OPEN_CONFIRMATION, CHANNEL_OPEN_FAILURE)
    return payload[0], Parser(payload, 1)


# --- the channel-open registry -------------------------------------------------------------

def test_unknown_and_unsolicited_channels_are_refused_with_a_reason() -> None:
    answers: list[tuple[int, int, str]] = []

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        open_from_server(s, "x-unknown@example.com", 70)
        open_from_server(s, "forwarded-tcpip", 71, sshstr("127.0.0.1") + u32(8080)
                         + sshstr("10.0.0.1") + u32(5555))
        open_from_server(s, "forwarded-streamlocal@openssh.com", 72, sshstr("/tmp/x")
                         + sshstr(""))
        for _ in range(3):
            kind, p = open_answer(s)
            assert kind == CHANNEL_OPEN_FAILURE
            answers.append((p.u32(), p.u32(), p.text()))
        s.send_data(channel, b"ok")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"ok"
        fs.wait_script()
    assert answers[0][:2] == (70, 3) and "unknown channel type" in answers[0][2]
    assert answers[1][:2] == (71, 1) and "no forward" in answers[1][2]
    assert answers[2][:2] == (72, 1)


def test_handle_channel_open_accepts_into_a_stream() -> None:
    got: list[Any] = []
    ready = threading.Event()

    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        s.wait_gate()
        open_from_server(s, "x11", 90, sshstr("127.0.0.1") + u32(6010))
        kind, p = open_answer(s)
        assert kind == CHANNEL_OPEN_CONFIRMATION and p.u32() == 90
        ours = p.u32()
        s.send_payload(bytes((94,)) + u32(ours) + sshstr(b"x11 bytes"))
        s.recv_message(CHANNEL_CLOSE)

    with FakeServer(script, gated=True) as fs, fs.connect() as client:
        def handler(new_channel: Any) -> None:
            assert new_channel.kind == "x11"
            assert new_channel.payload == sshstr("127.0.0.1") + u32(6010)
            got.append(new_channel.accept())
            ready.set()
        client.handle_channel_open("x11", handler)
        fs.open_gate()
        assert ready.wait(5)
        stream = got[0]
        stream.settimeout(5)
        assert stream.recv(100) == b"x11 bytes"
        stream.close()
        fs.wait_script()


def test_a_handler_that_accepts_then_raises_closes_the_channel() -> None:
    """A bug in a handler must not leave an accepted channel open with nobody reading it."""
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        s.wait_gate()
        open_from_server(s, "x11", 91, sshstr("127.0.0.1") + u32(6010))
        kind, p = open_answer(s)
        assert kind == CHANNEL_OPEN_CONFIRMATION and p.u32() == 91
        s.recv_message(CHANNEL_CLOSE)

    with FakeServer(script, gated=True) as fs, fs.connect() as client:
        def handler(new_channel: Any) -> None:
            new_channel.accept()
            raise RuntimeError("handler bug")
        client.handle_channel_open("x11", handler)
        fs.open_gate()
        fs.wait_script()


@pytest.mark.parametrize("kind", ["auth-agent@openssh.com", "agent-connect"])
def test_agent_channel_kinds_are_accepted_only_after_registration(kind: str) -> None:
    results: list[int] = []
    refused, registered = threading.Event(), threading.Event()

    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        open_from_server(s, kind, 50)
        results.append(open_answer(s)[0])
        refused.set()
        assert registered.wait(5)
        open_from_server(s, kind, 51)
        results.append(open_answer(s)[0])

    with FakeServer(script) as fs, fs.connect() as client:
        assert refused.wait(5)
        client.forward_agent("unix:/nonexistent/agent.sock")
        registered.set()
        fs.wait_script()
    assert results == [CHANNEL_OPEN_FAILURE, CHANNEL_OPEN_CONFIRMATION]


# --- messages after the channel closed, late or missing replies --------------------------

@pytest.mark.parametrize("late_reply", [True, False], ids=["late", "never"])
def test_exec_reply_after_close_is_a_success(late_reply: bool,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sshlib.connection")
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        channel = s.expect_channel_open()
        _, want_reply, _ = s.expect_channel_request("exec")
        assert want_reply
        s.send_data(channel, b"done")
        s.finish_command(channel, 0)  # exit-status 0, EOF, CLOSE, then the client's CLOSE
        if late_reply:
            s.send_payload(bytes((CHANNEL_SUCCESS,)) + u32(channel.client_id))
        second = s.expect_channel_open()  # the connection is still fine
        s.expect_channel_request("exec")
        s.reply(second)
        s.send_data(second, b"again")
        s.finish_command(second, 0)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"done"
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"again"
        fs.wait_script()
    ignored = [r for r in caplog.records if "for closed channel" in r.getMessage()]
    assert bool(ignored) == late_reply and all(r.levelno == logging.DEBUG for r in ignored)


def test_failed_exec_with_close_before_reply_still_raises() -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        channel = s.expect_channel_open()
        s.expect_channel_request("exec")
        s.send_close(channel)
        s.recv_message(CHANNEL_CLOSE)

    with FakeServer(script) as fs, fs.connect() as client:
        session = client.new_session(timeout=5)
        with pytest.raises(sshlib.SSHError):
            session.output("true", timeout=5)
        fs.wait_script()


# --- reads that time out keep their bytes; line splitting --------------------------------

def test_readline_and_readexactly_timeouts_keep_consumed_bytes() -> None:
    steps = [threading.Event(), threading.Event()]

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"partial")
        assert steps[0].wait(5)
        s.send_data(channel, b" line\nabc")
        assert steps[1].wait(5)
        s.send_data(channel, b"def")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        session = client.new_session(timeout=5)
        session.start("x", timeout=5)
        with pytest.raises(sshlib.Timeout):
            session.stdout.readline(timeout=0.3)
        steps[0].set()
        assert session.stdout.readline(timeout=5) == b"partial line\n"
        with pytest.raises(sshlib.Timeout):
            session.stdout.readexactly(6, timeout=0.3)
        steps[1].set()
        assert session.stdout.readexactly(6, timeout=5) == b"abcdef"
        session.wait(timeout=5)
        fs.wait_script()


def test_readline_scans_buffers_instead_of_reading_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [b"line %05d with some text\n" % i for i in range(2000)]
    takes = []
    original = StreamChannel.take

    def counting(self: StreamChannel, index: int, size: int) -> bytes:
        takes.append(size)
        return original(self, index, size)

    monkeypatch.setattr(StreamChannel, "take", counting)

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        blob = b"".join(lines)
        for start in range(0, len(blob), 30000):
            s.send_data(channel, blob[start:start + 30000])
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        session = client.new_session(timeout=5)
        session.start("x", timeout=5)
        got = list(session.stdout.lines(timeout=5))
        session.wait(timeout=5)
        fs.wait_script()
    assert got == lines
    assert len(takes) < len(lines) + 40  # one take per line (plus chunk edges), not per byte


def test_combined_output_keeps_arrival_order_across_batches() -> None:
    pieces = [(i % 3 == 0, b"%d;" % i) for i in range(600)]

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        for stderr, data in pieces:
            s.send_data(channel, data, stderr=stderr)
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.combined_output("x", timeout=5) == b"".join(d for _, d in pieces)
        fs.wait_script()


# --- back-pressure: every blocking call honours its timeout ----------------------------------

def test_blocking_calls_honour_timeouts_under_tcp_back_pressure(frontend: Any) -> None:
    stop = threading.Event()

    def script(s: ServerSide) -> None:
        channel = s.session_ready(window=1 << 30)
        stop.wait(30)  # read nothing: TCP fills up
        del channel

    with FakeServer(script) as fs:
        client = fs.connect()
        try:
            session = client.new_session(timeout=5)
            session.start("cat", timeout=5)
            start = time.monotonic()
            with pytest.raises(sshlib.Timeout):
                session.stdin.write(b"x" * (64 << 20), timeout=1)
            assert time.monotonic() - start < 5
            calls = [lambda: session.signal("TERM", timeout=0.5),
                     lambda: session.window_change(30, 100, timeout=0.5),
                     lambda: session.stdin.write(b"more", timeout=0.5),
                     lambda: client.rekey(timeout=0.5),
                     lambda: session.stdin.close(timeout=0.5)]
            if frontend.name == "aio":
                calls.append(lambda: session.stdin.drain(timeout=0.5))
            calls.append(lambda: session.close(timeout=0.5))
            for call in calls:
                start = time.monotonic()
                with pytest.raises(sshlib.Timeout):
                    call()
                assert time.monotonic() - start < 3
            with pytest.raises(sshlib.Timeout):
                next(iter(session.stdout.lines(timeout=0.3)))
        finally:
            stop.set()
            client.close()


def test_replies_to_abandoned_requests_are_not_kept() -> None:
    """A request whose waiter timed out must not leave its late reply behind forever."""
    channel = StreamChannel("session")
    channel.abandon_reply(0)          # the waiter gave up before the reply
    channel.on_reply(True)            # ... which comes late
    channel.on_reply(False)           # ticket 1, still awaited
    assert channel.request_results == {1: False}
    channel.abandon_reply(1)          # gave up just after the reply arrived
    assert channel.request_results == {} and channel.abandoned_replies == set()


# --- opens the opener gave up on (both front-ends close such a channel the same way) --------

def _closes_given_up_channel(closed: threading.Event, confirm_late: threading.Event | None,
                             ) -> Any:
    """A script: the first channel is confirmed (at once, or once `confirm_late` is set); the
    client must close it; then a session must still work."""
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        given_up = s.expect_channel_open(confirm=confirm_late is None)
        if confirm_late is not None:
            assert confirm_late.wait(5)
            s.send_payload(bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(given_up.client_id)
                           + u32(given_up.server_id) + u32(1 << 20) + u32(32768))
            s.send_data(given_up, b"nobody is listening")
        assert Parser(s.recv_message(CHANNEL_CLOSE), 1).u32() == given_up.server_id
        s.send_close(given_up)
        closed.set()
        channel, _ = s.serve_session()
        s.send_data(channel, b"still fine")
        s.finish_command(channel)
    return script


def test_late_confirmation_of_a_timed_out_open_is_closed() -> None:
    confirm_late, closed = threading.Event(), threading.Event()
    with FakeServer(_closes_given_up_channel(closed, confirm_late)) as fs, \
            fs.connect() as client:
        with pytest.raises(sshlib.Timeout):
            client.open_channel("session", timeout=0.3)
        confirm_late.set()
        assert closed.wait(5), f"the client never closed the late channel ({client.wait(0.1)})"
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"still fine"
        fs.wait_script()


def test_open_given_up_just_as_the_confirmation_came_is_closed(
        frontend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The opener stops waiting (sync: its deadline passed; aio: its task is cancelled) after
    the confirmation was dispatched but before it ran again: the channel is open on the
    server, so the client closes it, and marks it closed with Timeout, as for a pending one."""
    import asyncio

    from sshlib.aio.channel import AioChannel
    from sshlib.sync.channel import ChannelIO

    closed = threading.Event()
    given_up: list[StreamChannel] = []
    with FakeServer(_closes_given_up_channel(closed, None)) as fs, fs.connect() as client:
        if frontend.name == "sync":
            wait_open = ChannelIO.wait_open

            def deadline_passes_as_it_comes(self: ChannelIO, timeout: float | None) -> None:
                wait_open(self, 5)  # returns: confirmed ...
                given_up.append(self)
                raise sshlib.Timeout("timed out waiting for session channel open")  # ... late

            with monkeypatch.context() as patch:
                patch.setattr(ChannelIO, "wait_open", deadline_passes_as_it_comes)
                with pytest.raises(sshlib.Timeout):
                    client.open_channel("session", timeout=5)
        else:
            opener: list[asyncio.Task[Any]] = []
            on_opened = AioChannel.on_opened

            def cancel_as_it_comes(self: AioChannel) -> None:
                on_opened(self)  # wakes the opener, which then finds itself cancelled
                given_up.append(self)
                opener[0].cancel()

            async def attempt() -> None:
                opener.append(asyncio.ensure_future(client.aio.open_channel("session", b"", 5)))
                with pytest.raises(asyncio.CancelledError):
                    await opener[0]

            with monkeypatch.context() as patch:
                patch.setattr(AioChannel, "on_opened", cancel_as_it_comes)
                frontend.run(attempt())
        assert closed.wait(5), f"the client never closed the channel ({client.wait(0.1)})"
        assert given_up[0].closed and isinstance(given_up[0].error, sshlib.Timeout)
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"still fine"
        fs.wait_script()
