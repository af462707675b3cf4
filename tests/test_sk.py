"""FIDO sk- keys: parsing, signature verification, certificates of them.

Signatures here are made with `cryptography` in the layout PROTOCOL.u2f gives
(a known-answer check of the signed-message construction); the tests with a
real authenticator stand-in (OpenSSH's sk-dummy) and a real agent are below.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import sshlib
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
