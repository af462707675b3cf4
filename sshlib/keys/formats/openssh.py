"""The ``openssh-key-v1`` private key container (OpenSSH PROTOCOL.key).

We parse and decrypt it ourselves (ciphers from `cryptography`, the KDF from
`bcrypt`) because it holds the key comment, which `cryptography` drops, and
because OpenSSH writes it with more ciphers than `cryptography` reads.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

import bcrypt
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import poly1305, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from ...errors import KeyLoadError, PassphraseRequiredError
from ...wire import Reader, Writer, string
from ..model import (
    PrivateKey,
    PrivateKeyFormat,
    from_crypto_key,
    key_types,
    register_private_encoder,
    unsupported_type_message,
)
from .text import b64decode

__all__ = ["FORMAT", "BEGIN", "END", "encode_openssh_private", "parse_openssh_private"]

_OPENSSH_MAGIC = b"openssh-key-v1\x00"
BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
END = "-----END OPENSSH PRIVATE KEY-----"


def _pad_private(data: bytes, block_size: int) -> bytes:
    """PROTOCOL.key padding: bytes 1, 2, 3, ... up to a block boundary."""
    count = -len(data) % block_size
    return data + bytes(range(1, count + 1))


@dataclass(frozen=True)
class _KeyCipher:
    """A cipher OpenSSH can wrap a private key with (see cipher.c)."""

    name: str
    key_len: int
    iv_len: int
    block_size: int
    tag_len: int
    mode: str  # "ctr", "cbc", "gcm", "chacha"

    def decrypt(self, key: bytes, iv: bytes, data: bytes, tag: bytes) -> bytes:
        if self.mode == "gcm":
            decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
            return decryptor.update(data) + decryptor.finalize()
        if self.mode == "chacha":
            poly_key, stream = self._chacha(key)
            poly1305.Poly1305.verify_tag(poly_key, data, tag)
            return stream.update(data)
        return self._aes(key, iv).decryptor().update(data)

    def encrypt(self, key: bytes, iv: bytes, data: bytes) -> tuple[bytes, bytes]:
        """Encrypt block-aligned `data`; returns (ciphertext, tag), tag empty if not AEAD."""
        if self.mode == "gcm":
            encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
            out = encryptor.update(data) + encryptor.finalize()
            return out, encryptor.tag
        if self.mode == "chacha":
            poly_key, stream = self._chacha(key)
            out = stream.update(data)
            return out, poly1305.Poly1305.generate_tag(poly_key, out)
        return self._aes(key, iv).encryptor().update(data), b""

    def _aes(self, key: bytes, iv: bytes) -> Cipher[modes.CTR | modes.CBC]:
        mode: modes.CTR | modes.CBC = modes.CTR(iv) if self.mode == "ctr" else modes.CBC(iv)
        if self.name == "3des-cbc":
            return Cipher(TripleDES(key), mode)
        return Cipher(algorithms.AES(key), mode)

    @staticmethod
    def _chacha(key: bytes) -> tuple[bytes, CipherContext]:
        """chacha20-poly1305@openssh.com with sequence number 0 and no length header.

        The first 32 key bytes are the payload key; block 0 of its keystream is
        the Poly1305 key and the payload is encrypted from block 1 (PROTOCOL.chacha20poly1305).
        """
        main_key = key[:32]
        # cryptography's 16-byte nonce is the 64-bit little-endian block counter
        # followed by the 64-bit nonce (here the sequence number 0).
        zero = Cipher(algorithms.ChaCha20(main_key, bytes(16)), None).encryptor()
        poly_key = zero.update(bytes(32))
        counter_one = (1).to_bytes(8, "little") + bytes(8)
        stream = Cipher(algorithms.ChaCha20(main_key, counter_one), None).decryptor()
        return poly_key, stream


_KEY_CIPHERS: dict[str, _KeyCipher] = {
    c.name: c for c in (
        _KeyCipher("3des-cbc", 24, 8, 8, 0, "cbc"),
        _KeyCipher("aes128-ctr", 16, 16, 16, 0, "ctr"),
        _KeyCipher("aes192-ctr", 24, 16, 16, 0, "ctr"),
        _KeyCipher("aes256-ctr", 32, 16, 16, 0, "ctr"),
        _KeyCipher("aes128-cbc", 16, 16, 16, 0, "cbc"),
        _KeyCipher("aes192-cbc", 24, 16, 16, 0, "cbc"),
        _KeyCipher("aes256-cbc", 32, 16, 16, 0, "cbc"),
        _KeyCipher("aes128-gcm@openssh.com", 16, 12, 16, 16, "gcm"),
        _KeyCipher("aes256-gcm@openssh.com", 32, 12, 16, 16, "gcm"),
        _KeyCipher("chacha20-poly1305@openssh.com", 64, 0, 8, 16, "chacha"),
    )
}


def parse_openssh_private(text: bytes, passphrase: bytes | None) -> PrivateKey:
    """An ``openssh-key-v1`` PEM private key (KeyLoadError / PassphraseRequiredError)."""
    start = text.find(BEGIN.encode())
    end = text.find(END.encode(), start)
    if end < 0:
        raise KeyLoadError("OpenSSH private key has no END line")
    b64 = b"".join(text[start + len(BEGIN):end].split())
    data = b64decode(b64, "OpenSSH private key")
    if not data.startswith(_OPENSSH_MAGIC):
        raise KeyLoadError("not an openssh-key-v1 private key")
    reader = Reader(data, len(_OPENSSH_MAGIC))
    cipher_name = reader.string(64).decode("ascii", "replace")
    kdf_name = reader.string(64).decode("ascii", "replace")
    kdf_options = reader.string()
    if reader.uint32() != 1:
        raise KeyLoadError("OpenSSH private key files with more than one key are not supported")
    public_blob = reader.string()
    key_type = Reader(public_blob).string(256).decode("ascii", "replace")
    entry = key_types().get(key_type)
    if entry is None or not entry.private_field_count:
        raise KeyLoadError(unsupported_type_message(key_type))
    private = reader.string()

    if cipher_name == "none":
        if kdf_name != "none":
            raise KeyLoadError(f"unencrypted key with KDF {kdf_name!r}")
        reader.check_end()
    else:
        cipher = _KEY_CIPHERS.get(cipher_name)
        if cipher is None:
            raise KeyLoadError(f"unsupported private key cipher {cipher_name!r}")
        if kdf_name != "bcrypt":
            raise KeyLoadError(f"unsupported private key KDF {kdf_name!r}")
        tag = reader.raw(cipher.tag_len)
        reader.check_end()
        if not passphrase:
            raise PassphraseRequiredError(
                f"{key_type} private key is encrypted and no passphrase was given")
        kdf_reader = Reader(kdf_options)
        salt = kdf_reader.string()
        rounds = kdf_reader.uint32()
        kdf_reader.check_end()
        if rounds < 1 or not salt:
            raise KeyLoadError("bad bcrypt KDF parameters")
        if len(private) % cipher.block_size:
            raise KeyLoadError("encrypted private section is not a whole number of blocks")
        key_iv = bcrypt.kdf(passphrase, salt, cipher.key_len + cipher.iv_len, rounds,
                            ignore_few_rounds=True)
        try:
            private = cipher.decrypt(key_iv[:cipher.key_len], key_iv[cipher.key_len:],
                                     private, tag)
        except (InvalidTag, InvalidSignature):
            raise KeyLoadError("wrong passphrase (or corrupt key file)") from None

    section = Reader(private)
    if section.uint32() != section.uint32():
        if cipher_name != "none":
            raise KeyLoadError("wrong passphrase (or corrupt key file)")
        raise KeyLoadError("corrupt private key (check bytes differ)")
    if section.string(256) != key_type.encode("ascii"):
        raise KeyLoadError("corrupt private key (key type mismatch)")
    # Hand the decrypted key to cryptography as an unencrypted container: it
    # parses and cross-checks the key material; we only need the comment.
    plain = (_OPENSSH_MAGIC + Writer().string("none").string("none").string(b"").uint32(1)
             .string(public_blob).string(_pad_private(private, 8)).getvalue())
    pem = b"\n".join([BEGIN.encode(), base64.encodebytes(plain), END.encode()])
    try:
        crypto_key = serialization.load_ssh_private_key(pem, None)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"corrupt private key: {exc}") from None
    # Skip the private fields (already validated by cryptography) to the comment.
    for _ in range(entry.private_field_count):
        section.string()
    comment = section.string().decode("utf-8", "replace")
    key = from_crypto_key(crypto_key, comment)
    if key.public_key.blob != public_blob:
        raise KeyLoadError("corrupt private key (public and private parts differ)")
    return key


def encode_openssh_private(key: PrivateKey, passphrase: bytes | str | None = None, *,
                           cipher: str = "aes256-ctr", rounds: int = 16) -> bytes:
    """``openssh-key-v1`` PEM for `key`, as ssh-keygen writes it (with the comment)."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    key_type = key.public_key.key_type
    check = secrets.token_bytes(4)
    private = (check + check + string(key_type) + key.private_fields()
               + string(key.comment))
    writer = Writer(_OPENSSH_MAGIC)
    if passphrase:
        spec = _KEY_CIPHERS.get(cipher)
        if spec is None:
            raise ValueError(f"unknown private key cipher {cipher!r}")
        if rounds < 1:
            raise ValueError("bcrypt rounds must be at least 1")
        salt = secrets.token_bytes(16)
        kdf_options = Writer().string(salt).uint32(rounds).getvalue()
        key_iv = bcrypt.kdf(passphrase, salt, spec.key_len + spec.iv_len, rounds,
                            ignore_few_rounds=True)
        encrypted, tag = spec.encrypt(key_iv[:spec.key_len], key_iv[spec.key_len:],
                                      _pad_private(private, spec.block_size))
        writer.string(spec.name).string("bcrypt").string(kdf_options)
    else:
        encrypted, tag = _pad_private(private, 8), b""
        writer.string("none").string("none").string(b"")
    body = writer.uint32(1).string(key.public_key.blob).string(encrypted).raw(tag).getvalue()
    b64 = base64.b64encode(body).decode("ascii")
    lines = [b64[i:i + 70] for i in range(0, len(b64), 70)]
    text = "\n".join([BEGIN, *lines, END]) + "\n"
    return text.encode("ascii")


def _sniff(data: bytes) -> bool:
    return BEGIN.encode() in data


def _parse(data: bytes, passphrase: bytes | None) -> PrivateKey:
    return parse_openssh_private(data, passphrase)


FORMAT = PrivateKeyFormat("openssh", _sniff, _parse)
register_private_encoder("openssh", encode_openssh_private)
