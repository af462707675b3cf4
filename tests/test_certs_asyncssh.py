"""Certificates against a second server implementation: asyncssh's server checks our user
certificates (cert-authority in authorized_keys) and serves host certificates we verify."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib import algorithms as algs
from sshlib import keys, knownhosts
from sshlib.errors import CertificateError, HostCertificateError

T = TypeVar("T")
USER = "certuser"


class AsyncsshServer:
    """asyncssh.create_server on 127.0.0.1:0 in a loop thread; `exec` prints the command."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

        def process(proc: asyncssh.SSHServerProcess[str]) -> None:
            proc.stdout.write(f"ran {proc.command}\n")
            proc.exit(0)

        async def start() -> asyncssh.SSHAcceptor:
            return await asyncssh.create_server(
                asyncssh.SSHServer, "127.0.0.1", 0, process_factory=process,
                password_auth=False, kbdint_auth=False, **options)

        self.server = self.run(start())
        self.port = self.server.sockets[0].getsockname()[1]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        async def stop() -> None:  # the server belongs to the loop's thread
            self.server.close()
            await self.server.wait_closed()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def cas() -> dict[str, keys.PrivateKey]:
    return {"user": keys.generate_private_key("ecdsa", 384),
            "host": keys.generate_private_key("ed25519")}


@pytest.fixture(scope="module")
def host_key() -> keys.PrivateKey:
    return keys.generate_private_key("rsa", 2048)


@pytest.fixture
def server(cas: dict[str, keys.PrivateKey], host_key: keys.PrivateKey) -> Iterator[AsyncsshServer]:
    now = int(time.time())
    host_cert = keys.sign_certificate(cas["host"], host_key.public_key, cert_type="host",
                                      key_id="asyncssh-host", principals=["127.0.0.1"],
                                      valid_after=now - 60, valid_before=now + 3600)
    srv = AsyncsshServer(
        server_host_keys=[asyncssh.import_private_key(host_key.to_openssh_private())],
        server_host_certs=[asyncssh.import_certificate(host_cert.openssh())],
        authorized_client_keys=asyncssh.import_authorized_keys(
            f"cert-authority {cas['user'].public_key.openssh()}\n"))
    try:
        yield srv
    finally:
        srv.close()


def dial(frontend: Any, srv: AsyncsshServer, signer: Any, known_hosts: Path,
         **callback_options: Any) -> Any:
    cfg = sshlib.ClientConfig(
        user=USER, auth=[sshlib.PublicKeys(signer)], timeout=30,
        host_key_callback=knownhosts.callback(known_hosts, **callback_options))
    return frontend.dial(f"127.0.0.1:{srv.port}", cfg)


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa", "rsa"])
def test_asyncssh_accepts_our_user_certificates(frontend: Any, server: AsyncsshServer,
                                                cas: dict[str, keys.PrivateKey], tmp_path: Path,
                                                key_type: str) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@cert-authority [127.0.0.1]:* {cas['host'].public_key.openssh()}\n")
    key = keys.generate_private_key(key_type, 2048 if key_type == "rsa" else None)
    cert = keys.sign_certificate(cas["user"], key.public_key, key_id="u", principals=[USER])
    with dial(frontend, server, sshlib.CertSigner(key, cert), kh) as client:
        # Host certificate algorithms were offered first for this CA host.
        assert client.algorithms.host_key == algs.HOSTKEY_RSA_SHA2_512_CERT
        assert isinstance(client.host_key, sshlib.Certificate)
        assert client.host_key.key_id == "asyncssh-host"
        with client.new_session() as session:
            assert bytes(session.output("hello")).strip() == b"ran hello"
    # A certificate for another principal, and the plain key, are refused.
    other = keys.sign_certificate(cas["user"], key.public_key, principals=["someone-else"])
    for signer in (sshlib.CertSigner(key, other), key):
        with pytest.raises(sshlib.AuthError):
            dial(frontend, server, signer, kh).close()


def test_asyncssh_host_certificate_refusals(frontend: Any, server: AsyncsshServer,
                                            cas: dict[str, keys.PrivateKey],
                                            tmp_path: Path) -> None:
    key = keys.generate_private_key("ed25519")
    cert = keys.sign_certificate(cas["user"], key.public_key, principals=[USER])
    kh = tmp_path / "known_hosts"
    kh.write_text(f"@cert-authority * {cas['host'].public_key.openssh()}\n")
    with pytest.raises(HostCertificateError) as info:
        dial(frontend, server, sshlib.CertSigner(key, cert), kh,
             clock=lambda: time.time() + 7200).close()
    assert info.value.reason == CertificateError.EXPIRED
    with pytest.raises(HostCertificateError) as info:
        dial(frontend, server, sshlib.CertSigner(key, cert), kh, host_key_alias="db").close()
    assert info.value.reason == CertificateError.WRONG_PRINCIPAL
