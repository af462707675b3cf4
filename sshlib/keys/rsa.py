"""``ssh-rsa`` keys with RFC 8332 SHA-2 signatures (and SHA-1 ones, opt-in)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import KeyLoadError
from ..wire import Reader, Writer, string
from .certs import register_certificate_type
from .model import KeyType, PrivateKey, PublicKey, register_crypto_type, register_key_type

__all__ = [
    "KEY_RSA",
    "SIG_RSA_SHA2_512",
    "SIG_RSA_SHA2_256",
    "SIG_RSA_SHA1",
    "RSA_MIN_BITS",
    "RSA_MAX_BITS",
    "RSAPublicKey",
    "RSAPrivateKey",
    "check_rsa_size",
    "rsa_hash",
]

KEY_RSA = "ssh-rsa"
SIG_RSA_SHA2_512 = "rsa-sha2-512"
SIG_RSA_SHA2_256 = "rsa-sha2-256"
SIG_RSA_SHA1 = "ssh-rsa"

# OpenSSH refuses smaller moduli (SSH_RSA_MINIMUM_MODULUS_SIZE) and larger ones
# (OPENSSL_RSA_MAX_MODULUS_BITS); the upper bound also caps verification cost.
RSA_MIN_BITS = 1024
RSA_MAX_BITS = 16384

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    SIG_RSA_SHA2_512: hashes.SHA512,
    SIG_RSA_SHA2_256: hashes.SHA256,
    SIG_RSA_SHA1: hashes.SHA1,
}


def rsa_hash(algorithm: str) -> hashes.HashAlgorithm:
    """The hash an RSA signature algorithm uses."""
    return _HASHES[algorithm]()


def check_rsa_size(bits: int) -> None:
    """KeyLoadError unless OpenSSH would accept an RSA key of `bits`."""
    if bits < RSA_MIN_BITS:
        raise KeyLoadError(f"RSA key of {bits} bits is too small (minimum {RSA_MIN_BITS})")
    if bits > RSA_MAX_BITS:
        raise KeyLoadError(f"RSA key of {bits} bits is too large (maximum {RSA_MAX_BITS})")


class RSAPublicKey(PublicKey):
    """``ssh-rsa`` key, usable with RFC 8332 SHA-2 signatures and legacy SHA-1 ones."""

    key_type = KEY_RSA

    def __init__(self, blob: bytes, key: rsa.RSAPublicKey) -> None:
        super().__init__(blob)
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: rsa.RSAPublicKey) -> RSAPublicKey:
        check_rsa_size(key.key_size)
        numbers = key.public_numbers()
        blob = Writer().string(KEY_RSA).mpint(numbers.e).mpint(numbers.n).getvalue()
        return cls(blob, key)

    @property
    def signature_algorithms(self) -> tuple[str, ...]:
        return (SIG_RSA_SHA2_512, SIG_RSA_SHA2_256, SIG_RSA_SHA1)

    @property
    def key_size(self) -> int:
        return self._key.key_size

    @property
    def crypto_key(self) -> rsa.RSAPublicKey:
        return self._key

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        modulus_bytes = (self._key.key_size + 7) // 8
        if len(sig) > modulus_bytes:
            raise InvalidSignature
        # Some signers drop leading zero bytes (RFC 8332 section 3 allows
        # accepting that); PKCS#1 wants exactly the modulus length.
        sig = sig.rjust(modulus_bytes, b"\x00")
        self._key.verify(sig, data, padding.PKCS1v15(), rsa_hash(algorithm))


def read_rsa_fields(reader: Reader) -> tuple[bytes, rsa.RSAPublicKey]:
    """Read mpint e, mpint n; (the raw fields verbatim, the key)."""
    e_raw = reader.string()
    n_raw = reader.string()
    e = Reader(string(e_raw)).mpint()
    n = Reader(string(n_raw)).mpint()
    if e <= 0 or n <= 0:
        raise KeyLoadError("ssh-rsa key has a negative field")
    check_rsa_size(n.bit_length())
    try:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise KeyLoadError(f"invalid ssh-rsa key: {exc}") from None
    return string(e_raw) + string(n_raw), key


def _parse(reader: Reader, blob: bytes) -> PublicKey:
    fields, key = read_rsa_fields(reader)
    return RSAPublicKey(string(KEY_RSA) + fields, key)


class RSAPrivateKey(PrivateKey):
    """An RSA private key in memory (a `Signer`; rsa-sha2-512 unless told otherwise)."""

    def __init__(self, key: rsa.RSAPrivateKey, comment: str = "") -> None:
        super().__init__(RSAPublicKey.from_crypto_key(key.public_key()), comment)
        self._key = key

    @property
    def crypto_key(self) -> rsa.RSAPrivateKey:
        return self._key

    def sign_raw(self, data: bytes, algorithm: str) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), rsa_hash(algorithm))

    def private_fields(self) -> bytes:
        numbers = self._key.private_numbers()
        return (Writer().mpint(numbers.public_numbers.n).mpint(numbers.public_numbers.e)
                .mpint(numbers.d).mpint(numbers.iqmp).mpint(numbers.p).mpint(numbers.q)
                .getvalue())


def _generate(bits: int | None, comment: str) -> PrivateKey:
    bits = 3072 if bits is None else bits
    if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
        raise ValueError(f"RSA key size must be {RSA_MIN_BITS}..{RSA_MAX_BITS} bits")
    return RSAPrivateKey(rsa.generate_private_key(65537, bits), comment)


register_key_type(KeyType(KEY_RSA, _parse, private_field_count=6, generate=_generate))
register_certificate_type(KEY_RSA)
register_crypto_type(rsa.RSAPublicKey, RSAPublicKey.from_crypto_key,
                     rsa.RSAPrivateKey, RSAPrivateKey)
