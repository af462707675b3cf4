"""Small helpers shared by the interop tests (over the tests/servers.py server fixtures)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

import sshlib


def user_key(server: Any, name: str = "ed25519-openssh") -> sshlib.PrivateKey:
    passphrase = server.user_key_passphrase if "encrypted" in name else None
    return sshlib.load_private_key(server.user_key_paths[name], passphrase=passphrase)


def config(server: Any, **overrides: Any) -> sshlib.ClientConfig:
    settings: dict[str, Any] = {
        "user": server.user,
        "auth": [sshlib.PublicKeys(user_key(server))],
        "host_key_callback": sshlib.knownhosts.callback(server.known_hosts_path),
        "timeout": 30,
    }
    settings.update(overrides)
    return sshlib.ClientConfig(**settings)


def connect(server: Any, frontend: Any = None, **overrides: Any) -> Any:
    """A client of `server` through `frontend` (tests/frontends.py; default: sync)."""
    addr = f"{server.host}:{server.port}"
    if frontend is None:
        return sshlib.dial("tcp", addr, config(server, **overrides))
    return frontend.dial(addr, config(server, **overrides))


def need_password(server: Any) -> str:
    assert server.password, (
        "password/keyboard-interactive tests need the per-run test account, which needs root: "
        "run the suite as root (scripts/test.sh does)")
    return str(server.password)


def cat_round_trip(client: Any, size: int, data: bytes | None = None,
                   midway: Callable[[], None] | None = None) -> None:
    """Send `size` random bytes (or `data`) through remote `cat` while reading them back;
    compare sha256.  `midway` runs once half of the data is written (e.g. a rekey)."""
    if data is None:
        data = os.urandom(1 << 20) * (size >> 20)
    session = client.new_session()
    session.start("cat")

    def write() -> None:
        half = len(data) // 2
        session.stdin.write(data[:half], timeout=120)
        if midway is not None:
            midway()
        session.stdin.write(data[half:], timeout=120)
        session.stdin.close()
    writer = threading.Thread(target=write)
    writer.start()
    received = session.stdout.read(timeout=120)
    writer.join()
    session.wait(timeout=30)
    assert len(received) == len(data)
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()


def assert_negotiated(client: Any, kex: str, host_key: str, cipher: str,
                      mac: str | None) -> None:
    """The client negotiated exactly these algorithms, in both directions."""
    got = client.algorithms
    assert (got.kex, got.host_key) == (kex, host_key)
    assert got.cipher_client_to_server == got.cipher_server_to_client == cipher
    if mac:
        assert got.mac_client_to_server == got.mac_server_to_client == mac
