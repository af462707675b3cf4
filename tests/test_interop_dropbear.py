"""End-to-end interoperability with a real dropbear server (Debian's 2022.83) on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import cat_round_trip, config, connect, need_password, user_key

import sshlib
from sshlib import algorithms as algs

# What dropbear 2022.83 offers that sshlib also implements (read off its KEXINIT).
DROPBEAR_KEX = [algs.KEX_CURVE25519_SHA256, algs.KEX_CURVE25519_SHA256_LIBSSH,
                algs.KEX_ECDH_NISTP256, algs.KEX_ECDH_NISTP384, algs.KEX_ECDH_NISTP521,
                algs.KEX_DH_GROUP14_SHA256, algs.INSECURE_KEX_DH_GROUP14_SHA1]
DROPBEAR_HOST_KEYS = [algs.HOSTKEY_ED25519, algs.HOSTKEY_ECDSA_NISTP256,
                      algs.HOSTKEY_RSA_SHA2_256, algs.INSECURE_HOSTKEY_SSH_RSA]
DROPBEAR_CIPHER_MACS = [(algs.CIPHER_CHACHA20_POLY1305, None),
                        (algs.CIPHER_AES128_CTR, algs.MAC_HMAC_SHA2_256),
                        (algs.CIPHER_AES256_CTR, algs.MAC_HMAC_SHA2_256)]
IDS = [f"{c}+{m}" if m else c for c, m in DROPBEAR_CIPHER_MACS]


def _matrix() -> list[Any]:
    """sync: the full product; aio: a subset naming every kex, cipher, mac and host key once."""
    def param(fe: str, kex: str, host_key: str, cipher: str, mac: str | None) -> Any:
        return pytest.param(fe, kex, host_key, cipher, mac,
                            id=f"{fe}-{cipher}+{mac}-{kex}-{host_key}" if mac
                            else f"{fe}-{cipher}-{kex}-{host_key}")
    full = [param("sync", kex, hk, c, m) for c, m in DROPBEAR_CIPHER_MACS
            for kex in DROPBEAR_KEX for hk in DROPBEAR_HOST_KEYS]
    rows = max(len(DROPBEAR_KEX), len(DROPBEAR_HOST_KEYS), len(DROPBEAR_CIPHER_MACS))
    subset = [param("aio", DROPBEAR_KEX[i % len(DROPBEAR_KEX)],
                    DROPBEAR_HOST_KEYS[i % len(DROPBEAR_HOST_KEYS)],
                    *DROPBEAR_CIPHER_MACS[i % len(DROPBEAR_CIPHER_MACS)]) for i in range(rows)]
    return full + subset


@pytest.mark.parametrize(("frontend", "kex", "host_key", "cipher", "mac"), _matrix(),
                         indirect=["frontend"])
def test_every_algorithm_combination(frontend: Any, dropbear_server: Any, kex: str,
                                     host_key: str, cipher: str, mac: str | None) -> None:
    with connect(dropbear_server, frontend, kex_algorithms=[kex], host_key_algorithms=[host_key],
                 ciphers=[cipher], macs=[mac] if mac else None) as client:
        got = client.algorithms
        assert (got.kex, got.host_key, got.cipher_client_to_server) == (kex, host_key, cipher)
        with client.new_session() as session:
            assert session.output("echo ok", timeout=30) == b"ok\n"


@pytest.mark.parametrize("kex", DROPBEAR_KEX)
def test_server_guessed_kex_packet_is_handled(frontend: Any, dropbear_server: Any,
                                              kex: str) -> None:
    """dropbear guesses (kexguess2); our preference order makes the guess wrong for most."""
    with connect(dropbear_server, frontend,
                 kex_algorithms=[kex, *[k for k in DROPBEAR_KEX if k != kex]],
                 host_key_algorithms=list(reversed(DROPBEAR_HOST_KEYS))) as client:
        assert client.algorithms.kex == kex


@pytest.mark.parametrize(("cipher", "mac"), DROPBEAR_CIPHER_MACS, ids=IDS)
def test_32_mib_round_trip(frontend: Any, dropbear_server: Any, cipher: str,
                           mac: str | None) -> None:
    with connect(dropbear_server, frontend,
                 ciphers=[cipher], macs=[mac] if mac else None) as client:
        cat_round_trip(client, 32 << 20)


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-256", "ecdsa-384", "ecdsa-521", "rsa"])
def test_publickey_auth(frontend: Any, dropbear_server: Any, key_type: str) -> None:
    key = user_key(dropbear_server, f"{key_type}-openssh")
    with connect(dropbear_server, frontend, auth=[sshlib.PublicKeys(key)]) as client:
        with client.new_session() as session:
            assert session.output("echo ok") == b"ok\n"


def test_password_auth(frontend: Any, dropbear_server: Any) -> None:
    password = need_password(dropbear_server)
    with connect(dropbear_server, frontend, auth=[sshlib.Password(password)]) as client:
        with client.new_session() as session:
            assert session.output("whoami").strip() == dropbear_server.user.encode()


def test_exit_status_pty_and_concurrency(frontend: Any, dropbear_server: Any) -> None:
    with frontend.dial(f"{dropbear_server.host}:{dropbear_server.port}",
                       config(dropbear_server)) as client:
        with client.new_session() as session, pytest.raises(sshlib.ExitError) as info:
            session.run("exit 7")
        assert info.value.exit_status == 7
        session = client.new_session()
        session.request_pty("vt100", 30, 100)
        session.shell()
        session.stdin.write(b"stty size; exit\n")
        assert b"30 100" in session.stdout.read(timeout=20)
        # Let dropbear finish tearing the pty session down first: under load, a session
        # opened while it does so was seen closed by dropbear before its `exec` went out.
        session.wait(timeout=20)
        session.close()
        # Many sessions on one connection, one after another: dropbear 2022.83 randomly refuses
        # `exec` (CHANNEL_FAILURE) when several start at once on one connection; OpenSSH's own
        # client multiplexing through ControlMaster sees the same refusals, so it is dropbear's.
        # 200 concurrent sessions are tested against sshd in test_interop_openssh.py.
        for i in range(10):
            with client.new_session(timeout=30) as s:
                assert s.output(f"echo {i}", timeout=30) == f"{i}\n".encode()
