"""A server that gives up during the first key exchange: its DISCONNECT reaches the caller.

Strict KEX forbids non-kex messages during the initial exchange, but DISCONNECT
is how a server says why it gives up (OpenSSH's packet.c handles it before the
strict check).  The caller gets DisconnectError with the server's reason code
and description, from a scripted server and from a real sshd (which disconnects
when the client breaks strict KEX).  An sshd that cannot serve the group exchange
it offered does not send DISCONNECT (an empty ModuliFile: 9.2 falls back to a
built-in group, 10.3's monitor exits), so that is not a way to test it.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest
from fakeserver import DISCONNECT, FakeServer, ServerSide, sshstr, u32

import sshlib
from sshlib.errors import KexError, SSHError
from sshlib.protocol.client import ClientConnection
from sshlib.protocol.events import ConnectionTerminated, HostKeyVerificationRequested

KEY_EXCHANGE_FAILED = 3
DESCRIPTION = "no matching host key type found for this client"


def _disconnect(reason: int, text: str) -> bytes:
    return bytes((DISCONNECT,)) + u32(reason) + sshstr(text) + sshstr("")


def _after_kexinits(s: ServerSide, strict: bool) -> None:
    s.send_version()
    s.recv_version()
    s.send_kexinit(strict=strict)
    s.recv_kexinit()


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "not-strict"])
@pytest.mark.parametrize("when", ["after-kexinit", "after-ecdh-init"])
def test_disconnect_during_first_kex_is_disconnect_error(strict: bool, when: str) -> None:
    def script(s: ServerSide) -> None:
        _after_kexinits(s, strict)
        if when == "after-ecdh-init":
            s.recv_kex_ecdh_init()
        s.send_payload(_disconnect(KEY_EXCHANGE_FAILED, DESCRIPTION))

    with FakeServer(script) as fs:
        start = time.monotonic()
        with pytest.raises(sshlib.DisconnectError) as info:
            fs.connect()
        assert time.monotonic() - start < 5
    assert info.value.reason == KEY_EXCHANGE_FAILED
    assert info.value.description == DESCRIPTION
    assert fs.disconnect is None  # no DISCONNECT in reply to one


def test_other_non_kex_messages_are_still_refused_by_strict_kex() -> None:
    """The exception is for DISCONNECT only (control for the test above)."""
    def script(s: ServerSide) -> None:
        _after_kexinits(s, True)
        s.send_payload(bytes((2,)) + sshstr(b"ignore me"))  # IGNORE
        s.finish_kex()

    with FakeServer(script) as fs, pytest.raises(KexError, match="strict KEX"):
        fs.connect()


def _pump_until_terminated(core: ClientConnection, sock: socket.socket,
                           timeout: float) -> SSHError | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = core.data_to_send()
        if out:
            sock.sendall(out)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        for event in core.receive_data(data):
            if isinstance(event, ConnectionTerminated):
                return event.error
            if isinstance(event, HostKeyVerificationRequested):
                raise AssertionError("the key exchange finished; sshd should have refused it")
    raise AssertionError("the connection did not end")


@pytest.mark.parametrize("version", ["9.2", "newest"])
def test_real_sshd_disconnecting_during_strict_kex(version: str,
                                                   openssh_servers: Any) -> None:
    """sshd ends a strict initial kex that sees IGNORE with a DISCONNECT (kex.c).

    The sans-IO core sends IGNORE right after its KEXINIT (allowed to us, never done by
    the front-ends); sshd answers "strict KEX violation: unexpected packet type 2" while
    our exchange is in flight, and that DISCONNECT is what the caller must see.
    """
    server = openssh_servers(version)
    core = ClientConnection(sshlib.ClientConfig(user=server.user,
                                                host_key_callback=sshlib.insecure_ignore_host_key()),
                            rng=os.urandom, now=time.monotonic())
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(core.data_to_send())
        version_line = b""
        while b"\n" not in version_line:
            version_line += sock.recv(1)  # just the version line: KEXINIT stays unread
        assert core.receive_data(version_line) == []
        core.send_ignore(b"not allowed in a strict initial kex")
        error = _pump_until_terminated(core, sock, 10)
    assert isinstance(error, sshlib.DisconnectError), repr(error)
    assert error.reason == 2  # PROTOCOL_ERROR, what ssh_packet_disconnect() sends
    assert error.description.startswith("strict KEX violation: unexpected packet type 2")
