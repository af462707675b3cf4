"""Agents and channels that misbehave: each gives the right AgentError subclass, naming the
endpoint, within the timeout, and never a hang or a stray exception type."""

from __future__ import annotations

import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    CLOSE,
    HANG,
    AgentProcess,
    BridgeServer,
    Handler,
    KeySet,
    ScriptedAgent,
    ThenClose,
    always,
    dead_port,
    framed,
)

import sshlib.agent  # noqa: E402
from sshlib.agent import AgentClient  # noqa: E402
from sshlib.errors import (  # noqa: E402
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentRefusedError,
    AgentTimeoutError,
)

pytest_plugins = ["agentfixtures"]

TIMEOUT = 1.5
SLACK = 2.0  # scheduling headroom on a loaded 2-core CI machine


def expect(error: type[AgentError], call: Callable[[], object], endpoint: str,
           match: str | None = None) -> AgentError:
    """`call` raises exactly `error` (or a subclass) naming `endpoint`, within the timeout."""
    start = time.monotonic()
    with pytest.raises(error, match=match) as info:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT + SLACK, f"took {elapsed:.1f} s"
    assert info.value.endpoint == endpoint
    assert endpoint in str(info.value)
    return info.value


ED_SIG = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 64) + b"s" * 64


@pytest.mark.parametrize(("reply", "error", "match"), [
    (framed(b"\x05"), AgentRefusedError, "refused to list"),
    (framed(b"\x1e"), AgentRefusedError, "refused"),                      # type 30
    (framed(b"\x63"), AgentProtocolError, "unknown reply type 99"),
    (ThenClose(b"\x00\x00\x00\x64\x0c" + b"\x00" * 9), AgentProtocolError,
     "mid-reply: got 10 of 100"),
    (ThenClose(b"\x00\x00"), AgentProtocolError, "after 2 bytes"),         # closes in the header
    (b"\x00\x00\x00\x64\x0c" + b"\x00" * 9, AgentTimeoutError, "did not finish its reply"),
    (b"\x7f\xff\xff\xff", AgentProtocolError, "exceeds the limit"),        # 2 GiB announced
    (struct.pack(">I", 256 * 1024 + 1) + b"\x0c", AgentProtocolError, "exceeds the limit"),
    (b"\x00\x00\x00\x00", AgentProtocolError, "empty message"),
    (framed(b"\x0c" + struct.pack(">I", 3) + struct.pack(">I", 1) + b"k"),
     AgentProtocolError, "malformed key list"),                            # truncated body
    (framed(b"\x0e" + ED_SIG), AgentProtocolError, "answered a key list request"),
    (CLOSE, AgentConnectError, "closed the connection without answering"),
    (HANG, AgentTimeoutError, "did not answer within 1.5 s"),
], ids=["failure", "failure-30", "unknown-type", "truncated", "closed-in-header",
        "stalls-mid-reply", "oversized", "just-over-cap", "empty", "count-lies", "wrong-type",
        "closed", "silent"])
def test_bad_replies_to_list(scripted: Callable[[Handler], ScriptedAgent], reply: object,
                             error: type[AgentError], match: str) -> None:
    fake = scripted(always(reply))
    agent = sshlib.agent.connect(fake.endpoint, timeout=TIMEOUT)
    expect(error, agent.list_keys, fake.endpoint, match)
    if error is AgentRefusedError or "list" in match or "type 99" in match:
        # The whole reply was read: the stream is still in step, the next call works alike.
        expect(error, agent.list_keys, fake.endpoint, match)
    else:
        # The stream is at an unknown position: later calls fail fast, saying why.
        exc = expect(AgentConnectError, agent.list_keys, fake.endpoint, "earlier error")
        assert match.split(":")[0].split(" within")[0] in str(exc)
    agent.close()


def test_oversized_reply_is_refused_before_the_body_arrives(
        scripted: Callable[[Handler], ScriptedAgent]) -> None:
    """The agent announces 200 MB and then stalls: the header alone is enough to refuse."""
    fake = scripted(always(struct.pack(">I", 200_000_000)))
    with sshlib.agent.connect(fake.endpoint, timeout=30) as agent:
        start = time.monotonic()
        with pytest.raises(AgentProtocolError, match="200000000 bytes exceeds"):
            agent.list_keys()
        assert time.monotonic() - start < 2  # did not wait for (or allocate) a body


def test_custom_cap(scripted: Callable[[Handler], ScriptedAgent]) -> None:
    body = b"\x0c" + struct.pack(">I", 1) + struct.pack(">I", 5000) + b"k" * 5000 + \
        struct.pack(">I", 0)
    fake = scripted(always(framed(body)))
    with sshlib.agent.connect(fake.endpoint, max_message=4096) as agent:
        with pytest.raises(AgentProtocolError, match="limit of 4096"):
            agent.list_keys()
    with sshlib.agent.connect(fake.endpoint) as agent:
        (key,) = agent.list_keys()
        assert key.public_key is None and key.key_type == "?"


def test_signature_of_the_wrong_algorithm(scripted: Callable[[Handler], ScriptedAgent],
                                          agent_keys: KeySet) -> None:
    """An agent that ignores the rsa-sha2 flags and answers ssh-rsa (SHA-1) is caught."""
    rsa = agent_keys.keys["rsa"]
    blob = rsa.public_key.blob
    sha1 = rsa.sign(b"x", "ssh-rsa")

    def handler(payload: bytes) -> bytes:
        if payload[0] == 11:
            return framed(b"\x0c" + struct.pack(">I", 1) + struct.pack(">I", len(blob)) + blob
                          + struct.pack(">I", 0))
        return framed(b"\x0e" + struct.pack(">I", len(sha1)) + sha1)

    fake = scripted(handler)
    with sshlib.agent.connect(fake.endpoint) as agent:
        (signer,) = agent.signers()
        with pytest.raises(AgentProtocolError, match="asked for a rsa-sha2-512 signature"):
            signer.sign(b"x")
        assert fake.requests[-1][-4:] == struct.pack(">I", 4)  # flag was sent
        assert signer.sign(b"x", "ssh-rsa") == sha1


def test_agent_closing_on_unknown_messages(scripted: Callable[[Handler], ScriptedAgent]) -> None:
    """Like cngeant: an unknown message makes it hang up.  A typed error, never a hang; for
    the optional probes (session-bind, query) the client reconnects and carries on."""
    empty_list = framed(b"\x0c" + struct.pack(">I", 0))
    fake = scripted(lambda payload: CLOSE if payload[0] == 27 else empty_list)
    with sshlib.agent.connect(fake.endpoint, timeout=TIMEOUT) as agent:
        start = time.monotonic()
        assert agent.session_bind(b"hk", b"id", b"sig", False) is False
        assert agent.query_extensions() == []
        assert time.monotonic() - start < TIMEOUT + SLACK
        assert agent.list_keys() == []  # usable: it reconnected
        expect(AgentConnectError, lambda: agent.extension("x@example.org"), fake.endpoint,
               "without answering")
        expect(AgentConnectError, agent.list_keys, fake.endpoint, "earlier error")
    assert len(fake.connections) == 3


def test_lock_waiting_for_another_request_times_out(
        scripted: Callable[[Handler], ScriptedAgent]) -> None:
    fake = scripted(always(HANG))
    agent = sshlib.agent.connect(fake.endpoint, timeout=3)
    outcome: list[BaseException] = []

    def first_call() -> None:
        try:
            agent.list_keys()
        except AgentError as exc:
            outcome.append(exc)

    first = threading.Thread(target=first_call)
    first.start()
    time.sleep(0.3)
    expect(AgentTimeoutError, lambda: agent.list_keys(timeout=0.5), fake.endpoint,
           "another request")
    first.join(10)
    assert isinstance(outcome[0], AgentTimeoutError)
    agent.close()


# --- Cygwin / libassuan files ------------------------------------------------------------------


@pytest.fixture
def bridges() -> Iterator[list[BridgeServer]]:
    made: list[BridgeServer] = []
    yield made
    for bridge in made:
        bridge.close()


def test_wrong_cygwin_secret(ssh_agent: AgentProcess, tmp_path: Path,
                             bridges: list[BridgeServer]) -> None:
    """The file's secret is not the one the listener checks: it hangs up, like Cygwin."""
    path = tmp_path / "agent.sock"
    bridge = BridgeServer("cygwin", ssh_agent.sock, path, file_words=(1, 2, 3, 4))
    bridges.append(bridge)
    expect(AgentConnectError, lambda: sshlib.agent.connect(f"cygwin:{path}", timeout=TIMEOUT),
           f"cygwin:{path}", "wrong secret")
    assert bridge.handshakes_ok == 0


def test_cygwin_listener_echoing_another_secret(ssh_agent: AgentProcess, tmp_path: Path,
                                                bridges: list[BridgeServer]) -> None:
    path = tmp_path / "agent.sock"
    bridges.append(BridgeServer("cygwin", ssh_agent.sock, path, echo_secret=b"\x00" * 16))
    expect(AgentConnectError, lambda: sshlib.agent.connect(f"cygwin:{path}", timeout=TIMEOUT),
           f"cygwin:{path}", "secret mismatch")


def test_cygwin_listener_that_never_answers(ssh_agent: AgentProcess, tmp_path: Path,
                                            bridges: list[BridgeServer]) -> None:
    path = tmp_path / "agent.sock"
    bridges.append(BridgeServer("cygwin", ssh_agent.sock, path, stall=True))
    expect(AgentConnectError, lambda: sshlib.agent.connect(f"cygwin:{path}", timeout=TIMEOUT),
           f"cygwin:{path}", "handshake.*timed out")


@pytest.mark.parametrize("kind", ["cygwin", "assuan"])
def test_stale_socket_file_with_dead_port(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "stale"
    port = dead_port()
    if kind == "cygwin":
        path.write_bytes(f"!<socket >{port} s 00000001-00000002-00000003-00000004".encode()
                         + b"\x00")
    else:
        path.write_bytes(f"{port}\n".encode() + b"n" * 16)
    for endpoint in (f"{kind}:{path}", str(path)):
        exc = expect(AgentConnectError,
                     lambda e=endpoint: sshlib.agent.connect(e, timeout=TIMEOUT),  # type: ignore[misc]
                     f"{kind}:{path}", "nothing accepts connections")
        assert str(port) in str(exc)


def test_wrong_assuan_nonce(ssh_agent: AgentProcess, tmp_path: Path,
                            bridges: list[BridgeServer]) -> None:
    """libassuan gives no answer to the nonce; a wrong one shows as the stream closing."""
    path = tmp_path / "S.gpg-agent.ssh"
    bridge = BridgeServer("assuan", ssh_agent.sock, path)
    bridges.append(bridge)
    path.write_bytes(f"{bridge.port}\n".encode() + b"w" * 16)
    agent = sshlib.agent.connect(f"assuan:{path}", timeout=TIMEOUT)
    expect(AgentConnectError, agent.list_keys, f"assuan:{path}",
           "closed the connection|reset by peer")
    agent.close()


@pytest.mark.parametrize("content", [b"", b"garbage", b"!<socket >", b"123\nshort"])
def test_malformed_socket_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    for kind in ("cygwin", "assuan"):
        expect(AgentConnectError, lambda k=kind: sshlib.agent.connect(f"{k}:{path}"),  # type: ignore[misc]
               f"{kind}:{path}")
    expect(AgentConnectError, lambda: sshlib.agent.connect(f"cygwin:{tmp_path}/missing"),
           f"cygwin:{tmp_path}/missing", "no socket file")


# --- exec relays ----------------------------------------------------------------------------


def test_relay_that_exits_at_once() -> None:
    endpoint = "exec:sh -c 'echo relay broke >&2; exit 3'"
    agent = sshlib.agent.connect(endpoint, timeout=TIMEOUT)
    exc = expect(AgentConnectError, agent.list_keys, endpoint, "exited with status 3")
    assert "relay broke" in str(exc)
    agent.close()


def test_relay_that_exits_mid_reply() -> None:
    script = "import sys,os; sys.stdin.buffer.read(5); os.write(1, b'\\0\\0\\0\\x05\\x0c'); " \
             "sys.exit(7)"
    endpoint = f"exec:{sys.executable} -c \"{script}\""
    agent = sshlib.agent.connect(endpoint, timeout=TIMEOUT)
    expect(AgentConnectError, agent.list_keys, endpoint, "exited with status 7")
    agent.close()


def test_relay_killed_by_a_signal() -> None:
    endpoint = "exec:sh -c 'kill -9 $$'"
    agent = sshlib.agent.connect(endpoint, timeout=TIMEOUT)
    expect(AgentConnectError, agent.list_keys, endpoint, "killed by signal 9")
    agent.close()


def test_relay_that_never_answers() -> None:
    endpoint = "exec:sleep 30"
    agent = sshlib.agent.connect(endpoint, timeout=TIMEOUT)
    expect(AgentTimeoutError, agent.list_keys, endpoint, "timed out")
    start = time.monotonic()
    agent.close()  # sleep ignores stdin EOF: terminated, then reaped
    assert time.monotonic() - start < 5


def test_relay_command_that_does_not_exist() -> None:
    endpoint = "exec:/nonexistent/relay --flag"
    expect(AgentConnectError, lambda: sshlib.agent.connect(endpoint), endpoint,
           "cannot start relay command")


def test_relay_command_unparsable() -> None:
    expect(AgentConnectError, lambda: sshlib.agent.connect("exec:socat 'unterminated"),
           "exec:socat 'unterminated", "cannot parse")


def test_relay_through_socat_to_a_dead_agent(tmp_path: Path) -> None:
    endpoint = f"exec:socat - UNIX-CONNECT:{tmp_path}/gone.sock"
    agent = sshlib.agent.connect(endpoint, timeout=TIMEOUT)
    exc = expect(AgentConnectError, agent.list_keys, endpoint, "exited with status 1")
    assert "gone.sock" in str(exc)  # socat's own complaint is carried along
    agent.close()


def test_tcp_dead_port() -> None:
    port = dead_port()
    endpoint = f"tcp:127.0.0.1:{port}"
    expect(AgentConnectError, lambda: sshlib.agent.connect(endpoint, timeout=TIMEOUT), endpoint,
           "nothing accepts")


def test_agent_client_over_custom_transport_names_it(
        scripted: Callable[[Handler], ScriptedAgent]) -> None:
    fake = scripted(always(framed(b"\x05")))
    stream = sshlib.agent.open_stream(fake.endpoint, timeout=5)
    with AgentClient(stream, timeout=TIMEOUT) as agent:
        expect(AgentRefusedError, lambda: agent.sign(b"blob", b"data"), fake.endpoint,
               "refused to sign")
