"""ServerAliveInterval / ClientConfig.keepalive_interval: a frozen path ends the connection.

A TCP relay process sits between the client and the test sshd; freezing it
with SIGSTOP mid-session makes the server go silent without closing
anything.  The client must end the connection with ConnectionLost within
about interval x (count + 1) seconds, and a call already waiting (a read on
a running command) must raise it, on both front-ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import AioClient, frontend_fixture  # noqa: F401  (fixture)

import sshlib
import sshlib.aio
from sshlib.testing import TestServer

RELAY = r"""
import select, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
client, _ = listener.accept()
server = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
peers = {client: server, server: client}
while True:
    for sock in select.select(list(peers), [], [])[0]:
        data = sock.recv(65536)
        if not data:
            sys.exit(0)
        peers[sock].sendall(data)
"""

INTERVAL = 1.0
COUNT = 2


@pytest.fixture
def relay(openssh_server: TestServer) -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen([sys.executable, "-c", RELAY, str(openssh_server.port)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield process, port
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(10)


def connect(frontend: Any, destination: str, **kwargs: Any) -> Any:
    if frontend.name == "sync":
        return sshlib.connect(destination, **kwargs)
    return AioClient(frontend, frontend.run(sshlib.aio.connect(destination, **kwargs)))


def test_frozen_relay_ends_connection(frontend: Any, openssh_server: TestServer,
                                      relay: tuple[subprocess.Popen[str], int],
                                      tmp_path: Path) -> None:
    process, port = relay
    key = tmp_path / "id"
    shutil.copyfile(openssh_server.user_key_paths["ed25519-openssh"], key)
    key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"[127.0.0.1]:{port} {line}\n"
                             for line in openssh_server.host_public_keys.values()))
    config = tmp_path / "config"
    config.write_text(f"Host frozen\n  HostName 127.0.0.1\n  Port {port}\n"
                      f"  User {openssh_server.user}\n  IdentityFile {key}\n"
                      f"  UserKnownHostsFile {known}\n  IdentityAgent none\n"
                      f"  ServerAliveInterval {INTERVAL:g}\n  ServerAliveCountMax {COUNT}\n")
    with connect(frontend, "frozen", config_files=[config]) as client:
        assert client.config.keepalive_interval == INTERVAL
        with client.new_session() as session:
            session.start("echo started; sleep 60")
            assert session.stdout.readline(timeout=10) == b"started\n"
            time.sleep(2.5 * INTERVAL)  # idle but healthy: keepalives answered, still up
            os.kill(process.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            with pytest.raises(sshlib.ConnectionLost, match="keepalive"):
                session.stdout.read(timeout=30)
            elapsed = time.monotonic() - frozen_at
        bound = INTERVAL * (COUNT + 1)
        assert bound - INTERVAL <= elapsed <= bound + 2.0, elapsed
        error = client.wait(timeout=5)
        assert isinstance(error, sshlib.ConnectionLost)
        with pytest.raises(sshlib.ConnectionLost):
            client.new_session(timeout=5)


def test_idle_connection_with_keepalives_stays_up(frontend: Any,
                                                  openssh_server: TestServer) -> None:
    cfg = sshlib.ClientConfig(
        user=openssh_server.user,
        auth=[sshlib.PublicKeys(sshlib.load_private_key(
            openssh_server.user_key_paths["ed25519-openssh"]))],
        host_key_callback=sshlib.knownhosts.callback(openssh_server.known_hosts_path),
        keepalive_interval=0.3, keepalive_count_max=1)
    with frontend.dial(openssh_server.address, cfg) as client:
        time.sleep(2.0)  # several keepalive rounds, each answered
        with client.new_session() as session:
            assert session.output("echo alive") == b"alive\n"


def test_keepalive_policy_in_the_core() -> None:
    """The sans-IO policy alone: time comes only from tick(now), replies reach nobody."""
    from fakeserver import Parser, run_core

    from sshlib import messages as m
    from sshlib.keys import generate_private_key
    from sshlib.protocol import events as ev
    from sshlib.protocol.client import ClientConnection

    host_key = generate_private_key("ssh-ed25519")
    cfg = sshlib.ClientConfig(user="tester", keepalive_interval=10.0, keepalive_count_max=2,
                              host_key_callback=sshlib.fixed_host_key(host_key.public_key))
    core = ClientConnection(cfg, rng=os.urandom, now=1000.0)

    def script(server: Any) -> None:
        server.handshake()
        server.accept_auth()

    server, pipe = run_core(script, core=core, host_key=host_key)
    assert core.tick_interval(30.0) == 2.5
    assert core.tick(1000.0) == [] and not core.has_data_to_send()  # the clock starts
    assert core.tick(1009.0) == [] and not core.has_data_to_send()
    core.tick(1010.0)  # 10 s of silence: ask
    p = Parser(server.recv_message(m.MSG_GLOBAL_REQUEST), 1)
    assert p.text() == "keepalive@openssh.com" and p.boolean()
    server.send_payload(bytes((m.MSG_REQUEST_FAILURE,)))  # OpenSSH's answer
    assert not [e for e in pipe.events if isinstance(e, ev.GlobalRequestReplied)]
    assert core.tick(1011.0) == []  # the answer counts as life: the clock restarts
    for now in (1021.0, 1031.0):  # silence from here on: two unanswered asks
        core.tick(now)
        server.recv_message(m.MSG_GLOBAL_REQUEST)
    events = core.tick(1041.0)
    assert core.closed and isinstance(core.error, sshlib.ConnectionLost)
    assert [type(e) for e in events] == [ev.ConnectionTerminated]
    assert "2 keepalives" in str(core.error)
