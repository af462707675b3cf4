"""Pipelined agent requests: many concurrent callers on one AgentClient (sync and aio).

Against a real OpenSSH ssh-agent (directly and through an order-keeping delay
line that counts the requests in flight), and against scripted agents that
hold replies back, answer out of turn, hang, or close mid-pipeline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
from agentfixtures import (  # noqa: E402
    HANG,
    AgentProcess,
    KeySet,
    ScriptedAgent,
    ThenClose,
    framed,
    verify_ssh_signature,
    wait_for,
)

import sshlib.agent  # noqa: E402
import sshlib.aio.agent  # noqa: E402
from benchmarks.delayline import DelayLine  # noqa: E402
from sshlib.agent import AgentClient, MessageTransport, SocketTransport  # noqa: E402
from sshlib.errors import (  # noqa: E402
    AgentConnectError,
    AgentError,
    AgentProtocolError,
    AgentTimeoutError,
)

pytest_plugins = ["agentfixtures"]

SLACK = 1.5


def signed_data(payload: bytes) -> bytes:
    """The data of a SIGN_REQUEST payload."""
    assert payload[0] == 13
    blob_len = struct.unpack(">I", payload[1:5])[0]
    data_len = struct.unpack(">I", payload[5 + blob_len:9 + blob_len])[0]
    return payload[9 + blob_len:9 + blob_len + data_len]


def echo_signature(payload: bytes) -> bytes:
    """A SIGN_RESPONSE whose 'signature' is the signed data: shows whose reply it is."""
    data = signed_data(payload)
    inner = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", len(data)) + data
    return framed(b"\x0e" + struct.pack(">I", len(inner)) + inner)


def echoed(signature: bytes) -> bytes:
    return signature[4 + 11 + 4:]


EMPTY_LIST = framed(b"\x0c" + struct.pack(">I", 0))


def concurrently(frontend: str, agent: AgentClient, calls: Sequence[Callable[..., Any]],
                 ) -> list[Any]:
    """Run every call at once (threads, or tasks on one loop through AsyncAgentClient):
    each result is the return value or the exception."""
    if frontend == "sync":
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            futures = [pool.submit(call, agent) for call in calls]
            out: list[Any] = []
            for future in futures:
                try:
                    out.append(future.result(120))
                except AgentError as exc:
                    out.append(exc)
            return out

    async def main() -> list[Any]:
        front = sshlib.aio.agent.AsyncAgentClient(agent)  # not closed: the test closes `agent`
        return await asyncio.gather(*(call(front) for call in calls), return_exceptions=True)

    return asyncio.run(main())


def signing(data: bytes, timeout: float | None = None) -> Callable[[Any], Any]:
    """sign(b"k", data) on a sync or async client (the scripted agents ignore the key)."""
    return lambda agent: agent.sign(b"k", data, timeout=timeout)


FRONTENDS = ["sync", "aio"]


# --- scripted agents ---------------------------------------------------------------------------


class Held:
    """Handler that keeps every reply back until the test releases them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[bytes] = []
        self.released = False

    def __call__(self, payload: bytes) -> bytes:
        reply = echo_signature(payload)
        with self.lock:
            if self.released:
                return reply
            self.pending.append(reply)
            return b""

    def release(self, agent: ScriptedAgent) -> None:
        with self.lock:
            self.released = True
            data, self.pending = b"".join(self.pending), []
        agent.connections[0].sendall(data)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_32_requests_in_flight_and_no_more(scripted: Any, frontend: str) -> None:
    """The agent answers nothing until 32 requests are in: a client that did not pipeline
    would time out.  With 40 callers, the 33rd waits for a reply before it is sent."""
    held = Held()
    fake = scripted(held)
    agent = sshlib.agent.connect(fake.endpoint, timeout=20)
    assert agent.max_in_flight == 32
    datas = [b"call %d" % i for i in range(40)]
    outcome: list[list[Any]] = []
    runner = threading.Thread(target=lambda: outcome.append(
        concurrently(frontend, agent, [signing(d) for d in datas])))
    runner.start()
    wait_for(lambda: len(fake.requests) >= 32, 20, "32 pipelined requests")
    time.sleep(0.3)  # a 33rd request would arrive now if the cap did not hold
    assert len(fake.requests) == 32
    held.release(fake)
    runner.join(60)
    results = outcome[0]
    assert [echoed(r) for r in results] == datas  # every caller got the reply to its request
    assert len(fake.requests) == 40
    agent.close()


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_hung_agent_fails_every_waiter_within_its_timeout(scripted: Any, frontend: str) -> None:
    fake = scripted(lambda payload: HANG if len(fake.requests) >= 2 else echo_signature(payload))
    agent = sshlib.agent.connect(fake.endpoint, timeout=1.5)
    assert echoed(agent.sign(b"k", b"first")) == b"first"
    start = time.monotonic()
    results = concurrently(frontend, agent, [signing(b"x%d" % i) for i in range(32)])
    elapsed = time.monotonic() - start
    assert elapsed < 1.5 + SLACK, f"took {elapsed:.1f} s"
    assert all(isinstance(r, AgentTimeoutError) for r in results), results
    assert all(fake.endpoint in str(r) for r in results)
    with pytest.raises(AgentConnectError, match="earlier error: timed out"):
        agent.list_keys()
    agent.close()


def test_aio_callers_beyond_the_worker_pool_keep_their_timeout(scripted: Any) -> None:
    """60 concurrent awaits (more than the front-end's worker threads) on a hung agent:
    each fails with AgentTimeoutError within its timeout (plus the front-end's grace)."""
    fake = scripted(lambda payload: HANG)
    agent = sshlib.agent.connect(fake.endpoint, timeout=1.0)
    start = time.monotonic()
    results = concurrently("aio", agent, [signing(b"q%d" % i) for i in range(60)])
    assert time.monotonic() - start < 1.0 + 1.0 + SLACK
    # Timed out, or (sent after the stream failed) refused at once saying why.
    assert all(isinstance(r, (AgentTimeoutError, AgentConnectError)) and "timed out" in str(r)
               for r in results), results
    assert any(isinstance(r, AgentTimeoutError) for r in results)
    agent.close()


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_agent_closing_mid_pipeline(scripted: Any, frontend: str) -> None:
    """Ten requests in flight, three answered, then the agent hangs up: three callers get
    their replies, the other seven a typed error at once (no waiting for the timeout)."""
    answers: list[bytes] = []

    def handler(payload: bytes) -> Any:
        answers.append(echo_signature(payload))
        if len(answers) < 10:
            return b""
        return ThenClose(b"".join(answers[:3]))

    fake = scripted(handler)
    agent = sshlib.agent.connect(fake.endpoint, timeout=30)
    start = time.monotonic()
    results = concurrently(frontend, agent, [signing(b"c%d" % i) for i in range(10)])
    assert time.monotonic() - start < 10
    good = [r for r in results if isinstance(r, bytes)]
    bad = [r for r in results if not isinstance(r, bytes)]
    assert len(good) == 3 and len(bad) == 7
    first_three = [signed_data(request) for request in fake.requests[:3]]
    assert sorted(echoed(r) for r in good) == sorted(first_three)
    assert all(isinstance(r, AgentConnectError) and "without answering" in str(r) for r in bad)
    agent.close()


def test_replies_out_of_turn_are_typed_errors(scripted: Any) -> None:
    """An agent that answers a key list and a sign request in the wrong order: both callers
    get AgentProtocolError (never the other's data as their own)."""
    pending: list[bytes] = []

    def handler(payload: bytes) -> bytes:
        pending.append(EMPTY_LIST if payload[0] == 11 else echo_signature(payload))
        if len(pending) < 2:
            return b""
        return pending[1] + pending[0]

    fake = scripted(handler)
    agent = sshlib.agent.connect(fake.endpoint, timeout=10)
    results = concurrently("sync", agent, [lambda a: a.list_keys(), signing(b"mine")])
    assert isinstance(results[0], AgentProtocolError), results
    assert "answered a key list request" in str(results[0])
    assert isinstance(results[1], AgentProtocolError), results
    assert "answered a sign request" in str(results[1])
    agent.close()


def test_reply_nobody_asked_for_breaks_the_stream(scripted: Any) -> None:
    fake = scripted(lambda payload: EMPTY_LIST + EMPTY_LIST)
    agent = sshlib.agent.connect(fake.endpoint, timeout=10)
    try:
        assert agent.list_keys() == []
    except AgentProtocolError as exc:  # the second reply was read together with the first
        assert "nobody asked for" in str(exc)
    with pytest.raises(AgentConnectError, match="nobody asked for"):
        agent.list_keys()
    agent.close()


def test_a_short_timeout_behind_a_slow_request_abandons_only_itself(scripted: Any) -> None:
    """A slow first request (a confirm prompt, say) and a later caller with a short timeout:
    the later caller times out alone; the slow one still gets its answer, and the stream
    stays in step (the abandoned reply is dropped, not handed to the next caller)."""
    def handler(payload: bytes) -> bytes:
        if len(fake.requests) == 1:
            time.sleep(1.0)
        return echo_signature(payload)

    fake = scripted(handler)
    agent = sshlib.agent.connect(fake.endpoint, timeout=10)
    slow: list[Any] = []
    thread = threading.Thread(target=lambda: slow.append(agent.sign(b"k", b"slow")))
    thread.start()
    wait_for(lambda: len(fake.requests) == 1, 5, "the slow request")
    start = time.monotonic()
    with pytest.raises(AgentTimeoutError, match="another request"):
        agent.sign(b"k", b"fast", timeout=0.3)
    assert time.monotonic() - start < 0.3 + SLACK
    thread.join(10)
    assert echoed(slow[0]) == b"slow"
    assert echoed(agent.sign(b"k", b"third")) == b"third"
    agent.close()


def test_random_timeouts_never_misdeliver_or_stall(scripted: Any) -> None:
    """40 threads x 25 signatures, a quarter of them with a short timeout, an agent with
    small random delays: every reply reaches its own caller, no caller with a long timeout
    ever times out (no lost wake-up leaves the stream without a reader), and the short
    ones fail alone.  (A short request that becomes the oldest and is not answered in its
    own timeout fails the stream, as it should; the thread then reconnects.)"""
    rng = random.Random(16)

    def handler(payload: bytes) -> bytes:
        time.sleep(rng.choice([0, 0, 0.001, 0.003]))
        return echo_signature(payload)

    fake = scripted(handler)
    clients = [sshlib.agent.connect(fake.endpoint, timeout=20)]
    lock = threading.Lock()
    wrong: list[Any] = []
    long_timeouts: list[str] = []
    counts = {"ok": 0, "short": 0, "reconnects": 0}

    def worker(index: int) -> None:
        for j in range(25):
            data = b"%d-%d" % (index, j)
            short = (index + j) % 4 == 0
            with lock:
                agent = clients[-1]
            try:
                got = echoed(agent.sign(b"k", data, timeout=0.3 if short else 20))
            except AgentTimeoutError as exc:
                with lock:
                    if short:
                        counts["short"] += 1
                    else:
                        long_timeouts.append(str(exc))
                continue
            except AgentConnectError as exc:
                assert "within 0.3 s" in str(exc), exc  # only a short head fails the stream
                with lock:
                    if clients[-1] is agent:
                        clients.append(sshlib.agent.connect(fake.endpoint, timeout=20))
                        counts["reconnects"] += 1
                continue
            with lock:
                if got == data:
                    counts["ok"] += 1
                else:
                    wrong.append((data, got))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not wrong and not long_timeouts, (wrong[:3], long_timeouts[:3])
    assert counts["ok"] >= 600, counts
    assert time.monotonic() - started < 20
    for agent in clients:
        agent.close()


def test_close_wakes_every_waiter(scripted: Any) -> None:
    fake = scripted(lambda payload: b"")  # never answers, keeps reading
    agent = sshlib.agent.connect(fake.endpoint, timeout=30)
    outcome: list[list[Any]] = []
    runner = threading.Thread(target=lambda: outcome.append(
        concurrently("sync", agent, [signing(b"w%d" % i) for i in range(8)])))
    runner.start()
    wait_for(lambda: len(fake.requests) == 8, 10, "8 requests")
    start = time.monotonic()
    agent.close()
    runner.join(10)
    assert time.monotonic() - start < 5
    assert all(isinstance(r, AgentConnectError) for r in outcome[0]), outcome


class OneAtATime(MessageTransport):
    """A message channel (like Pageant's window) over a socket; asserts it is never entered
    by two requests at once."""

    def __init__(self, path: str) -> None:
        super().__init__(f"test-window:{path}")
        self.sock = sshlib.agent.open_stream(path, timeout=10)
        self.busy = threading.Lock()
        self.calls = 0

    def _exchange(self, request: bytes, timeout: float | None) -> bytes:
        assert self.busy.acquire(blocking=False), "two requests at once on a message channel"
        try:
            self.calls += 1
            self.sock.send_all(request, timeout)
            header = self.sock.recv_exact(4, timeout)
            return header + self.sock.recv_exact(struct.unpack(">I", header)[0], timeout)
        finally:
            self.busy.release()

    def _release(self) -> None:
        self.sock.close()


def test_message_transports_stay_one_at_a_time(ssh_agent: AgentProcess,
                                               agent_keys: KeySet) -> None:
    ssh_agent.run_client("ssh-add", str(agent_keys.paths["ed25519"]))
    transport = OneAtATime(ssh_agent.sock)
    with AgentClient(transport, timeout=30) as agent:
        assert agent.max_in_flight == 1
        (signer,) = agent.signers()
        results = concurrently("sync", agent, [lambda a, i=i: signer.sign(b"d%d" % i)
                                               for i in range(16)])
    assert transport.calls == 17
    pub = agent_keys.keys["ed25519"].public_key.openssh()
    for i, signature in enumerate(results):
        verify_ssh_signature(pub, b"d%d" % i, signature)


# --- the real ssh-agent ------------------------------------------------------------------------


@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("path", ["direct", "delay-line"])
def test_many_concurrent_signers_real_agent(ssh_agent: AgentProcess, agent_keys: KeySet,
                                            tmp_path: Path, frontend: str, path: str) -> None:
    """64 concurrent signers x 3 key types on one client; every signature verified with
    cryptography.  Through the delay line (1 ms each way) it also counts how many requests
    the client really had in flight."""
    names = ("ed25519", "ecdsa-256", "rsa")
    for name in names:
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    line = DelayLine(str(tmp_path / "line.sock"), ssh_agent.sock, 0.001) \
        if path == "delay-line" else None
    endpoint = line.start().listen if line is not None else ssh_agent.sock
    try:
        with sshlib.agent.connect(endpoint, timeout=60) as agent:
            assert isinstance(agent.transport, SocketTransport)
            signers = {s.public_key.blob: s for s in agent.signers()}
            order = [signers[agent_keys.keys[n].public_key.blob] for n in names]
            datas = [os.urandom(16) + b"%d" % i for i in range(64)]

            def sign_with(index: int) -> Callable[[Any], Any]:
                signer = order[index % 3]
                if frontend == "sync":
                    return lambda a: signer.sign(datas[index])
                algorithm = signer.public_key.signature_algorithms[0]
                flags = sshlib.agent.protocol.sign_flags_for_algorithm(algorithm)
                return lambda a: a.sign(signer.public_key, datas[index], flags)

            results = concurrently(frontend, agent, [sign_with(i) for i in range(64)])
    finally:
        if line is not None:
            line.close()
    for index, signature in enumerate(results):
        assert isinstance(signature, bytes), signature
        pub = agent_keys.keys[names[index % 3]].public_key.openssh()
        verify_ssh_signature(pub, datas[index], signature)
    if line is not None:
        assert 1 < line.peak_in_flight <= 32, line.peak_in_flight
