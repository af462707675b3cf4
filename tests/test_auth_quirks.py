"""Old-server quirks in publickey auth, against a scripted server (tests/fakeserver.py):
PK_OK naming the key type instead of the algorithm, and the ssh-rsa fallback on a server
without server-sig-algs (only for users who opted into SHA-1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fakeserver import (
    USERAUTH_FAILURE,
    USERAUTH_PK_OK,
    USERAUTH_REQUEST,
    USERAUTH_SUCCESS,
    FakeServer,
    Parser,
    ServerSide,
    namelist,
    sshstr,
)
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib import keys


@pytest.fixture(scope="module")
def rsa_key() -> keys.PrivateKey:
    return keys.generate_private_key("rsa", 2048)


def old_server(accept: set[str], pk_ok_name: Callable[[str], str] = lambda alg: alg,
               ) -> tuple[Callable[[ServerSide], None], list[tuple[str, bool]]]:
    """A script: publickey only, no EXT_INFO; `accept`ed algorithms get PK_OK (named by
    `pk_ok_name`) and succeed with a valid signature; others are refused."""
    seen: list[tuple[str, bool]] = []

    def script(s: ServerSide) -> None:
        s.handshake()
        s.accept_service()
        failure = bytes((USERAUTH_FAILURE,)) + namelist(["publickey"]) + b"\x00"
        while True:
            payload = s.recv_message(USERAUTH_REQUEST)
            p = Parser(payload, 1)
            p.text()
            p.text()
            if p.text() != "publickey":
                s.send_payload(failure)
                continue
            signed = p.boolean()
            algorithm = p.text()
            blob = p.string()
            seen.append((algorithm, signed))
            if algorithm not in accept:
                s.send_payload(failure)
                continue
            if not signed:
                s.send_payload(bytes((USERAUTH_PK_OK,)) + sshstr(pk_ok_name(algorithm))
                               + sshstr(blob))
                continue
            body = payload[:p.pos]
            signature = p.string()
            assert s.session_id is not None
            assert keys.parse_public_key(blob).verify(sshstr(s.session_id) + body, signature,
                                                      algorithm)
            s.send_payload(bytes((USERAUTH_SUCCESS,)))
            return

    return script, seen


def connect(frontend: Any, fake: FakeServer, key: keys.PrivateKey, **overrides: Any) -> Any:
    cfg = fake.config(auth=[sshlib.PublicKeys(key)], **overrides)
    return frontend.client(fake.client_sock, cfg, addr=("fake", 22), timeout=10)


def test_pk_ok_naming_the_key_type_is_accepted(frontend: Any, rsa_key: keys.PrivateKey) -> None:
    script, seen = old_server({"rsa-sha2-512"}, pk_ok_name=lambda alg: "ssh-rsa")
    with FakeServer(script) as fake:
        connect(frontend, fake, rsa_key).close()
    assert seen == [("rsa-sha2-512", False), ("rsa-sha2-512", True)]


def test_pk_ok_naming_another_algorithm_is_a_protocol_error(frontend: Any,
                                                            rsa_key: keys.PrivateKey) -> None:
    script, _ = old_server({"rsa-sha2-512"}, pk_ok_name=lambda alg: "ssh-ed25519")
    with FakeServer(script) as fake:
        with pytest.raises(sshlib.ProtocolError, match="different signature algorithm"):
            connect(frontend, fake, rsa_key).close()


def test_ssh_rsa_fallback_after_sha2_is_refused(frontend: Any, rsa_key: keys.PrivateKey) -> None:
    script, seen = old_server({"ssh-rsa"})
    with FakeServer(script) as fake:
        connect(frontend, fake, rsa_key,
                host_key_algorithms=["ssh-ed25519", "ssh-rsa"]).close()  # opted into SHA-1
    assert seen == [("rsa-sha2-512", False), ("ssh-rsa", False), ("ssh-rsa", True)]


def test_no_ssh_rsa_fallback_without_opt_in(frontend: Any, rsa_key: keys.PrivateKey) -> None:
    script, seen = old_server({"ssh-rsa"})
    with FakeServer(script) as fake:
        with pytest.raises(sshlib.AuthError):
            connect(frontend, fake, rsa_key).close()
        fake.server.close()
    assert seen == [("rsa-sha2-512", False)]
