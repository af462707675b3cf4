"""SSH public and private keys: parsing, signing, verifying.

Supported key types are Ed25519, ECDSA on the three NIST curves and RSA;
everything else (DSA, security-key ``sk-*`` keys, certificates) is refused with
`KeyLoadError`, so callers never have to handle a half-supported key.

The maths is all done by `cryptography`.  This module only knows the SSH
encodings: the public key blob (RFC 4253 section 6.6), signature blobs
(RFC 4253, RFC 5656, RFC 8332, RFC 8709) and the ``openssh-key-v1`` private
key container (OpenSSH PROTOCOL.key).  We parse and decrypt that container
ourselves (the cipher and the bcrypt KDF still come from `cryptography` and
`bcrypt`) because it holds the key comment, which `cryptography` throws away,
and because OpenSSH writes it with more ciphers than `cryptography` reads.
"""

from __future__ import annotations

import abc
import base64
import binascii
import hashlib
import hmac
import logging
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from .errors import DecodeError, KeyLoadError
from .wire import Reader, Writer, string

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
]

log = logging.getLogger("sshlib.keys")

KEY_ED25519 = "ssh-ed25519"
KEY_ECDSA_NISTP256 = "ecdsa-sha2-nistp256"
KEY_ECDSA_NISTP384 = "ecdsa-sha2-nistp384"
KEY_ECDSA_NISTP521 = "ecdsa-sha2-nistp521"
KEY_RSA = "ssh-rsa"

SIG_RSA_SHA2_512 = "rsa-sha2-512"
SIG_RSA_SHA2_256 = "rsa-sha2-256"
SIG_RSA_SHA1 = "ssh-rsa"

# OpenSSH refuses smaller moduli (SSH_RSA_MINIMUM_MODULUS_SIZE) and larger ones
# (OPENSSL_RSA_MAX_MODULUS_BITS); the upper bound also caps verification cost.
RSA_MIN_BITS = 1024
RSA_MAX_BITS = 16384

_RSA_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    SIG_RSA_SHA2_512: hashes.SHA512,
    SIG_RSA_SHA2_256: hashes.SHA256,
    SIG_RSA_SHA1: hashes.SHA1,
}


@dataclass(frozen=True)
class _Curve:
    key_type: str
    identifier: str  # the curve name inside the blob (RFC 5656 section 6.1)
    curve: Callable[[], ec.EllipticCurve]
    hash: Callable[[], hashes.HashAlgorithm]
    bits: int

    @property
    def point_length(self) -> int:
        """Bytes in an uncompressed SEC1 point: 0x04 || x || y."""
        return 1 + 2 * ((self.bits + 7) // 8)


_CURVES_BY_TYPE: dict[str, _Curve] = {
    KEY_ECDSA_NISTP256: _Curve(KEY_ECDSA_NISTP256, "nistp256", ec.SECP256R1, hashes.SHA256, 256),
    KEY_ECDSA_NISTP384: _Curve(KEY_ECDSA_NISTP384, "nistp384", ec.SECP384R1, hashes.SHA384, 384),
    KEY_ECDSA_NISTP521: _Curve(KEY_ECDSA_NISTP521, "nistp521", ec.SECP521R1, hashes.SHA512, 521),
}
_CURVES_BY_NAME: dict[str, _Curve] = {
    "secp256r1": _CURVES_BY_TYPE[KEY_ECDSA_NISTP256],
    "secp384r1": _CURVES_BY_TYPE[KEY_ECDSA_NISTP384],
    "secp521r1": _CURVES_BY_TYPE[KEY_ECDSA_NISTP521],
}

_SUPPORTED_TYPES = (KEY_ED25519, *_CURVES_BY_TYPE, KEY_RSA)


def key_type_for_algorithm(algorithm: str) -> str:
    """The key type that signs with `algorithm` (RFC 8332 reuses ``ssh-rsa`` keys)."""
    if algorithm in (SIG_RSA_SHA2_512, SIG_RSA_SHA2_256):
        return KEY_RSA
    return algorithm


def _unsupported_type_message(key_type: str) -> str:
    if key_type == "ssh-dss":
        return "DSA keys (ssh-dss) are not supported"
    if key_type.startswith("sk-"):
        return f"security-key keys ({key_type}) are not supported"
    if "-cert-v0" in key_type:
        return f"certificates ({key_type}) are not supported"
    return f"unsupported key type {key_type!r}"


def _printable(raw: bytes) -> str:
    return raw.decode("ascii", "replace")[:64]


# --------------------------------------------------------------------------
# public keys
# --------------------------------------------------------------------------


class PublicKey(abc.ABC):
    """An SSH public key; equal keys have equal wire blobs."""

    key_type: str
    blob: bytes

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    @property
    def signature_algorithms(self) -> tuple[str, ...]:
        """Signature algorithm names this key can verify, preferred first."""
        return (self.key_type,)

    @property
    @abc.abstractmethod
    def key_size(self) -> int:
        """Key size in bits, as ``ssh-keygen -l`` prints it."""

    @property
    @abc.abstractmethod
    def crypto_key(self) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The underlying `cryptography` public key object."""

    @abc.abstractmethod
    def _verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        """Check the algorithm-specific signature; raise on failure."""

    def verify(self, data: bytes, signature: bytes, algorithm: str) -> bool:
        """True iff `signature` (an SSH signature blob) is `algorithm`'s signature of `data`.

        Never raises for bad signatures: malformed blobs, a name inside the blob
        other than `algorithm`, or an algorithm this key cannot use are all False.
        """
        if algorithm not in self.signature_algorithms:
            return False
        try:
            reader = Reader(signature)
            name = reader.string(256)
            sig = reader.string()
            reader.check_end()
            if name != algorithm.encode("ascii"):
                return False
            self._verify_raw(data, sig, algorithm)
        except (InvalidSignature, DecodeError, ValueError, OverflowError):
            return False
        return True

    def fingerprint(self) -> str:
        """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh(self) -> str:
        """The ``key_type base64`` form used in .pub, authorized_keys and known_hosts."""
        return f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return hmac.compare_digest(self.blob, other.blob)

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key_type} {self.key_size} {self.fingerprint()}>"


class Ed25519PublicKey(PublicKey):
    """RFC 8709 ``ssh-ed25519`` key."""

    key_type = KEY_ED25519

    def __init__(self, blob: bytes, key: ed25519.Ed25519PublicKey) -> None:
        super().__init__(blob)
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: ed25519.Ed25519PublicKey) -> Ed25519PublicKey:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(string(KEY_ED25519) + string(raw), key)

    @property
    def key_size(self) -> int:
        return 256

    @property
    def crypto_key(self) -> ed25519.Ed25519PublicKey:
        return self._key

    def _verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        if len(sig) != 64:
            raise InvalidSignature
        self._key.verify(sig, data)


class ECDSAPublicKey(PublicKey):
    """RFC 5656 ``ecdsa-sha2-nistp*`` key."""

    def __init__(self, blob: bytes, key: ec.EllipticCurvePublicKey) -> None:
        super().__init__(blob)
        curve = _CURVES_BY_NAME.get(key.curve.name)
        if curve is None:
            raise KeyLoadError(f"unsupported elliptic curve {key.curve.name}")
        self._curve = curve
        self.key_type = curve.key_type
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: ec.EllipticCurvePublicKey) -> ECDSAPublicKey:
        curve = _CURVES_BY_NAME.get(key.curve.name)
        if curve is None:
            raise KeyLoadError(f"unsupported elliptic curve {key.curve.name}")
        point = key.public_bytes(serialization.Encoding.X962,
                                 serialization.PublicFormat.UncompressedPoint)
        blob = Writer().string(curve.key_type).string(curve.identifier).string(point).getvalue()
        return cls(blob, key)

    @property
    def key_size(self) -> int:
        return self._curve.bits

    @property
    def crypto_key(self) -> ec.EllipticCurvePublicKey:
        return self._key

    def _verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        reader = Reader(sig)
        r = reader.mpint()
        s = reader.mpint()
        reader.check_end()
        if r <= 0 or s <= 0:
            raise InvalidSignature
        der = encode_dss_signature(r, s)
        self._key.verify(der, data, ec.ECDSA(self._curve.hash()))


class RSAPublicKey(PublicKey):
    """``ssh-rsa`` key, usable with RFC 8332 SHA-2 signatures and legacy SHA-1 ones."""

    key_type = KEY_RSA

    def __init__(self, blob: bytes, key: rsa.RSAPublicKey) -> None:
        super().__init__(blob)
        self._key = key

    @classmethod
    def from_crypto_key(cls, key: rsa.RSAPublicKey) -> RSAPublicKey:
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

    def _verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        modulus_bytes = (self._key.key_size + 7) // 8
        if len(sig) > modulus_bytes:
            raise InvalidSignature
        # Some signers drop leading zero bytes (RFC 8332 section 3 allows
        # accepting that); PKCS#1 wants exactly the modulus length.
        sig = sig.rjust(modulus_bytes, b"\x00")
        self._key.verify(sig, data, padding.PKCS1v15(), _RSA_HASHES[algorithm]())


def _check_rsa_size(bits: int) -> None:
    if bits < RSA_MIN_BITS:
        raise KeyLoadError(f"RSA key of {bits} bits is too small (minimum {RSA_MIN_BITS})")
    if bits > RSA_MAX_BITS:
        raise KeyLoadError(f"RSA key of {bits} bits is too large (maximum {RSA_MAX_BITS})")


def _parse_public_key_fields(key_type: str, reader: Reader, blob: bytes) -> PublicKey:
    """Build a key from the fields after the type name; `blob` is kept verbatim."""
    if key_type == KEY_ED25519:
        raw = reader.string()
        reader.check_end()
        if len(raw) != 32:
            raise KeyLoadError(f"ssh-ed25519 public key is {len(raw)} bytes, expected 32")
        return Ed25519PublicKey(blob, ed25519.Ed25519PublicKey.from_public_bytes(raw))
    curve = _CURVES_BY_TYPE.get(key_type)
    if curve is not None:
        identifier = reader.string(64)
        point = reader.string()
        reader.check_end()
        if identifier != curve.identifier.encode("ascii"):
            raise KeyLoadError(f"{key_type} key names curve {_printable(identifier)!r}")
        # Only the uncompressed form: it is what every implementation sends,
        # and blob equality must mean key equality.
        if len(point) != curve.point_length or point[:1] != b"\x04":
            raise KeyLoadError(f"{key_type} key has a malformed curve point")
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve.curve(), point)
        except ValueError:
            raise KeyLoadError(f"{key_type} key is not a valid curve point") from None
        return ECDSAPublicKey(blob, key)
    if key_type == KEY_RSA:
        e = reader.mpint()
        n = reader.mpint()
        reader.check_end()
        if e <= 0 or n <= 0:
            raise KeyLoadError("ssh-rsa key has a negative field")
        _check_rsa_size(n.bit_length())
        try:
            rsa_key = rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise KeyLoadError(f"invalid ssh-rsa key: {exc}") from None
        return RSAPublicKey(blob, rsa_key)
    raise KeyLoadError(_unsupported_type_message(key_type))


def parse_public_key(blob: bytes) -> PublicKey:
    """Parse an RFC 4253 public key blob (as sent in KEXDH_REPLY or userauth)."""
    blob = bytes(blob)
    reader = Reader(blob)
    try:
        raw_type = reader.string(256)
        try:
            key_type = raw_type.decode("ascii")
        except UnicodeDecodeError:
            raise KeyLoadError("public key type name is not ASCII") from None
        return _parse_public_key_fields(key_type, reader, blob)
    except DecodeError as exc:
        raise KeyLoadError(f"malformed public key blob: {exc}") from None


def public_key_from_crypto_key(key: object) -> PublicKey:
    """Wrap a `cryptography` public key object; KeyLoadError if SSH cannot use it."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return Ed25519PublicKey.from_crypto_key(key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ECDSAPublicKey.from_crypto_key(key)
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa_size(key.key_size)
        return RSAPublicKey.from_crypto_key(key)
    raise KeyLoadError(f"unsupported public key object {type(key).__name__}")


def _b64decode(text: str | bytes, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"{what} is not valid base64") from None


def parse_openssh_public_key(text: str | bytes) -> PublicKey:
    """Parse ``type base64 [comment]`` (a .pub file line, no authorized_keys options)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyLoadError("public key text is not valid UTF-8") from None
    fields = text.strip().split(None, 2)
    if len(fields) < 2:
        raise KeyLoadError("public key line needs a key type and base64 key data")
    key_type, data = fields[0], fields[1]
    blob = _b64decode(data, "public key data")
    key = parse_public_key(blob)
    if key.key_type != key_type:
        raise KeyLoadError(f"public key line says {key_type!r} but the key is {key.key_type!r}")
    return key


def _parse_rfc4716(text: str) -> PublicKey:
    """``ssh-keygen -e`` output (RFC 4716): headers, then base64 lines."""
    body: list[str] = []
    lines = iter(text.splitlines()[1:])
    for line in lines:
        line = line.strip()
        if line.startswith("---- END SSH2 PUBLIC KEY"):
            return parse_public_key(_b64decode("".join(body), "public key data"))
        if ":" in line:
            # A header; a trailing backslash continues it on the next line.
            while line.endswith("\\"):
                line = next(lines, "").strip()
            continue
        body.append(line)
    raise KeyLoadError("RFC 4716 public key has no END line")


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file (OpenSSH one-line form or RFC 4716)."""
    filename = os.path.expanduser(os.fspath(path))
    try:
        with open(filename, "rb") as fh:
            raw = fh.read(1 << 20)
    except OSError as exc:
        raise KeyLoadError(f"{filename}: cannot read public key: {exc.strerror}") from None
    try:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyLoadError("not a text file") from None
        if text.lstrip().startswith("---- BEGIN SSH2 PUBLIC KEY"):
            return _parse_rfc4716(text.lstrip())
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                return parse_openssh_public_key(line)
        raise KeyLoadError("no public key in file")
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None


# --------------------------------------------------------------------------
# private keys
# --------------------------------------------------------------------------


@typing.runtime_checkable
class Signer(typing.Protocol):
    """Anything that can sign for user authentication (a key file, an agent key)."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes: ...


CryptoPrivateKey: typing.TypeAlias = (
    "ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey")


class PrivateKey(abc.ABC):
    """A private key held in memory; implements `Signer`."""

    comment: str

    def __init__(self, public_key: PublicKey, comment: str) -> None:
        self._public_key = public_key
        self.comment = comment

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    @abc.abstractmethod
    def crypto_key(self) -> CryptoPrivateKey:
        """The underlying `cryptography` private key object."""

    @abc.abstractmethod
    def _sign_raw(self, data: bytes, algorithm: str) -> bytes:
        """The algorithm-specific signature (the inner string of the blob)."""

    @abc.abstractmethod
    def _private_fields(self) -> bytes:
        """Type-specific private fields as in openssh-key-v1 and agent add-identity."""

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """Sign `data`, returning an SSH signature blob (string name || string sig).

        `algorithm` None picks the key's preferred algorithm (rsa-sha2-512 for RSA).
        """
        if algorithm is None:
            algorithm = self._public_key.signature_algorithms[0]
        elif algorithm not in self._public_key.signature_algorithms:
            raise ValueError(f"a {self._public_key.key_type} key cannot sign with {algorithm!r}")
        return string(algorithm) + string(self._sign_raw(data, algorithm))

    def to_openssh_private(self, passphrase: bytes | str | None = None, *,
                           cipher: str = "aes256-ctr", rounds: int = 16) -> bytes:
        """Serialise as ``openssh-key-v1`` PEM, as ssh-keygen writes it (with the comment).

        With a passphrase the key is encrypted like ssh-keygen's default:
        aes256-ctr keyed by bcrypt-pbkdf with 16 rounds (`cipher` may name any
        cipher ``ssh-keygen -Z`` knows).
        """
        from .keyfiles import encode_openssh_private
        return encode_openssh_private(self, passphrase, cipher=cipher, rounds=rounds)

    def __repr__(self) -> str:
        pub = self._public_key
        comment = f" {self.comment!r}" if self.comment else ""
        return f"<{type(self).__name__} {pub.key_type} {pub.key_size} {pub.fingerprint()}{comment}>"


class Ed25519PrivateKey(PrivateKey):
    def __init__(self, key: ed25519.Ed25519PrivateKey, comment: str = "") -> None:
        super().__init__(Ed25519PublicKey.from_crypto_key(key.public_key()), comment)
        self._key = key

    @property
    def crypto_key(self) -> ed25519.Ed25519PrivateKey:
        return self._key

    def _sign_raw(self, data: bytes, algorithm: str) -> bytes:
        return self._key.sign(data)

    def _private_fields(self) -> bytes:
        pub = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        seed = self._key.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        return string(pub) + string(seed + pub)


class ECDSAPrivateKey(PrivateKey):
    def __init__(self, key: ec.EllipticCurvePrivateKey, comment: str = "") -> None:
        public_key = ECDSAPublicKey.from_crypto_key(key.public_key())
        super().__init__(public_key, comment)
        self._key = key
        self._curve = _CURVES_BY_TYPE[public_key.key_type]

    @property
    def crypto_key(self) -> ec.EllipticCurvePrivateKey:
        return self._key

    def _sign_raw(self, data: bytes, algorithm: str) -> bytes:
        der = self._key.sign(data, ec.ECDSA(self._curve.hash()))
        r, s = decode_dss_signature(der)
        return Writer().mpint(r).mpint(s).getvalue()

    def _private_fields(self) -> bytes:
        point = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        d = self._key.private_numbers().private_value
        return Writer().string(self._curve.identifier).string(point).mpint(d).getvalue()


class RSAPrivateKey(PrivateKey):
    def __init__(self, key: rsa.RSAPrivateKey, comment: str = "") -> None:
        super().__init__(RSAPublicKey.from_crypto_key(key.public_key()), comment)
        self._key = key

    @property
    def crypto_key(self) -> rsa.RSAPrivateKey:
        return self._key

    def _sign_raw(self, data: bytes, algorithm: str) -> bytes:
        return self._key.sign(data, padding.PKCS1v15(), _RSA_HASHES[algorithm]())

    def _private_fields(self) -> bytes:
        numbers = self._key.private_numbers()
        return (Writer().mpint(numbers.public_numbers.n).mpint(numbers.public_numbers.e)
                .mpint(numbers.d).mpint(numbers.iqmp).mpint(numbers.p).mpint(numbers.q)
                .getvalue())


def from_crypto_key(key: object, comment: str = "") -> PrivateKey:
    """Wrap a `cryptography` private key object; KeyLoadError if SSH cannot use it."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return Ed25519PrivateKey(key, comment)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVES_BY_NAME:
            raise KeyLoadError(f"unsupported elliptic curve {key.curve.name}")
        return ECDSAPrivateKey(key, comment)
    if isinstance(key, rsa.RSAPrivateKey):
        _check_rsa_size(key.key_size)
        return RSAPrivateKey(key, comment)
    if isinstance(key, dsa.DSAPrivateKey):
        raise KeyLoadError("DSA keys are not supported")
    raise KeyLoadError(f"unsupported private key type {type(key).__name__}")


_GENERATE_ALIASES = {
    "ed25519": KEY_ED25519,
    "rsa": KEY_RSA,
    "ecdsa": "ecdsa",
}


def generate_private_key(key_type: str = KEY_ED25519, bits: int | None = None,
                         comment: str = "") -> PrivateKey:
    """Make a fresh key (for tests and tools); `bits` as for ``ssh-keygen -b``.

    `key_type` is a key type name or one of ssh-keygen's ``-t`` names
    (ed25519, ecdsa, rsa); RSA defaults to 3072 bits like ssh-keygen.
    """
    key_type = _GENERATE_ALIASES.get(key_type, key_type)
    if key_type == "ecdsa":
        key_type = f"ecdsa-sha2-nistp{bits or 256}"
        bits = None
    if key_type == KEY_ED25519:
        if bits not in (None, 256):
            raise ValueError("ssh-ed25519 keys are always 256 bits")
        return Ed25519PrivateKey(ed25519.Ed25519PrivateKey.generate(), comment)
    curve = _CURVES_BY_TYPE.get(key_type)
    if curve is not None:
        if bits not in (None, curve.bits):
            raise ValueError(f"{key_type} keys are {curve.bits} bits, not {bits}")
        return ECDSAPrivateKey(ec.generate_private_key(curve.curve()), comment)
    if key_type == KEY_RSA:
        bits = 3072 if bits is None else bits
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
            raise ValueError(f"RSA key size must be {RSA_MIN_BITS}..{RSA_MAX_BITS} bits")
        return RSAPrivateKey(rsa.generate_private_key(65537, bits), comment)
    raise ValueError(f"cannot generate {key_type!r} keys; supported: "
                     f"{', '.join(_SUPPORTED_TYPES)}")


def parse_private_key(data: bytes, passphrase: str | bytes | None = None) -> PrivateKey:
    """Parse a private key in openssh-key-v1, PKCS#1/SEC1 PEM or PKCS#8 (PEM or DER) form.

    Raises PassphraseRequiredError if the key is encrypted and `passphrase` is
    None, KeyLoadError for a wrong passphrase, corruption or an unsupported type.
    A passphrase given for an unencrypted key is ignored.
    """
    from .keyfiles import parse_private_key as parse
    return parse(data, passphrase)


def load_private_key(path: str | os.PathLike[str],
                     passphrase: str | bytes | None = None) -> PrivateKey:
    """Read and parse a private key file (see `parse_private_key`); ~ is expanded."""
    from .keyfiles import load_private_key as load
    return load(path, passphrase)
