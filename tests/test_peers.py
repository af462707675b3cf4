"""The private OpenSSH peers (tests/peers.py): each version runs and is the one asked for."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import peers
import pytest
from helpers import config
from servers import probe_kexinit

import sshlib


@pytest.mark.parametrize("name", peers.VERSIONS)
def test_each_openssh_peer_serves_its_own_version(name: str, openssh_servers: Any) -> None:
    peer = peers.openssh(name)
    for tool in (peer.sshd, peer.ssh, peer.ssh_agent, peer.ssh_add, peer.ssh_keygen):
        assert Path(tool).is_absolute() and Path(tool).exists(), tool
    if name == "9.2":
        assert peer.version.startswith("9.2")
    elif name == "10.0":
        assert peer.version.startswith("10.0")
    else:
        assert peer.version_tuple >= (10, 3)
    server = openssh_servers(name)
    probe = probe_kexinit(server.host, server.port)
    assert f"OpenSSH_{peer.version.split('p')[0]}" in probe.banner
    with sshlib.dial("tcp", server.address, config(server)) as client:
        with client.new_session() as session:
            assert session.output("echo hi", timeout=30) == b"hi\n"


def test_private_peers_leave_the_system_openssh_alone() -> None:
    out = subprocess.run(["/usr/bin/ssh", "-V"], capture_output=True, text=True, timeout=30)
    assert out.stderr.startswith("OpenSSH_9.2"), out.stderr
    for name in ("10.0", "newest"):
        assert str(peers.cache_dir()) in str(Path(peers.openssh(name).sshd).resolve())
