"""`sshlib agent bridge --retry N` in front of a flaky agent, with real ssh-add clients.

The flaky agent drops every other connection at once and swallows every
fifth request without answering (like the Bitwarden and npiperelay reports);
everything else it relays to a real ssh-agent.  300 parallel ``ssh-add -l``
through the bridge must all succeed; FAILURE answers must reach the client as
they are, never re-sent; unsafe requests are never re-sent.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    KeySet,
    ScriptedAgent,
    _recv_exact,
    cli_env,
    framed,
    ssh_add_l,
)

from sshlib.agent import AgentClient, open_stream  # noqa: E402
from sshlib.agent import protocol as p  # noqa: E402
from sshlib.agent.bridge import StreamServer, is_retryable  # noqa: E402
from sshlib.errors import AgentRefusedError  # noqa: E402

pytest_plugins = ["agentfixtures"]


class FlakyAgent(ScriptedAgent):
    """Unix-socket agent: connection k is closed at once when k % drop_every == 0; request r
    (counted over all connections) is swallowed when r % hang_every == 0; the rest go to a
    real agent at `upstream` (one upstream connection per client connection), or get
    `reply` if given.  `requests` records every request it read."""

    def __init__(self, path: Path, upstream: str, *, drop_every: int = 2,
                 hang_every: int = 5, reply: bytes | None = None) -> None:
        self.upstream = upstream
        self.drop_every = drop_every
        self.hang_every = hang_every
        self.reply = reply
        self._connections = itertools.count(1)
        self._requests = itertools.count(1)
        self.dropped = 0
        self.hung = 0
        super().__init__(path, lambda payload: None, backlog=1024)

    def handle(self, conn: socket.socket) -> None:
        if next(self._connections) % self.drop_every == 0:
            self.dropped += 1
            conn.close()
            return
        upstream: socket.socket | None = None
        try:
            while True:
                header = _recv_exact(conn, 4)
                if len(header) < 4:
                    return
                payload = _recv_exact(conn, struct.unpack(">I", header)[0])
                self.requests.append(payload)
                if next(self._requests) % self.hang_every == 0:
                    self.hung += 1
                    _recv_exact(conn, 1 << 20)  # silent until the bridge cuts us off
                    return
                if self.reply is not None:
                    conn.sendall(self.reply)
                    continue
                if upstream is None:
                    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    upstream.connect(self.upstream)
                upstream.sendall(header + payload)
                reply = _recv_exact(upstream, 4)
                reply += _recv_exact(upstream, struct.unpack(">I", reply)[0])
                conn.sendall(reply)
        finally:
            if upstream is not None:
                upstream.close()
            conn.close()

@pytest.fixture
def sockdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retry")  # short paths for sun_path


@pytest.mark.parametrize("hang_every", [3, 5])
def test_300_parallel_ssh_add_through_a_flaky_agent(bridges: Any, loaded_agent: AgentProcess,
                                                    sockdir: Path, hang_every: int) -> None:
    expected = ssh_add_l(loaded_agent.sock)
    assert expected.returncode == 0 and expected.stdout.count("\n") == 3
    flaky = FlakyAgent(sockdir / "flaky.sock", loaded_agent.sock, hang_every=hang_every)
    try:
        sock = str(sockdir / "b.sock")
        bridge = bridges([f"unix:{sock}"], flaky.endpoint, "--retry", "30",
                         "--request-timeout", "0.5")
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        started = time.monotonic()
        procs = [subprocess.Popen(["ssh-add", "-l"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                 for _ in range(300)]
        outcomes = [(*proc.communicate(timeout=180), proc.returncode) for proc in procs]
        elapsed = time.monotonic() - started
        failed = [o for o in outcomes if o[2] != 0 or o[0] != expected.stdout]
        assert not failed, f"{len(failed)} of 300 failed, e.g. {failed[0]}"
        # The agent really was flaky, and the bridge said what it did about it.
        assert flaky.dropped >= 100 and flaky.hung >= 300 // (2 * hang_every), (
            flaky.dropped, flaky.hung)
        log = bridge.log_text()
        assert "upstream hung: no answer within 0.5 s, connection cut; retrying" in log
        assert "upstream failed" in log and "retrying" in log
        assert "answered FAILURE after" not in log
        assert bridge.process.poll() is None
        print(f"300 ssh-add -l in {elapsed:.1f} s; agent dropped {flaky.dropped}, "
              f"hung {flaky.hung}")
    finally:
        flaky.close()


def test_budget_too_small_gives_failure_not_a_hang(bridges: Any, loaded_agent: AgentProcess,
                                                   sockdir: Path) -> None:
    """An upstream that drops every connection: after --retry 2 the client gets FAILURE."""
    flaky = FlakyAgent(sockdir / "dead.sock", loaded_agent.sock, drop_every=1)
    try:
        sock = str(sockdir / "b2.sock")
        bridge = bridges([f"unix:{sock}"], flaky.endpoint, "--retry", "2")
        started = time.monotonic()
        result = ssh_add_l(sock)
        assert result.returncode != 0 and "agent refused operation" in result.stderr
        assert time.monotonic() - started < 10
        assert flaky.dropped == 3  # one attempt and two retries
        assert "answered FAILURE after 3 attempts" in bridge.log_text()
    finally:
        flaky.close()


def _pair() -> tuple[Any, socket.socket]:
    """A StreamServer client transport (our end) and the socket a test client writes to."""
    ours, theirs = socket.socketpair()
    from sshlib.agent import SocketTransport

    return SocketTransport(ours, "test-client"), theirs


def _serve(flaky: FlakyAgent, retries: int, requests: list[bytes]) -> list[bytes]:
    transport, client = _pair()
    server = StreamServer(transport, flaky.endpoint, retries=retries, request_timeout=0.5)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    replies = []
    for request in requests:
        client.sendall(p.frame(request))
        header = _recv_exact(client, 4)
        replies.append(_recv_exact(client, struct.unpack(">I", header)[0]))
    client.close()
    thread.join(10)
    return replies


def test_failure_answers_are_passed_through_never_retried(sockdir: Path) -> None:
    """The agent answers FAILURE: one request upstream, FAILURE to the client."""
    flaky = FlakyAgent(sockdir / "no.sock", "", drop_every=10**9, hang_every=10**9,
                       reply=framed(b"\x05"))
    try:
        replies = _serve(flaky, 30, [p.sign_request(b"blob", b"data"), p.request_identities()])
        assert replies == [b"\x05", b"\x05"]
        assert len(flaky.requests) == 2  # each sent once
    finally:
        flaky.close()


@pytest.mark.parametrize("request_payload", [
    p.add_identity("ssh-ed25519", b"\x00" * 8, "c"),
    p.remove_identity(b"blob"),
    p.lock(b"pw"),
    p.unlock(b"pw"),
    p.extension("unknown@example.org"),
    bytes((20,)) + b"\x00\x00\x00\x01x\x00\x00\x00\x04pin!",  # smartcard add (PIN tries)
], ids=["add", "remove", "lock", "unlock", "unknown-extension", "smartcard"])
def test_unsafe_requests_are_sent_once(sockdir: Path, request_payload: bytes) -> None:
    flaky = FlakyAgent(sockdir / "h.sock", "", drop_every=10**9, hang_every=1)
    try:
        started = time.monotonic()
        assert _serve(flaky, 30, [request_payload]) == [b"\x05"]
        assert time.monotonic() - started < 3
        assert flaky.requests == [request_payload]
        assert not is_retryable(p.frame(request_payload))
    finally:
        flaky.close()


def test_safe_requests_are_retried(sockdir: Path, loaded_agent: AgentProcess,
                                   agent_keys: KeySet) -> None:
    """List, sign and query behind an agent that hangs on every other request: each is
    answered (by the real agent) after one retry; the signature verifies."""
    flaky = FlakyAgent(sockdir / "s.sock", loaded_agent.sock, drop_every=10**9, hang_every=2)
    key = agent_keys.keys["ed25519"].public_key
    try:
        replies = _serve(flaky, 3, [p.request_identities(), p.request_identities(),
                                    p.sign_request(key.blob, b"data")])
        assert [r[0] for r in replies] == [12, 12, 14]
        assert key.verify(b"data", p.parse_sign_response(p.parse_reply(replies[2])), "ssh-ed25519")
        assert is_retryable(p.frame(p.extension("query")))
        assert is_retryable(p.frame(p.extension("session-bind@openssh.com", b"x")))
        assert is_retryable(p.frame(p.remove_all_identities()))
    finally:
        flaky.close()


def test_session_bind_is_replayed_on_a_fresh_upstream(sockdir: Path, loaded_agent: AgentProcess,
                                                      ) -> None:
    """After the upstream connection is lost, the fresh one first gets the client's
    session-bind again (the agent's per-connection state), then the retried request."""
    bind = p.extension("session-bind@openssh.com", b"bind-body")
    flaky = FlakyAgent(sockdir / "b.sock", "", drop_every=10**9, hang_every=3,
                       reply=framed(b"\x06"))
    try:
        listing = p.request_identities()
        replies = _serve(flaky, 2, [bind, listing, listing])
        assert replies == [b"\x06"] * 3
        # request 3 (the second list) hung; the new connection got the bind, then the list
        assert flaky.requests == [bind, listing, listing, bind, listing]
    finally:
        flaky.close()


def test_client_on_a_bridge_with_retry_sees_refusals(bridges: Any, loaded_agent: AgentProcess,
                                                     sockdir: Path) -> None:
    """The agent's own refusal (unknown key) reaches an sshlib client as AgentRefusedError."""
    sock = str(sockdir / "r.sock")
    bridges([f"unix:{sock}"], f"unix:{loaded_agent.sock}", "--retry", "5")
    with AgentClient(open_stream(f"unix:{sock}", timeout=10), timeout=10) as agent:
        with pytest.raises(AgentRefusedError):
            agent.sign(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"k" * 32, b"d")
        assert len(agent.list_keys()) == 3


def test_relay_command_retries_too(sockdir: Path, loaded_agent: AgentProcess) -> None:
    """`sshlib agent relay --retry`: its first upstream connection is dropped, the retry
    reaches the real agent through the flaky one."""
    flaky = FlakyAgent(sockdir / "rl.sock", loaded_agent.sock, drop_every=2,
                       hang_every=10**9)
    try:
        socket.socket(socket.AF_UNIX).connect(flaky.path)  # connection 1 (served): used up
        done = subprocess.run([sys.executable, "-m", "sshlib", "agent", "relay", "--to",
                               flaky.endpoint, "--retry", "3"], env=cli_env(),
                              input=p.frame(p.request_identities()), capture_output=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert flaky.dropped == 1
        reply = p.parse_reply(done.stdout[4:])
        assert len(p.parse_identities(reply)) == 3  # the real agent's keys
    finally:
        flaky.close()
