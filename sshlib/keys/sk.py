"""FIDO security-key public keys (OpenSSH PROTOCOL.u2f): sk-ssh-ed25519@openssh.com and
sk-ecdsa-sha2-nistp256@openssh.com.

Their private half stays on the authenticator, so sshlib only parses the
public keys, verifies their signatures and uses them through an agent (the
agent's signature, with its flags and counter, goes to the server as is).
An sk signature blob is ``string name, string sig, byte flags, uint32
counter``; what the authenticator signed is ``SHA256(application) || flags
|| counter || SHA256(data)``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature

from ..errors import DecodeError
from ..wire import Reader, Writer
from .certs import register_certificate_type
from .ecdsa import CURVES, KEY_ECDSA_NISTP256, read_ecdsa_point, verify_ecdsa
from .ed25519 import read_ed25519_point
from .model import MAX_NAME, KeyType, PublicKey, register_key_type

__all__ = [
    "KEY_SK_ED25519",
    "KEY_SK_ECDSA_NISTP256",
    "FLAG_USER_PRESENT",
    "FLAG_USER_VERIFIED",
    "SKPublicKey",
    "SKEd25519PublicKey",
    "SKECDSAPublicKey",
    "SKSignature",
    "parse_sk_signature",
]

KEY_SK_ED25519 = "sk-ssh-ed25519@openssh.com"
KEY_SK_ECDSA_NISTP256 = "sk-ecdsa-sha2-nistp256@openssh.com"
FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
MAX_APPLICATION = 1024


class SKSignature:
    """The parts of an sk signature blob."""

    def __init__(self, name: str, signature: bytes, flags: int, counter: int) -> None:
        self.name = name
        self.signature = signature
        self.flags = flags
        self.counter = counter

    @property
    def user_present(self) -> bool:
        """The authenticator saw a touch (flag 0x01)."""
        return bool(self.flags & FLAG_USER_PRESENT)


def parse_sk_signature(blob: bytes) -> SKSignature:
    """Split an sk signature blob; DecodeError if it is malformed."""
    reader = Reader(blob)
    name = reader.string(MAX_NAME).decode("ascii", "replace")
    sig = reader.string()
    flags = reader.byte()
    counter = reader.uint32()
    reader.check_end()
    return SKSignature(name, sig, flags, counter)


class SKPublicKey(PublicKey):
    """A security-key public key: the key, plus the FIDO application (usually ``ssh:``)."""

    def __init__(self, blob: bytes, key: Any, application: str) -> None:
        super().__init__(blob)
        self._key = key
        self.application = application

    @property
    def key_size(self) -> int:
        return 256

    @property
    def crypto_key(self) -> Any:
        return self._key

    def signed_message(self, data: bytes, flags: int, counter: int) -> bytes:
        """What the authenticator signs for `data`."""
        return (hashlib.sha256(self.application.encode("utf-8")).digest() + bytes((flags,))
                + counter.to_bytes(4, "big") + hashlib.sha256(data).digest())

    def verify(self, data: bytes, signature: bytes, algorithm: str, *,
               require_user_presence: bool = False) -> bool:
        """True iff `signature` is this authenticator's signature of `data`.

        With `require_user_presence` the user-present flag must be set too
        (what sshd requires unless the key has ``no-touch-required``).
        """
        if algorithm not in self.signature_algorithms:
            return False
        try:
            parsed = parse_sk_signature(signature)
            if parsed.name != algorithm:
                return False
            if require_user_presence and not parsed.user_present:
                return False
            self.verify_raw(self.signed_message(data, parsed.flags, parsed.counter),
                            parsed.signature, algorithm)
        except (InvalidSignature, DecodeError, ValueError, OverflowError):
            return False
        return True


class SKEd25519PublicKey(SKPublicKey):
    """``sk-ssh-ed25519@openssh.com``: an Ed25519 key on a FIDO authenticator."""

    key_type = KEY_SK_ED25519

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        if len(sig) != 64:
            raise InvalidSignature
        self._key.verify(sig, data)


class SKECDSAPublicKey(SKPublicKey):
    """``sk-ecdsa-sha2-nistp256@openssh.com``: a P-256 key on a FIDO authenticator."""

    key_type = KEY_SK_ECDSA_NISTP256

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        verify_ecdsa(self._key, CURVES[KEY_ECDSA_NISTP256], data, sig)


def _application(reader: Reader) -> tuple[bytes, str]:
    raw = reader.string(MAX_APPLICATION)
    return raw, raw.decode("utf-8", "replace")


def _parse_ed25519(reader: Reader, blob: bytes) -> PublicKey:
    raw, key = read_ed25519_point(reader)
    app_raw, app = _application(reader)
    plain = Writer().string(KEY_SK_ED25519).string(raw).string(app_raw).getvalue()
    return SKEd25519PublicKey(plain, key, app)


def _parse_ecdsa(reader: Reader, blob: bytes) -> PublicKey:
    identifier, point, key = read_ecdsa_point(reader, CURVES[KEY_ECDSA_NISTP256],
                                              KEY_SK_ECDSA_NISTP256)
    app_raw, app = _application(reader)
    plain = (Writer().string(KEY_SK_ECDSA_NISTP256).string(identifier).string(point)
             .string(app_raw).getvalue())
    return SKECDSAPublicKey(plain, key, app)


register_key_type(KeyType(KEY_SK_ED25519, _parse_ed25519))
register_key_type(KeyType(KEY_SK_ECDSA_NISTP256, _parse_ecdsa))
register_certificate_type(KEY_SK_ED25519)
register_certificate_type(KEY_SK_ECDSA_NISTP256)
