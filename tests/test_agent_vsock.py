"""vsock: what can be proven on this machine, end to end where the kernel allows it.

An agent round trip over AF_VSOCK inside one machine needs the kernel's
``vsock_loopback`` transport (CID 1).  scripts/test.sh tries ``modprobe
vsock_loopback``; the test machines (Firecracker VMs: CID 3, the virtio
transport only, no loadable modules) cannot load it, and their host side (CID 2)
is not ours to listen on.  So:

* with loopback: ``sshlib agent bridge --listen vsock:any:0`` in front of a real
  ssh-agent, and sshlib's agent client over ``vsock:1:PORT`` lists and signs;
* always: the listener binds vsock, names itself ``vsock:any:PORT`` with the
  port it got (not the 4294967295 of VMADDR_CID_ANY), and a client that cannot
  reach the listener gets AgentConnectError within its timeout, which is what a
  user on a kernel without a route to the peer gets.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures", "test_agent_bridge")

from agentfixtures import AgentProcess  # noqa: E402
from test_agent_bridge import bridges, loaded_agent  # noqa: E402, F401  (fixtures)

import sshlib.agent  # noqa: E402
from sshlib.agent.discover import parse_endpoint  # noqa: E402
from sshlib.agent.listeners import open_listener, parse_listen_endpoint  # noqa: E402
from sshlib.errors import AgentConnectError, AgentError  # noqa: E402

pytest_plugins = ["agentfixtures"]

VMADDR_CID_LOCAL = 1


def _has_loopback(port: int) -> bool:
    """Can this kernel connect to our own vsock listener through CID 1?"""
    probe = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect((VMADDR_CID_LOCAL, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def test_vsock_listener_names_the_port_it_bound() -> None:
    listener = open_listener("vsock:any:0")
    try:
        found = re.fullmatch(r"vsock:any:(\d+)", listener.endpoint)
        assert found, listener.endpoint
        port = int(found[1])
        assert 0 < port < 0xFFFFFFFF
        with pytest.raises(AgentConnectError, match="cannot listen on vsock"):
            open_listener(f"vsock:any:{port}")  # taken: a typed error naming it
    finally:
        listener.close()


def test_bridge_over_vsock(bridges: Any, loaded_agent: AgentProcess) -> None:  # noqa: F811
    bridge = bridges(["vsock:any:0"], f"unix:{loaded_agent.sock}")
    (endpoint,) = bridge.endpoints
    found = re.fullmatch(r"vsock:any:(\d+)", endpoint)
    assert found, f"the bridge printed {endpoint!r}"
    port = int(found[1])
    target = f"vsock:{VMADDR_CID_LOCAL}:{port}"
    if _has_loopback(port):
        with sshlib.agent.connect(target, timeout=10) as agent:
            keys = agent.list_keys()
            assert len(keys) == 3
            key = keys[0]
            signature = agent.sign(key.public_key, b"over vsock")
            assert key.public_key.verify(b"over vsock", signature,
                                         key.public_key.signature_algorithms[0])
        return
    # No loopback transport: what a user whose kernel has no route to the peer gets.
    start = time.monotonic()
    with pytest.raises(AgentConnectError, match=f"vsock CID 1 port {port}") as info:
        sshlib.agent.connect(target, timeout=2)
    assert time.monotonic() - start < 5
    assert info.value.endpoint == target
    assert bridge.process.poll() is None  # the bridge is still listening


def test_vsock_endpoints_take_32_bit_ports_and_name_any() -> None:
    assert parse_endpoint("vsock:1:4294967294").port == 4294967294
    for bad in ("vsock:1:4294967295", "vsock:1:0", "tcp:127.0.0.1:65536"):
        with pytest.raises(AgentError, match=r"is not a number in 1\.\."):
            parse_endpoint(bad)
    assert str(parse_listen_endpoint("vsock:any:0")) == "vsock:any:0"
    assert str(parse_listen_endpoint("vsock:any:7000")) == "vsock:any:7000"
