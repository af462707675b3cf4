"""PKCS#1 / SEC1 / PKCS#8 private keys, PEM or DER, through `cryptography`."""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ...errors import KeyLoadError, PassphraseRequiredError
from ..model import PrivateKey, PrivateKeyFormat, from_crypto_key

__all__ = ["FORMAT", "parse_pem_or_der"]


def parse_pem_or_der(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """Any PEM or DER private key `cryptography` reads, wrapped for SSH."""
    is_pem = b"-----BEGIN" in data
    if is_pem:
        if b"PRIVATE KEY-----" not in data:
            raise KeyLoadError("no private key found in PEM data")
        encrypted = b"BEGIN ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data
        if encrypted and not passphrase:
            raise PassphraseRequiredError("private key is encrypted and no passphrase was given")
        password = passphrase if encrypted else None
    else:
        password = passphrase or None
    loader = (serialization.load_pem_private_key if is_pem
              else serialization.load_der_private_key)
    try:
        try:
            crypto_key = loader(data, password)
        except TypeError:
            if password is None:  # DER input: we could not tell it was encrypted
                raise PassphraseRequiredError(
                    "private key is encrypted and no passphrase was given") from None
            crypto_key = loader(data, None)  # passphrase given for a plain key
    except ValueError as exc:
        if password is not None:
            raise KeyLoadError("wrong passphrase (or corrupt key file)") from None
        raise KeyLoadError(f"cannot parse private key: {exc}") from None
    except UnsupportedAlgorithm as exc:
        raise KeyLoadError(f"unsupported private key: {exc}") from None
    return from_crypto_key(crypto_key)


def _sniff(data: bytes) -> bool:
    return True  # the fallback: cryptography says what it is not


FORMAT = PrivateKeyFormat("pem", _sniff, parse_pem_or_der)
