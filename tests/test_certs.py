"""OpenSSH certificates: ssh-keygen -s certificates parsed and used, ours checked by
ssh-keygen -L and accepted by the real sshd (TrustedUserCAKeys, AuthorizedPrincipalsFile)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
from sshlib import keys
from sshlib.errors import CertificateError, KeyLoadError

# (name, ssh-keygen -t, -b, certificate key type)
KEY_SPECS = [
    ("ed25519", "ed25519", None, "ssh-ed25519-cert-v01@openssh.com"),
    ("ecdsa256", "ecdsa", "256", "ecdsa-sha2-nistp256-cert-v01@openssh.com"),
    ("ecdsa384", "ecdsa", "384", "ecdsa-sha2-nistp384-cert-v01@openssh.com"),
    ("ecdsa521", "ecdsa", "521", "ecdsa-sha2-nistp521-cert-v01@openssh.com"),
    ("rsa", "rsa", "2048", "ssh-rsa-cert-v01@openssh.com"),
]
NAMES = [s[0] for s in KEY_SPECS]


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args} failed: {proc.stderr}"
    return proc.stdout + proc.stderr


def keygen(path: Path, tool_type: str, bits: str | None) -> Path:
    args = ["ssh-keygen", "-q", "-t", tool_type, "-N", "", "-C", path.name, "-f", str(path)]
    if bits:
        args += ["-b", bits]
    run(*args)
    return path


class Keys:
    """A CA per key type and a user key per key type, none in any authorized_keys file."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.readable = Path(tempfile.mkdtemp(prefix="sshlib-certs-"))
        self.ca = {name: keygen(base / f"ca-{name}", t, b) for name, t, b, _ in KEY_SPECS}
        self.user = {name: keygen(base / f"user-{name}", t, b) for name, t, b, _ in KEY_SPECS}

    def ca_pubs(self, *names: str) -> Path:
        path = self.base / f"trusted-{'-'.join(names)}.pub"
        path.write_text("".join(Path(f"{self.ca[n]}.pub").read_text() for n in names))
        return path

    def keygen_sign(self, ca: str, user: str, *options: str, out: str | None = None) -> Path:
        """ssh-keygen -s CA ... user.pub -> the -cert.pub path (copied to `out` if given)."""
        pub = Path(f"{self.user[user]}.pub")
        run("ssh-keygen", "-q", "-s", str(self.ca[ca]), *options, str(pub))
        cert = Path(f"{self.user[user]}-cert.pub")
        if out is not None:
            target = self.base / out
            target.write_text(cert.read_text())
            cert.unlink()
            return target
        return cert


@pytest.fixture(scope="module")
def ca_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    result = Keys(tmp_path_factory.mktemp("certs"))
    result.readable.chmod(0o755)
    try:
        yield result
    finally:
        shutil.rmtree(result.readable, ignore_errors=True)


def keygen_listing(path: Path) -> str:
    return run("ssh-keygen", "-L", "-f", str(path))


def ca_server(factory: Callable[..., Any], ca_keys: Keys, principals: str | None = None,
              ca_names: tuple[str, ...] = tuple(NAMES)) -> Any:
    extra = {"TrustedUserCAKeys": str(ca_keys.ca_pubs(*ca_names))}
    if principals is not None:
        # sshd reads the principals file as the login user, so not under pytest's 0700 tmp.
        pfile = ca_keys.readable / f"principals-{len(principals)}"
        pfile.write_text(principals)
        pfile.chmod(0o644)
        extra["AuthorizedPrincipalsFile"] = str(pfile)
    return factory(extra)


def dial(frontend: Any, server: Any, *signers: Any, **overrides: Any) -> Any:
    cfg = sshlib.ClientConfig(
        user=server.user, auth=[sshlib.PublicKeys(*signers)],
        host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path), timeout=30,
        **overrides)
    return frontend.dial(server.address, cfg)


def whoami(client: Any) -> bytes:
    with client.new_session() as session:
        return bytes(session.output("whoami")).strip()


# --- parsing ssh-keygen's certificates ------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_keygen_certificate_attributes(ca_keys: Keys, name: str) -> None:
    ca = "rsa" if name == "ed25519" else "ed25519"
    path = ca_keys.keygen_sign(
        ca, name, "-I", f"id-{name}", "-n", "alice,bob", "-z", "4711",
        "-V", "20300101000000Z:20300102000000Z", "-O", "clear", "-O", "permit-pty",
        "-O", "force-command=/bin/echo forced", "-O", "source-address=127.0.0.1/32,::1/128",
        "-O", "extension:login@example.com=alice", out=f"attrs-{name}-cert.pub")
    cert = sshlib.load_certificate(path)
    spec = {s[0]: s for s in KEY_SPECS}[name]
    assert isinstance(cert, sshlib.Certificate)
    assert cert.key_type == spec[3]
    assert cert.cert_type == "user"
    assert cert.key_id == f"id-{name}"
    assert cert.serial == 4711
    assert cert.principals == ("alice", "bob")
    assert cert.valid_after == 1893456000 and cert.valid_before == 1893542400
    assert cert.critical_options == {"force-command": "/bin/echo forced",
                                     "source-address": "127.0.0.1/32,::1/128"}
    assert cert.force_command == "/bin/echo forced"
    assert cert.source_address == ("127.0.0.1/32", "::1/128")
    assert cert.extensions == {"permit-pty": "", "login@example.com": "alice"}
    assert cert.public_key == sshlib.load_public_key(f"{ca_keys.user[name]}.pub")
    assert cert.signature_key == sshlib.load_public_key(f"{ca_keys.ca[ca]}.pub")
    assert cert.signature_valid()
    listing = keygen_listing(path)
    assert cert.fingerprint() in listing  # ssh-keygen shows the certified key's fingerprint
    assert cert.signature_key.fingerprint() in listing
    # In its validity window, for alice, as a user certificate: fine.
    cert.check(now=1893460000, cert_type="user", principal="alice")


def test_host_certificate_and_defaults(ca_keys: Keys) -> None:
    path = ca_keys.keygen_sign("ecdsa384", "ed25519", "-h", "-I", "web", "-n", "*.example.com",
                               out="host-cert.pub")
    cert = sshlib.load_certificate(path)
    assert cert.cert_type == "host" and cert.extensions == {} and cert.critical_options == {}
    assert cert.valid_after == 0 and cert.valid_before == 2**64 - 1
    cert.check(now=time.time(), cert_type="host", principal="www.example.com",
               principal_patterns=True)


def test_check_says_which(ca_keys: Keys) -> None:
    path = ca_keys.keygen_sign("ed25519", "ecdsa256", "-I", "c", "-n", "alice",
                               "-V", "20300101000000Z:20300102000000Z", out="check-cert.pub")
    cert = sshlib.load_certificate(path)
    inside = 1893460000

    def reason(**kwargs: Any) -> str:
        args: dict[str, Any] = {"now": inside, "cert_type": "user", "principal": "alice"}
        args.update(kwargs)
        with pytest.raises(CertificateError) as info:
            cert.check(**args)
        assert cert is info.value.certificate
        return info.value.reason

    assert reason(now=1893456000 - 1) == CertificateError.NOT_YET_VALID
    assert reason(now=1893542400) == CertificateError.EXPIRED
    assert reason(principal="mallory") == CertificateError.WRONG_PRINCIPAL
    assert reason(cert_type="host") == CertificateError.WRONG_TYPE
    # A flipped bit in the CA signature.
    raw = bytearray(cert.blob)
    raw[-3] ^= 1
    bad = keys.parse_certificate(bytes(raw))
    with pytest.raises(CertificateError) as info:
        bad.check(now=inside, cert_type="user")
    assert info.value.reason == CertificateError.BAD_SIGNATURE


def test_unknown_critical_option_makes_it_unusable(ca_keys: Keys) -> None:
    ca = sshlib.load_private_key(ca_keys.ca["ed25519"])
    key = sshlib.load_private_key(ca_keys.user["ed25519"])
    cert = keys.sign_certificate(ca, key.public_key, key_id="x", principals=["a"],
                                 critical_options={"no-such-option@example.com": "1"})
    assert cert.unknown_critical_options == ("no-such-option@example.com",)
    with pytest.raises(CertificateError) as info:
        sshlib.CertSigner(key, cert)
    assert info.value.reason == CertificateError.UNSUPPORTED_OPTION
    with pytest.raises(CertificateError) as info:
        cert.check(now=time.time(), cert_type="user", principal="a")
    assert info.value.reason == CertificateError.UNSUPPORTED_OPTION


def test_cert_signer_refuses_another_key(ca_keys: Keys) -> None:
    ca = sshlib.load_private_key(ca_keys.ca["ed25519"])
    cert = keys.sign_certificate(ca, sshlib.load_public_key(f"{ca_keys.user['rsa']}.pub"))
    with pytest.raises(ValueError, match="certifies"):
        sshlib.CertSigner(sshlib.load_private_key(ca_keys.user["ed25519"]), cert)


def test_load_certificate_refuses_plain_keys_and_garbage(ca_keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="not a certificate"):
        sshlib.load_certificate(f"{ca_keys.user['ed25519']}.pub")
    bad = tmp_path / "bad-cert.pub"
    bad.write_text("ssh-ed25519-cert-v01@openssh.com AAAA\n")
    with pytest.raises(KeyLoadError):
        sshlib.load_certificate(bad)


# --- our certificates, checked by ssh-keygen -L ------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_sign_certificate_matches_ssh_keygen_listing(ca_keys: Keys, name: str,
                                                     tmp_path: Path) -> None:
    ca_name = {"ed25519": "rsa", "rsa": "ecdsa521"}.get(name, "ed25519")
    ca = sshlib.load_private_key(ca_keys.ca[ca_name])
    public = sshlib.load_public_key(f"{ca_keys.user[name]}.pub")
    cert = keys.sign_certificate(
        ca, public, cert_type="user", key_id=f"ours-{name}", principals=["alice", "ops"],
        valid_after=1893456000, valid_before=1893542400, serial=99,
        critical_options={"force-command": "uptime", "source-address": "10.0.0.0/8"},
        extensions={"permit-pty": "", "permit-agent-forwarding": ""})
    path = tmp_path / "ours-cert.pub"
    path.write_text(cert.openssh() + "\n")
    listing = keygen_listing(path)
    assert f"Type: {cert.key_type} user certificate" in listing
    assert f'Key ID: "ours-{name}"' in listing
    assert "Serial: 99" in listing
    assert "Valid: from 2030-01-01T" in listing
    assert re.search(r"Principals:\s+alice\s+ops", listing)
    assert re.search(r"force-command uptime\s+source-address 10.0.0.0/8", listing)
    assert re.search(r"Extensions:\s+permit-agent-forwarding\s+permit-pty", listing)
    assert ca.public_key.fingerprint() in listing
    if ca_name == "rsa":
        assert "(using rsa-sha2-512)" in listing
    assert sshlib.load_certificate(path) == cert


# --- authentication against sshd ---------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_keygen_user_certificate_authenticates(frontend: Any, openssh_factory: Any,
                                               ca_keys: Keys, name: str) -> None:
    server = ca_server(openssh_factory, ca_keys, ca_names=("ecdsa256",))
    ca_keys.keygen_sign("ecdsa256", name, "-I", f"kg-{name}", "-n", server.user, "-V", "-5m:+1h",
                        "-z", "7")
    key = sshlib.load_private_key(ca_keys.user[name])  # picks up <path>-cert.pub
    try:
        assert isinstance(key.certificate, sshlib.Certificate)
        signer = sshlib.CertSigner(key, key.certificate)
        start = server.log_size()
        with dial(frontend, server, signer) as client:
            assert whoami(client) == server.user.encode()
        log = server.log_text(start)
        assert f"ID kg-{name} (serial 7)" in log
        if name == "rsa":
            assert "pkalg rsa-sha2-512-cert-v01@openssh.com" in log
        # The plain key alone is not authorized: the certificate is what got us in.
        with pytest.raises(sshlib.AuthError):
            dial(frontend, server, sshlib.keys.from_crypto_key(key.crypto_key))
    finally:
        Path(f"{ca_keys.user[name]}-cert.pub").unlink()


def test_key_with_certificate_offers_it_automatically(frontend: Any, openssh_factory: Any,
                                                      ca_keys: Keys) -> None:
    server = ca_server(openssh_factory, ca_keys, ca_names=("ed25519",))
    ca_keys.keygen_sign("ed25519", "ecdsa384", "-I", "auto", "-n", server.user)
    try:
        key = sshlib.load_private_key(ca_keys.user["ecdsa384"])
        with dial(frontend, server, key) as client:
            assert whoami(client) == server.user.encode()
    finally:
        Path(f"{ca_keys.user['ecdsa384']}-cert.pub").unlink()


def test_authorized_principals_file(frontend: Any, openssh_factory: Any, ca_keys: Keys) -> None:
    server = ca_server(openssh_factory, ca_keys, principals="ops\nbackup\n",
                       ca_names=("rsa",))
    ca = sshlib.load_private_key(ca_keys.ca["rsa"])
    key = sshlib.load_private_key(ca_keys.user["ed25519"])
    now = int(time.time())

    def cert_for(*principals: str, **kwargs: Any) -> sshlib.Certificate:
        args: dict[str, Any] = {"key_id": "p", "principals": list(principals),
                                "valid_after": now - 60, "valid_before": now + 3600}
        args.update(kwargs)
        return keys.sign_certificate(ca, key.public_key, **args)

    with dial(frontend, server, sshlib.CertSigner(key, cert_for("ops"))) as client:
        assert whoami(client) == server.user.encode()
    # The user's own name is not enough once a principals file is configured.
    for refused in (cert_for(server.user), cert_for("ops", valid_before=now - 1),
                    cert_for("backup", cert_type="host")):
        with pytest.raises(sshlib.AuthError):
            dial(frontend, server, sshlib.CertSigner(key, refused))


def test_our_certificates_accepted_by_sshd(frontend: Any, openssh_factory: Any,
                                           ca_keys: Keys) -> None:
    """sign_certificate with each CA key type, for each user key type, force-command honoured."""
    server = ca_server(openssh_factory, ca_keys)
    for i, name in enumerate(NAMES):
        ca = sshlib.load_private_key(ca_keys.ca[NAMES[(i + 1) % len(NAMES)]])
        key = sshlib.load_private_key(ca_keys.user[name])
        cert = keys.sign_certificate(ca, key.public_key, key_id=f"ours-{name}",
                                     principals=[server.user], serial=i,
                                     critical_options={"force-command": f"echo forced-{name}"})
        with dial(frontend, server, sshlib.CertSigner(key, cert)) as client:
            with client.new_session() as session:
                assert bytes(session.output("whoami")).strip() == f"forced-{name}".encode()


def test_rsa_sha1_certificate_only_when_opted_in(frontend: Any, openssh_factory: Any,
                                                 ca_keys: Keys) -> None:
    server = ca_server(openssh_factory, ca_keys, ca_names=("ed25519",))
    ca = sshlib.load_private_key(ca_keys.ca["ed25519"])
    key = sshlib.load_private_key(ca_keys.user["rsa"])
    cert = keys.sign_certificate(ca, key.public_key, principals=[server.user])
    signer = sshlib.CertSigner(key, cert)
    assert signer.public_key.signature_algorithms[-1] == "ssh-rsa-cert-v01@openssh.com"
    start = server.log_size()
    with dial(frontend, server, signer) as client:
        assert whoami(client) == server.user.encode()
    log = server.log_text(start)
    assert "pkalg rsa-sha2-512-cert-v01@openssh.com" in log
    assert "pkalg ssh-rsa-cert-v01@openssh.com" not in log
    # Signing with the SHA-1 name works only for callers who name it; the signature
    # inside is then a plain ssh-rsa one.
    blob = signer.sign(b"data", "ssh-rsa-cert-v01@openssh.com")
    assert cert.verify(b"data", blob, "ssh-rsa-cert-v01@openssh.com")
    assert cert.verify(b"data", signer.sign(b"data"), "rsa-sha2-512-cert-v01@openssh.com")
