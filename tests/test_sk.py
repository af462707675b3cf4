"""FIDO sk- keys: parsing, signature verification, certificates of them.

Signatures here are made with `cryptography` in the layout PROTOCOL.u2f gives
(a known-answer check of the signed-message construction); the tests with a
real authenticator stand-in (OpenSSH's sk-dummy) and a real agent are below.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)

import sshlib
import sshlib.agent
from sshlib import keys
from sshlib.errors import KeyLoadError
from sshlib.keys.sk import SKPublicKey
from sshlib.wire import Writer


def _sk_ed25519() -> tuple[ed25519.Ed25519PrivateKey, bytes]:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    blob = Writer().string("sk-ssh-ed25519@openssh.com").string(raw).string("ssh:").getvalue()
    return private, blob


def _message(application: str, flags: int, counter: int, data: bytes) -> bytes:
    return (hashlib.sha256(application.encode()).digest() + bytes((flags,))
            + counter.to_bytes(4, "big") + hashlib.sha256(data).digest())


def test_sk_ed25519_parse_and_verify() -> None:
    private, blob = _sk_ed25519()
    key = sshlib.parse_public_key(blob)
    assert isinstance(key, SKPublicKey) and key.key_type == "sk-ssh-ed25519@openssh.com"
    assert key.application == "ssh:" and key.blob == blob
    assert sshlib.parse_openssh_public_key(key.openssh()) == key
    sig = private.sign(_message("ssh:", 1, 42, b"data"))
    blob_sig = (Writer().string("sk-ssh-ed25519@openssh.com").string(sig).byte(1).uint32(42)
                .getvalue())
    assert key.verify(b"data", blob_sig, key.key_type)
    assert key.verify(b"data", blob_sig, key.key_type, require_user_presence=True)
    assert not key.verify(b"other", blob_sig, key.key_type)
    # Flags and counter are signed: changing either breaks the signature.
    tampered = blob_sig[:-5] + bytes((5,)) + blob_sig[-4:]
    assert not key.verify(b"data", tampered, key.key_type)
    no_touch = private.sign(_message("ssh:", 0, 1, b"data"))
    unpresent = (Writer().string(key.key_type).string(no_touch).byte(0).uint32(1).getvalue())
    assert key.verify(b"data", unpresent, key.key_type)
    assert not key.verify(b"data", unpresent, key.key_type, require_user_presence=True)


def test_sk_ecdsa_parse_and_verify() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    blob = (Writer().string("sk-ecdsa-sha2-nistp256@openssh.com").string("nistp256")
            .string(point).string("ssh:work").getvalue())
    key = sshlib.parse_public_key(blob)
    assert isinstance(key, SKPublicKey) and key.application == "ssh:work"
    r, s = decode_dss_signature(private.sign(_message("ssh:work", 1, 7, b"x"),
                                             ec.ECDSA(hashes.SHA256())))
    sig = (Writer().string(key.key_type).string(Writer().mpint(r).mpint(s).getvalue())
           .byte(1).uint32(7).getvalue())
    assert key.verify(b"x", sig, key.key_type)
    assert not key.verify(b"y", sig, key.key_type)


def test_sk_certificate_and_private_key_refusal() -> None:
    _, blob = _sk_ed25519()
    key = sshlib.parse_public_key(blob)
    ca = keys.generate_private_key("ed25519")
    cert = keys.sign_certificate(ca, key, principals=["u"])
    assert cert.key_type == "sk-ssh-ed25519-cert-v01@openssh.com"
    assert cert.signature_algorithms == ("sk-ssh-ed25519-cert-v01@openssh.com",)
    assert cert.public_key == key and cert.signature_valid()
    assert keys.parse_certificate(cert.openssh()) == cert
    with pytest.raises(ValueError, match="cannot generate"):
        keys.generate_private_key("sk-ssh-ed25519@openssh.com")
    # Truncated: no application string.
    with pytest.raises(KeyLoadError):
        sshlib.parse_public_key(blob[:-8])


# --- a real (software) authenticator: OpenSSH's sk-dummy, ssh-keygen, ssh-add -S, ssh-agent ---

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sk_dummy() -> str:
    """sk-dummy.so, built by scripts/sk-dummy.sh into ~/.cache on first use."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "sk-dummy.sh")], capture_output=True,
                          text=True, check=False, timeout=1200)
    assert proc.returncode == 0, f"building sk-dummy failed:\n{proc.stderr}"
    path = proc.stdout.strip().splitlines()[-1]
    assert Path(path).is_file(), path
    return path


@pytest.fixture
def sk_agent(tmp_path: Path, sk_dummy: str) -> Iterator[str]:
    """A private ssh-agent that may load sk-dummy (-P), as its socket path."""
    sock = tmp_path / "agent.sock"
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock), "-P",
                             str(Path(sk_dummy).parent / "*")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(5)


def sk_keygen(path: Path, kind: str, sk_dummy: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-w", sk_dummy, "-N", "", "-C", path.name,
                    "-f", str(path)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return path


def ssh_add(sock: str, sk_dummy: str, *paths: Path) -> None:
    proc = subprocess.run(["ssh-add", "-S", sk_dummy, *map(str, paths)],
                          env={**os.environ, "SSH_AUTH_SOCK": sock}, capture_output=True,
                          text=True, check=False, stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr


SK_KINDS = {"ed25519-sk": "sk-ssh-ed25519@openssh.com",
            "ecdsa-sk": "sk-ecdsa-sha2-nistp256@openssh.com"}


def test_sk_keys_through_a_real_agent(frontend: Any, sk_dummy: str, sk_agent: str,
                                      openssh_factory: Any, tmp_path: Path) -> None:
    paths = {kind: sk_keygen(tmp_path / kind, kind, sk_dummy) for kind in SK_KINDS}
    ca = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ca)], check=True)
    server = openssh_factory({"TrustedUserCAKeys": f"{ca}.pub"})
    # The plain sk keys go into authorized_keys; a certificate of the ecdsa-sk key is added
    # to the agent too (ssh-add picks up <key>-cert.pub).
    with open(server.workdir / "authorized_keys", "a") as fh:
        for path in paths.values():
            fh.write(Path(f"{path}.pub").read_text())
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "sk-cert", "-n", server.user,
                    f"{paths['ecdsa-sk']}.pub"], check=True, capture_output=True)
    ssh_add(sk_agent, sk_dummy, *paths.values())

    with sshlib.agent.connect(sk_agent, timeout=20) as agent:
        listed = {k.key_type: k for k in agent.list_keys()}
        assert set(listed) == {*SK_KINDS.values(), "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"}
        for kind, key_type in SK_KINDS.items():
            public = listed[key_type].public_key
            assert isinstance(public, SKPublicKey)
            assert public == sshlib.load_public_key(f"{paths[kind]}.pub")
            assert public.application == "ssh:"
            # The authenticator's signature, flags and counter as they came: it verifies.
            signature = agent.sign(public, b"to be signed")
            assert public.verify(b"to be signed", signature, key_type)
            assert not public.verify(b"something else", signature, key_type)
        cert = listed["sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"].public_key
        assert isinstance(cert, sshlib.Certificate) and cert.key_id == "sk-cert"
        assert cert.public_key == listed[SK_KINDS["ecdsa-sk"]].public_key
        signers = agent.signers()
        assert len(signers) == 3
        for signer in signers:
            start = server.log_size()
            cfg = sshlib.ClientConfig(
                user=server.user, auth=[sshlib.PublicKeys(signer)],
                host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path),
                timeout=30)
            with frontend.dial(server.address, cfg) as client:
                with client.new_session() as session:
                    assert bytes(session.output("whoami")).strip() == server.user.encode()
            assert f"Accepted publickey for {server.user}" in server.log_text(start)
