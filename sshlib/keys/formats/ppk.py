"""PuTTY ``.ppk`` private key files, versions 2 and 3 (PuTTY's sshpubk.c format).

Version 2 encrypts with aes256-cbc keyed by SHA-1 of the passphrase and
protects the file with HMAC-SHA-1; version 3 derives the cipher key, IV and
HMAC-SHA-256 key with Argon2 (id, i or d).  Argon2id comes from
`cryptography`; Argon2i and Argon2d need the optional ``argon2-cffi``
package (``pip install 'sshlib[ppk]'``).  The MAC covers the whole file
content, so a wrong passphrase and a tampered file are both caught before
any key material is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...errors import DecodeError, KeyLoadError, PassphraseRequiredError
from ...wire import Reader, Writer, string
from ..ecdsa import CURVES
from ..model import (
    PrivateKey,
    PrivateKeyFormat,
    from_crypto_key,
    parse_public_key,
    printable,
    register_private_encoder,
)
from .text import b64decode

__all__ = ["FORMAT", "parse_ppk", "encode_ppk", "MAGIC"]

MAGIC = b"PuTTY-User-Key-File-"
_CIPHER = "aes256-cbc"
_BLOCK = 16
_MAX_LINES = 1024  # base64 lines of 64 characters: 64 KiB, far above any real key
# Argon2 parameters come from the file: bound them so a hostile file cannot make
# us allocate or compute without limit (PuTTY's own defaults: 8 MiB, ~100 ms).
_MAX_ARGON2_MEMORY_KIB = 1 << 20  # 1 GiB
_MAX_ARGON2_PASSES = 1000
_MAX_ARGON2_PARALLELISM = 64
#: What to_ppk writes (puttygen's defaults are Argon2id, 8 MiB, 1 lane, passes tuned to ~100 ms).
DEFAULT_ARGON2 = ("Argon2id", 8192, 8, 1)


# --- the private part of each key type (a table, not an if-chain) -------------------------


def _ed25519_private(key: PrivateKey) -> bytes:
    crypto = key.crypto_key
    assert isinstance(crypto, ed25519.Ed25519PrivateKey)
    seed = crypto.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    return string(seed)


def _ed25519_load(public_blob: bytes, private: Reader) -> object:
    seed = private.string()
    if len(seed) != 32:
        raise KeyLoadError(f"ssh-ed25519 private key is {len(seed)} bytes, expected 32")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def _ecdsa_private(key: PrivateKey) -> bytes:
    crypto = key.crypto_key
    assert isinstance(crypto, ec.EllipticCurvePrivateKey)
    return Writer().mpint(crypto.private_numbers().private_value).getvalue()


def _ecdsa_loader(key_type: str) -> Callable[[bytes, Reader], object]:
    def load(public_blob: bytes, private: Reader) -> object:
        d = private.mpint()
        if d <= 0:
            raise KeyLoadError(f"{key_type} private value is not positive")
        try:
            return ec.derive_private_key(d, CURVES[key_type].curve())
        except ValueError as exc:
            raise KeyLoadError(f"invalid {key_type} private key: {exc}") from None
    return load


def _rsa_private(key: PrivateKey) -> bytes:
    crypto = key.crypto_key
    assert isinstance(crypto, rsa.RSAPrivateKey)
    n = crypto.private_numbers()
    return Writer().mpint(n.d).mpint(n.p).mpint(n.q).mpint(n.iqmp).getvalue()


def _rsa_load(public_blob: bytes, private: Reader) -> object:
    public = parse_public_key(public_blob).crypto_key
    assert isinstance(public, rsa.RSAPublicKey)
    d, p, q, iqmp = private.mpint(), private.mpint(), private.mpint(), private.mpint()
    if min(d, p, q, iqmp) <= 1:
        raise KeyLoadError("ssh-rsa private key has a field that is not positive")
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), iqmp,
                                    public.public_numbers())
    try:
        return numbers.private_key()
    except ValueError as exc:
        raise KeyLoadError(f"invalid ssh-rsa private key: {exc}") from None


@dataclass(frozen=True)
class _KeyCodec:
    encode: Callable[[PrivateKey], bytes]
    load: Callable[[bytes, Reader], object]


_CODECS: dict[str, _KeyCodec] = {
    "ssh-ed25519": _KeyCodec(_ed25519_private, _ed25519_load),
    "ssh-rsa": _KeyCodec(_rsa_private, _rsa_load),
    **{name: _KeyCodec(_ecdsa_private, _ecdsa_loader(name)) for name in CURVES},
}


# --- key derivation --------------------------------------------------------------------------


def _argon2(flavour: str, passphrase: bytes, salt: bytes, memory: int, passes: int,
            parallelism: int, length: int) -> bytes:
    if flavour == "Argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(salt=salt, length=length, iterations=passes, lanes=parallelism,
                        memory_cost=memory).derive(passphrase)
    try:
        from argon2.low_level import Type, hash_secret_raw
    except ImportError:
        raise KeyLoadError(f"this .ppk file uses {flavour}, which needs the optional "
                           "argon2-cffi package: pip install 'sshlib[ppk]'") from None
    kind = Type.I if flavour == "Argon2i" else Type.D
    return hash_secret_raw(passphrase, salt, time_cost=passes, memory_cost=memory,
                           parallelism=parallelism, hash_len=length, type=kind)


_ARGON2_FLAVOURS = ("Argon2id", "Argon2i", "Argon2d")


def _v2_keys(passphrase: bytes) -> tuple[bytes, bytes, bytes]:
    """(cipher key, iv, mac key) for version 2."""
    key = (hashlib.sha1(b"\0\0\0\0" + passphrase).digest()
           + hashlib.sha1(b"\0\0\0\1" + passphrase).digest())[:32]
    mac_key = hashlib.sha1(b"putty-private-key-file-mac-key" + passphrase).digest()
    return key, bytes(16), mac_key


def _mac(version: int, mac_key: bytes, key_type: str, encryption: str, comment: str,
         public: bytes, private: bytes) -> bytes:
    data = (string(key_type) + string(encryption) + string(comment) + string(public)
            + string(private))
    return hmac.new(mac_key, data, hashlib.sha1 if version == 2 else hashlib.sha256).digest()


# --- parsing -------------------------------------------------------------------------------


class _Lines:
    """The file's ``Key: value`` lines and base64 blocks, read in order."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._pos = 0

    def header(self, name: str, optional: bool = False) -> str | None:
        if self._pos < len(self._lines):
            key, sep, value = self._lines[self._pos].partition(": ")
            if sep and key == name:
                self._pos += 1
                return value.strip()
        if optional:
            return None
        raise KeyLoadError(f".ppk file: expected a {name!r} line")

    def required(self, name: str) -> str:
        value = self.header(name)
        assert value is not None
        return value

    def number(self, name: str, limit: int) -> int:
        value = self.required(name)
        if not value.isdigit() or int(value) > limit:
            raise KeyLoadError(f".ppk file: bad {name} value {value[:20]!r}")
        return int(value)

    def block(self, name: str) -> bytes:
        count = self.number(name, _MAX_LINES)
        if self._pos + count > len(self._lines):
            raise KeyLoadError(f".ppk file: truncated in the {name} block")
        text = "".join(line.strip() for line in self._lines[self._pos:self._pos + count])
        self._pos += count
        return b64decode(text, f".ppk {name} block")


def parse_ppk(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """A PuTTY .ppk (version 2 or 3) private key; see the module docstring."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyLoadError(".ppk file is not valid UTF-8") from None
    text = text.lstrip("\ufeff")
    lines = _Lines(text)
    first = text.split("\n", 1)[0].strip()
    version_text, sep, key_type = first[len(MAGIC):].partition(": ")
    if not sep or version_text not in ("2", "3"):
        raise KeyLoadError(f"unsupported .ppk version {printable(version_text.encode())!r} "
                           "(sshlib reads versions 2 and 3)")
    version = int(version_text)
    lines.header(f"{MAGIC.decode()}{version}")
    codec = _CODECS.get(key_type)
    if codec is None:
        raise KeyLoadError(f"unsupported .ppk key type {key_type[:64]!r}")
    encryption = lines.required("Encryption")
    if encryption not in ("none", _CIPHER):
        raise KeyLoadError(f"unsupported .ppk encryption {encryption[:32]!r}")
    comment = lines.required("Comment")
    public = lines.block("Public-Lines")
    kdf: tuple[str, bytes, int, int, int] | None = None
    if version == 3 and encryption != "none":
        flavour = lines.required("Key-Derivation")
        if flavour not in _ARGON2_FLAVOURS:
            raise KeyLoadError(f"unsupported .ppk key derivation {flavour[:32]!r}")
        memory = lines.number("Argon2-Memory", _MAX_ARGON2_MEMORY_KIB)
        passes = lines.number("Argon2-Passes", _MAX_ARGON2_PASSES)
        parallelism = lines.number("Argon2-Parallelism", _MAX_ARGON2_PARALLELISM)
        salt_hex = lines.required("Argon2-Salt")
        try:
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            raise KeyLoadError(".ppk Argon2-Salt is not hex") from None
        if not salt or memory < 8 * parallelism or passes < 1 or parallelism < 1:
            raise KeyLoadError(".ppk file has unusable Argon2 parameters")
        kdf = (flavour, salt, memory, passes, parallelism)
    private = lines.block("Private-Lines")
    try:
        expected_mac = bytes.fromhex(lines.required("Private-MAC"))
    except ValueError:
        raise KeyLoadError(".ppk Private-MAC is not hex") from None

    secret = b""
    if encryption != "none":
        if not passphrase:
            raise PassphraseRequiredError(
                f"{key_type} .ppk key is encrypted and no passphrase was given")
        secret = passphrase
        if len(private) % _BLOCK:
            raise KeyLoadError(".ppk encrypted private blob is not a whole number of blocks")
    if version == 2:
        key, iv, mac_key = _v2_keys(secret)
    elif kdf is not None:
        flavour, salt, memory, passes, parallelism = kdf
        derived = _argon2(flavour, secret, salt, memory, passes, parallelism, 80)
        key, iv, mac_key = derived[:32], derived[32:48], derived[48:]
    else:
        key, iv, mac_key = b"", b"", b""
    if encryption != "none":
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        private = decryptor.update(private) + decryptor.finalize()
    mac = _mac(version, mac_key, key_type, encryption, comment, public, private)
    if not hmac.compare_digest(mac, expected_mac):
        if encryption != "none":
            raise KeyLoadError("wrong passphrase (or corrupt .ppk file)")
        raise KeyLoadError("corrupt .ppk file (MAC check failed)")
    try:
        public_key = parse_public_key(public)
        if public_key.key_type != key_type:
            raise KeyLoadError(f".ppk file says {key_type} but holds a {public_key.key_type} key")
        crypto_key = codec.load(public, Reader(private))
    except DecodeError as exc:
        raise KeyLoadError(f"corrupt .ppk private key: {exc}") from None
    result = from_crypto_key(crypto_key, comment)
    if result.public_key.blob != public:
        raise KeyLoadError(".ppk public and private parts are different keys")
    return result


# --- writing -------------------------------------------------------------------------------


def _b64_lines(blob: bytes) -> list[str]:
    text = base64.b64encode(blob).decode("ascii")
    return [text[i:i + 64] for i in range(0, len(text), 64)]


def encode_ppk(key: PrivateKey, passphrase: bytes | str | None = None, *,
               version: int = 3) -> bytes:
    """PuTTY .ppk text for `key` (see PrivateKey.to_ppk)."""
    if version not in (2, 3):
        raise ValueError("PuTTY key files are version 2 or 3")
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    key_type = key.public_key.key_type
    codec = _CODECS.get(key_type)
    if codec is None:
        raise ValueError(f"cannot write {key_type} keys as .ppk")
    private = codec.encode(key)
    encryption = _CIPHER if passphrase else "none"
    lines = [f"{MAGIC.decode()}{version}: {key_type}", f"Encryption: {encryption}",
             f"Comment: {key.comment}"]
    public_lines = _b64_lines(key.public_key.blob)
    lines += [f"Public-Lines: {len(public_lines)}", *public_lines]
    if passphrase:
        # Pad to the cipher block: random in v3; in v2, as PuTTY does, from SHA-1 of the
        # unpadded blob (so the last block is not known plaintext).
        pad = -len(private) % _BLOCK
        private += os.urandom(pad) if version == 3 else hashlib.sha1(private).digest()[:pad]
    if version == 2:
        cipher_key, iv, mac_key = _v2_keys(passphrase or b"")
    elif passphrase:
        flavour, memory, passes, parallelism = DEFAULT_ARGON2
        salt = os.urandom(16)
        derived = _argon2(flavour, passphrase, salt, memory, passes, parallelism, 80)
        cipher_key, iv, mac_key = derived[:32], derived[32:48], derived[48:]
        lines += [f"Key-Derivation: {flavour}", f"Argon2-Memory: {memory}",
                  f"Argon2-Passes: {passes}", f"Argon2-Parallelism: {parallelism}",
                  f"Argon2-Salt: {salt.hex()}"]
    else:
        cipher_key, iv, mac_key = b"", b"", b""
    mac = _mac(version, mac_key, key_type, encryption, key.comment, key.public_key.blob,
               private)
    stored = private
    if passphrase:
        encryptor = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).encryptor()
        stored = encryptor.update(private) + encryptor.finalize()
    private_lines = _b64_lines(stored)
    lines += [f"Private-Lines: {len(private_lines)}", *private_lines, f"Private-MAC: {mac.hex()}"]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _sniff(data: bytes) -> bool:
    return data.lstrip().startswith(MAGIC)


def _parse(data: bytes, passphrase: bytes | None) -> PrivateKey:
    return parse_ppk(data.lstrip(), passphrase)


FORMAT = PrivateKeyFormat("ppk", _sniff, _parse)
register_private_encoder("ppk", encode_ppk)
