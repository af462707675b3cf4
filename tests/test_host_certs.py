"""Host certificates: sshd with HostCertificate, known_hosts @cert-authority and @revoked,
every CertificateError reason, certificate algorithms offered first for CA hosts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib import algorithms as algs
from sshlib import keys, knownhosts
from sshlib.errors import CertificateError, HostCertificateError, HostKeyError

# sshlib.testing's host key names -> the certificate algorithm to ask for.
HOST_KEY_CERT_ALGS = {
    "ed25519": algs.HOSTKEY_ED25519_CERT,
    "ecdsa-256": algs.HOSTKEY_ECDSA_NISTP256_CERT,
    "ecdsa-384": algs.HOSTKEY_ECDSA_NISTP384_CERT,
    "ecdsa-521": algs.HOSTKEY_ECDSA_NISTP521_CERT,
    "rsa": algs.HOSTKEY_RSA_SHA2_512_CERT,
}


def run(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args} failed: {proc.stderr}"


class HostCA:
    """A CA, host certificates for the test servers' (shared) host keys, an sshd using them."""

    def __init__(self, base: Path, host_public_keys: dict[str, str], *extra_sign_args: str,
                 tag: str = "good") -> None:
        self.base = base
        self.ca_path = base / "host-ca"
        if not self.ca_path.exists():
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.ca_path))
        self.ca = sshlib.load_private_key(self.ca_path)
        self.certs: dict[str, Path] = {}
        for name in HOST_KEY_CERT_ALGS:
            pub = base / f"{tag}-{name}.pub"
            pub.write_text(host_public_keys[name] + "\n")
            run("ssh-keygen", "-q", "-s", str(self.ca_path), "-h", "-I", f"host-{name}",
                "-z", "5", *extra_sign_args, str(pub))
            self.certs[name] = base / f"{tag}-{name}-cert.pub"

    def config(self) -> dict[str, str]:
        return {"HostCertificate": "\n".join(str(p) for p in self.certs.values())}

    def known_hosts(self, path: Path, *lines: str) -> Path:
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def ca_line(self, patterns: str = "[127.0.0.1]:*") -> str:
        return f"@cert-authority {patterns} {self.ca.public_key.openssh()}"


@pytest.fixture(scope="module")
def host_ca(tmp_path_factory: pytest.TempPathFactory, openssh_server: Any) -> HostCA:
    return HostCA(tmp_path_factory.mktemp("hostca"), openssh_server.host_public_keys,
                  "-n", "127.0.0.1,localhost", "-V", "-1h:+1h")


@pytest.fixture
def cert_server(openssh_factory: Any, host_ca: HostCA) -> Any:
    return openssh_factory(host_ca.config())


def dial(frontend: Any, server: Any, callback: Any, **overrides: Any) -> Any:
    cfg = sshlib.ClientConfig(user=server.user,
                              auth=[sshlib.PublicKeys(sshlib.load_private_key(
                                  server.user_key_paths["ed25519-openssh"]))],
                              host_key_callback=callback, timeout=30, **overrides)
    return frontend.dial(server.address, cfg)


def refused(frontend: Any, server: Any, callback: Any, **overrides: Any) -> HostCertificateError:
    with pytest.raises(HostCertificateError) as info:
        dial(frontend, server, callback, **overrides).close()
    assert isinstance(info.value, HostKeyError) and isinstance(info.value, CertificateError)
    return info.value


@pytest.mark.parametrize("name", list(HOST_KEY_CERT_ALGS))
def test_host_certificate_of_each_type_is_trusted(frontend: Any, cert_server: Any,
                                                  host_ca: HostCA, tmp_path: Path,
                                                  name: str) -> None:
    kh = host_ca.known_hosts(tmp_path / "kh", host_ca.ca_line("[127.0.0.*]:*,!*.example.com"))
    algorithm = HOST_KEY_CERT_ALGS[name]
    with dial(frontend, cert_server, knownhosts.callback(kh),
              host_key_algorithms=[algorithm]) as client:
        assert client.algorithms.host_key == algorithm
        cert = client.host_key
        assert isinstance(cert, sshlib.Certificate)
        assert cert.cert_type == "host" and cert.key_id == f"host-{name}"
        assert cert.public_key == sshlib.parse_openssh_public_key(
            cert_server.host_public_keys[name])


def test_certificate_algorithms_offered_first_for_ca_hosts(frontend: Any, cert_server: Any,
                                                           host_ca: HostCA,
                                                           tmp_path: Path) -> None:
    kh = host_ca.known_hosts(tmp_path / "kh", host_ca.ca_line())
    callback = knownhosts.callback(kh)
    assert callback.host_key_algorithms("127.0.0.1", cert_server.port)[:6] == list(
        algs.CERT_HOST_KEY)
    assert callback.host_key_algorithms("example.com", 22) == []
    with dial(frontend, cert_server, callback) as client:  # default algorithm list
        assert client.algorithms.host_key == algs.HOSTKEY_ED25519_CERT
    # Without a CA line, no certificate algorithm is offered: the plain known key is used.
    plain = knownhosts.callback(cert_server.known_hosts_path)
    with dial(frontend, cert_server, plain) as client:
        assert client.algorithms.host_key in algs.DEFAULT_HOST_KEY
        assert not isinstance(client.host_key, sshlib.Certificate)


def test_certificate_of_known_plain_key_accepted_without_ca(frontend: Any, cert_server: Any,
                                                            host_ca: HostCA) -> None:
    # As OpenSSH: no CA vouches for the certificate, but its key is in known_hosts.
    callback = knownhosts.callback(cert_server.known_hosts_path)
    with dial(frontend, cert_server, callback,
              host_key_algorithms=[algs.HOSTKEY_ECDSA_NISTP384_CERT]) as client:
        assert isinstance(client.host_key, sshlib.Certificate)


def test_each_refusal_says_which(frontend: Any, cert_server: Any, host_ca: HostCA,
                                 tmp_path: Path) -> None:
    ca_line = host_ca.ca_line("*")
    kh = host_ca.known_hosts(tmp_path / "kh", ca_line)
    now = time.time()

    err = refused(frontend, cert_server, knownhosts.callback(kh, clock=lambda: now + 7200))
    assert err.reason == CertificateError.EXPIRED and "expired" in str(err)
    assert err.host == "127.0.0.1" and err.port == cert_server.port
    err = refused(frontend, cert_server, knownhosts.callback(kh, clock=lambda: now - 7200))
    assert err.reason == CertificateError.NOT_YET_VALID
    err = refused(frontend, cert_server, knownhosts.callback(kh, host_key_alias="db.internal"))
    assert err.reason == CertificateError.WRONG_PRINCIPAL and "db.internal" in str(err)
    # HostKeyAlias naming a principal the certificate has: accepted.
    with dial(frontend, cert_server, knownhosts.callback(kh, host_key_alias="localhost")):
        pass

    other = keys.generate_private_key("ed25519")
    unknown = host_ca.known_hosts(tmp_path / "kh2",
                                  f"@cert-authority * {other.public_key.openssh()}")
    err = refused(frontend, cert_server, knownhosts.callback(unknown))
    assert err.reason == CertificateError.UNKNOWN_CA
    # A CA line for other hosts only does not count.
    elsewhere = host_ca.known_hosts(tmp_path / "kh3", host_ca.ca_line("*.example.com"))
    err = refused(frontend, cert_server, knownhosts.callback(elsewhere),
                  host_key_algorithms=[algs.HOSTKEY_ED25519_CERT])
    assert err.reason == CertificateError.UNKNOWN_CA

    cert_line = host_ca.certs["ed25519"].read_text().split()[:2]
    for revoked_key in (host_ca.ca.public_key.openssh(), " ".join(cert_line),
                        cert_server.host_public_keys["ed25519"]):
        revoked = host_ca.known_hosts(tmp_path / "kh4", ca_line, f"@revoked * {revoked_key}")
        err = refused(frontend, cert_server, knownhosts.callback(revoked),
                      host_key_algorithms=[algs.HOSTKEY_ED25519_CERT])
        assert err.reason == CertificateError.REVOKED and "@revoked" in str(err)


def test_user_certificate_as_host_certificate(frontend: Any, openssh_factory: Any,
                                              openssh_server: Any, tmp_path: Path) -> None:
    wrong = HostCA(tmp_path, openssh_server.host_public_keys, "-n", "127.0.0.1", tag="user")
    # ssh-keygen made host certificates; re-sign the ed25519 one as a user certificate.
    pub = sshlib.parse_openssh_public_key(openssh_server.host_public_keys["ed25519"])
    user_cert = keys.sign_certificate(wrong.ca, pub, cert_type="user", principals=["127.0.0.1"])
    wrong.certs = {"ed25519": tmp_path / "as-user-cert.pub"}
    wrong.certs["ed25519"].write_text(user_cert.openssh() + "\n")
    server = openssh_factory(wrong.config())
    kh = wrong.known_hosts(tmp_path / "kh", wrong.ca_line())
    err = refused(frontend, server, knownhosts.callback(kh),
                  host_key_algorithms=[algs.HOSTKEY_ED25519_CERT])
    assert err.reason == CertificateError.WRONG_TYPE


def test_bad_signature_and_unknown_critical_option(host_ca: HostCA, openssh_server: Any,
                                                   tmp_path: Path) -> None:
    """Cases no sshd will send, checked through KnownHosts.check directly."""
    db = knownhosts.KnownHosts.from_lines([host_ca.ca_line("*")])
    pub = sshlib.parse_openssh_public_key(openssh_server.host_public_keys["ecdsa-256"])
    good = keys.sign_certificate(host_ca.ca, pub, cert_type="host", principals=["h"])
    db.check("h", 22, good, now=time.time())
    raw = bytearray(good.blob)
    raw[-1] ^= 0x40
    with pytest.raises(HostCertificateError) as info:
        db.check("h", 22, keys.parse_public_key(bytes(raw)), now=time.time())
    assert info.value.reason == CertificateError.BAD_SIGNATURE
    odd = keys.sign_certificate(host_ca.ca, pub, cert_type="host", principals=["h"],
                                critical_options={"whatever@example.com": ""})
    with pytest.raises(HostCertificateError) as info:
        db.check("h", 22, odd, now=time.time())
    assert info.value.reason == CertificateError.UNSUPPORTED_OPTION
    with pytest.raises(ValueError, match="now="):
        db.check("h", 22, good)


def test_our_host_certificates_served_by_sshd(frontend: Any, openssh_factory: Any,
                                              openssh_server: Any, tmp_path: Path) -> None:
    """sign_certificate(cert_type="host") for every host key type: sshd serves them, and
    sshlib (and ssh-keygen -L) accept them."""
    ca = keys.generate_private_key("ecdsa", 521)
    paths = []
    for name in HOST_KEY_CERT_ALGS:
        pub = sshlib.parse_openssh_public_key(openssh_server.host_public_keys[name])
        cert = keys.sign_certificate(ca, pub, cert_type="host", key_id=f"ours-{name}",
                                     principals=["127.0.0.1"], serial=11)
        path = tmp_path / f"{name}-cert.pub"
        path.write_text(cert.openssh() + "\n")
        listing = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True,
                                 text=True, check=True).stdout
        assert "host certificate" in listing and f'Key ID: "ours-{name}"' in listing
        paths.append(path)
    server = openssh_factory({"HostCertificate": "\n".join(map(str, paths))})
    kh = tmp_path / "kh"
    kh.write_text(f"@cert-authority [127.0.0.1]:{server.port} {ca.public_key.openssh()}\n")
    for name, algorithm in HOST_KEY_CERT_ALGS.items():
        with dial(frontend, server, knownhosts.callback(kh),
                  host_key_algorithms=[algorithm]) as client:
            assert client.host_key.key_id == f"ours-{name}"
