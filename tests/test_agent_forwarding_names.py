"""Agent forwarding under both names: RFC 9987's (OpenSSH >= 10.3) and OpenSSH's older ones.

OpenSSH 10.3's sshd advertises ``agent-forward`` (value "0") in EXT_INFO; a client
that saw it asks with ``agent-req`` and the server then opens ``agent-connect``
channels (kex.c, clientloop.c, session.c, channels.c of 10.3).  Older servers
(9.2 here) get ``auth-agent-req@openssh.com`` and open ``auth-agent@openssh.com``.
Each test runs ``ssh-add -l`` on the server, through a real ``ssh-agent`` of
the server's OpenSSH version on our side, and reads the names off the
sshd log, i.e. off the wire as the server saw it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peers
import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import connect, user_key

NAMES = {  # version -> (request, channel kind) the server must see
    "9.2": ("auth-agent-req@openssh.com", "auth-agent@openssh.com"),
    "newest": ("agent-req", "agent-connect"),
}


@pytest.fixture
def agent_of(tmp_path: Path) -> Iterator[Callable[[peers.OpenSSH, Path], str]]:
    """agent_of(peer, key) -> SSH_AUTH_SOCK of a fresh ssh-agent of that OpenSSH holding key."""
    procs: list[subprocess.Popen[bytes]] = []
    tmp = Path(tempfile.mkdtemp(prefix="sshlib-names-"))  # short path: sun_path limit

    def start(peer: peers.OpenSSH, key: Path) -> str:
        sock = tmp / f"a{len(procs)}.sock"
        proc = subprocess.Popen([peer.ssh_agent, "-D", "-a", str(sock)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None, f"{peer.ssh_agent} exited at start-up"
            assert time.monotonic() < deadline, f"{peer.ssh_agent} made no socket"
            time.sleep(0.02)
        subprocess.run([peer.ssh_add, "-q", str(key)], check=True, capture_output=True,
                       env=dict(os.environ, SSH_AUTH_SOCK=str(sock)), stdin=subprocess.DEVNULL,
                       timeout=30)
        return str(sock)
    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("version", list(NAMES))
def test_forwarded_agent_under_the_servers_names(version: str, frontend: Any,
                                                 openssh_factory: Callable[..., Any],
                                                 agent_of: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sshlib.client")
    peer = peers.openssh(version)
    server = openssh_factory(version=version)
    sock = agent_of(peer, server.user_key_paths["ed25519-openssh"])
    fingerprint = user_key(server).public_key.fingerprint()
    request, channel_kind = NAMES[version]
    start = server.log_size()
    with connect(server, frontend) as client:
        client.forward_agent(f"unix:{sock}")
        with client.new_session() as session:
            session.request_agent_forwarding()
            # The system's ssh-add: the login user cannot reach root's cache directory,
            # and the agent protocol it speaks to the forwarded socket is the same.
            listing = session.output("ssh-add -l", timeout=30)
    assert fingerprint.encode() in listing
    log = server.log_text(start)
    # session.c logs the request it got: "session_input_channel_req: session 0 req <name>".
    requests = re.findall(r"session_input_channel_req: session \d+ req (\S+)", log)
    assert request in requests, log[-3000:]
    other = {r for r, _ in NAMES.values()} - {request}
    assert not other & set(requests), requests
    # sshd does not log the kind of the channel it opens back; the driver does.
    kinds = re.findall(r"accepted (\S+) channel \d+ opened by the server", caplog.text)
    assert kinds and set(kinds) == {channel_kind}, caplog.text[-2000:]


def test_newest_sshd_advertises_agent_forward_in_ext_info() -> None:
    """What 10.3's source says it sends, read from the source tree we built it from."""
    peer = peers.openssh("newest")
    assert peer.source is not None, "the newest OpenSSH's source tree is gone from the cache"
    kex = (peer.source / "kex.c").read_text()
    assert '"agent-forward"' in kex
    clientloop = (peer.source / "clientloop.c").read_text()
    assert '"agent-req"' in clientloop and '"agent-connect"' in clientloop
