"""Tests for sshlib.cipher: primitives pinned by published vectors, packets pinned
by vectors cross-checked against independent SSH implementations, round trips,
tampering and garbage input."""

from __future__ import annotations

import hmac
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sshlib import algorithms as names
from sshlib import cipher
from sshlib.errors import DecodeError, MACError, ProtocolError

H = bytes.fromhex

COMBOS: list[tuple[str, str | None]] = [
    (c, None) for c in names.SUPPORTED_CIPHERS if cipher.is_aead(c)
] + [
    (c, m) for c in names.SUPPORTED_CIPHERS if not cipher.is_aead(c) for m in names.SUPPORTED_MACS
]
IDS = [f"{c}+{m}" if m else c for c, m in COMBOS]


def det_rng(n: int) -> bytes:
    """Deterministic stand-in for os.urandom (padding bytes for frozen vectors)."""
    return bytes((i * 37 + 11) & 0xFF for i in range(n))


def keys_for(name: str, mac: str | None, salt: int = 0) -> tuple[bytes, bytes, bytes]:
    key_len, iv_len, mac_len = cipher.key_lengths(name, mac)
    return (bytes((i * 7 + salt) & 0xFF for i in range(key_len)),
            bytes((i * 13 + 5 + salt) & 0xFF for i in range(iv_len)),
            bytes((i * 3 + 1 + salt) & 0xFF for i in range(mac_len)))


def pair(name: str, mac: str | None, rng: Callable[[int], bytes] = det_rng,
         salt: int = 0) -> tuple[cipher.PacketSealer, cipher.PacketOpener]:
    key, iv, mac_key = keys_for(name, mac, salt)
    return (cipher.new_sealer(name, mac, key, iv, mac_key, rng),
            cipher.new_opener(name, mac, key, iv, mac_key))


def fresh_opener(name: str, mac: str | None, salt: int = 0) -> cipher.PacketOpener:
    key, iv, mac_key = keys_for(name, mac, salt)
    return cipher.new_opener(name, mac, key, iv, mac_key)


def receive(opener: cipher.PacketOpener, seq: int, wire: bytes) -> bytes:
    """What the transport does: length from the head, then open the whole packet."""
    plen = opener.packet_length(seq, wire[:opener.head_size])
    assert len(wire) == 4 + plen + opener.mac_size
    return opener.open(seq, wire)


# --- RFC 8439: ChaCha20 / Poly1305 through the module's nonce layout ---------

RFC8439_KEY = bytes(range(32))


def test_chacha20_block_rfc8439_2_3_2() -> None:
    # cryptography's 16-byte "nonce" = state words 12..15: LE counter || nonce.
    nonce16 = struct.pack("<I", 1) + H("000000090000004a00000000")
    enc = Cipher(algorithms.ChaCha20(RFC8439_KEY, nonce16), None).encryptor()
    assert enc.update(bytes(64)) == H(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")


SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one "
             b"tip for the future, sunscreen would be it.")
SUNSCREEN_CT = H(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d")


def test_chacha20_encryption_rfc8439_2_4_2_via_module_layout() -> None:
    # RFC nonce 00000000 0000004a 00000000, counter 1.  In the 64-bit-counter
    # layout the module uses, the 8-byte nonce is 0000004a00000000 (as a
    # big-endian "sequence number") and counter 1 is reached by encrypting the
    # 64-byte block 0 first -- exactly what seal/open do for the payload.
    enc = cipher._chacha(RFC8439_KEY)
    enc.reset_nonce(cipher._CHACHA_NONCE(0, 0x0000004A00000000))
    enc.update(bytes(64))
    assert enc.update(SUNSCREEN) == SUNSCREEN_CT
    # The context is reusable: resetting the nonce restarts the keystream.
    enc.reset_nonce(cipher._CHACHA_NONCE(0, 0x0000004A00000000))
    enc.update(bytes(64))
    assert enc.update(SUNSCREEN_CT) == SUNSCREEN


def test_poly1305_rfc8439_2_5_2() -> None:
    key = H("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    msg = b"Cryptographic Forum Research Group"
    tag = H("a8061dc1305136c6c22b8baf0c0127a9")
    assert Poly1305.generate_tag(key, msg) == tag
    Poly1305.verify_tag(key, msg, tag)


def test_poly1305_key_generation_rfc8439_2_6_2_via_module_layout() -> None:
    # Nonce 00000000 0001020304050607: the OpenSSH layout's 8-byte nonce is
    # 0001020304050607, i.e. sequence number 0x0001020304050607, counter 0.
    key = bytes(range(0x80, 0xA0))
    enc = cipher._chacha(key)
    enc.reset_nonce(cipher._CHACHA_NONCE(0, 0x0001020304050607))
    assert enc.update(bytes(64))[:32] == H(
        "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646")


# --- RFC 4231: HMAC-SHA-256/512 through the module's keyed-HMAC helper -------

RFC4231 = [
    # (case, key, data, sha256, sha512)
    (1, b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
     "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
     "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
    (2, b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
     "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
     "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    (3, b"\xaa" * 20, b"\xdd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
     "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39"
     "bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"),
    (6, b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
     "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
     "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
    (7, b"\xaa" * 131,
     b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
     "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944"
     "b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58"),
]


@pytest.mark.parametrize("case", RFC4231, ids=[f"case{c[0]}" for c in RFC4231])
def test_hmac_rfc4231(case: tuple[int, bytes, bytes, str, str]) -> None:
    _n, key, data, sha256, sha512 = case
    for digest, expected in (("sha256", sha256), ("sha512", sha512)):
        keyed = cipher._keyed_hmac(key, digest)
        # The module copies one keyed object per packet and feeds it in pieces.
        for _ in range(2):
            mac = keyed.copy()
            mac.update(data[:5])
            mac.update(data[5:])
            assert mac.digest() == H(expected)


# --- NIST SP 800-38A F.5: AES-CTR as one stream across packets ---------------

SP800_38A_PLAIN = H(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
SP800_38A_CTR = [
    ("F.5.1 AES-128", "2b7e151628aed2a6abf7158809cf4f3c",
     "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
     "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"),
    ("F.5.3 AES-192", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
     "1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e94"
     "1e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050"),
    ("F.5.5 AES-256", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
     "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
     "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"),
]


@pytest.mark.parametrize("vector", SP800_38A_CTR, ids=[v[0] for v in SP800_38A_CTR])
def test_aes_ctr_sp800_38a(vector: tuple[str, str, str]) -> None:
    _name, key, expected = vector
    iv = H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    enc = cipher._ctr(H(key), iv)
    # Uneven pieces, as packets cut the stream: the keystream must carry over.
    cuts = ((0, 5), (5, 32), (32, 33), (33, 64))
    out = b"".join(enc.update(SP800_38A_PLAIN[a:b]) for a, b in cuts)
    assert out == H(expected)


# --- GCM spec test cases 3, 4, 15, 16 with the module's IV construction ------

GCM_PLAIN = H(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
GCM_AAD = H("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_CASES = [
    ("case3", "feffe9928665731c6d6a8f9467308308", 64, b"",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"),
    ("case4", "feffe9928665731c6d6a8f9467308308", 60, GCM_AAD,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"),
    ("case15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", 64, b"",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"),
    ("case16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", 60, GCM_AAD,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"),
]


@pytest.mark.parametrize("case", GCM_CASES, ids=[c[0] for c in GCM_CASES])
def test_aes_gcm_spec_vectors(case: tuple[str, str, int, bytes, str, str]) -> None:
    _name, key, n, aad, ct, tag = case
    # The module splits the 12-byte IV into a 4-byte fixed field and a 64-bit counter.
    nonce = cipher._GCM_NONCE(0xCAFEBABE, 0xFACEDBADDECAF888)
    assert nonce == H("cafebabefacedbaddecaf888")
    aead = AESGCM(H(key))
    assert aead.encrypt(nonce, GCM_PLAIN[:n], aad) == H(ct + tag)
    assert aead.decrypt(nonce, H(ct + tag), aad) == GCM_PLAIN[:n]


# --- frozen packet vectors ----------------------------------------------------
#
# Packets sealed with det_rng padding for the payloads below at sequence numbers
# 0, 1 and 2**32-1.  Before freezing, each was checked to be byte-identical to
# asyncssh 2.24.1's encrypt_packet() fed the same plaintext (length, padding
# length, payload, padding) and keys.  In addition the chacha20-poly1305 packets
# were rebuilt with libsodium's crypto_stream_chacha20_xor_ic (original 64-bit
# nonce ChaCha20) and crypto_onetimeauth_poly1305 via ctypes, the aes256-gcm
# ones with libsodium's crypto_aead_aes256gcm_encrypt, and paramiko 5.1's
# Packetizer.read_message() decoded our GCM, CTR+HMAC and CTR+ETM packets.
# None of those libraries is a test dependency: this was a one-off dev check.
#
# Keys: chacha key bytes(range(64)); GCM key bytes(range(1, klen + 1)) with IV
# 0a0b0c0d fffffffffffffffe (so the invocation counter wraps to 0 on the third
# packet); CTR key bytes(range(2, klen + 2)), IV f0..ff, MAC key
# bytes(range(100, 100 + maclen)).

VECTOR_PAYLOADS = [(0, H("5e000000000000000568656c6c6f")), (1, bytes(range(40))),
                   (0xFFFFFFFF, b"")]

FROZEN: dict[tuple[str, str | None], list[str]] = {
    ("chacha20-poly1305@openssh.com", None): [
        "94450e4111e64231ade6a6d113643404c32f212cc8e4896a2544556f8b7d1a44"
        "e04f93862575817cc7fa9dcf",
        "c922a7956e5c7ddb320ebd7c2a797725b8181a1c1fe12e52dda5e9635222ac32"
        "32f28214cc0dcd2890df8ba506109686610fbbf8c75e7a8f01946280c0fc1699"
        "1d611bd5",
        "b90ee4b80ec98c3e64ebc0dbcf0a1aa70df216d7b7c0275213bd49a1",
    ],
    ("aes128-gcm@openssh.com", None): [
        "0000002039422840a31060a991383c8a4963397fb19317d8e86d1a0cdf7cdccc"
        "c15d02539bfc0765ca76212d8f3c797f1cb7c789",
        "00000030603c407ef38d4079b0180536da3a15035a3c8b9b9a822d9dd64cad93"
        "e0c9614c63ac100b32f12e5314edff3aa571311ad246772646b4ddd8bb2bdbf9"
        "36485cab",
        "00000010ce564e722cead8856f35b6229a000fd3578d7fa1b5ba769d8c8b0cfd"
        "46bf4abc",
    ],
    ("aes256-gcm@openssh.com", None): [
        "00000020344e97a1ee8553231585a8c76976418718a00f4e79332e36a02f5995"
        "eb89c2ea87ddb16a06d2d2fab44801a116ed46e0",
        "000000303b6ae9df077043813088197817bd05206358be9e14343e4cbff7b29b"
        "d0a70bce650802a91fcb6d95f42edd5be15b5d5c899e43ee4f132d86d3021828"
        "0582b4b7",
        "0000001093b6b5c879252cd45342639f476a70a9432366bcedf3a04920945ff5"
        "94a5572c",
    ],
    ("aes128-ctr", "hmac-sha2-256"): [
        "b831ae8ffd3d0b9fa7b757b333b64962901bf6530cdb813b1dce530b693b7179"
        "f7fa5cc221a75602a5946131c6049761f47ccd8b89c8445c0dbff6a6369acd5d",
        "59842b564443773aa27e2b28651b2743828abe14dad73ceae0a4d94b6e4b1b6b"
        "cee516f6db9e5dede3f515c57267d2bb21d848118beb3ed7e38089c8e39dd04c"
        "be248fbdfa790125f0d430ad01768ec04946ba8c7776c445fd79850ff8555db6",
        "13d74f5636cf96e981437cc0670d69f6e4a0578c7878e6b82536c5e2565b1b14"
        "62f4e892a93b2aac8b4eec60c4247675",
    ],
    ("aes192-ctr", "hmac-sha2-512"): [
        "2fa1253229beca19c81745b70f80338166b5a7357817b1e0e681d56a6735b622"
        "bcb2c0ee7f1165ff9de001bdd559c53b78822744698e7bc07cba0c11bba5d740"
        "66dda3311a0afc7f400d9bb72e7ba97e4e89e95af392a0bd06e9d8a4ec60bbc1",
        "13642c25a88f4d33b0b32aa74d031fff2aa5ba8932f24b8e052e20caedd0407d"
        "41f4c84e7168efda19105aa9e8375d9f2ddd7a62dbcb8fcc6291da05fb88ad5c"
        "f92957c74056c3900501db48d5b72e5f285a2e892163c02f68c211e95a534f07"
        "23f211b1643caa18a0faa0a443aff154bfc65555113ac1e2be19dd4c45eefd82",
        "d00ac542f234b051fb1d7e1463a900fae57344d9862d156248d5712dd0011782"
        "bba7bed5b56e53cd6277263c58025a31688cefe5ad26992b0ccec0505f35fff7"
        "e49986cf251f456d09c66a4231f4fedc",
    ],
    ("aes256-ctr", "hmac-sha2-256-etm@openssh.com"): [
        "000000203124d2da812501f5efc7357eee79b375110b3020620f786453e5e099"
        "4e04c100a21f98026b343ca2b5edf74214612dd5ea07f7ad1d8f6de6fb256d5e"
        "178c624b",
        "0000003078865880753c1c96772d592995e89fe64bb57b9b44f696aa7615ef39"
        "191f53779343234770791f01437966b4d5cd921d953f84e674331f012ec1893a"
        "3f82d7c52ab5482be114b0a0cc920183b2cfce2d",
        "0000001008145edd689258a7981c7e5eab644033053d5ae03b585823f16d5e7c"
        "1034f009f75b7789a453ebfaa3fa56c128e24137",
    ],
    ("aes128-ctr", "hmac-sha2-512-etm@openssh.com"): [
        "00000020a96fae93f0630b9fa7b23fd65fdf4e0ccc22e3c7f867f597815affff"
        "dd57e5e586d8db451618e90b370f91312de93b85cecd390783ec44da6f186e9d"
        "c3bc374d8fc923324809100cdc342c1ea08724eb74eb765d8e3dfd1d517e9d15"
        "35bbb17a",
        "000000305e842a685447733ea6722724691f23478696a208c6d338eee4a8d547"
        "624f1f6fcad92acae79a59e9e7519529ba9ffad3946ebbc8bd8b3e9df2e8407d"
        "be9d68ee01012feda8ce831012c129bb31ee6011c8ca3a1110a8dcb7f4474a1d"
        "2f090de8581924040c744622366396c6827553be",
        "0000001075db451696e83be8e68394cfee9ed543c7a0f6a3fed0708c01e7f591"
        "97634f140d38e67499f88b42a7524fcdb66092a36562658fa1b7c9e9a32b0b85"
        "417998dc83d977f4a0c8d47e1fe96400bb977c05",
    ],
}


def vector_keys(name: str, mac: str | None) -> tuple[bytes, bytes, bytes]:
    key_len, _iv_len, mac_len = cipher.key_lengths(name, mac)
    if name == names.CIPHER_CHACHA20_POLY1305:
        return bytes(range(64)), b"", b""
    if cipher.is_aead(name):
        return bytes(range(1, key_len + 1)), H("0a0b0c0dfffffffffffffffe"), b""
    return (bytes(range(2, key_len + 2)), H("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"),
            bytes(range(100, 100 + mac_len)))


@pytest.mark.parametrize("combo", list(FROZEN), ids=[f"{c}+{m}" for c, m in FROZEN])
def test_frozen_packet_vectors(combo: tuple[str, str | None]) -> None:
    name, mac = combo
    key, iv, mac_key = vector_keys(name, mac)
    sealer = cipher.new_sealer(name, mac, key, iv, mac_key, det_rng)
    opener = cipher.new_opener(name, mac, key, iv, mac_key)
    for (seq, payload), expected in zip(VECTOR_PAYLOADS, FROZEN[combo], strict=True):
        wire = sealer.seal(seq, payload)
        assert wire.hex() == expected
        assert receive(opener, seq, H(expected)) == payload


def test_plaintext_packet_layout() -> None:
    # RFC 4253 6: before NEWKEYS the packet is sent as is, aligned to 8 bytes
    # including the length field.  4 + 1 + 4 bytes = 9, so 7 bytes of padding.
    wire = cipher.plaintext_sealer(det_rng).seal(0, b"\x05abc")
    assert wire == H("0000000c07") + b"\x05abc" + det_rng(7)
    assert receive(cipher.plaintext_opener(), 0, wire) == b"\x05abc"


# --- names and key lengths ----------------------------------------------------

def test_key_lengths_and_aead() -> None:
    assert cipher.key_lengths("chacha20-poly1305@openssh.com", None) == (64, 0, 0)
    assert cipher.key_lengths("chacha20-poly1305@openssh.com", "hmac-sha2-512") == (64, 0, 0)
    assert cipher.key_lengths("aes128-gcm@openssh.com", None) == (16, 12, 0)
    assert cipher.key_lengths("aes256-gcm@openssh.com", "hmac-sha2-256") == (32, 12, 0)
    assert cipher.key_lengths("aes128-ctr", "hmac-sha2-256") == (16, 16, 32)
    assert cipher.key_lengths("aes192-ctr", "hmac-sha2-512") == (24, 16, 64)
    assert cipher.key_lengths("aes256-ctr", "hmac-sha2-256-etm@openssh.com") == (32, 16, 32)
    assert cipher.key_lengths("aes256-ctr", "hmac-sha2-512-etm@openssh.com") == (32, 16, 64)
    assert {c for c in names.SUPPORTED_CIPHERS if cipher.is_aead(c)} == names.AEAD_CIPHERS


@pytest.mark.parametrize("call", [
    lambda: cipher.key_lengths("aes128-cbc", "hmac-sha2-256"),
    lambda: cipher.key_lengths("aes128-ctr", "hmac-sha1"),
    lambda: cipher.key_lengths("aes128-ctr", None),
    lambda: cipher.is_aead("none"),
    lambda: cipher.new_opener("3des-cbc", "hmac-sha2-256", b"", b"", b""),
    lambda: cipher.new_sealer("aes128-gcm@openssh.com", None, bytes(32), bytes(12), b"", det_rng),
    lambda: cipher.new_opener("aes128-gcm@openssh.com", None, bytes(16), bytes(16), b""),
    lambda: cipher.new_opener("aes128-ctr", "hmac-sha2-256", bytes(16), bytes(16), bytes(31)),
    lambda: cipher.new_opener("chacha20-poly1305@openssh.com", None, bytes(32), b"", b""),
])
def test_bad_names_and_key_sizes_raise_valueerror(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# --- round trips ----------------------------------------------------------------

SIZES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 63, 64,
         65, 255, 256, 1000, 4095, 4096, 32768, 32769, 35000, 65536, 70000]


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_round_trip_sizes_and_framing(name: str, mac: str | None) -> None:
    sealer, opener = pair(name, mac)
    block = 8 if name == names.CIPHER_CHACHA20_POLY1305 else 16
    aligned_from = 4 if cipher.is_aead(name) or (mac and "etm" in mac) else 0
    expect_mac = 16 if cipher.is_aead(name) else (64 if mac and "512" in mac else 32)
    assert opener.mac_size == expect_mac
    assert opener.head_size == (16 if aligned_from == 0 else 4)
    seq = 0xFFFFFFFF - 5  # runs through the wrap-around
    for size in SIZES:
        payload = bytes((i * 31 + size) & 0xFF for i in range(size))
        wire = sealer.seal(seq, payload)
        body = len(wire) - opener.mac_size
        assert (body - aligned_from) % block == 0
        padlen = body - 4 - 1 - size
        assert 4 <= padlen < 4 + block
        assert receive(opener, seq, wire) == payload
        seq = (seq + 1) & 0xFFFFFFFF


def test_plaintext_round_trip_sizes() -> None:
    sealer, opener = cipher.plaintext_sealer(det_rng), cipher.plaintext_opener()
    assert (opener.head_size, opener.mac_size) == (4, 0)
    for size in SIZES:
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        wire = sealer.seal(7, payload)
        assert len(wire) % 8 == 0
        assert 4 <= wire[4] < 12
        assert wire[5:5 + size] == payload
        assert receive(opener, 7, wire) == payload


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_open_accepts_memoryview_and_bytearray(name: str, mac: str | None) -> None:
    sealer, opener = pair(name, mac)
    for seq, payload in enumerate([b"\x5ehello", b"x" * 1000, b""]):
        wire = sealer.seal(seq, payload)
        buf = bytearray(b"junk" + wire + b"more")
        view = memoryview(buf)[4:4 + len(wire)]
        opener.packet_length(seq, bytes(view[:opener.head_size]))
        out = opener.open(seq, view)
        assert out == payload and type(out) is bytes


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_open_without_packet_length_call(name: str, mac: str | None) -> None:
    # The contract lets open() work from the packet alone, too.
    sealer, opener = pair(name, mac)
    for seq in range(5):
        payload = bytes([seq]) * (seq * 100)
        assert opener.open(seq, sealer.seal(seq, payload)) == payload


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_packet_length_twice_for_same_packet(name: str, mac: str | None) -> None:
    # A transport may ask twice (e.g. after a short read); the stream must not slip.
    sealer, opener = pair(name, mac)
    for seq in range(4):
        wire = sealer.seal(seq, b"payload %d" % seq)
        head = wire[:opener.head_size]
        first = opener.packet_length(seq, head)
        assert opener.packet_length(seq, head) == first == len(wire) - 4 - opener.mac_size
        assert opener.open(seq, wire) == b"payload %d" % seq


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_wrong_key_or_wrong_seq_fails_mac(name: str, mac: str | None) -> None:
    sealer, _ = pair(name, mac)
    wire = sealer.seal(3, b"secret payload")

    def attempt(opener: cipher.PacketOpener, seq: int) -> None:
        # An encrypted length decrypts to garbage: DecodeError (size mismatch);
        # otherwise the MAC/tag check must fail.
        plen = opener.packet_length(seq, wire[:opener.head_size])
        expected = MACError if 4 + plen + opener.mac_size == len(wire) else DecodeError
        with pytest.raises(expected):
            opener.open(seq, wire)

    attempt(fresh_opener(name, mac, salt=1), 3)
    if not name.startswith("aes") or not cipher.is_aead(name):
        # GCM binds its own invocation counter, not seq; everything else binds seq.
        attempt(fresh_opener(name, mac), 4)


def test_gcm_counter_is_per_packet_not_seq() -> None:
    sealer, opener = pair("aes128-gcm@openssh.com", None)
    first, second = sealer.seal(9, b"a"), sealer.seal(9, b"a")
    assert first != second  # new invocation counter, same seq
    assert receive(opener, 0, first) == b"a"
    assert receive(opener, 0, second) == b"a"
    # Replaying a packet fails: the opener's counter has moved on.
    with pytest.raises(MACError):
        receive(opener, 0, first)


def test_padding_is_pooled_and_random() -> None:
    calls: list[int] = []
    pool = iter(range(1000))

    def rng(n: int) -> bytes:
        calls.append(n)
        start = next(pool)
        return bytes((start + i) & 0xFF for i in range(n))

    sealer, opener = pair("aes256-ctr", "hmac-sha2-256-etm@openssh.com", rng=rng)
    wires = [sealer.seal(seq, b"\x5e" + bytes(10)) for seq in range(500)]
    # 500 packets x >= 4 padding bytes > 4096: at least one refill, but not one per packet.
    assert 1 <= len(calls) <= 3 and set(calls) == {4096}
    for seq, wire in enumerate(wires):
        assert receive(opener, seq, wire) == b"\x5e" + bytes(10)
    # The padding bytes are the rng's bytes (checked on the plaintext framing).
    plain = cipher.plaintext_sealer(lambda n: b"\xab" * n).seal(0, b"x")
    assert plain[-plain[4]:] == b"\xab" * plain[4]


def test_rng_returning_short_buffer_is_rejected() -> None:
    sealer = cipher.plaintext_sealer(lambda n: b"\x00" * (n - 1))
    with pytest.raises(ValueError):
        sealer.seal(0, b"x")


# --- tampering --------------------------------------------------------------------

@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
@pytest.mark.parametrize("payload", [b"", b"\x5e" + bytes(range(40))], ids=["empty", "41B"])
def test_every_single_byte_flip_is_rejected(name: str, mac: str | None, payload: bytes) -> None:
    sealer, _ = pair(name, mac)
    seq = 0xFFFFFFFF
    wire = sealer.seal(seq, payload)
    for pos in range(len(wire)):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(wire)
            bad[pos] ^= flip
            opener = fresh_opener(name, mac)
            plen = opener.packet_length(seq, bytes(bad[:opener.head_size]))
            if 4 + plen + opener.mac_size == len(bad):
                expected: type[ProtocolError] = MACError
            else:
                expected = DecodeError  # the length itself is garbage
            with pytest.raises(expected):
                opener.open(seq, bytes(bad))


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_truncated_and_extended_packets_are_decode_errors(name: str, mac: str | None) -> None:
    sealer, _ = pair(name, mac)
    wire = sealer.seal(1, b"\x5e" + bytes(100))
    for bad in (wire[:-1], wire + b"\x00", wire[:3], b""):
        with pytest.raises(DecodeError):
            fresh_opener(name, mac).open(1, bad)
    with pytest.raises(DecodeError):
        fresh_opener(name, mac).packet_length(1, wire[:fresh_opener(name, mac).head_size - 1])


# Forging packets with a valid MAC/tag but bad framing, to reach the checks that
# come after authentication.  `body` is everything after the length field.

def forge(name: str, mac: str | None, seq: int, body: bytes) -> bytes:
    key, iv, mac_key = keys_for(name, mac)
    length = struct.pack(">I", len(body))
    if name == names.CIPHER_CHACHA20_POLY1305:
        nonce = struct.pack(">QQ", 0, seq)
        elen = Cipher(algorithms.ChaCha20(key[32:], nonce), None).encryptor().update(length)
        main = Cipher(algorithms.ChaCha20(key[:32], nonce), None).encryptor()
        poly_key = main.update(bytes(64))[:32]
        ct = main.update(body)
        return elen + ct + Poly1305.generate_tag(poly_key, elen + ct)
    if cipher.is_aead(name):
        return length + AESGCM(key).encrypt(iv, body, length)
    enc = cipher._ctr(key, iv)
    digest = "sha512" if mac and "512" in mac else "sha256"
    seq4 = struct.pack(">I", seq)
    if mac and "etm" in mac:
        ct = enc.update(body)
        return length + ct + hmac.digest(mac_key, seq4 + length + ct, digest)
    return enc.update(length + body) + hmac.digest(mac_key, seq4 + length + body, digest)


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_forge_helper_matches_sealer(name: str, mac: str | None) -> None:
    # Guards the helper below: for a well-formed body it must agree with seal().
    sealer, _ = pair(name, mac)
    wire = sealer.seal(5, b"\x5eabc")
    opener = fresh_opener(name, mac)
    plen = opener.packet_length(5, wire[:opener.head_size])
    padlen = plen - 1 - 4
    assert forge(name, mac, 5, bytes([padlen]) + b"\x5eabc" + det_rng(padlen)) == wire


def bad_bodies(name: str, mac: str | None) -> list[bytes]:
    """Authenticated bodies whose framing is wrong (length measured after the field)."""
    block = 8 if name == names.CIPHER_CHACHA20_POLY1305 else 16
    aad = 4 if cipher.is_aead(name) or (mac and "etm" in mac) else 0
    size = 4 * block - (4 - aad)  # an aligned body length
    out = []
    for padlen in (0, 3, size, size + 1, 255):  # padding too short, or not inside the packet
        out.append(bytes([padlen]) + bytes(size - 1))
    out.append(bytes([4]) + bytes(size))  # misaligned by one byte
    out.append(bytes([4]) + bytes(size - 2))  # misaligned the other way
    return out


@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
def test_bad_padding_or_alignment_is_decode_error(name: str, mac: str | None) -> None:
    for body in bad_bodies(name, mac):
        wire = forge(name, mac, 7, body)
        opener = fresh_opener(name, mac)
        assert opener.packet_length(7, wire[:opener.head_size]) == len(body)
        with pytest.raises(DecodeError):
            opener.open(7, wire)


def test_plaintext_bad_framing_is_decode_error() -> None:
    opener = cipher.plaintext_opener()
    cases = [
        H("0000000c") + bytes([3]) + bytes(11),  # padding < 4
        H("0000000c") + bytes([12]) + bytes(11),  # padding >= packet_length
        H("0000000d") + bytes([4]) + bytes(12),  # not a multiple of 8
        H("00000004") + bytes([4]) + bytes(3),  # too short to hold any padding
        H("00000000"),
        H("0000000c") + bytes([4]) + bytes(10),  # truncated
    ]
    for wire in cases:
        with pytest.raises(DecodeError):
            opener.open(0, wire)
    assert opener.open(0, H("0000000c") + bytes([11]) + bytes(11)) == b""


# --- property tests ------------------------------------------------------------------

@pytest.mark.parametrize(("name", "mac"), COMBOS, ids=IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
       seq=st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_property_round_trip(name: str, mac: str | None, payloads: list[bytes], seq: int) -> None:
    sealer, opener = pair(name, mac)
    for payload in payloads:
        assert receive(opener, seq, sealer.seal(seq, payload)) == payload
        seq = (seq + 1) & 0xFFFFFFFF


OPENER_KINDS: list[tuple[str, str | None]] = [("none", None), *COMBOS]


def any_opener(name: str, mac: str | None) -> cipher.PacketOpener:
    return cipher.plaintext_opener() if name == "none" else fresh_opener(name, mac)


@pytest.mark.parametrize(("name", "mac"), OPENER_KINDS, ids=["none", *IDS])
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), seq=st.integers(min_value=0, max_value=0xFFFFFFFF),
       fix_length=st.booleans(), ask_length=st.booleans())
def test_property_garbage_only_raises_protocol_errors(
        name: str, mac: str | None, data: bytes, seq: int, fix_length: bool,
        ask_length: bool) -> None:
    opener = any_opener(name, mac)
    if fix_length and len(data) >= 4 + opener.mac_size and opener.head_size == 4:
        # Make a clear length field consistent with the size, to get past the
        # size check into alignment, MAC and padding checks.
        data = struct.pack(">I", len(data) - 4 - opener.mac_size) + data[4:]
    try:
        if ask_length:
            opener.packet_length(seq, data[:opener.head_size])
        opener.open(seq, data)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(padlen=st.integers(min_value=0, max_value=255), rest=st.binary(max_size=64))
def test_property_plaintext_opener_never_leaks_other_errors(padlen: int, rest: bytes) -> None:
    body = bytes([padlen]) + rest
    wire = struct.pack(">I", len(body)) + body
    try:
        payload = cipher.plaintext_opener().open(0, wire)
    except DecodeError:
        return
    assert padlen >= 4 and len(wire) % 8 == 0 and payload == rest[:len(rest) - padlen]
