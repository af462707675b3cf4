"""RFC 5656 ``ecdsa-sha2-nistp256/384/521`` keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ..errors import KeyLoadError
from ..wire import Reader, Writer
from .certs import register_certificate_type
from .model import (
    KeyType,
    PrivateKey,
    PublicKey,
    printable,
    register_crypto_type,
    register_key_type,
)

__all__ = [
    "KEY_ECDSA_NISTP256",
    "KEY_ECDSA_NISTP384",
    "KEY_ECDSA_NISTP521",
    "Curve",
    "CURVES",
    "ECDSAPublicKey",
    "ECDSAPrivateKey",
    "curve_for",
    "read_ecdsa_point",
]

KEY_ECDSA_NISTP256 = "ecdsa-sha2-nistp256"
KEY_ECDSA_NISTP384 = "ecdsa-sha2-nistp384"
KEY_ECDSA_NISTP521 = "ecdsa-sha2-nistp521"


@dataclass(frozen=True)
class Curve:
    """One NIST curve as SSH names it."""

    key_type: str
    identifier: str  # the curve name inside the blob (RFC 5656 section 6.1)
    crypto_name: str  # cryptography's curve name
    curve: Callable[[], ec.EllipticCurve]
    hash: Callable[[], hashes.HashAlgorithm]
    bits: int

    @property
    def point_length(self) -> int:
        """Bytes in an uncompressed SEC1 point: 0x04 || x || y."""
        return 1 + 2 * ((self.bits + 7) // 8)


CURVES: dict[str, Curve] = {c.key_type: c for c in (
    Curve(KEY_ECDSA_NISTP256, "nistp256", "secp256r1", ec.SECP256R1, hashes.SHA256, 256),
    Curve(KEY_ECDSA_NISTP384, "nistp384", "secp384r1", ec.SECP384R1, hashes.SHA384, 384),
    Curve(KEY_ECDSA_NISTP521, "nistp521", "secp521r1", ec.SECP521R1, hashes.SHA512, 521),
)}
_BY_CRYPTO_NAME = {c.crypto_name: c for c in CURVES.values()}
_BY_IDENTIFIER = {c.identifier: c for c in CURVES.values()}


def curve_for(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> Curve:
    """The SSH curve of a `cryptography` key; KeyLoadError for other curves."""
    curve = _BY_CRYPTO_NAME.get(key.curve.name)
    if curve is None:
        raise KeyLoadError(f"unsupported elliptic curve {key.curve.name}")
    return curve


def curve_by_identifier(identifier: str) -> Curve | None:
    """The curve called `identifier` (nistp256, ...) inside blobs, or None."""
    return _BY_IDENTIFIER.get(identifier)


def read_ecdsa_point(reader: Reader, curve: Curve, what: str
                     ) -> tuple[bytes, bytes, ec.EllipticCurvePublicKey]:
    """Read the curve identifier and point strings; (identifier, point, key)."""
    identifier = reader.string(64)
    point = reader.string()
    if identifier != curve.identifier.encode("ascii"):
        raise KeyLoadError(f"{what} key names curve {printable(identifier)!r}")
    # Only the uncompressed form: it is what every implementation sends,
    # and blob equality must mean key equality.
    if len(point) != curve.point_length or point[:1] != b"\x04":
        raise KeyLoadError(f"{what} key has a malformed curve point")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve.curve(), point)
    except ValueError:
        raise KeyLoadError(f"{what} key is not a valid curve point") from None
    return identifier, point, key


def ecdsa_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed SEC1 point."""
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def verify_ecdsa(key: ec.EllipticCurvePublicKey, curve: Curve, data: bytes, sig: bytes) -> None:
    """Check an RFC 5656 signature (mpint r, mpint s) over `data`."""
    reader = Reader(sig)
    r = reader.mpint()
    s = reader.mpint()
    reader.check_end()
    if r <= 0 or s <= 0:
        raise InvalidSignature
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(curve.hash()))


class ECDSAPublicKey(PublicKey):
    """RFC 5656 ``ecdsa-sha2-nistp*`` key."""

    def __init__(self, blob: bytes, key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(blob)
        self._curve = curve_for(key)
        self.key_type = self._curve.key_type
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: ec.EllipticCurvePublicKey) -> ECDSAPublicKey:
        curve = curve_for(key)
        blob = (Writer().string(curve.key_type).string(curve.identifier)
                .string(ecdsa_point(key)).getvalue())
        return cls(blob, key)

    @property
    def key_size(self) -> int:
        return self._curve.bits

    @property
    def crypto_key(self) -> ec.EllipticCurvePublicKey:
        return self._key

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        verify_ecdsa(self._key, self._curve, data, sig)


class ECDSAPrivateKey(PrivateKey):
    """An ECDSA private key on P-256, P-384 or P-521 in memory (a `Signer`)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, comment: str = "") -> None:
        self._curve = curve_for(key)
        super().__init__(ECDSAPublicKey.from_crypto_key(key.public_key()), comment)
        self._key = key

    @property
    def crypto_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    def sign_raw(self, data: bytes, algorithm: str) -> bytes:
        der = self._key.sign(data, ec.ECDSA(self._curve.hash()))
        r, s = decode_dss_signature(der)
        return Writer().mpint(r).mpint(s).getvalue()

    def private_fields(self) -> bytes:
        d = self._key.private_numbers().private_value
        return (Writer().string(self._curve.identifier)
                .string(ecdsa_point(self._key.public_key())).mpint(d).getvalue())


def _parser(curve: Curve) -> Callable[[Reader, bytes], PublicKey]:
    def parse(reader: Reader, blob: bytes) -> PublicKey:
        identifier, point, key = read_ecdsa_point(reader, curve, curve.key_type)
        plain = Writer().string(curve.key_type).string(identifier).string(point).getvalue()
        return ECDSAPublicKey(plain, key)
    return parse


def _generator(curve: Curve) -> Callable[[int | None, str], PrivateKey]:
    def generate(bits: int | None, comment: str) -> PrivateKey:
        if bits not in (None, curve.bits):
            raise ValueError(f"{curve.key_type} keys are {curve.bits} bits, not {bits}")
        return ECDSAPrivateKey(ec.generate_private_key(curve.curve()), comment)
    return generate


for _curve in CURVES.values():
    register_key_type(KeyType(_curve.key_type, _parser(_curve), private_field_count=3,
                              generate=_generator(_curve)))
    register_certificate_type(_curve.key_type)
register_crypto_type(ec.EllipticCurvePublicKey, ECDSAPublicKey.from_crypto_key,
                     ec.EllipticCurvePrivateKey, ECDSAPrivateKey)
