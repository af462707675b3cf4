"""SSH binary packet protection: framing, encryption and MAC of one packet.

RFC 4253 section 6 framing (``uint32 packet_length || byte padding_length ||
payload || padding``) under every cipher/MAC pair sshlib supports:

* ``chacha20-poly1305@openssh.com`` (OpenSSH PROTOCOL.chacha20poly1305),
* ``aes128-gcm@openssh.com`` / ``aes256-gcm@openssh.com`` (RFC 5647 as amended
  by OpenSSH PROTOCOL section 1.6: the length is AAD, sent in clear),
* ``aesNNN-ctr`` with ``hmac-sha2-*`` (RFC 4253 6.4: MAC over the plaintext) or
  ``hmac-sha2-*-etm@openssh.com`` (OpenSSH PROTOCOL 1.7: MAC over the
  ciphertext, length in clear),
* the ``none`` cipher used before the first NEWKEYS.

This is the hot path of the library, so every object that can be is built once
per direction (cipher contexts, keyed HMACs, AESGCM), and per packet we only
reset nonces, run the primitives and do the unavoidable copies.  Measured
choices (see benchmarks/cipher_micro.py):

* ChaCha20 contexts are reused across packets with ``reset_nonce`` (0.4 us)
  instead of building a new ``Cipher`` (3 us) -- two per packet.
* Decrypting the padding-length byte separately lets stream ciphers decrypt the
  payload straight into its own bytes object, saving a slice copy.
* HMAC uses a keyed object copied per packet: cheaper than ``hmac.digest``'s
  one-shot key setup, and it lets us MAC several buffers without joining them.
* Padding comes from a pool refilled with ``rng(4096)``, not an rng call per packet.
* Sealers write the packet straight into the transport's reused output buffer
  (``seal_into`` with ``update_into``/``encrypt_into``): one fresh 32 KiB object
  per packet, and joining them, made uploads page-fault heavy (docs/performance.md).
* AES-GCM decrypts into a reused buffer (``decrypt_into``) instead of a fresh,
  zero-filled plaintext object that would be sliced (copied) anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from . import algorithms as names
from .errors import DecodeError, MACError

__all__ = [
    "SEAL_OVERHEAD",
    "PacketSealer",
    "PacketOpener",
    "key_lengths",
    "is_aead",
    "new_sealer",
    "new_opener",
    "plaintext_sealer",
    "plaintext_opener",
]

log = logging.getLogger("sshlib.cipher")


def _clear_length(head: bytes) -> int:
    """packet_length of a packet whose length field travels unencrypted (AEAD, ETM, none)."""
    try:
        length: int = _U32_UNPACK(head)[0]
    except struct.error:
        raise DecodeError("packet head is shorter than 4 bytes") from None
    return length

_U32 = struct.Struct(">I")
_U32_PACK = _U32.pack
_U32_UNPACK = _U32.unpack_from
_U32_PACK_INTO = _U32.pack_into
_U32X2_PACK = struct.Struct(">II").pack
# ChaCha20 in `cryptography` takes a 16-byte "nonce" = the last four words of
# the initial state: 8-byte little-endian block counter || 8-byte nonce.  The
# counter is 0 for every packet we build, so (0, seq) packed big-endian gives
# exactly 8 zero bytes followed by the 64-bit big-endian sequence number.
_CHACHA_NONCE = struct.Struct(">QQ").pack
_GCM_NONCE = struct.Struct(">IQ").pack
_ZERO64 = bytes(64)
_BYTE = tuple(bytes((i,)) for i in range(256))
_MASK64 = (1 << 64) - 1

_POOL_SIZE = 4096

#: Upper bound of wire bytes beyond the payload: length, padding length, up to
#: 4 + 2 blocks of padding and a 64-byte MAC.
SEAL_OVERHEAD = 5 + 4 + 32 + 64


class PacketSealer(Protocol):
    """Turns payloads into wire packets for one direction of one key set."""

    def seal(self, seq: int, payload: bytes) -> bytes:
        """Frame, pad, encrypt and authenticate `payload` as packet number `seq`."""
        ...

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        """Like seal(), but write the packet at the start of `out`; return its size.

        The packet's payload is `head` followed by `payload` (a message header and the
        data it carries, sealed without first being joined).  `out` must hold at least
        ``len(head) + len(payload) + SEAL_OVERHEAD`` bytes.  The transport seals every
        packet straight into its output buffer, so no per-packet wire object (and no
        copy to join them) is made.
        """
        ...


class PacketOpener(Protocol):
    """Turns wire packets back into payloads for one direction of one key set."""

    #: Bytes needed before `packet_length` can be called.
    head_size: int
    #: Bytes of MAC/tag after the packet body.
    mac_size: int

    def packet_length(self, seq: int, head: bytes) -> int:
        """The packet_length field from the first `head_size` wire bytes."""
        ...

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        """Verify and decrypt a complete wire packet; return its payload."""
        ...


# name -> (key bytes, IV bytes, block size, kind)
_CIPHERS: dict[str, tuple[int, int, int, str]] = {
    names.CIPHER_CHACHA20_POLY1305: (64, 0, 8, "chacha"),
    names.CIPHER_AES128_GCM: (16, 12, 16, "gcm"),
    names.CIPHER_AES256_GCM: (32, 12, 16, "gcm"),
    names.CIPHER_AES128_CTR: (16, 16, 16, "ctr"),
    names.CIPHER_AES192_CTR: (24, 16, 16, "ctr"),
    names.CIPHER_AES256_CTR: (32, 16, 16, "ctr"),
}

# name -> (hashlib name, key bytes, MAC bytes, encrypt-then-MAC)
_MACS: dict[str, tuple[str, int, int, bool]] = {
    names.MAC_HMAC_SHA2_256: ("sha256", 32, 32, False),
    names.MAC_HMAC_SHA2_512: ("sha512", 64, 64, False),
    names.MAC_HMAC_SHA2_256_ETM: ("sha256", 32, 32, True),
    names.MAC_HMAC_SHA2_512_ETM: ("sha512", 64, 64, True),
}


def _cipher_info(cipher: str) -> tuple[int, int, int, str]:
    try:
        return _CIPHERS[cipher]
    except KeyError:
        raise ValueError(f"unknown cipher {cipher!r}") from None


def _mac_info(mac: str | None) -> tuple[str, int, int, bool]:
    if mac is None:
        raise ValueError("a MAC algorithm is required for a non-AEAD cipher")
    try:
        return _MACS[mac]
    except KeyError:
        raise ValueError(f"unknown MAC {mac!r}") from None


def is_aead(cipher: str) -> bool:
    """True if the cipher authenticates itself (the negotiated MAC is unused)."""
    return _cipher_info(cipher)[3] != "ctr"


def key_lengths(cipher: str, mac: str | None) -> tuple[int, int, int]:
    """(cipher key, IV, MAC key) byte counts the key exchange must derive."""
    key_len, iv_len, _block, kind = _cipher_info(cipher)
    if kind != "ctr":
        return key_len, iv_len, 0
    return key_len, iv_len, _mac_info(mac)[1]


def _check_len(what: str, value: bytes, expected: int) -> None:
    if len(value) != expected:
        raise ValueError(f"{what} must be {expected} bytes, got {len(value)}")


def _pad_table(block: int, aadlen: int) -> tuple[int, ...]:
    """padding_length indexed by ``len(payload) % block``.

    The aligned part is ``(4 - aadlen) + 1 + len(payload) + padding_length``;
    padding is the smallest amount >= 4 that makes it a multiple of `block`.
    """
    table = []
    for rem in range(block):
        pad = block - ((4 - aadlen + 1 + rem) % block)
        if pad < 4:
            pad += block
        table.append(pad)
    return tuple(table)


def _bad_length(plen: int) -> DecodeError:
    return DecodeError(f"bad packet length {plen}")


def _bad_padding(padlen: int, plen: int) -> DecodeError:
    return DecodeError(f"bad padding length {padlen} in packet of length {plen}")


class _Sealer:
    """Shared padding logic: a table for the length and a pool for the bytes."""

    __slots__ = ("_mask", "_pad_table", "_pool", "_pos", "_rng")

    def __init__(self, rng: Callable[[int], bytes], block: int, aadlen: int) -> None:
        self._rng = rng
        self._mask = block - 1
        self._pad_table = _pad_table(block, aadlen)
        self._pool = b""
        self._pos = 0

    def seal(self, seq: int, payload: bytes) -> bytes:
        out = bytearray(len(payload) + SEAL_OVERHEAD)
        with memoryview(out) as view:
            size = self.seal_into(seq, payload, view)
        del out[size:]
        return bytes(out)

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        raise NotImplementedError

    def _padding(self, count: int) -> bytes:
        pos = self._pos
        end = pos + count
        if end > len(self._pool):
            pool = self._rng(_POOL_SIZE)
            if len(pool) != _POOL_SIZE:
                raise ValueError(f"rng({_POOL_SIZE}) returned {len(pool)} bytes")
            self._pool = pool
            pos, end = 0, count
        self._pos = end
        return self._pool[pos:end]


# --- none --------------------------------------------------------------------

class _PlainSealer(_Sealer):
    """The "none" cipher: framing only, aligned to 8 including the length."""

    __slots__ = ()

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        start = 5 + len(head)
        size = start - 5 + len(payload)
        padlen = self._pad_table[size & 7]
        end = 5 + size + padlen
        _U32_PACK_INTO(out, 0, size + 1 + padlen)
        out[4] = padlen
        out[5:start] = head
        out[start:5 + size] = payload
        out[5 + size:end] = self._padding(padlen)
        return end


class _PlainOpener:
    __slots__ = ("head_size", "mac_size")

    def __init__(self) -> None:
        self.head_size = 4
        self.mac_size = 0

    def packet_length(self, seq: int, head: bytes) -> int:
        return _clear_length(head)

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        size = len(packet)
        if size < 4:
            raise DecodeError("packet is shorter than its length field")
        plen: int = _U32_UNPACK(packet)[0]
        if size != plen + 4:
            raise DecodeError(f"packet length {plen} does not match {size} bytes received")
        if plen & 7 != 4 or plen < 12:  # (4 + plen) % 8 == 0
            raise _bad_length(plen)
        padlen = packet[4]
        if padlen < 4 or padlen >= plen:
            raise _bad_padding(padlen, plen)
        return bytes(packet[5:4 + plen - padlen])


def plaintext_sealer(rng: Callable[[int], bytes]) -> PacketSealer:
    """Sealer for the "none" cipher used before the first NEWKEYS."""
    return _PlainSealer(rng, 8, 0)


def plaintext_opener() -> PacketOpener:
    """Opener for the "none" cipher used before the first NEWKEYS."""
    return _PlainOpener()


# --- chacha20-poly1305@openssh.com -------------------------------------------

def _chacha(key: bytes) -> CipherContext:
    # Nonces are reset per packet; this initial one is never used to encrypt.
    return Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()


class _ChaChaSealer(_Sealer):
    """K_2 (first 32 key bytes) encrypts the body and keys Poly1305; K_1 the length."""

    __slots__ = ("_header", "_main")

    def __init__(self, key: bytes, rng: Callable[[int], bytes]) -> None:
        super().__init__(rng, 8, 4)
        self._main = _chacha(key[:32])
        self._header = _chacha(key[32:])

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        size = len(head) + len(payload)
        padlen = self._pad_table[size & 7]
        plen = size + 1 + padlen
        end = 4 + plen
        nonce = _CHACHA_NONCE(0, seq)
        header = self._header
        header.reset_nonce(nonce)
        header.update_into(_U32_PACK(plen), out[:4])
        main = self._main
        main.reset_nonce(nonce)
        # Block 0 of the keystream: its first 32 bytes are the Poly1305 key; the
        # body then starts at block counter 1, as the spec requires.
        poly_key = main.update(_ZERO64)[:32]
        main.update_into(b"".join((_BYTE[padlen], head, payload, self._padding(padlen))),
                         out[4:end])
        out[end:end + 16] = Poly1305.generate_tag(poly_key, out[:end])
        return end + 16


class _ChaChaOpener:
    __slots__ = ("_cached", "_header", "_main", "head_size", "mac_size")

    def __init__(self, key: bytes) -> None:
        self.head_size = 4
        self.mac_size = 16
        self._main = _chacha(key[:32])
        self._header = _chacha(key[32:])
        # (seq, encrypted length, plaintext length) from the last packet_length().
        self._cached: tuple[int, bytes, int] = (-1, b"", 0)

    def _length(self, seq: int, head: bytes) -> int:
        header = self._header
        header.reset_nonce(_CHACHA_NONCE(0, seq))
        plen: int = _U32_UNPACK(header.update(head))[0]
        self._cached = (seq, head, plen)
        return plen

    def packet_length(self, seq: int, head: bytes) -> int:
        if len(head) < 4:
            raise DecodeError("packet head is shorter than 4 bytes")
        return self._length(seq, bytes(head[:4]))

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        size = len(packet)
        if size < 20:
            raise DecodeError("packet is shorter than its length field and tag")
        view = memoryview(packet)
        head = bytes(view[:4])
        cached_seq, cached_head, plen = self._cached
        if cached_seq != seq or cached_head != head:
            plen = self._length(seq, head)
        if size != plen + 20:
            raise DecodeError(f"packet length {plen} does not match {size} bytes received")
        if plen & 7 or plen < 8:
            raise _bad_length(plen)
        main = self._main
        main.reset_nonce(_CHACHA_NONCE(0, seq))
        poly_key = main.update(_ZERO64)[:32]
        end = 4 + plen
        try:
            Poly1305.verify_tag(poly_key, view[:end], bytes(view[end:]))
        except InvalidSignature:
            raise MACError("packet failed its chacha20-poly1305 tag check") from None
        padlen = main.update(view[4:5])[0]
        if padlen < 4 or padlen >= plen:
            raise _bad_padding(padlen, plen)
        return main.update(view[5:end - padlen])


# --- aesNNN-gcm@openssh.com --------------------------------------------------

class _GCMSealer(_Sealer):
    """The IV is a 4-byte fixed part and a 64-bit counter bumped per packet."""

    __slots__ = ("_aead", "_counter", "_fixed")

    def __init__(self, key: bytes, iv: bytes, rng: Callable[[int], bytes]) -> None:
        super().__init__(rng, 16, 4)
        self._aead = AESGCM(key)
        self._fixed: int = _U32_UNPACK(iv)[0]
        self._counter = int.from_bytes(iv[4:], "big")

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        size = len(head) + len(payload)
        padlen = self._pad_table[size & 15]
        plen = size + 1 + padlen
        end = 4 + plen + 16
        counter = self._counter
        length = _U32_PACK(plen)
        out[:4] = length
        self._aead.encrypt_into(
            _GCM_NONCE(self._fixed, counter),
            b"".join((_BYTE[padlen], head, payload, self._padding(padlen))),
            length, out[4:end])
        self._counter = (counter + 1) & _MASK64
        return end


class _GCMOpener:
    """Decrypts into one reused buffer: no zero-filled plaintext object per packet."""

    __slots__ = ("_aead", "_buf", "_counter", "_fixed", "_view", "head_size", "mac_size")

    def __init__(self, key: bytes, iv: bytes) -> None:
        self.head_size = 4
        self.mac_size = 16
        self._aead = AESGCM(key)
        self._fixed: int = _U32_UNPACK(iv)[0]
        self._counter = int.from_bytes(iv[4:], "big")
        self._buf = bytearray()
        self._view = memoryview(self._buf)

    def packet_length(self, seq: int, head: bytes) -> int:
        return _clear_length(head)

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        size = len(packet)
        if size < 20:
            raise DecodeError("packet is shorter than its length field and tag")
        plen: int = _U32_UNPACK(packet)[0]
        if size != plen + 20:
            raise DecodeError(f"packet length {plen} does not match {size} bytes received")
        if plen & 15 or plen < 16:
            raise _bad_length(plen)
        view = memoryview(packet)
        if len(self._buf) < plen:  # grows to the largest packet seen (<= 256 KiB)
            self._view.release()
            self._buf = bytearray(plen)
            self._view = memoryview(self._buf)
        out = self._view[:plen]  # decrypt_into wants exactly the plaintext's size
        counter = self._counter
        try:
            self._aead.decrypt_into(_GCM_NONCE(self._fixed, counter), view[4:], view[:4], out)
        except InvalidTag:
            raise MACError("packet failed its AES-GCM tag check") from None
        self._counter = (counter + 1) & _MASK64
        padlen = out[0]
        if padlen < 4 or padlen >= plen:
            raise _bad_padding(padlen, plen)
        return out[1:plen - padlen].tobytes()


# --- aesNNN-ctr + hmac-sha2-* ------------------------------------------------

def _ctr(key: bytes, iv: bytes) -> CipherContext:
    # One keystream per direction, continued across packets (RFC 4344).
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


def _keyed_hmac(mac_key: bytes, digest: str) -> hmac.HMAC:
    # A hashlib constructor (not a name) keeps hmac on its OpenSSL fast path.
    return hmac.new(mac_key, digestmod=getattr(hashlib, digest))


class _CTRSealer(_Sealer):
    """MAC over ``seq || plaintext packet`` (RFC 4253 6.4), then encrypt all of it."""

    __slots__ = ("_enc", "_mac")

    def __init__(self, key: bytes, iv: bytes, mac_key: bytes, digest: str,
                 rng: Callable[[int], bytes]) -> None:
        super().__init__(rng, 16, 0)
        self._enc = _ctr(key, iv)
        self._mac = _keyed_hmac(mac_key, digest)

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        size = len(head) + len(payload)
        padlen = self._pad_table[size & 15]
        # seq and packet_length lead one buffer: MAC all of it, encrypt from byte 4.
        buf = b"".join((_U32X2_PACK(seq, size + 1 + padlen), _BYTE[padlen], head, payload,
                        self._padding(padlen)))
        mac = self._mac.copy()
        mac.update(buf)
        end = len(buf) - 4
        self._enc.update_into(memoryview(buf)[4:], out[:end])
        digest = mac.digest()
        out[end:end + len(digest)] = digest
        return end + len(digest)


class _ETMSealer(_Sealer):
    """Encrypt all but the length, then MAC ``seq || length || ciphertext``."""

    __slots__ = ("_enc", "_mac")

    def __init__(self, key: bytes, iv: bytes, mac_key: bytes, digest: str,
                 rng: Callable[[int], bytes]) -> None:
        super().__init__(rng, 16, 4)
        self._enc = _ctr(key, iv)
        self._mac = _keyed_hmac(mac_key, digest)

    def seal_into(self, seq: int, payload: bytes | memoryview, out: memoryview,
                  head: bytes = b"") -> int:
        size = len(head) + len(payload)
        padlen = self._pad_table[size & 15]
        plen = size + 1 + padlen
        end = 4 + plen
        _U32_PACK_INTO(out, 0, plen)
        self._enc.update_into(b"".join((_BYTE[padlen], head, payload, self._padding(padlen))),
                              out[4:end])
        mac = self._mac.copy()
        mac.update(_U32_PACK(seq))
        mac.update(out[:end])
        digest = mac.digest()
        out[end:end + len(digest)] = digest
        return end + len(digest)


class _CTROpener:
    """The length is encrypted: decrypt one block first and keep it for open()."""

    __slots__ = ("_dec", "_first", "_first_seq", "_mac", "head_size", "mac_size")

    def __init__(self, key: bytes, iv: bytes, mac_key: bytes, digest: str,
                 mac_size: int) -> None:
        self.head_size = 16
        self.mac_size = mac_size
        self._dec = _ctr(key, iv)
        self._mac = _keyed_hmac(mac_key, digest)
        self._first = b""
        self._first_seq = -1

    def packet_length(self, seq: int, head: bytes) -> int:
        if self._first_seq == seq and self._first:
            # Asked again for the same packet: the keystream has already moved on.
            length: int = _U32_UNPACK(self._first)[0]
            return length
        if len(head) < 16:
            raise DecodeError("packet head is shorter than one cipher block")
        first = self._dec.update(head[:16])
        self._first = first
        self._first_seq = seq
        length = _U32_UNPACK(first)[0]
        return length

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        size = len(packet)
        if size < 16:
            raise DecodeError("packet is shorter than one cipher block")
        view = memoryview(packet)
        if self._first_seq == seq and self._first:
            first = self._first
        else:
            first = self._dec.update(view[:16])
        self._first = b""
        self._first_seq = -1
        plen: int = _U32_UNPACK(first)[0]
        mac_size = self.mac_size
        if size != plen + 4 + mac_size:
            raise DecodeError(f"packet length {plen} does not match {size} bytes received")
        # Checked before the MAC, like OpenSSH: the length is not authenticated
        # yet but it decides which bytes the MAC covers.
        if plen & 15 != 12 or plen < 12:  # (4 + plen) % 16 == 0
            raise _bad_length(plen)
        end = 4 + plen
        rest = self._dec.update(view[16:end])
        mac = self._mac.copy()
        mac.update(_U32_PACK(seq))
        mac.update(first)
        mac.update(rest)
        if not hmac.compare_digest(mac.digest(), view[end:]):
            raise MACError("packet failed its MAC check")
        padlen = first[4]
        if padlen < 4 or padlen >= plen:
            raise _bad_padding(padlen, plen)
        count = plen - 1 - padlen  # payload length
        if count <= 11:
            return first[5:5 + count]
        return b"".join((memoryview(first)[5:], memoryview(rest)[:count - 11]))


class _ETMOpener:
    """Length in clear; MAC checked over the ciphertext before decrypting."""

    __slots__ = ("_dec", "_mac", "head_size", "mac_size")

    def __init__(self, key: bytes, iv: bytes, mac_key: bytes, digest: str,
                 mac_size: int) -> None:
        self.head_size = 4
        self.mac_size = mac_size
        self._dec = _ctr(key, iv)
        self._mac = _keyed_hmac(mac_key, digest)

    def packet_length(self, seq: int, head: bytes) -> int:
        return _clear_length(head)

    def open(self, seq: int, packet: bytes | memoryview) -> bytes:
        size = len(packet)
        mac_size = self.mac_size
        if size < 4 + mac_size:
            raise DecodeError("packet is shorter than its length field and MAC")
        plen: int = _U32_UNPACK(packet)[0]
        if size != plen + 4 + mac_size:
            raise DecodeError(f"packet length {plen} does not match {size} bytes received")
        if plen & 15 or plen < 16:
            raise _bad_length(plen)
        view = memoryview(packet)
        end = 4 + plen
        mac = self._mac.copy()
        mac.update(_U32_PACK(seq))
        mac.update(view[:end])
        if not hmac.compare_digest(mac.digest(), view[end:]):
            raise MACError("packet failed its MAC check")
        dec = self._dec
        padlen = dec.update(view[4:5])[0]
        if padlen < 4 or padlen >= plen:
            raise _bad_padding(padlen, plen)
        payload = dec.update(view[5:end - padlen])
        dec.update(view[end - padlen:end])  # keep the keystream in step
        return payload


# --- factories ---------------------------------------------------------------

def _check_keys(cipher: str, mac: str | None, key: bytes, iv: bytes,
                mac_key: bytes) -> tuple[str, str, int, bool]:
    key_len, iv_len, mac_key_len = key_lengths(cipher, mac)
    _check_len(f"{cipher} key", key, key_len)
    _check_len(f"{cipher} IV", iv, iv_len)
    kind = _CIPHERS[cipher][3]
    if kind != "ctr":
        return kind, "", 0, False
    _check_len(f"{mac} key", mac_key, mac_key_len)
    digest, _key_len, mac_size, etm = _mac_info(mac)
    return kind, digest, mac_size, etm


def new_sealer(cipher: str, mac: str | None, key: bytes, iv: bytes, mac_key: bytes,
               rng: Callable[[int], bytes]) -> PacketSealer:
    """Sealer for one direction after NEWKEYS; `rng(n)` supplies padding bytes."""
    kind, digest, _mac_size, etm = _check_keys(cipher, mac, key, iv, mac_key)
    log.debug("new sealer: cipher %s, mac %s", cipher, mac if kind == "ctr" else "(aead)")
    if kind == "chacha":
        return _ChaChaSealer(key, rng)
    if kind == "gcm":
        return _GCMSealer(key, iv, rng)
    if etm:
        return _ETMSealer(key, iv, mac_key, digest, rng)
    return _CTRSealer(key, iv, mac_key, digest, rng)


def new_opener(cipher: str, mac: str | None, key: bytes, iv: bytes,
               mac_key: bytes) -> PacketOpener:
    """Opener for one direction after NEWKEYS."""
    kind, digest, mac_size, etm = _check_keys(cipher, mac, key, iv, mac_key)
    log.debug("new opener: cipher %s, mac %s", cipher, mac if kind == "ctr" else "(aead)")
    if kind == "chacha":
        return _ChaChaOpener(key)
    if kind == "gcm":
        return _GCMOpener(key, iv)
    if etm:
        return _ETMOpener(key, iv, mac_key, digest, mac_size)
    return _CTROpener(key, iv, mac_key, digest, mac_size)
