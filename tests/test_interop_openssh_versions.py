"""Interop with OpenSSH 10.0 and the newest (>= 10.3), beside the full matrix on 9.2.

tests/test_interop_openssh.py runs the full kex x cipher x mac x host-key
product and the session tests against the system's 9.2.  Here every algorithm
is used once against each newer version (a reduced matrix, to keep CI short),
mlkem768x25519-sha256 must be what a default ClientConfig negotiates, and the
things most likely to differ between versions (auth, rekeying, a bulk round
trip) run once.  The peers come from tests/peers.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import assert_negotiated, cat_round_trip, connect, need_password, user_key
from servers import USER_KEY_NAMES

import sshlib
from sshlib import algorithms as algs

NEWER = ["10.0", "newest"]
CIPHER_MACS = [(c, None) for c in sorted(algs.AEAD_CIPHERS)] + [
    (c, mac) for c in (algs.CIPHER_AES128_CTR, algs.CIPHER_AES192_CTR, algs.CIPHER_AES256_CTR)
    for mac in algs.SUPPORTED_MACS]
KEX = list(algs.SUPPORTED_KEX)
HOST_KEYS = list(algs.SUPPORTED_HOST_KEY)


def _every_algorithm_once() -> list[Any]:
    """Rows naming every kex, host key and cipher+mac at least once; front-ends alternate."""
    rows = max(len(KEX), len(HOST_KEYS), len(CIPHER_MACS))
    params = []
    for version in NEWER:
        for i in range(rows):
            fe = ("sync", "aio")[i % 2]
            kex, hk = KEX[i % len(KEX)], HOST_KEYS[i % len(HOST_KEYS)]
            cipher, mac = CIPHER_MACS[i % len(CIPHER_MACS)]
            params.append(pytest.param(version, fe, kex, hk, cipher, mac,
                                       id=f"{version}-{fe}-{cipher}+{mac}-{kex}-{hk}"))
    return params


@pytest.mark.parametrize(("version", "frontend", "kex", "host_key", "cipher", "mac"),
                         _every_algorithm_once(), indirect=["frontend"])
def test_every_algorithm_once(version: str, frontend: Any, openssh_servers: Any, kex: str,
                              host_key: str, cipher: str, mac: str | None) -> None:
    server = openssh_servers(version)
    with connect(server, frontend, kex_algorithms=[kex], host_key_algorithms=[host_key],
                 ciphers=[cipher], macs=[mac] if mac else None) as client:
        assert_negotiated(client, kex, host_key, cipher, mac)
        with client.new_session() as session:
            assert session.output("echo hello", timeout=30) == b"hello\n"


@pytest.mark.parametrize("version", NEWER)
def test_default_config_negotiates_mlkem768x25519(version: str, frontend: Any,
                                                  openssh_servers: Any) -> None:
    """No algorithm lists given: the post-quantum hybrid is the first choice on both sides."""
    server = openssh_servers(version)
    with connect(server, frontend) as client:
        assert client.algorithms.kex == algs.KEX_MLKEM768X25519_SHA256
        assert client.algorithms.host_key == "ssh-ed25519"
        client.rekey()  # a second mlkem exchange on the same connection
        with client.new_session() as session:
            assert session.output("echo after-rekey", timeout=30) == b"after-rekey\n"
        assert client.kex_count == 2


@pytest.mark.parametrize("version", NEWER)
@pytest.mark.parametrize("key_name", USER_KEY_NAMES)
def test_publickey_auth_every_key(version: str, key_name: str, openssh_servers: Any) -> None:
    server = openssh_servers(version)
    with connect(server, auth=[sshlib.PublicKeys(user_key(server, key_name))]) as client:
        with client.new_session() as session:
            assert session.output("echo ok", timeout=30) == b"ok\n"


@pytest.mark.parametrize("version", NEWER)
def test_password_auth(version: str, frontend: Any, openssh_servers: Any) -> None:
    server = openssh_servers(version)
    with connect(server, frontend, auth=[sshlib.Password(need_password(server))]) as client:
        with client.new_session() as session:
            assert session.output("echo pw", timeout=30) == b"pw\n"


@pytest.mark.parametrize("version", NEWER)
def test_wrong_password_is_auth_error(version: str, openssh_servers: Any) -> None:
    server = openssh_servers(version)
    with pytest.raises(sshlib.AuthError):
        connect(server, auth=[sshlib.Password("not-the-password")])


@pytest.mark.parametrize("version", NEWER)
def test_16_mib_round_trip_and_server_rekeys(version: str, frontend: Any,
                                             openssh_factory: Callable[..., Any]) -> None:
    server = openssh_factory({"RekeyLimit": "4M"}, version=version)
    with connect(server, frontend) as client:
        cat_round_trip(client, 16 << 20)
        assert client.kex_count >= 3, client.kex_count


@pytest.mark.parametrize("version", NEWER)
def test_exit_status_env_and_stdin(version: str, frontend: Any, openssh_servers: Any) -> None:
    server = openssh_servers(version)
    data = b"x" * 100_000
    with connect(server, frontend) as client:
        with client.new_session() as session, pytest.raises(sshlib.ExitError) as info:
            session.output("echo oops >&2; exit 3", timeout=30)
        assert info.value.exit_status == 3
        with client.new_session() as session:
            session.setenv("SSHLIB_X", "y")
            assert session.output("echo $SSHLIB_X", timeout=30) == b"y\n"
        with client.new_session() as session:
            session.start("sha256sum | cut -c1-64")
            session.stdin.write(data, timeout=30)
            session.stdin.close()
            assert session.stdout.read(timeout=30).strip() == \
                hashlib.sha256(data).hexdigest().encode()
            session.wait(timeout=30)


def test_helpers_config_is_used() -> None:
    """The module's helpers build what they say (guards the reduced matrix's assumptions)."""
    rows = _every_algorithm_once()
    named = {p.values[2] for p in rows} | {p.values[3] for p in rows}
    assert set(KEX) <= named and set(HOST_KEYS) <= named
    assert {(p.values[4], p.values[5]) for p in rows} == set(CIPHER_MACS)
