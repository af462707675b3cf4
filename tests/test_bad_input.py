"""The client against a malformed or hostile server (tests/fakeserver.py).

Every test here must end, within a few seconds, with a *typed* sshlib error
(or, for the tolerance tests, with the session working), never a hang, never
an exception escaping the reader thread, and never unbounded buffering.  Where
RFC 4253 11.1 says so the client must also tell the server why with a
DISCONNECT carrying the right reason code; the fake server decrypts what the
client sends and records it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakeserver import (
    CHANNEL_CLOSE,
    CHANNEL_DATA,
    CHANNEL_OPEN_CONFIRMATION,
    CHANNEL_OPEN_FAILURE,
    CHANNEL_REQUEST,
    CHANNEL_SUCCESS,
    CHANNEL_WINDOW_ADJUST,
    DEBUG,
    DISCONNECT,
    EXT_INFO,
    GLOBAL_REQUEST,
    IGNORE,
    KEX_ECDH_REPLY,
    KEXINIT,
    NEWKEYS,
    REQUEST_FAILURE,
    REQUEST_SUCCESS,
    SERVICE_ACCEPT,
    SERVICE_REQUEST,
    UNIMPLEMENTED,
    USERAUTH_PK_OK,
    USERAUTH_REQUEST,
    USERAUTH_SUCCESS,
    FakeServer,
    Parser,
    ServerSide,
    sshstr,
    u32,
)
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib.errors import (
    ConnectionLost,
    DecodeError,
    DisconnectError,
    HostKeyError,
    KexError,
    MACError,
    ProtocolError,
    SSHError,
    Timeout,
)
from sshlib.keys import generate_private_key

pytestmark = pytest.mark.timeout(30)

# RFC 4250 4.2.2 reason codes the client must send.
PROTOCOL_ERROR = 2
KEY_EXCHANGE_FAILED = 3
MAC_ERROR = 5
HOST_KEY_NOT_VERIFIABLE = 9

#: A typed error must come well before the 5 s handshake/read timeouts we pass.
PROMPT = 3.0

Script = Callable[[ServerSide], None]


@pytest.fixture(autouse=True)
def _no_thread_crashes(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                       frontend: Any) -> Iterator[None]:
    """Every test runs on both front-ends; nothing may escape a thread (or the aio loop), and
    the reader thread/task must never hit its 'internal error'.

    `FakeServer.connect` is pointed at the front-end under test, so every scripted server
    below talks to the sync client and to the asyncio one.
    """

    def connect(fs: FakeServer, timeout: float = 5.0, **overrides: Any) -> Any:
        return frontend.client(fs.client_sock, fs.config(**overrides), addr=("fake", 22),
                               timeout=timeout)

    monkeypatch.setattr(FakeServer, "connect", connect)
    crashes: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    caplog.set_level(logging.DEBUG, logger="sshlib")
    yield
    assert not crashes, [f"{c.thread}: {c.exc_type.__name__}: {c.exc_value}" for c in crashes]
    errors = [r.getMessage() for r in caplog.records
              if r.name.startswith("sshlib") and r.levelno >= logging.ERROR]
    assert not errors, errors


# --- helpers ---------------------------------------------------------------------------------

def fail_handshake(script: Script, expected: type[SSHError], **config: Any
                   ) -> tuple[FakeServer, SSHError]:
    """Connect to a server running `script`; the handshake must fail promptly with `expected`."""
    with FakeServer(script) as fs:
        start = time.monotonic()
        with pytest.raises(expected) as info:
            fs.connect(**config)
        assert time.monotonic() - start < PROMPT, "the client waited instead of failing"
    return fs, info.value


def fail_session(script: Script, expected: type[SSHError], **config: Any
                 ) -> tuple[FakeServer, SSHError]:
    """Start a command; the server's misbehaviour must surface from Session.wait().

    The server is gated: it misbehaves only once this thread has stopped
    sending (see test_disconnect_survives_a_racing_close for why that matters).
    """
    with FakeServer(script, gated=True) as fs:
        with fs.connect(**config) as client:
            session = client.new_session(timeout=5)
            session.start("true", timeout=5)
            fs.open_gate()
            start = time.monotonic()
            with pytest.raises(expected) as info:
                session.wait(timeout=5)
            assert time.monotonic() - start < PROMPT
            # Let the reader thread finish before close() (test_disconnect_survives_a_racing_close).
            assert client.wait(timeout=5) is info.value
            # The connection is over: every later call says why, with the same error.
            with pytest.raises(type(info.value)):
                client.new_session(timeout=1)
    return fs, info.value


def disconnect_reason(fs: FakeServer) -> int:
    assert fs.disconnect is not None, "the client did not send DISCONNECT"
    return fs.disconnect[0]


def ignore(data: bytes = b"") -> bytes:
    return bytes((IGNORE,)) + sshstr(data)


def versions(s: ServerSide) -> None:
    s.send_version()
    s.recv_version()


# --- identification string (RFC 4253 4.2) ------------------------------------------------------

LONG = b"SSH-2.0-" + b"A" * 300


@pytest.mark.parametrize("data", [
    pytest.param(LONG + b"\r\n", id="version-line-over-255"),
    pytest.param(LONG, id="version-line-never-ends"),
    pytest.param(b"SSH-1.5-OldServer\r\n", id="ssh-1.5"),
    pytest.param(b"SSH-2.0\r\n", id="no-software-version"),
    pytest.param(b"SSH-2.0-Bad\x00Server\r\n", id="nul-in-version"),
    pytest.param(b"SSH-2.0-Bad\r\r\n", id="control-char-in-version"),
    pytest.param(b"hello\x00world\r\nSSH-2.0-x\r\n", id="nul-in-pre-banner"),
    pytest.param(b"junk\r\n" * 2000 + b"SSH-2.0-late\r\n", id="pre-banner-too-many-lines"),
    pytest.param((b"x" * 1000 + b"\r\n") * 100 + b"SSH-2.0-late\r\n", id="pre-banner-too-big"),
    pytest.param(b"x" * 20000, id="pre-banner-line-never-ends"),
])
def test_bad_identification(data: bytes) -> None:
    def script(s: ServerSide) -> None:
        s.recv_version()
        s.send_raw(data)

    fs, _ = fail_handshake(script, ProtocolError)
    # No binary packet protocol yet, so nothing to send a DISCONNECT in.
    assert fs.disconnect is None


def test_pre_banner_lines_are_tolerated() -> None:
    """Control for the flood tests: a few lines before the version are fine (RFC 4253 4.2)."""
    def script(s: ServerSide) -> None:
        s.send_raw(b"Welcome\r\nto the\r\nfake server\n")
        s.handshake()
        s.accept_auth()

    with FakeServer(script) as fs, fs.connect() as client:
        assert client.server_version == "SSH-2.0-FakeServer_0.1"


@pytest.mark.parametrize("before", [b"", b"Welcome\r\n", b"SSH-2.0-hal"])
def test_server_closes_before_version(before: bytes) -> None:
    def script(s: ServerSide) -> None:
        s.recv_version()
        s.send_raw(before)
        s.close()

    fail_handshake(script, ConnectionLost)


def test_server_gone_before_the_client_speaks(frontend: Any) -> None:
    """The peer closed before our first send: ConnectionLost, not a raw BrokenPipeError."""
    ours, theirs = socket.socketpair()
    theirs.close()
    config = sshlib.ClientConfig(user="tester", host_key_callback=sshlib.insecure_ignore_host_key())
    try:
        with pytest.raises(ConnectionLost):
            frontend.client(ours, config, addr=("fake", 22), timeout=5)
    finally:
        ours.close()


def test_silent_server_times_out() -> None:
    def script(s: ServerSide) -> None:
        versions(s)

    with FakeServer(script) as fs:
        start = time.monotonic()
        with pytest.raises(Timeout):
            fs.connect(timeout=0.5)
        assert time.monotonic() - start < PROMPT


def test_trickling_server_times_out() -> None:
    """A server feeding one byte at a time cannot stretch the handshake deadline."""
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_raw(u32(1020))
        while True:
            s.send_raw(b"\x00")
            time.sleep(0.02)

    with FakeServer(script) as fs:
        start = time.monotonic()
        with pytest.raises(Timeout):
            fs.connect(timeout=0.5)
        assert time.monotonic() - start < PROMPT


# --- binary packets before NEWKEYS (RFC 4253 6) --------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 4, 256 * 1024 + 1, 2**31, 2**32 - 1])
def test_bad_packet_length_before_keys(length: int) -> None:
    """Only the 4-byte length is sent: refusing it must not wait for (or buffer) a body."""
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_raw(u32(length))

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


PROBE = ignore(b"abc")  # 8 bytes: 4 + 1 + 8 + padding 11 = one 24-byte plaintext packet


@pytest.mark.parametrize("lie", [
    pytest.param({"padding_length": 200}, id="padding-longer-than-packet"),
    pytest.param({"padding_length": 20}, id="padding-equals-packet-length"),
    pytest.param({"padding_length": 19}, id="padding-eats-whole-payload"),
    pytest.param({"padding_length": 3}, id="padding-below-4"),
    pytest.param({"padding": b"\x00" * 3}, id="short-padding"),
    pytest.param({"padding": b"\x00" * 4}, id="misaligned-packet"),
])
def test_bad_padding_before_keys(lie: dict[str, Any]) -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_payload(PROBE, **lie)

    fs, _ = fail_handshake(script, DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


# --- binary packets after NEWKEYS (aes128-gcm) ---------------------------------------------------

SERVICE_ACCEPT_MSG = bytes((SERVICE_ACCEPT,)) + sshstr("ssh-userauth")


@pytest.mark.parametrize("bit", [
    pytest.param(-1, id="tag"),
    pytest.param(-200, id="ciphertext"),
    pytest.param(40, id="first-encrypted-byte"),
])
def test_corrupted_packet_after_newkeys(bit: int) -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(SERVICE_ACCEPT_MSG, flip_bit=bit)

    fs, _ = fail_handshake(script, MACError)
    assert disconnect_reason(fs) == MAC_ERROR


def test_length_lie_after_newkeys_fails_the_tag() -> None:
    """An aligned but wrong length makes the client authenticate the wrong bytes: MACError."""
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(SERVICE_ACCEPT_MSG, packet_length=48)  # really 32
        s.send_payload(ignore(b"filler"))  # gives the client the 16 bytes it now waits for

    fs, _ = fail_handshake(script, MACError)
    assert disconnect_reason(fs) == MAC_ERROR


def test_misaligned_length_after_newkeys() -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(SERVICE_ACCEPT_MSG, packet_length=33)
        s.send_raw(b"\x00")  # the 53rd byte, so the whole claimed packet is there

    fs, _ = fail_handshake(script, DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


@pytest.mark.parametrize("length", [256 * 1024 + 16, 2**32 - 16])
def test_huge_packet_after_newkeys(length: int) -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_raw(u32(length))

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


# --- key exchange ---------------------------------------------------------------------------------

@pytest.mark.parametrize("offer", [
    pytest.param({"kex": ["diffie-hellman-group1-sha1"]}, id="kex"),
    pytest.param({"kex": [], "strict": False}, id="empty-kex-list"),
    pytest.param({"host_key": ["ssh-dss"]}, id="host-key"),
    pytest.param({"ciphers": ["3des-cbc"]}, id="cipher"),
    pytest.param({"compression": ["zlib"]}, id="compression"),
])
def test_no_common_algorithm(offer: dict[str, Any]) -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit(**offer)

    fs, error = fail_handshake(script, KexError)
    assert "no common" in str(error)
    assert disconnect_reason(fs) == KEY_EXCHANGE_FAILED


OTHER_ED25519 = generate_private_key("ssh-ed25519")
ECDSA = generate_private_key("ecdsa-sha2-nistp256")


@pytest.mark.parametrize("lie", [
    pytest.param({"sign_with": OTHER_ED25519}, id="signed-by-another-key"),
    pytest.param({"tamper_hash": True}, id="signature-over-wrong-hash"),
    pytest.param({"signature": b"garbage"}, id="garbage-signature"),
    pytest.param({"signature": sshstr("ssh-ed25519") + sshstr(bytes(64))}, id="zero-signature"),
    pytest.param({"signature": sshstr("ecdsa-sha2-nistp256") + sshstr(bytes(64))},
                 id="signature-algorithm-mismatch"),
    pytest.param({"host_key": ECDSA}, id="host-key-type-not-negotiated"),
    pytest.param({"host_key_blob": b"garbage"}, id="garbage-host-key"),
    pytest.param({"server_public": bytes(32)}, id="low-order-x25519-point"),
    pytest.param({"server_public": os.urandom(31)}, id="short-x25519-value"),
])
def test_bad_kex_reply(lie: dict[str, Any]) -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        # Only ssh-ed25519 is offered, so an ECDSA K_S is a type mismatch.
        s.do_kex(host_key=["ssh-ed25519"], reply=lie)

    fs, _ = fail_handshake(script, KexError)
    assert disconnect_reason(fs) == KEY_EXCHANGE_FAILED
    assert bytes((NEWKEYS,)) not in fs.server.received  # never switched to unverified keys


def test_strict_kex_refuses_ignore_before_kexinit() -> None:
    """kex-strict (OpenSSH PROTOCOL 1.10, CVE-2023-48795): KEXINIT must be the first packet."""
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_payload(ignore())
        s.do_kex(strict=True)

    fs, _ = fail_handshake(script, KexError)
    assert disconnect_reason(fs) == KEY_EXCHANGE_FAILED


@pytest.mark.parametrize("message", [
    pytest.param(ignore(b"x"), id="ignore"),
    pytest.param(bytes((DEBUG,)) + b"\x00" + sshstr("hi") + sshstr(""), id="debug"),
    pytest.param(bytes((UNIMPLEMENTED,)) + u32(0), id="unimplemented"),
    pytest.param(bytes((200,)), id="unknown-200"),
])
def test_strict_kex_refuses_non_kex_message_during_initial_kex(message: bytes) -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit(strict=True)
        s.recv_kexinit()
        s.send_payload(message)
        s.finish_kex()

    fs, _ = fail_handshake(script, KexError)
    assert disconnect_reason(fs) == KEY_EXCHANGE_FAILED


def test_without_strict_kex_ignore_is_tolerated_around_kexinit() -> None:
    """Control for the strict tests: the same packets are fine when strict kex is off."""
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_payload(ignore(b"before"))
        s.send_kexinit(strict=False)
        s.recv_kexinit()
        s.send_payload(ignore(b"during"))
        s.finish_kex()
        s.accept_auth()

    with FakeServer(script) as fs, fs.connect():
        assert not fs.server.strict


@pytest.mark.parametrize("message", [
    pytest.param(bytes((SERVICE_ACCEPT,)) + sshstr("ssh-userauth"), id="service-accept"),
    pytest.param(bytes((CHANNEL_DATA,)) + u32(0) + sshstr(b"x"), id="channel-data"),
    pytest.param(bytes((200,)), id="unknown-200"),
])
def test_non_kex_message_during_kex_without_strict(message: bytes) -> None:
    """RFC 4253 7.1: between KEXINIT and NEWKEYS only transport messages may be sent."""
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit(strict=False)
        s.recv_kexinit()
        s.send_payload(message)
        s.finish_kex()

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_newkeys_before_kex_reply() -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit()
        s.recv_kexinit()
        s.send_payload(bytes((NEWKEYS,)))

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) in (PROTOCOL_ERROR, KEY_EXCHANGE_FAILED)


def test_newkeys_without_any_kex() -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_payload(bytes((NEWKEYS,)))

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) in (PROTOCOL_ERROR, KEY_EXCHANGE_FAILED)


def test_second_kexinit_during_kex() -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit()
        s.recv_kexinit()
        s.send_kexinit()

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) in (PROTOCOL_ERROR, KEY_EXCHANGE_FAILED)


def test_kex_reply_sent_twice() -> None:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_kexinit()
        s.recv_kexinit()
        q_c = s.recv_kex_ecdh_init()
        reply = s.kex_reply(q_c)
        s.send_payload(reply)
        s.send_payload(reply)

    fs, _ = fail_handshake(script, ProtocolError)
    assert disconnect_reason(fs) in (PROTOCOL_ERROR, KEY_EXCHANGE_FAILED)


def _after_kex(message: bytes) -> Script:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(message)
    return script


def _during_auth(message: bytes) -> Script:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_service()
        s.recv_message(USERAUTH_REQUEST)
        s.send_payload(message)
    return script


def _before_kex(message: bytes) -> Script:
    def script(s: ServerSide) -> None:
        versions(s)
        s.send_payload(message)
        s.do_kex(strict=False)
    return script


@pytest.mark.parametrize(("make", "message"), [
    pytest.param(_before_kex, bytes((USERAUTH_SUCCESS,)), id="before-kex-userauth-success"),
    pytest.param(_before_kex, bytes((SERVICE_ACCEPT,)) + sshstr("ssh-userauth"),
                 id="before-kex-service-accept"),
    pytest.param(_before_kex, bytes((CHANNEL_DATA,)) + u32(0) + sshstr(b"x"),
                 id="before-kex-channel-data"),
    pytest.param(_after_kex, bytes((USERAUTH_SUCCESS,)), id="userauth-success-before-accept"),
    pytest.param(_after_kex, bytes((CHANNEL_DATA,)) + u32(0) + sshstr(b"x"),
                 id="channel-data-before-auth"),
    pytest.param(_after_kex, bytes((GLOBAL_REQUEST,)) + sshstr("x") + b"\x01",
                 id="global-request-before-auth"),
    pytest.param(_after_kex, bytes((SERVICE_REQUEST,)) + sshstr("ssh-userauth"),
                 id="service-request-from-server"),
    pytest.param(_after_kex, bytes((KEX_ECDH_REPLY,)) + sshstr(b"") * 3,
                 id="kex-reply-outside-kex"),
    pytest.param(_during_auth, SERVICE_ACCEPT_MSG, id="second-service-accept"),
    pytest.param(_during_auth, bytes((USERAUTH_PK_OK,)) + sshstr("ssh-ed25519") + sshstr(b"k"),
                 id="pk-ok-for-none"),
    pytest.param(_during_auth, bytes((61,)) + u32(0), id="info-response-from-server"),
    pytest.param(_during_auth, bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(0) * 4,
                 id="channel-confirmation-during-auth"),
])
def test_unexpected_message_for_the_phase(make: Callable[[bytes], Script], message: bytes) -> None:
    fs, _ = fail_handshake(make(message), ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_malicious_ext_info_count() -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(bytes((EXT_INFO,)) + u32(0xFFFFFFFF) + sshstr("server-sig-algs"))

    fs, _ = fail_handshake(script, DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_keyboard_interactive_prompt_count_bomb() -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_service()
        s.recv_message(USERAUTH_REQUEST)  # "none"
        s.send_payload(bytes((51,)) + sshstr("keyboard-interactive") + b"\x00")
        s.recv_message(USERAUTH_REQUEST)
        s.send_payload(bytes((60,)) + sshstr("") + sshstr("") + sshstr("") + u32(0xFFFFFFFF)
                       + sshstr("Password: ") + b"\x00")

    answers: list[object] = []

    def answer(*prompt: object) -> list[str]:
        answers.append(prompt)
        return []

    method = sshlib.KeyboardInteractive(answer)
    fs, _ = fail_handshake(script, DecodeError, auth=[method])
    assert not answers
    assert disconnect_reason(fs) == PROTOCOL_ERROR


# --- host key verification -----------------------------------------------------------------------

def _refuse_with(exc: Exception) -> Callable[..., None]:
    def callback(hostname: str, port: int, key: sshlib.PublicKey) -> None:
        raise exc
    return callback


@pytest.mark.parametrize("callback", [
    pytest.param(sshlib.fixed_host_key(OTHER_ED25519.public_key), id="fixed-key-mismatch"),
    pytest.param(_refuse_with(HostKeyError("no")), id="raises-host-key-error"),
    pytest.param(_refuse_with(RuntimeError("callback bug")), id="raises-other-exception"),
])
def test_host_key_rejected(callback: Callable[..., None]) -> None:
    def script(s: ServerSide) -> None:
        s.handshake()

    fs, _ = fail_handshake(script, HostKeyError, host_key_callback=callback)
    assert disconnect_reason(fs) == HOST_KEY_NOT_VERIFIABLE
    assert bytes((NEWKEYS,)) not in fs.server.received


def test_no_host_key_callback_configured_fails_closed(frontend: Any) -> None:
    def script(s: ServerSide) -> None:
        s.handshake()

    with FakeServer(script) as fs:
        config = sshlib.ClientConfig(user="tester")  # no host_key_callback
        with pytest.raises(HostKeyError):
            frontend.client(fs.client_sock, config, addr=("fake", 22), timeout=5)
    assert disconnect_reason(fs) == HOST_KEY_NOT_VERIFIABLE


def test_host_key_changes_during_rekey() -> None:
    def script(s: ServerSide) -> None:
        s.session_ready()
        s.do_kex(reply={"host_key": OTHER_ED25519})

    with FakeServer(script, gated=True) as fs:
        with fs.connect() as client:
            session = client.new_session(timeout=5)
            session.start("true", timeout=5)
            fs.open_gate()
            with pytest.raises(KexError, match="changed"):
                session.wait(timeout=5)
            client.wait(timeout=5)
    assert disconnect_reason(fs) == KEY_EXCHANGE_FAILED


def test_server_rekey_with_same_host_key_works() -> None:
    """Control for the test above (and for the fake server's rekey)."""
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"before ")
        s.do_kex()
        s.send_data(channel, b"after")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"before after"
    assert fs.server.kex_count == 2


# --- connection protocol -------------------------------------------------------------------------

def test_data_for_unknown_channel() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"x", recipient=channel.client_id + 7)

    with FakeServer(script, gated=True) as fs:
        with fs.connect() as client:
            session = client.new_session(timeout=5)
            session.start("true", timeout=5)
            fs.open_gate()
            with pytest.raises(ProtocolError, match="unknown channel"):
                session.stdout.read(timeout=5)
            client.wait(timeout=5)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


WINDOW = {"window_size": 2048, "max_packet_size": 1024}


def test_data_beyond_advertised_window() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        assert (channel.client_window, channel.client_max_packet) == (2048, 1024)
        s.send_data(channel, b"a" * 1024)
        s.send_data(channel, b"b" * 1024)
        s.send_data(channel, b"c")  # the window is used up: nobody read a byte

    fs, error = fail_session(script, ProtocolError, **WINDOW)
    assert "window" in str(error)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_stderr_data_beyond_window() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"a" * 1024)
        s.send_data(channel, b"b" * 1024, stderr=True)
        s.send_data(channel, b"c", stderr=True)

    fs, _ = fail_session(script, ProtocolError, **WINDOW)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_data_larger_than_our_max_packet() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"a" * 1025)

    fs, _ = fail_session(script, ProtocolError, **WINDOW)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


@pytest.mark.parametrize("message", [
    pytest.param(lambda cid: bytes((CHANNEL_DATA,)) + u32(cid) + u32(10) + b"short",
                 id="data-length-longer-than-packet"),
    pytest.param(lambda cid: bytes((CHANNEL_DATA,)) + u32(cid) + u32(1) + b"xy",
                 id="data-length-shorter-than-packet"),
    pytest.param(lambda cid: bytes((CHANNEL_DATA,)) + u32(cid)[:2], id="data-truncated"),
    pytest.param(lambda cid: bytes((CHANNEL_WINDOW_ADJUST,)) + u32(cid), id="adjust-truncated"),
])
def test_malformed_channel_messages(message: Callable[[int], bytes]) -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_payload(message(channel.client_id))

    fs, _ = fail_session(script, DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_window_adjust_overflowing_2_32() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready(window=0xFFFFFFFF - 10)
        s.send_payload(bytes((CHANNEL_WINDOW_ADJUST,)) + u32(channel.client_id) + u32(100))

    fs, _ = fail_session(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_window_adjust_for_unknown_channel() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_payload(bytes((CHANNEL_WINDOW_ADJUST,)) + u32(channel.client_id + 1) + u32(1))

    fs, _ = fail_session(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_channel_data_after_eof() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"out")
        s.send_eof(channel)
        s.send_data(channel, b"late")

    fs, error = fail_session(script, ProtocolError)
    assert "EOF" in str(error)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


@pytest.mark.parametrize("message", [
    pytest.param(lambda cid: bytes((CHANNEL_SUCCESS,)) + u32(cid), id="channel-success"),
    pytest.param(lambda cid: bytes((100,)) + u32(cid), id="channel-failure"),
    pytest.param(lambda cid: bytes((REQUEST_SUCCESS,)), id="global-request-success"),
    pytest.param(lambda cid: bytes((REQUEST_FAILURE,)), id="global-request-failure"),
    pytest.param(lambda cid: bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(cid + 50) + u32(9)
                 + u32(1 << 20) + u32(32768), id="confirmation-for-channel-never-opened"),
    pytest.param(lambda cid: bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(cid) + u32(9)
                 + u32(1 << 20) + u32(32768), id="second-confirmation"),
    pytest.param(lambda cid: bytes((CHANNEL_OPEN_FAILURE,)) + u32(cid) + u32(1) + sshstr("")
                 + sshstr(""), id="open-failure-for-open-channel"),
])
def test_reply_to_request_never_made(message: Callable[[int], bytes]) -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_payload(message(channel.client_id))

    fs, _ = fail_session(script, ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_channel_close_twice() -> None:
    go = threading.Event()

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_exit_status(channel, 0)
        s.send_close(channel)
        s.recv_message(CHANNEL_CLOSE)
        assert go.wait(5)
        s.send_close(channel)

    with FakeServer(script) as fs:
        with fs.connect() as client:
            with client.new_session(timeout=5) as session:
                session.run("true", timeout=5)
            go.set()
            assert isinstance(client.wait(timeout=5), ProtocolError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def _channel_request(cid: int, name: str, body: bytes, want_reply: bool = False) -> bytes:
    return bytes((CHANNEL_REQUEST,)) + u32(cid) + sshstr(name) + bytes((want_reply,)) + body


@pytest.mark.parametrize(("name", "body"), [
    pytest.param("exit-status", b"\x00\x01", id="exit-status-truncated"),
    pytest.param("exit-status", u32(0) + b"junk", id="exit-status-trailing-bytes"),
    pytest.param("exit-status", b"", id="exit-status-empty"),
    pytest.param("exit-signal", sshstr("KILL") + b"\x00" + sshstr("x" * 5000) + sshstr(""),
                 id="exit-signal-huge-message"),
    pytest.param("exit-signal", sshstr("KILL"), id="exit-signal-truncated"),
    pytest.param("exit-signal", sshstr(b"\xff\xfe") + b"\x00" + sshstr("") + sshstr(""),
                 id="exit-signal-not-utf8"),
])
def test_garbage_exit_status(name: str, body: bytes) -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_payload(_channel_request(channel.client_id, name, body))
        s.send_close(channel)

    fs, _ = fail_session(script, DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_server_disconnect_unblocks_a_reader() -> None:
    go = threading.Event()

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"partial")
        assert go.wait(5)
        s.send_disconnect(11, "going down for maintenance")

    with FakeServer(script) as fs:
        with fs.connect() as client:
            session = client.new_session(timeout=5)
            session.start("true", timeout=5)
            assert session.stdout.read(7, timeout=5) == b"partial"
            timer = threading.Timer(0.3, go.set)  # the DISCONNECT comes while read() waits
            start = time.monotonic()
            timer.start()
            with pytest.raises(DisconnectError) as info:
                session.stdout.read(timeout=5)
            assert 0.25 < time.monotonic() - start < PROMPT  # it really blocked, then woke up
            assert (info.value.reason, info.value.description) == (11,
                                                                  "going down for maintenance")
            assert isinstance(client.wait(timeout=5), DisconnectError)
            timer.join()
    assert fs.disconnect is None  # no DISCONNECT in reply to a DISCONNECT


@pytest.mark.parametrize("tail", [b"", b"\x00\x00\x00\x40\x01\x02"], ids=["clean", "mid-packet"])
def test_server_closes_socket_mid_read(tail: bytes) -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_data(channel, b"partial")
        time.sleep(0.3)
        s.send_raw(tail)
        s.close()

    with FakeServer(script) as fs, fs.connect() as client:
        session = client.new_session(timeout=5)
        session.start("true", timeout=5)
        assert session.stdout.read(7, timeout=5) == b"partial"
        start = time.monotonic()
        with pytest.raises(ConnectionLost):
            session.stdout.read(timeout=5)
        assert time.monotonic() - start < PROMPT
        with pytest.raises(ConnectionLost):
            session.stdin.write(b"more", timeout=1)


def test_read_timeout_leaves_the_connection_usable() -> None:
    go = threading.Event()

    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        assert go.wait(5)
        s.send_data(channel, b"finally")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        session = client.new_session(timeout=5)
        session.start("true", timeout=5)
        with pytest.raises(Timeout):
            session.stdout.read(timeout=0.2)
        go.set()
        assert session.stdout.read(timeout=5) == b"finally"
        session.wait(timeout=5)


def test_channel_confirmed_after_open_timed_out() -> None:
    """A slow server confirms (and sends data on) a channel we gave up waiting for.

    The client must close that channel (it promised to in open_channel) and
    carry on; it must not crash its reader thread on the unexpected data.
    """
    late_ok = threading.Event()
    closed = threading.Event()

    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_auth()
        late = s.expect_channel_open(confirm=False)
        assert late_ok.wait(5)
        s.send_payload(bytes((CHANNEL_OPEN_CONFIRMATION,)) + u32(late.client_id)
                       + u32(late.server_id) + u32(1 << 20) + u32(32768))
        s.send_data(late, b"nobody is listening")
        p = Parser(s.recv_message(CHANNEL_CLOSE), 1)
        assert p.u32() == late.server_id
        closed.set()
        channel, _ = s.serve_session()
        s.send_data(channel, b"still fine")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with pytest.raises(Timeout):
            client.open_channel("session", timeout=0.3)
        late_ok.set()
        assert closed.wait(5), f"the client never closed the late channel ({client.wait(0.1)})"
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"still fine"


# --- requests from the server and messages the client must tolerate ------------------------------

def test_global_request_from_server_gets_request_failure() -> None:
    def script(s: ServerSide) -> None:
        channel = s.session_ready()
        s.send_payload(bytes((GLOBAL_REQUEST,)) + sshstr("hostkeys-00@openssh.com") + b"\x00"
                       + sshstr(b"blob"))
        s.send_payload(bytes((GLOBAL_REQUEST,)) + sshstr("keepalive@openssh.com") + b"\x01")
        # Exactly one answer, to the request that wanted one.
        assert s.recv_payload() == bytes((REQUEST_FAILURE,))
        s.send_payload(bytes((200,)))
        assert s.recv_payload()[0] == UNIMPLEMENTED
        s.send_data(channel, b"ok")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"ok"
        fs.wait_script()


def _probe_unimplemented(s: ServerSide, number: int) -> None:
    """Send message `number`; the client must answer UNIMPLEMENTED with its sequence number."""
    s.send_payload(bytes((number,)) + b"\x00\x00\x00\x01probe")
    seq = s.last_sent_seq
    p = Parser(s.recv_message(UNIMPLEMENTED), 1)
    assert p.u32() == seq, "UNIMPLEMENTED names the wrong packet"
    p.end()


def _recv_collecting(s: ServerSide, wanted: int, unimplemented: list[int]) -> bytes:
    """The next message of type `wanted`; UNIMPLEMENTED replies seen on the way are collected."""
    while True:
        payload = s.recv_payload()
        if payload[0] == UNIMPLEMENTED:
            unimplemented.append(Parser(payload, 1).u32())
        elif payload[0] == wanted:
            return payload
        else:
            assert payload[0] in (IGNORE, DEBUG), payload[0]


def _unimplemented_before_kex(s: ServerSide, number: int) -> None:
    # sshlib holds non-kex messages back until its NEWKEYS, UNIMPLEMENTED included (RFC 4253
    # 7.1 allows sending it at once; OpenSSH does), so accept the reply late, but not never.
    versions(s)
    s.recv_kexinit()
    s.send_payload(bytes((number,)) + b"probe")
    seq = s.last_sent_seq
    s.send_kexinit(strict=False)
    seen: list[int] = []
    q_c = Parser(_recv_collecting(s, 30, seen), 1).string()
    s.send_payload(s.kex_reply(q_c))
    s.send_newkeys()
    _recv_collecting(s, NEWKEYS, seen)
    _recv_collecting(s, SERVICE_REQUEST, seen)
    s.send_payload(SERVICE_ACCEPT_MSG)
    _recv_collecting(s, USERAUTH_REQUEST, seen)
    s.send_payload(bytes((USERAUTH_SUCCESS,)))
    if not seen:
        s.send_payload(ignore())  # anything still queued in the client is out by now
        s.send_payload(bytes((GLOBAL_REQUEST,)) + sshstr("ping") + b"\x01")
        _recv_collecting(s, REQUEST_FAILURE, seen)
    assert seen == [seq]


def _unimplemented_during_auth(s: ServerSide, number: int, strict: bool) -> None:
    s.handshake(strict=strict)
    s.accept_service()
    s.recv_message(USERAUTH_REQUEST)
    _probe_unimplemented(s, number)
    s.send_payload(bytes((USERAUTH_SUCCESS,)))


def _unimplemented_after_auth(s: ServerSide, number: int, strict: bool) -> None:
    s.handshake(strict=strict)
    s.accept_auth()
    _probe_unimplemented(s, number)


def _unimplemented_after_rekey(s: ServerSide, number: int, strict: bool) -> None:
    # With strict kex the sequence numbers restart at every NEWKEYS, rekeys included.
    s.handshake(strict=strict)
    s.accept_auth()
    s.send_payload(ignore(b"move the sequence number on"))
    s.do_kex()
    _probe_unimplemented(s, number)


def _check_unimplemented(script: Script) -> None:
    with FakeServer(script) as fs, fs.connect() as client:
        fs.wait_script()
        with pytest.raises(Timeout):
            client.wait(timeout=0.05)  # still alive


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "not-strict"])
@pytest.mark.parametrize("phase", [_unimplemented_during_auth, _unimplemented_after_auth,
                                   _unimplemented_after_rekey],
                         ids=["during-auth", "after-auth", "after-rekey"])
def test_unknown_message_gets_unimplemented(phase: Callable[..., None], strict: bool) -> None:
    _check_unimplemented(lambda s: phase(s, 200, strict))


def test_unknown_message_before_kex_gets_unimplemented() -> None:
    _check_unimplemented(lambda s: _unimplemented_before_kex(s, 200))


@pytest.mark.parametrize("number", [
    0, 15, 19, 128, 191, 192, 255,
    # Unassigned numbers inside the user-auth and connection ranges are just as
    # unrecognized: RFC 4253 11.4 "MUST respond to all unrecognized messages
    # with an SSH_MSG_UNIMPLEMENTED" (OpenSSH's dispatch_protocol_error does).
    75, 110, 127,
])
def test_unrecognized_message_numbers_after_auth(number: int) -> None:
    _check_unimplemented(lambda s: _unimplemented_after_auth(s, number, True))


def test_disconnect_survives_a_racing_close() -> None:
    """The DISCONNECT must reach the server even if another thread is sending at that moment.

    Here the application thread is stuck in sendall() (a big stdin write the
    server does not read yet) when the server's bad packet arrives, so the
    reader thread cannot take the send lock to flush the DISCONNECT itself.
    It must not close the socket under the sender either.
    """
    def script(s: ServerSide) -> None:
        channel = s.session_ready(window=64 << 20, max_packet=32768)
        time.sleep(0.3)  # the client's writer fills the socket buffer and blocks
        s.send_payload(_channel_request(channel.client_id, "exit-status", b"\x00"))
        time.sleep(0.3)  # only then start reading (drain) again

    with FakeServer(script) as fs:
        with fs.connect() as client:
            session = client.new_session(timeout=5)
            session.start("true", timeout=5)
            with pytest.raises(SSHError):
                session.stdin.write(b"x" * (32 << 20), timeout=5)
            assert isinstance(client.wait(timeout=5), DecodeError)
    assert disconnect_reason(fs) == PROTOCOL_ERROR


def test_ignore_debug_unimplemented_are_tolerated() -> None:
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(ignore(os.urandom(1000)))
        s.accept_service()
        s.send_payload(bytes((DEBUG,)) + b"\x01" + sshstr("during auth") + sshstr("en"))
        s.recv_message(USERAUTH_REQUEST)
        s.send_payload(bytes((UNIMPLEMENTED,)) + u32(3))
        s.send_payload(bytes((USERAUTH_SUCCESS,)))
        channel, _ = s.serve_session()
        s.send_payload(ignore(os.urandom(200_000)))  # near the packet size limit
        s.send_data(channel, b"one ")
        s.send_payload(bytes((DEBUG,)) + b"\x00" + sshstr("x" * 5000) + sshstr(""))
        s.send_data(channel, b"two")
        s.finish_command(channel)

    with FakeServer(script) as fs, fs.connect() as client:
        with client.new_session(timeout=5) as session:
            assert session.output("true", timeout=5) == b"one two"


def test_client_disconnect_is_readable_after_server_error() -> None:
    """The fake server's own check: it can read what the client sends after an error."""
    def script(s: ServerSide) -> None:
        s.handshake()
        s.send_payload(bytes((DISCONNECT,)) + u32(7) + sshstr("no service") + sshstr(""))

    fs, error = fail_handshake(script, DisconnectError)
    assert isinstance(error, DisconnectError) and error.reason == 7
    assert fs.disconnect is None
    assert fs.server.received[0][0] == KEXINIT
