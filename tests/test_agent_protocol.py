"""sshlib.agent without any agent: message layout, framing, reply parsing, endpoint strings."""

from __future__ import annotations

import struct
import threading

import pytest

from sshlib import keys
from sshlib.agent import MessageTransport, parse_endpoint
from sshlib.agent import protocol as p
from sshlib.agent.assuan import is_assuan_data, parse_assuan_socket_file
from sshlib.agent.client import AgentClient
from sshlib.agent.cygwin import parse_cygwin_socket_file
from sshlib.errors import (
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentRefusedError,
    AgentTimeoutError,
    SSHError,
    Timeout,
)


def s(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


# --- framing --------------------------------------------------------------------------------


def test_frame_and_length() -> None:
    assert p.frame(b"\x0b") == b"\x00\x00\x00\x01\x0b"
    assert p.frame_length(b"\x00\x00\x01\x00") == 256
    assert p.frame_length(struct.pack(">I", p.DEFAULT_MAX_MESSAGE)) == 256 * 1024


@pytest.mark.parametrize("length", [0, p.DEFAULT_MAX_MESSAGE + 1, 0xFFFFFFFF])
def test_frame_length_refuses_empty_and_oversized(length: int) -> None:
    with pytest.raises(AgentProtocolError):
        p.frame_length(struct.pack(">I", length), endpoint="unix:/x")


def test_frame_decoder_splits_and_joins_chunks() -> None:
    stream = p.frame(b"\x06") + p.frame(b"\x0e" + s(s("ssh-ed25519") + s(b"x" * 64)))
    for step in (1, 3, 7, len(stream)):
        decoder = p.FrameDecoder()
        messages: list[bytes] = []
        for i in range(0, len(stream), step):
            messages += decoder.feed(stream[i:i + step])
        assert messages == [b"\x06", b"\x0e" + s(s("ssh-ed25519") + s(b"x" * 64))]
        assert decoder.pending == 0


def test_frame_decoder_refuses_oversized_header_before_the_body() -> None:
    decoder = p.FrameDecoder(max_length=1024)
    with pytest.raises(AgentProtocolError, match="1025 bytes exceeds"):
        decoder.feed(struct.pack(">I", 1025))  # no body sent: refused on the header alone


# --- requests: byte layouts from PROTOCOL.agent -----------------------------------------------


def test_request_layouts() -> None:
    assert p.request_identities() == b"\x0b"
    assert p.sign_request(b"BLOB", b"data", 4) == b"\x0d" + s(b"BLOB") + s(b"data") + b"\0\0\0\4"
    assert p.remove_identity(b"B") == b"\x12" + s(b"B")
    assert p.remove_all_identities() == b"\x13"
    assert p.lock(b"pw") == b"\x16" + s(b"pw")
    assert p.unlock(b"pw") == b"\x17" + s(b"pw")
    # The extension body follows the name raw, not as a nested string (OpenSSH's layout).
    assert p.extension("query") == b"\x1b" + s("query")
    assert p.extension("x@y", b"\x01\x02") == b"\x1b" + s("x@y") + b"\x01\x02"
    assert p.session_bind_body(b"HK", b"SID", b"SIG", True) == s(b"HK") + s(b"SID") + s(
        b"SIG") + b"\x01"


def test_add_identity_layout_with_constraints() -> None:
    key = keys.generate_private_key("ed25519", comment="c")
    fields = key._private_fields()
    plain = p.add_identity("ssh-ed25519", fields, "c")
    assert plain == b"\x11" + s("ssh-ed25519") + fields + s("c")
    constrained = p.add_identity("ssh-ed25519", fields, "c",
                                 [p.lifetime_constraint(60), p.confirm_constraint()])
    assert constrained == (b"\x19" + s("ssh-ed25519") + fields + s("c")
                           + b"\x01\x00\x00\x00\x3c" + b"\x02")
    with pytest.raises(ValueError):
        p.lifetime_constraint(0)


def test_sign_flags() -> None:
    assert p.sign_flags_for_algorithm("rsa-sha2-256") == 2
    assert p.sign_flags_for_algorithm("rsa-sha2-512") == 4
    assert p.sign_flags_for_algorithm("ssh-rsa") == 0
    assert p.sign_flags_for_algorithm("ssh-ed25519") == 0


# --- replies ------------------------------------------------------------------------------------


def test_parse_identities() -> None:
    body = struct.pack(">I", 2) + s(b"K1") + s("one") + s(b"K2") + s("two")
    reply = p.parse_reply(b"\x0c" + body)
    assert p.parse_identities(reply) == [(b"K1", "one"), (b"K2", "two")]


@pytest.mark.parametrize("body", [
    struct.pack(">I", 2) + s(b"K1") + s("one"),                  # one key short
    struct.pack(">I", 1) + s(b"K1") + s("one") + b"junk",        # trailing bytes
    struct.pack(">I", 0xFFFFFFFF),                                # absurd count
    struct.pack(">I", 1) + b"\x00\x00\x10\x00abc",                # string runs off the end
    b"\x00\x00",                                                  # truncated count
])
def test_parse_identities_refuses_malformed(body: bytes) -> None:
    with pytest.raises(AgentProtocolError, match="malformed key list"):
        p.parse_identities(p.parse_reply(b"\x0c" + body), "unix:/x")


def test_parse_reply_types() -> None:
    for kind in (5, 28, 30, 102):
        assert p.parse_reply(bytes((kind,))).is_failure
    assert not p.parse_reply(b"\x06").is_failure
    with pytest.raises(AgentProtocolError, match="unknown reply type 99"):
        p.parse_reply(b"\x63")
    with pytest.raises(AgentProtocolError):
        p.parse_reply(b"")


def test_parse_sign_response() -> None:
    sig = s("ssh-ed25519") + s(b"x" * 64)
    assert p.parse_sign_response(p.parse_reply(b"\x0e" + s(sig))) == sig
    for bad in (s(sig)[:-1], s(sig) + b"x", s(b"notasig")):
        with pytest.raises(AgentProtocolError):
            p.parse_sign_response(p.parse_reply(b"\x0e" + bad))
    with pytest.raises(AgentProtocolError, match="type 12"):
        p.parse_sign_response(p.parse_reply(b"\x0c" + b"\0\0\0\0"))


NAMES = ["query", "session-bind@openssh.com", "x@example.org"]


@pytest.mark.parametrize("body", [
    b"".join(s(n) for n in NAMES),                                  # Pageant: flat strings
    struct.pack(">I", 3) + b"".join(s(n) for n in NAMES),           # count + strings
    s(b"".join(s(n) for n in NAMES)),                               # one wrapping string
], ids=["flat", "counted", "wrapped"])
def test_query_reply_layouts(body: bytes) -> None:
    assert p.parse_query_names(body) == NAMES


def test_query_reply_garbage() -> None:
    assert p.parse_query_names(b"") == []
    assert p.parse_query_names(b"\x00\x00\x00\x05ab") is None
    assert p.parse_query_names(s(b"bad name\x00")) is None


# --- socket files -----------------------------------------------------------------------------


def test_cygwin_file_generations() -> None:
    new = parse_cygwin_socket_file(b"!<socket >51234 s 0123abcd-89ABCDEF-00000001-ffffffff\x00")
    assert (new.port, new.type_char, new.variant) == (51234, "s", "cygwin")
    assert new.secret == struct.pack("<4I", 0x0123ABCD, 0x89ABCDEF, 1, 0xFFFFFFFF)
    old = parse_cygwin_socket_file(b"!<socket >4000 DEADBEEF-00000000-11111111-22222222\x00")
    assert (old.port, old.type_char, old.variant) == (4000, None, "msysgit")
    plain = parse_cygwin_socket_file(b"!<socket >4001")
    assert (plain.port, plain.secret, plain.variant) == (4001, None, "plain")
    assert parse_cygwin_socket_file(b"!<socket >4002 d 00000000-00000000-00000000-00000000"
                                    ).type_char == "d"


@pytest.mark.parametrize("data", [
    b"", b"!<socket >", b"!<socket >99999 s 00000000-00000000-00000000-00000000",
    b"!<socket >1 s", b"!<socket >1 s 0000-0000", b"!<socket >12 x 00000000-0-0-0",
    b"!<socket >12 s 00000000-00000000-00000000-00000000 trailing",
])
def test_cygwin_file_malformed(data: bytes) -> None:
    with pytest.raises(AgentConnectError):
        parse_cygwin_socket_file(data, "cygwin:/f")


def test_assuan_file() -> None:
    nonce = bytes(range(16))
    info = parse_assuan_socket_file(b"5000\n" + nonce)
    assert (info.port, info.nonce) == (5000, nonce)
    assert is_assuan_data(b"1\n" + b"\n" * 16)
    for bad in (b"5000\n" + nonce[:15], b"5000\n" + nonce + b"x", b"port\n" + nonce,
                b"70000\n" + nonce):
        with pytest.raises(AgentConnectError):
            parse_assuan_socket_file(bad)


# --- endpoint strings -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "address", "port", "canonical"), [
    ("unix:/run/a.sock", "unix", "/run/a.sock", 0, "unix:/run/a.sock"),
    ("/tmp/ssh-x/agent.1", "auto", "/tmp/ssh-x/agent.1", 0, "/tmp/ssh-x/agent.1"),
    ("./rel:ative", "auto", "./rel:ative", 0, "./rel:ative"),
    ("C:\\Users\\me\\agent", "auto", "C:\\Users\\me\\agent", 0, "C:\\Users\\me\\agent"),
    ("tcp:127.0.0.1:7000", "tcp", "127.0.0.1", 7000, "tcp:127.0.0.1:7000"),
    ("tcp:[::1]:7000", "tcp", "::1", 7000, "tcp:[::1]:7000"),
    ("tcp:localhost:1", "tcp", "localhost", 1, "tcp:localhost:1"),
    ("exec:npiperelay.exe -ei -s //./pipe/openssh-ssh-agent", "exec",
     "npiperelay.exe -ei -s //./pipe/openssh-ssh-agent", 0,
     "exec:npiperelay.exe -ei -s //./pipe/openssh-ssh-agent"),
    ("cygwin:/tmp/ssh-x/agent.2", "cygwin", "/tmp/ssh-x/agent.2", 0, "cygwin:/tmp/ssh-x/agent.2"),
    ("msys:/tmp/a", "cygwin", "/tmp/a", 0, "cygwin:/tmp/a"),
    ("assuan:C:/gnupg/S.gpg-agent.ssh", "assuan", "C:/gnupg/S.gpg-agent.ssh", 0,
     "assuan:C:/gnupg/S.gpg-agent.ssh"),
    ("pipe:openssh-ssh-agent", "pipe", "openssh-ssh-agent", 0, "pipe:openssh-ssh-agent"),
    ("pipe:\\\\.\\pipe\\openssh-ssh-agent", "pipe", "openssh-ssh-agent", 0,
     "pipe:openssh-ssh-agent"),
    ("\\\\.\\pipe\\openssh-ssh-agent", "pipe", "openssh-ssh-agent", 0, "pipe:openssh-ssh-agent"),
    ("//./pipe/pageant.me.abc", "pipe", "pageant.me.abc", 0, "pipe:pageant.me.abc"),
    ("pageant", "pageant", "", 0, "pageant"),
    ("pageant-pipe", "pageant-pipe", "", 0, "pageant-pipe"),
    ("pageant-window", "pageant-window", "", 0, "pageant-window"),
])
def test_parse_endpoint(text: str, kind: str, address: str, port: int, canonical: str) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.kind, endpoint.address, endpoint.port) == (kind, address, port)
    assert str(endpoint) == canonical
    assert parse_endpoint(str(endpoint)) == endpoint


def test_parse_vsock_endpoint() -> None:
    endpoint = parse_endpoint("vsock:2:4321")
    assert (endpoint.kind, endpoint.cid, endpoint.port) == ("vsock", 2, 4321)
    assert str(endpoint) == "vsock:2:4321"


@pytest.mark.parametrize("text", [
    "", "tcp:", "tcp:host", "tcp:host:0", "tcp:host:65536", "tcp::22", "tcp:h:port",
    "vsock:x:1", "vsock:2", "exec:", "exec:   ", "unix:", "pipe:a/b", "bogus:thing",
    "/tmp/a\x00b",
])
def test_parse_endpoint_refuses(text: str) -> None:
    with pytest.raises(AgentError, match="bad agent endpoint"):
        parse_endpoint(text)


def test_error_hierarchy() -> None:
    exc = AgentTimeoutError("slow", endpoint="unix:/a")
    assert isinstance(exc, AgentError) and isinstance(exc, Timeout)
    assert isinstance(exc, SSHError) and isinstance(exc, TimeoutError)
    assert str(exc) == "agent unix:/a: slow" and exc.endpoint == "unix:/a"


# --- MessageTransport: how a one-message-per-call channel (Pageant's window) plugs in -------


class EchoWindow(MessageTransport):
    """Answers each framed request with SUCCESS, FAILURE for type 19; counts exchanges."""

    def __init__(self) -> None:
        super().__init__("pageant-window")
        self.exchanges: list[bytes] = []
        self.released = False

    def _exchange(self, request: bytes, timeout: float | None) -> bytes:
        self.exchanges.append(request)
        return p.frame(b"\x05" if request[4] == 19 else b"\x06")

    def _release(self) -> None:
        self.released = True


def test_message_transport_delivers_whole_messages() -> None:
    window = EchoWindow()
    request = p.frame(p.lock(b"secret"))
    for byte in request:  # dribbled in one byte at a time
        window.send_all(bytes((byte,)), 1)
    assert window.exchanges == [request]  # one whole message, never pieces
    assert window.recv_exact(5, 1) == p.frame(b"\x06")
    with pytest.raises(AgentTimeoutError):
        window.recv(10, 0.05)
    with AgentClient(window, timeout=5) as client:
        with pytest.raises(AgentError, match="message type"):
            client.request(b"")
        client.lock(b"pw")
        with pytest.raises(AgentRefusedError):
            client.remove_all()
        assert client.endpoint == "pageant-window"
    assert window.released


def test_message_transport_reader_thread_waits_for_reply() -> None:
    window = EchoWindow()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(window.recv_exact(5, 5)))
    reader.start()
    window.send_all(p.frame(b"\x0b"), 1)
    reader.join(5)
    assert got == [p.frame(b"\x06")]
    window.close()
    assert window.recv(1, 1) == b""


def test_message_transport_refuses_oversized_request() -> None:
    window = EchoWindow()
    with pytest.raises(AgentProtocolError):
        window.send_all(struct.pack(">I", p.DEFAULT_MAX_MESSAGE + 1), 1)
    assert window.exchanges == []

