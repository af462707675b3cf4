"""The key model: PublicKey, PrivateKey, Signer, and the registries of key types.

Every key type (ed25519, ecdsa, rsa, the sk- security-key types and the
certificate types) lives in its own module and registers itself here with
`register_key_type`; parsing a blob, wrapping a `cryptography` object and
generating a key look the type up instead of running an if-chain.  File
formats register their writers with `register_private_encoder`, so this
module never imports a format (imports flow model -> types -> formats).
"""

from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from ..errors import DecodeError, KeyLoadError
from ..wire import Reader, string

if TYPE_CHECKING:  # certs imports this module; the annotation is all we need
    from .certs import Certificate

__all__ = [
    "PublicKey",
    "PrivateKey",
    "Signer",
    "KeyType",
    "PrivateKeyFormat",
    "register_key_type",
    "register_crypto_type",
    "register_private_encoder",
    "key_types",
    "parse_public_key",
    "read_public_key",
    "public_key_from_crypto_key",
    "from_crypto_key",
    "generate_private_key",
    "key_type_for_algorithm",
    "unsupported_type_message",
    "printable",
]

#: Longest key type / algorithm name we read (OpenSSH's are under 64 bytes).
MAX_NAME = 256


def printable(raw: bytes) -> str:
    """A short printable form of untrusted bytes for error messages."""
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
    def crypto_key(self) -> Any:
        """The underlying `cryptography` public key object."""

    @abc.abstractmethod
    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        """Check the inner signature string for `algorithm`; raise InvalidSignature etc."""

    def signature_name(self, algorithm: str) -> str:
        """The name inside a signature blob made for `algorithm` (certificates differ)."""
        return algorithm

    def verify(self, data: bytes, signature: bytes, algorithm: str) -> bool:
        """True iff `signature` (an SSH signature blob) is `algorithm`'s signature of `data`.

        Never raises for bad signatures: malformed blobs, a name inside the blob
        other than `algorithm`, or an algorithm this key cannot use are all False.
        """
        if algorithm not in self.signature_algorithms:
            return False
        try:
            reader = Reader(signature)
            name = reader.string(MAX_NAME)
            sig = reader.string()
            reader.check_end()
            if name != self.signature_name(algorithm).encode("ascii"):
                return False
            self.verify_raw(data, sig, algorithm)
        except (InvalidSignature, DecodeError, ValueError, OverflowError, KeyLoadError):
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


# --------------------------------------------------------------------------
# signers and private keys
# --------------------------------------------------------------------------


@typing.runtime_checkable
class Signer(typing.Protocol):
    """Anything that can sign for user authentication (a key file, an agent key)."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes: ...


class PrivateKey(abc.ABC):
    """A private key held in memory; implements `Signer`.

    `certificate` is the OpenSSH certificate found beside the key file
    (``<path>-cert.pub``) by `load_private_key`, else None; authenticate with
    it through ``CertSigner(key, key.certificate)``.
    """

    comment: str

    def __init__(self, public_key: PublicKey, comment: str) -> None:
        self._public_key = public_key
        self.comment = comment
        self.certificate: Certificate | None = None

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    @abc.abstractmethod
    def crypto_key(self) -> Any:
        """The underlying `cryptography` private key object."""

    @abc.abstractmethod
    def sign_raw(self, data: bytes, algorithm: str) -> bytes:
        """The algorithm-specific signature (the inner string of the blob)."""

    @abc.abstractmethod
    def private_fields(self) -> bytes:
        """Type-specific private fields as in openssh-key-v1 and agent add-identity."""

    def _private_fields(self) -> bytes:
        """Old name of `private_fields`, kept for callers written against it."""
        return self.private_fields()

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """Sign `data`, returning an SSH signature blob (string name || string sig).

        `algorithm` None picks the key's preferred algorithm (rsa-sha2-512 for RSA).
        ValueError if this key cannot sign with `algorithm`.
        """
        if algorithm is None:
            algorithm = self._public_key.signature_algorithms[0]
        elif algorithm not in self._public_key.signature_algorithms:
            raise ValueError(f"a {self._public_key.key_type} key cannot sign with {algorithm!r}")
        return string(algorithm) + string(self.sign_raw(data, algorithm))

    def to_openssh_private(self, passphrase: bytes | str | None = None, *,
                           cipher: str = "aes256-ctr", rounds: int = 16) -> bytes:
        """Serialise as ``openssh-key-v1`` PEM, as ssh-keygen writes it (with the comment).

        With a passphrase the key is encrypted like ssh-keygen's default:
        aes256-ctr keyed by bcrypt-pbkdf with 16 rounds (`cipher` may name any
        cipher ``ssh-keygen -Z`` knows).
        """
        return _encoder("openssh")(self, passphrase, cipher=cipher, rounds=rounds)

    def to_ppk(self, passphrase: bytes | str | None = None, version: int = 3) -> bytes:
        """Serialise as a PuTTY ``.ppk`` file (version 3 or 2), as puttygen writes it.

        Version 3 encrypts with aes256-cbc keyed by Argon2id (puttygen's
        defaults), version 2 with a SHA-1 key derivation; without a
        passphrase the key is stored unencrypted but still MAC-protected.
        """
        return _encoder("ppk")(self, passphrase, version=version)

    def __repr__(self) -> str:
        pub = self._public_key
        comment = f" {self.comment!r}" if self.comment else ""
        return f"<{type(self).__name__} {pub.key_type} {pub.key_size} {pub.fingerprint()}{comment}>"


PrivateEncoder = Callable[..., bytes]
_ENCODERS: dict[str, PrivateEncoder] = {}


def register_private_encoder(name: str, encoder: PrivateEncoder) -> None:
    """Make `encoder(key, passphrase, **options)` the writer for format `name`."""
    _ENCODERS[name] = encoder


def _encoder(name: str) -> PrivateEncoder:
    try:
        return _ENCODERS[name]
    except KeyError:
        raise RuntimeError(f"no {name} private key writer is registered "
                           "(import sshlib.keys, not only sshlib.keys.model)") from None


# --------------------------------------------------------------------------
# registries
# --------------------------------------------------------------------------

#: parser(reader, blob) -> key: reads the fields after the type name from `reader`
#: (not checking the end); `blob` is the whole input, which certificates need.
PublicParser = Callable[[Reader, bytes], PublicKey]
Generator = Callable[[int | None, str], PrivateKey]


@dataclass(frozen=True)
class KeyType:
    """One registered key type name."""

    name: str
    parse_public: PublicParser
    #: string/mpint fields of the private part in openssh-key-v1 (0: no private keys).
    private_field_count: int = 0
    #: generate(bits, comment); None if we cannot make keys of this type.
    generate: Generator | None = None


@dataclass(frozen=True)
class PrivateKeyFormat:
    """A private key file format: `sniff(data)` says whether `parse` should try it."""

    name: str
    sniff: Callable[[bytes], bool]
    parse: Callable[[bytes, bytes | None], PrivateKey]


_KEY_TYPES: dict[str, KeyType] = {}
_CRYPTO_PUBLIC: list[tuple[type, Callable[[Any], PublicKey]]] = []
_CRYPTO_PRIVATE: list[tuple[type, Callable[[Any, str], PrivateKey]]] = []
_UNSUPPORTED = {
    "ssh-dss": "DSA keys (ssh-dss) are not supported",
    "ssh-dss-cert-v01@openssh.com": "DSA certificates are not supported",
}


def register_key_type(key_type: KeyType) -> None:
    """Add a key type; parsing, generating and the openssh format find it by name."""
    _KEY_TYPES[key_type.name] = key_type


def register_crypto_type(public_cls: type, wrap_public: Callable[[Any], PublicKey],
                         private_cls: type, wrap_private: Callable[[Any, str], PrivateKey]
                         ) -> None:
    """Say how to wrap `cryptography` key objects of these classes."""
    _CRYPTO_PUBLIC.append((public_cls, wrap_public))
    _CRYPTO_PRIVATE.append((private_cls, wrap_private))


def key_types() -> dict[str, KeyType]:
    """The registered key types by name (a copy)."""
    return dict(_KEY_TYPES)


def unsupported_type_message(key_type: str) -> str:
    """Why a key type name is refused (as a public key, or as a private key file)."""
    if key_type.startswith("sk-"):
        return (f"security-key keys ({key_type}) cannot be used from a key file: their "
                "private half lives on the authenticator; use them through an agent")
    return _UNSUPPORTED.get(key_type, f"unsupported key type {key_type!r}")


def key_type_for_algorithm(algorithm: str) -> str:
    """The key type that signs with `algorithm` (RFC 8332 reuses ``ssh-rsa`` keys)."""
    for prefix in ("rsa-sha2-512", "rsa-sha2-256"):
        if algorithm.startswith(prefix):
            return "ssh-rsa" + algorithm[len(prefix):]
    return algorithm


def read_public_key(reader: Reader, blob: bytes) -> PublicKey:
    """Read a type name and that type's fields from `reader` (the end is not checked)."""
    raw_type = reader.string(MAX_NAME)
    try:
        key_type = raw_type.decode("ascii")
    except UnicodeDecodeError:
        raise KeyLoadError("public key type name is not ASCII") from None
    entry = _KEY_TYPES.get(key_type)
    if entry is None:
        raise KeyLoadError(unsupported_type_message(key_type))
    return entry.parse_public(reader, blob)


def parse_public_key(blob: bytes) -> PublicKey:
    """Parse an RFC 4253 public key blob (as sent in KEXDH_REPLY or userauth).

    Certificate blobs give a `sshlib.keys.Certificate`; KeyLoadError for
    anything malformed or unsupported.
    """
    blob = bytes(blob)
    reader = Reader(blob)
    try:
        key = read_public_key(reader, blob)
        reader.check_end()
    except DecodeError as exc:
        raise KeyLoadError(f"malformed public key blob: {exc}") from None
    return key


def public_key_from_crypto_key(key: object) -> PublicKey:
    """Wrap a `cryptography` public key object; KeyLoadError if SSH cannot use it."""
    for cls, wrap in _CRYPTO_PUBLIC:
        if isinstance(key, cls):
            return wrap(key)
    raise KeyLoadError(f"unsupported public key object {type(key).__name__}")


def from_crypto_key(key: object, comment: str = "") -> PrivateKey:
    """Wrap a `cryptography` private key object; KeyLoadError if SSH cannot use it."""
    for cls, wrap in _CRYPTO_PRIVATE:
        if isinstance(key, cls):
            return wrap(key, comment)
    name = type(key).__name__
    if "DSA" in name and "EC" not in name:
        raise KeyLoadError("DSA keys are not supported")
    raise KeyLoadError(f"unsupported private key type {name}")


_GENERATE_ALIASES = {"ed25519": "ssh-ed25519", "rsa": "ssh-rsa"}


def generate_private_key(key_type: str = "ssh-ed25519", bits: int | None = None,
                         comment: str = "") -> PrivateKey:
    """Make a fresh key (for tests and tools); `bits` as for ``ssh-keygen -b``.

    `key_type` is a key type name or one of ssh-keygen's ``-t`` names
    (ed25519, ecdsa, rsa); RSA defaults to 3072 bits like ssh-keygen.
    ValueError for an unknown type or a size the type does not have.
    """
    key_type = _GENERATE_ALIASES.get(key_type, key_type)
    if key_type == "ecdsa":
        key_type = f"ecdsa-sha2-nistp{bits or 256}"
        bits = None
    entry = _KEY_TYPES.get(key_type)
    if entry is None or entry.generate is None:
        names = [t.name for t in _KEY_TYPES.values() if t.generate is not None]
        raise ValueError(f"cannot generate {key_type!r} keys; supported: {', '.join(names)}")
    return entry.generate(bits, comment)
