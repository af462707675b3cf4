"""SSH public and private keys, certificates and key files.

Supported key types are Ed25519, ECDSA on the three NIST curves and RSA,
their OpenSSH certificates, and the FIDO ``sk-`` public keys (usable through
an agent); anything else (DSA, unknown types) is refused with
`KeyLoadError`, so callers never have to handle a half-supported key.

The maths is all done by `cryptography`.  This package knows the SSH
encodings: the public key blob (RFC 4253 section 6.6), signature blobs
(RFC 4253, RFC 5656, RFC 8332, RFC 8709) and the key file formats.

Layout: `model` (PublicKey, PrivateKey, Signer, the key type registry), one
module per key type (`ed25519`, `ecdsa`, `rsa`, `sk` for FIDO keys), `certs` (OpenSSH
certificates, CertSigner, sign_certificate), `formats/` (one module per
file format), `parse` (format sniffing on bytes) and `files` (loading files).
"""

from __future__ import annotations

from . import ecdsa, ed25519, rsa, sk
from .certs import Certificate, CertSigner, parse_certificate, sign_certificate
from .ecdsa import (
    KEY_ECDSA_NISTP256,
    KEY_ECDSA_NISTP384,
    KEY_ECDSA_NISTP521,
    ECDSAPrivateKey,
    ECDSAPublicKey,
)
from .ed25519 import KEY_ED25519, Ed25519PrivateKey, Ed25519PublicKey
from .files import load_certificate, load_private_key, load_public_key
from .formats.text import parse_openssh_public_key
from .model import (
    PrivateKey,
    PublicKey,
    Signer,
    from_crypto_key,
    generate_private_key,
    key_type_for_algorithm,
    parse_public_key,
    public_key_from_crypto_key,
)
from .parse import parse_private_key
from .rsa import (
    KEY_RSA,
    RSA_MAX_BITS,
    RSA_MIN_BITS,
    SIG_RSA_SHA1,
    SIG_RSA_SHA2_256,
    SIG_RSA_SHA2_512,
    RSAPrivateKey,
    RSAPublicKey,
)

__all__ = [
    "PublicKey",
    "Ed25519PublicKey",
    "ECDSAPublicKey",
    "RSAPublicKey",
    "PrivateKey",
    "Ed25519PrivateKey",
    "ECDSAPrivateKey",
    "RSAPrivateKey",
    "Signer",
    "parse_public_key",
    "parse_openssh_public_key",
    "load_public_key",
    "public_key_from_crypto_key",
    "key_type_for_algorithm",
    "parse_private_key",
    "load_private_key",
    "generate_private_key",
    "from_crypto_key",
    "Certificate",
    "CertSigner",
    "load_certificate",
    "parse_certificate",
    "sign_certificate",
    "KEY_ED25519",
    "KEY_ECDSA_NISTP256",
    "KEY_ECDSA_NISTP384",
    "KEY_ECDSA_NISTP521",
    "KEY_RSA",
    "SIG_RSA_SHA1",
    "SIG_RSA_SHA2_256",
    "SIG_RSA_SHA2_512",
    "RSA_MIN_BITS",
    "RSA_MAX_BITS",
    "ecdsa",
    "ed25519",
    "rsa",
    "sk",
]
