"""RFC 8709 ``ssh-ed25519`` keys."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import KeyLoadError
from ..wire import Reader, string
from .certs import register_certificate_type
from .model import KeyType, PrivateKey, PublicKey, register_crypto_type, register_key_type

__all__ = ["KEY_ED25519", "Ed25519PublicKey", "Ed25519PrivateKey"]

KEY_ED25519 = "ssh-ed25519"


def raw_public_bytes(key: ed25519.Ed25519PublicKey) -> bytes:
    """The 32-byte encoded point."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Ed25519PublicKey(PublicKey):
    """RFC 8709 ``ssh-ed25519`` key."""

    key_type = KEY_ED25519

    def __init__(self, blob: bytes, key: ed25519.Ed25519PublicKey) -> None:
        super().__init__(blob)
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: ed25519.Ed25519PublicKey) -> Ed25519PublicKey:
        return cls(string(KEY_ED25519) + string(raw_public_bytes(key)), key)

    @property
    def key_size(self) -> int:
        return 256

    @property
    def crypto_key(self) -> ed25519.Ed25519PublicKey:
        return self._key

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        if len(sig) != 64:
            raise InvalidSignature
        self._key.verify(sig, data)


def read_ed25519_point(reader: Reader) -> tuple[bytes, ed25519.Ed25519PublicKey]:
    """The string holding a 32-byte public key, as raw bytes and as a key object."""
    raw = reader.string()
    if len(raw) != 32:
        raise KeyLoadError(f"ed25519 public key is {len(raw)} bytes, expected 32")
    return raw, ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _parse(reader: Reader, blob: bytes) -> PublicKey:
    raw, key = read_ed25519_point(reader)
    return Ed25519PublicKey(string(KEY_ED25519) + string(raw), key)


class Ed25519PrivateKey(PrivateKey):
    """An Ed25519 private key in memory (a `Signer`)."""

    def __init__(self, key: ed25519.Ed25519PrivateKey, comment: str = "") -> None:
        super().__init__(Ed25519PublicKey.from_crypto_key(key.public_key()), comment)
        self._key = key

    @property
    def crypto_key(self) -> ed25519.Ed25519PrivateKey:
        return self._key

    def sign_raw(self, data: bytes, algorithm: str) -> bytes:
        return self._key.sign(data)

    def private_fields(self) -> bytes:
        pub = raw_public_bytes(self._key.public_key())
        seed = self._key.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        return string(pub) + string(seed + pub)


def _generate(bits: int | None, comment: str) -> PrivateKey:
    if bits not in (None, 256):
        raise ValueError("ssh-ed25519 keys are always 256 bits")
    return Ed25519PrivateKey(ed25519.Ed25519PrivateKey.generate(), comment)


register_key_type(KeyType(KEY_ED25519, _parse, private_field_count=2, generate=_generate))
register_certificate_type(KEY_ED25519)
register_crypto_type(ed25519.Ed25519PublicKey, Ed25519PublicKey.from_crypto_key,
                     ed25519.Ed25519PrivateKey, Ed25519PrivateKey)
