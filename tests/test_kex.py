"""Tests for sshlib.kex.

Order: published known answers first (RFC 7748 X25519, the X-Wing draft's ML-KEM-768 vector,
NIST CAVS SSH KDF vectors, the RFC 3526 primes), then exchange-hash vectors frozen after a
cross-check against paramiko, then complete exchanges against a server side written here, then
bad input.  The test server uses `cryptography` for X25519/ECDH/ML-KEM and plain Python integers
for finite-field DH, so the client's OpenSSL arithmetic is checked against an independent one.
"""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, x25519

from sshlib import algorithms as alg
from sshlib import kex
from sshlib.errors import DecodeError, KexError
from sshlib.wire import Reader, mpint, name_list, string, uint32

# --- fixtures: transcript, host key, deterministic rng, a test server -------------------------

V_C = b"SSH-2.0-sshlib_0.1"
V_S = b"SSH-2.0-OpenSSH_9.9"


def _kexinit(cookie: bytes, kex_names: list[str]) -> bytes:
    lists = [kex_names, ["ssh-ed25519"], ["aes128-gcm@openssh.com"], ["aes128-gcm@openssh.com"],
             ["hmac-sha2-256"], ["hmac-sha2-256"], ["none"], ["none"], [], []]
    return b"\x14" + cookie + b"".join(name_list(n) for n in lists) + b"\x00" + uint32(0)


I_C = _kexinit(bytes(range(16)), [*alg.SUPPORTED_KEX, "ext-info-c"])
I_S = _kexinit(bytes(range(16, 32)), list(alg.SUPPORTED_KEX))

HOST_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(
    hashlib.sha256(b"sshlib test host key").digest())
HOST_KEY_BLOB = string(b"ssh-ed25519") + string(HOST_KEY.public_key().public_bytes_raw())

P2048 = kex._MODP_2048_P
P4096 = kex._MODP_4096_P
P8192 = kex._MODP_8192_P
FIXED_GROUPS = {
    alg.KEX_DH_GROUP14_SHA256: P2048,
    alg.INSECURE_KEX_DH_GROUP14_SHA1: P2048,
    alg.KEX_DH_GROUP16_SHA512: P4096,
    alg.KEX_DH_GROUP18_SHA512: P8192,
}
CURVES = {
    alg.KEX_ECDH_NISTP256: ec.SECP256R1(),
    alg.KEX_ECDH_NISTP384: ec.SECP384R1(),
    alg.KEX_ECDH_NISTP521: ec.SECP521R1(),
}
HASHES = {
    alg.KEX_MLKEM768X25519_SHA256: "sha256",
    alg.KEX_CURVE25519_SHA256: "sha256",
    alg.KEX_CURVE25519_SHA256_LIBSSH: "sha256",
    alg.KEX_ECDH_NISTP256: "sha256",
    alg.KEX_ECDH_NISTP384: "sha384",
    alg.KEX_ECDH_NISTP521: "sha512",
    alg.KEX_DH_GEX_SHA256: "sha256",
    alg.KEX_DH_GROUP14_SHA256: "sha256",
    alg.KEX_DH_GROUP16_SHA512: "sha512",
    alg.KEX_DH_GROUP18_SHA512: "sha512",
    alg.INSECURE_KEX_DH_GROUP14_SHA1: "sha1",
}
CURVE25519 = (alg.KEX_CURVE25519_SHA256, alg.KEX_CURVE25519_SHA256_LIBSSH)
MLKEM = alg.KEX_MLKEM768X25519_SHA256
GEX = alg.KEX_DH_GEX_SHA256


class StreamRng:
    """Deterministic rng: consecutive bytes of SHAKE-256(label); records the sizes asked for."""

    def __init__(self, label: bytes, stream: bytes | None = None) -> None:
        self.stream = stream if stream is not None else hashlib.shake_256(label).digest(4096)
        self.pos = 0
        self.calls: list[int] = []

    def __call__(self, count: int) -> bytes:
        chunk = self.stream[self.pos:self.pos + count]
        assert len(chunk) == count, "test rng exhausted"
        self.pos += count
        self.calls.append(count)
        return chunk


def make_client(name: str, rng: object = None, **kwargs: object) -> kex.ClientKex:
    return kex.new_client_kex(
        name, rng=rng if rng is not None else StreamRng(name.encode()),  # type: ignore[arg-type]
        client_version=V_C, server_version=V_S, client_kexinit=I_C, server_kexinit=I_S,
        **kwargs)  # type: ignore[arg-type]


class Server:
    """The server side of every method, written for these tests from the RFCs."""

    def __init__(self, name: str, seed: bytes = b"server", group: tuple[int, int] = (P4096, 2),
                 host_key_blob: bytes = HOST_KEY_BLOB) -> None:
        self.name = name
        self.seed = seed
        self.group = group
        self.host_key_blob = host_key_blob
        self.K = b""
        self.H = b""
        self.gex_request: tuple[int, int, int] | None = None

    def secret(self, label: bytes, count: int = 32) -> bytes:
        return hashlib.shake_256(self.seed + b"/" + label).digest(count)

    def dh_exponent(self) -> int:
        return int.from_bytes(self.secret(b"dh"), "big") | (1 << 255)

    def _finish(self, exchange_parts: bytes, k_encoded: bytes) -> bytes:
        self.K = k_encoded
        prefix = b"".join(string(v) for v in (V_C, V_S, I_C, I_S, self.host_key_blob))
        self.H = hashlib.new(HASHES[self.name], prefix + exchange_parts + k_encoded).digest()
        return string(b"ssh-ed25519") + string(HOST_KEY.sign(self.H))

    def handle(self, payload: bytes) -> bytes:
        reader = Reader(payload, 1)
        number = payload[0]
        if self.name in FIXED_GROUPS:
            assert number == 30
            return self._dh_reply(reader, 31, FIXED_GROUPS[self.name], 2, b"")
        if self.name == GEX:
            if number == 34:
                self.gex_request = (reader.uint32(), reader.uint32(), reader.uint32())
                reader.check_end()
                return b"\x1f" + mpint(self.group[0]) + mpint(self.group[1])
            assert number == 32 and self.gex_request is not None
            p, g = self.group
            params = b"".join(uint32(v) for v in self.gex_request) + mpint(p) + mpint(g)
            return self._dh_reply(reader, 33, p, g, params)
        assert number == 30
        client_public = reader.string()
        reader.check_end()
        server_public, k_encoded = self._agree(client_public)
        sig = self._finish(string(client_public) + string(server_public), k_encoded)
        return b"\x1f" + string(self.host_key_blob) + string(server_public) + string(sig)

    def _dh_reply(self, reader: Reader, number: int, p: int, g: int, params: bytes) -> bytes:
        e = reader.mpint()
        reader.check_end()
        y = self.dh_exponent()
        f = pow(g, y, p)
        k_encoded = mpint(pow(e, y, p))
        sig = self._finish(params + mpint(e) + mpint(f), k_encoded)
        return bytes([number]) + string(self.host_key_blob) + mpint(f) + string(sig)

    def x25519_key(self) -> x25519.X25519PrivateKey:
        return x25519.X25519PrivateKey.from_private_bytes(self.secret(b"x25519"))

    def ec_key(self) -> ec.EllipticCurvePrivateKey:
        # 248 bits: below the order of all three NIST curves.
        scalar = int.from_bytes(self.secret(b"ecdh", 31), "big")
        return ec.derive_private_key(scalar, CURVES[self.name])

    def _agree(self, client_public: bytes) -> tuple[bytes, bytes]:
        if self.name in CURVE25519:
            key = self.x25519_key()
            shared = key.exchange(x25519.X25519PublicKey.from_public_bytes(client_public))
            return key.public_key().public_bytes_raw(), mpint(int.from_bytes(shared, "big"))
        if self.name in CURVES:
            eckey = self.ec_key()
            peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[self.name], client_public)
            shared = eckey.exchange(ec.ECDH(), peer)
            public = eckey.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            return public, mpint(int.from_bytes(shared, "big"))
        assert self.name == MLKEM and len(client_public) == 1184 + 32
        encapsulation_key = mlkem.MLKEM768PublicKey.from_public_bytes(client_public[:1184])
        mlkem_secret, ciphertext = encapsulation_key.encapsulate()
        key = self.x25519_key()
        x_secret = key.exchange(x25519.X25519PublicKey.from_public_bytes(client_public[1184:]))
        k_encoded = string(hashlib.sha256(mlkem_secret + x_secret).digest())
        return ciphertext + key.public_key().public_bytes_raw(), k_encoded


def run_exchange(client: kex.ClientKex, server: Server) -> kex.KexResult:
    outgoing = client.start()
    for _ in range(3):
        assert len(outgoing) == 1
        result = client.receive(server.handle(outgoing[0]))
        if isinstance(result, kex.KexResult):
            return result
        outgoing = result
    raise AssertionError("key exchange did not finish")


def verify_signature(result: kex.KexResult) -> None:
    reader = Reader(result.signature)
    assert reader.string() == b"ssh-ed25519"
    signature = reader.string()
    reader.check_end()
    HOST_KEY.public_key().verify(signature, result.exchange_hash)  # raises if wrong


# --- RFC 7748: X25519 through cryptography (pins the byte order curve25519-sha256 uses) ------

def _x25519(scalar: bytes, u: bytes) -> bytes:
    private = x25519.X25519PrivateKey.from_private_bytes(scalar)
    return private.exchange(x25519.X25519PublicKey.from_public_bytes(u))


@pytest.mark.parametrize(("scalar", "u", "out"), [
    # RFC 7748 section 5.2, the two single-operation vectors.
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
])
def test_rfc7748_x25519_vectors(scalar: str, u: str, out: str) -> None:
    assert _x25519(bytes.fromhex(scalar), bytes.fromhex(u)).hex() == out


def test_rfc7748_x25519_iterated() -> None:
    # RFC 7748 section 5.2: k = u = 9, then k, u = X25519(k, u), k.
    k = u = b"\x09" + bytes(31)
    for i in range(1000):
        k, u = _x25519(k, u), k
        if i == 0:
            assert k.hex() == "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"
    assert k.hex() == "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"


RFC7748_ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
RFC7748_BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
RFC7748_BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
RFC7748_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def test_rfc7748_diffie_hellman() -> None:
    # RFC 7748 section 6.1.
    alice = x25519.X25519PrivateKey.from_private_bytes(RFC7748_ALICE)
    bob = x25519.X25519PrivateKey.from_private_bytes(RFC7748_BOB)
    assert alice.public_key().public_bytes_raw().hex() == RFC7748_ALICE_PUB
    assert bob.public_key().public_bytes_raw().hex() == RFC7748_BOB_PUB
    assert _x25519(RFC7748_ALICE, bytes.fromhex(RFC7748_BOB_PUB)).hex() == RFC7748_SHARED
    assert _x25519(RFC7748_BOB, bytes.fromhex(RFC7748_ALICE_PUB)).hex() == RFC7748_SHARED


def test_curve25519_kex_uses_rfc7748_alice_and_bob() -> None:
    # Our client is Alice (rng = her private key), the server sends Bob's public key: Q_C must
    # be Alice's public key and K must be mpint(the RFC 7748 shared secret read big-endian).
    client = make_client(alg.KEX_CURVE25519_SHA256, rng=StreamRng(b"", stream=RFC7748_ALICE))
    (init,) = client.start()
    assert init == b"\x1e" + string(bytes.fromhex(RFC7748_ALICE_PUB))
    reply = (b"\x1f" + string(HOST_KEY_BLOB) + string(bytes.fromhex(RFC7748_BOB_PUB))
             + string(b"sig"))
    result = client.receive(reply)
    assert isinstance(result, kex.KexResult)
    assert result.shared_secret == b"\x00\x00\x00\x20" + bytes.fromhex(RFC7748_SHARED)
    assert result.signature == b"sig"
    assert result.host_key_blob == HOST_KEY_BLOB


# --- ML-KEM-768: X-Wing draft vector (keygen from seed + decapsulation) ----------------------
# draft-connolly-cfrg-xwing-kem-08, appendix C, first vector.  X-Wing expands the 32-byte seed
# with SHAKE-256 to 96 bytes: bytes 0..63 are the ML-KEM-768 seed (d || z), 64..95 the X25519
# private key; pk = ML-KEM pk || X25519 pk and ct = ML-KEM ct || X25519 pk, which is exactly
# the C_INIT / S_REPLY layout of mlkem768x25519-sha256.  ss = SHA3-256(ss_M || ss_X || ct_X ||
# pk_X || "\.//^\"), so matching it proves both the ML-KEM public key and decapsulation.
XWING_SEED = bytes.fromhex("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
XWING_SS = bytes.fromhex("d2df0522128f09dd8e2c92b1e905c793d8f57a54c3da25861f10bf4ca613e384")
XWING_PK = bytes.fromhex(
    "e2236b35a8c24b39b10aa1323a96a919a2ced88400633a7b07131713fc14b2b5b19cfc3da5fa"
    "1a92c49f25513e0fd30d6b1611c9ab9635d7086727a4b7d21d34244e66969cf15b3b2a785329"
    "f61b096b277ea037383479a6b556de7231fe4b7fa9c9ac24c0699a0018a5253401bacfa905ca"
    "816573e56a2d2e067e9b7287533ba13a937dedb31fa44baced40769923610034ae31e619a170"
    "245199b3c5c39864859fe1b4c9717a07c30495bdfb98a0a002ccf56c1286cef5041dede3c44c"
    "f16bf562c7448518026b3d8b9940680abd38a1575fd27b58da063bfac32c39c30869374c05c1"
    "aeb1898b6b303cc68be455346ee0af699636224a148ca2aea10463111c709f69b69c70ce8538"
    "746698c4c60a9aef0030c7924ceec42a5d36816f545eae13293460b3acb37ea0e13d70e4aa78"
    "686da398a8397c08eaf96882113fe4f7bad4da40b0501e1c753efe73053c87014e8661c33099"
    "afe8bede414a5b1aa27d8392b3e131e9a70c1055878240cad0f40d5fe3cdf85236ead97e2a97"
    "448363b2808caafd516cd25052c5c362543c2517e4acd0e60ec07163009b6425fc32277acee7"
    "1c24bab53ed9f29e74c66a0a3564955998d76b96a9a8b50d1635a4d7a67eb42df5644d330457"
    "293a8042f53cc7a69288f17ed55827e82b28e82665a86a14fbd96645eca8172c044f83bc0d8c"
    "0b4c8626985631ca87af829068f1358963cb333664ca482763ba3b3bb208577f9ba6ac62c25f"
    "76592743b64be519317714cb4102cb7b2f9a25b2b4f0615de31decd9ca55026d6da0b65111b1"
    "6fe52feed8a487e144462a6dba93728f500b6ffc49e515569ef25fed17aff520507368253525"
    "860f58be3be61c964604a6ac814e6935596402a520a4670b3d284318866593d15a4bb01c35e3"
    "e587ee0c67d2880d6f2407fb7a70712b838deb96c5d7bf2b44bcf6038ccbe33fbcf51a54a584"
    "fe90083c91c7a6d43d4fb15f48c60c2fd66e0a8aad4ad64e5c42bb8877c0ebec2b5e387c8a98"
    "8fdc23beb9e16c8757781e0a1499c61e138c21f216c29d076979871caa6942bafc090544bee9"
    "9b54b16cb9a9a364d6246d9f42cce53c66b59c45c8f9ae9299a75d15180c3c952151a91b7a10"
    "772429dc4cbae6fcc622fa8018c63439f890630b9928db6bb7f9438ae4065ed34d73d486f3f5"
    "2f90f0807dc88dfdd8c728e954f1ac35c06c000ce41a0582580e3bb57b672972890ac5e7988e"
    "7850657116f1b57d0809aaedec0bede1ae148148311c6f7e317346e5189fb8cd635b986f8c0b"
    "dd27641c584b778b3a911a80be1c9692ab8e1bbb12839573cce19df183b45835bbb55052f9fc"
    "66a1678ef2a36dea78411e6c8d60501b4e60592d13698a943b509185db912e2ea10be0617123"
    "6b327c71716094c964a68b03377f513a05bcd99c1f346583bb052977a10a12adfc758034e561"
    "7da4c1276585e5774e1f3b9978b09d0e9c44d3bc86151c43aad185712717340223ac381d2115"
    "0a04294e97bb13bbda21b5a182b6da969e19a7fd072737fa8e880a53c2428e3d049b7d219740"
    "5296ddb361912a7bcf4827ced611d0c7a7da104dde4322095339f64a61d5bb108ff0bf4d780c"
    "ae509fb22c256914193ff7349042581237d522828824ee3bdfd07fb03f1f942d2ea179fe722f"
    "06cc03de5b69859edb06eff389b27dce59844570216223593d4ba32d9abac8cd049040ef6534"
)

XWING_CT = bytes.fromhex(
    "b83aa828d4d62b9a83ceffe1d3d3bb1ef31264643c070c5798927e41fb07914a273f8f96e782"
    "6cd5375a283d7da885304c5de0516a0f0654243dc5b97f8bfeb831f68251219aabdd723bc651"
    "2041acbaef8af44265524942b902e68ffd23221cda70b1b55d776a92d1143ea3a0c475f63ee6"
    "890157c7116dae3f62bf72f60acd2bb8cc31ce2ba0de364f52b8ed38c79d719715963a5dd384"
    "2d8e8b43ab704e4759b5327bf027c63c8fa857c4908d5a8a7b88ac7f2be394d93c3706ddd4e6"
    "98cc6ce370101f4d0213254238b4a2e8821b6e414a1cf20f6c1244b699046f5a01caa0a1a555"
    "16300b40d2048c77cc73afba79afeea9d2c0118bdf2adb8870dc328c5516cc45b1a205814103"
    "9e2c90a110a9e16b318dfb53bd49a126d6b73f215787517b8917cc01cabd107d06859854ee8b"
    "4f9861c226d3764c87339ab16c3667d2f49384e55456dd40414b70a6af841585f4c90c68725d"
    "57704ee8ee7ce6e2f9be582dbee985e038ffc346ebfb4e22158b6c84374a9ab4a44e1f91de5a"
    "ac5197f89bc5e5442f51f9a5937b102ba3beaebf6e1c58380a4a5fedce4a4e5026f88f528f59"
    "ffd2db41752b3a3d90efabe463899b7d40870c530c8841e8712b733668ed033adbfafb2d49d3"
    "7a44d4064e5863eb0af0a08d47b3cc888373bc05f7a33b841bc2587c57eb69554e8a3767b750"
    "6917b6b70498727f16eac1a36ec8d8cfaf751549f2277db277e8a55a9a5106b23a0206b4721f"
    "a9b3048552c5bd5b594d6e247f38c18c591aea7f56249c72ce7b117afcc3a8621582f9cf7178"
    "7e183dee09367976e98409ad9217a497df888042384d7707a6b78f5f7fb8409e3b5351753734"
    "61b776002d799cbad62860be70573ecbe13b246e0da7e93a52168e0fb6a9756b895ef7f0147a"
    "0dc81bfa644b088a9228160c0f9acf1379a2941cd28c06ebc80e44e17aa2f8177010afd78a97"
    "ce0868d1629ebb294c5151812c583daeb88685220f4da9118112e07041fcc24d5564a99fdbde"
    "28869fe0722387d7a9a4d16e1cc8555917e09944aa5ebaaaec2cf62693afad42a3f518fce67d"
    "273cc6c9fb5472b380e8573ec7de06a3ba2fd5f931d725b493026cb0acbd3fe62d00e4c790d9"
    "65d7a03a3c0b4222ba8c2a9a16e2ac658f572ae0e746eafc4feba023576f08942278a041fb82"
    "a70a595d5bacbf297ce2029898a71e5c3b0d1c6228b485b1ade509b35fbca7eca97b2132e7cb"
    "6bc465375146b7dceac969308ac0c2ac89e7863eb8943015b24314cafb9c7c0e85fe543d5665"
    "8c213632599efabfc1ec49dd8c88547bb2cc40c9d38cbd3099b4547840560531d0188cd1e9c2"
    "3a0ebee0a03d5577d66b1d2bcb4baaf21cc7fef1e03806ca96299df0dfbc56e1b2b43e4fc20c"
    "37f834c4af62127e7dae86c3c25a2f696ac8b589dec71d595bfbe94b5ed4bc07d800b330796f"
    "da89edb77be0294136139354eb8cd37591578f9c600dd9be8ec6219fdd507adf3397ed4d6870"
    "7b8d13b24ce4cd8fb22851bfe9d632407f31ed6f7cb1600de56f17576740ce2a32fc51450301"
    "45cfb97e63e0e41d354274a079d3e6fb2e15"
)
XWING_LABEL = b"\\.//^\\"


def _xwing_secrets() -> tuple[bytes, bytes]:
    expanded = hashlib.shake_256(XWING_SEED).digest(96)
    mlkem_key = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x_key = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    public = mlkem_key.public_key().public_bytes_raw() + x_key.public_key().public_bytes_raw()
    assert public == XWING_PK
    mlkem_secret = mlkem_key.decapsulate(XWING_CT[:1088])
    x_secret = x_key.exchange(x25519.X25519PublicKey.from_public_bytes(XWING_CT[1088:]))
    return mlkem_secret, x_secret


def test_mlkem768_keygen_from_seed_and_decapsulation_xwing_vector() -> None:
    mlkem_secret, x_secret = _xwing_secrets()
    combined = mlkem_secret + x_secret + XWING_CT[1088:] + XWING_PK[1184:] + XWING_LABEL
    assert hashlib.sha3_256(combined).digest() == XWING_SS


def test_mlkem_hybrid_client_on_xwing_vector() -> None:
    # With the X-Wing expansion as rng, C_INIT must be the published X-Wing public key, and
    # for S_REPLY = the published ciphertext K must be string(SHA-256(ss_M || ss_X)).
    rng = StreamRng(b"", stream=hashlib.shake_256(XWING_SEED).digest(96))
    client = make_client(MLKEM, rng=rng)
    (init,) = client.start()
    assert rng.calls == [64, 32]
    assert init == b"\x1e" + string(XWING_PK)
    result = client.receive(b"\x1f" + string(HOST_KEY_BLOB) + string(XWING_CT) + string(b"s"))
    assert isinstance(result, kex.KexResult)
    mlkem_secret, x_secret = _xwing_secrets()
    assert result.shared_secret == string(hashlib.sha256(mlkem_secret + x_secret).digest())
    assert len(result.shared_secret) == 4 + 32


# --- key derivation: NIST CAVS 14.1 SSH KDF vectors ----------------------------------------
# From OpenSSL's test/recipes/30-test_evp_data/evpkdf_ssh.txt ("SSHKDF tests (from NIST CAVS
# 14.1 test vectors)").  K is given already mpint-encoded, as derive_key takes it.
CAVS_SHA1 = dict(
    K="0000008055bae931c07fd824bf10add1902b6fbc7c665347383498a686929ff5a25f8e40cb6645ea814fb1a5"
      "e0a11f852f86255641e5ed986e83a78bc8269480eac0b0dfd770cab92e7a28dd87ff452466d6ae867cead63b"
      "366b1c286e6c4811a9f14c27aea14c5171d49b78c06e3735d36e6a3be321dd5fc82308f34ee1cb17fba94a59",
    H="a4ebd45934f56792b5112dcd75a1075fdc889245",
    session_id="a4ebd45934f56792b5112dcd75a1075fdc889245",
    out={"A": "e2f627c0b43f1ac1", "B": "58471445f342b181",
         # C and D are longer than one SHA-1 block: they exercise the K2 extension rule.
         "C": "1ca9d310f86d51f6cb8e7007cb2b220d55c5281ce680b533",
         "D": "2c60df8603d34cc1dbb03c11f725a44b44008851c73d6844",
         "E": "472eb8a26166ae6aa8e06868e45c3b26e6eeed06",
         "F": "e3e2fdb9d7bc21165a3dbe47e1eceb7764390bab"},
)
CAVS_SHA256 = dict(
    K="0000008100831889c603d4dc01d0d9f19f07ccadb6a9fa7662305277d59efbc872f38325de2ec2151f58649"
      "f5fd15ff3a099f0191dca69be0b9c88ef729fe74af849cc8e7479f8a5406842af88e12167607103cda449a1"
      "394c86b2c21d4083cdee216f74078d4e878b352df901727870815528ae99f74f25c21a8a39772940d871bad"
      "b39a6",
    H="f77992d066bc305419a6c1b0879008856287b95ec20c2b1be5a5c8189cadbbb1",
    session_id="15bd2e8c86d23eace4a581377ef8a3f5266dbd081cfcd01ab2b68506438228a2",
    out={"A": "3aa08d67c81310b7", "B": "cf46596878a17a87",
         "C": "871db438b8b33c2102ddab0c1f7be51ee4c2cbdf52a01a58",
         "D": "04ac13599b84c22be0f1e5f7b96def31598e6ad36be412e8",
         "E": "f00c83a8afb5d1793749d4aae825b80e67ccd7f67e08f572222ccf42126ea2f0",
         "F": "df0570749d67136095b0dda6d461676b7eeb9a386f126306d436cab16dfd1b3c"},
)


@pytest.mark.parametrize(("hash_name", "vector"), [("sha1", CAVS_SHA1),
                                                   ("sha256", CAVS_SHA256)])
def test_derive_key_nist_cavs_vectors(hash_name: str, vector: dict) -> None:  # type: ignore[type-arg]
    for letter, expected in vector["out"].items():
        got = kex.derive_key(hash_name, bytes.fromhex(vector["K"]), bytes.fromhex(vector["H"]),
                             letter.encode(), bytes.fromhex(vector["session_id"]),
                             len(expected) // 2)
        assert got.hex() == expected, letter


def _openssl_sshkdf(hash_name: str, k: bytes, h: bytes, letter: str, session_id: bytes,
                    length: int) -> bytes:
    out = subprocess.run(
        ["openssl", "kdf", "-binary", "-keylen", str(length), "-kdfopt", f"digest:{hash_name}",
         "-kdfopt", f"hexkey:{k.hex()}", "-kdfopt", f"hexxcghash:{h.hex()}",
         "-kdfopt", f"hexsession_id:{session_id.hex()}", "-kdfopt", f"type:{letter}", "SSHKDF"],
        capture_output=True, check=True)
    return out.stdout


@pytest.mark.parametrize(("hash_name", "length"), [("sha256", 100), ("sha384", 97),
                                                   ("sha512", 150), ("sha1", 41)])
def test_derive_key_long_output_matches_openssl(hash_name: str, length: int) -> None:
    # The extension rule (K2, K3, ...) for outputs several hash blocks long, against OpenSSL's
    # independent SSHKDF implementation.
    k = mpint(int.from_bytes(hashlib.sha512(b"K").digest() * 4, "big"))
    h = hashlib.new(hash_name, b"H").digest()
    session_id = hashlib.new(hash_name, b"session").digest()
    for letter in "ACF":
        ours = kex.derive_key(hash_name, k, h, letter.encode(), session_id, length)
        assert ours == _openssl_sshkdf(hash_name, k, h, letter, session_id, length)
        assert len(ours) == length


def test_derive_key_truncates_and_rejects_nonsense() -> None:
    full = kex.derive_key("sha256", b"k", b"h", b"A", b"s", 64)
    assert kex.derive_key("sha256", b"k", b"h", b"A", b"s", 20) == full[:20]
    assert kex.derive_key("sha256", b"k", b"h", b"A", b"s", 0) == b""
    with pytest.raises(ValueError):
        kex.derive_key("md5", b"k", b"h", b"A", b"s", 16)
    with pytest.raises(ValueError):
        kex.derive_key("sha256", b"k", b"h", b"AB", b"s", 16)
    with pytest.raises(ValueError):
        kex.derive_key("sha256", b"k", b"h", b"A", b"s", -1)


# --- the constants: RFC 3526 primes and NIST curve orders --------------------------------------

def _pi_times_power_of_two(bits: int) -> int:
    """floor(2^bits * pi), from Machin's formula with guard bits."""
    one = 1 << (bits + 64)

    def arctan_inverse(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            n, sign = n + 1, -sign
        return total

    return (4 * (4 * arctan_inverse(5) - arctan_inverse(239))) >> 64


@pytest.mark.parametrize(("prime", "bits", "offset"), [
    (P2048, 2048, 124476), (P4096, 4096, 240904), (P8192, 8192, 4743158)])
def test_modp_primes_follow_rfc3526_definition(prime: int, bits: int, offset: int) -> None:
    # RFC 3526: p = 2^s - 2^(s-64) - 1 + 2^64 * { [2^(s-130) pi] + offset }, generator 2.
    expected = 2**bits - 2**(bits - 64) - 1 + 2**64 * (_pi_times_power_of_two(bits - 130) + offset)
    assert prime == expected


def _openssl_integers(command: str) -> list[int]:
    text = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    return [int(m, 16) for m in re.findall(r"prim: INTEGER\s+:([0-9A-F]+)", text)]


@pytest.mark.parametrize(("prime", "group"), [(P2048, "modp_2048"), (P4096, "modp_4096"),
                                              (P8192, "modp_8192")])
def test_modp_primes_match_openssl(prime: int, group: str) -> None:
    p, g = _openssl_integers(f"openssl genpkey -genparam -algorithm DH -pkeyopt group:{group}"
                             " | openssl asn1parse")
    assert (p, g) == (prime, 2)


@pytest.mark.parametrize(("order", "curve"), [(kex._P256_ORDER, "prime256v1"),
                                              (kex._P384_ORDER, "secp384r1"),
                                              (kex._P521_ORDER, "secp521r1")])
def test_curve_orders_match_openssl(order: int, curve: str) -> None:
    # Explicit parameters: version, field prime, order, cofactor.
    integers = _openssl_integers(f"openssl ecparam -name {curve} -param_enc explicit"
                                 " | openssl asn1parse")
    assert integers[2] == order and integers[3] == 1


# --- frozen exchange-hash and key-derivation vectors ----------------------------------------
# Inputs: client rng = StreamRng(b"kat " + name), Server(name, seed=b"kat") (GEX group: RFC 3526
# 4096-bit, request 2048/3072/8192), the V_C/V_S/I_C/I_S and Ed25519 host key above; session_id
# = H.  Cross-checked once (not at test time) against paramiko 5.1.0 running the *server* side:
# its kex engines (KexCurve25519, KexNistp256, KexGroup14SHA256, KexGexSHA256) were fed our
# client's messages with the same server private values and host key, computed the same K and
# H, and produced byte-identical replies; its Transport._compute_key gave the same A/C/E keys.
FROZEN = {
    "curve25519-sha256": {
        "H": "d2a15b44d3e08216c005daa1652cdd7d1053b2e40e2c5e2bc6947dc70e6de969",
        "sha256(K)": "e4443e9a03516db29fccb90246fef63e18bdbfce1772564bf8de3ff271f071f1",
        "A16": "f993a88e0750f0f65cf321e0c9b14788",
        "C64": (
            "f4bf87349e1238a95f02402b74695a0b3289671d479f2e43e4c2e4c5fd95f70039cd985a5928f2f8"
            "c9eff88b46445e735f2a5f2437635a28d2bab6356551721e"
        ),
        "E32": "b80960e6c81ee5236578b04aef7edda4c848fc59cd8b06eefd84615e09ab7cee",
    },
    "diffie-hellman-group-exchange-sha256": {
        "H": "4a5402b41916346df0feaa2b428ffdc41c794ab927e14b59a3e23090e62e5517",
        "sha256(K)": "e25afa440d2e7c5c9c7d006df95852506e7b96524c8ae234494a134335bc54db",
        "A16": "c1331622a154c61dc1e2528c24ddea47",
        "C64": (
            "7590f6f024a34de828d3b09188a019d7bc136a459df9655b647fa97a44560b8f31266cd0f94a08c9"
            "05f45468db713bfbfacaa70d3b694f4191859d3d33a6b43b"
        ),
        "E32": "0832c4ffb65d02cf958385386c73f2ddd8360a9d7b11e4281ae38f86c029fbf7",
    },
    "diffie-hellman-group14-sha256": {
        "H": "2d77811d3bfc4fc56713290a987bed02d31110e8d4b09757f8cb1c24c0fd1bff",
        "sha256(K)": "12e7e4a2c608dffe122734523ec35413d2571eb3447a6a6cd4059d06230e1c9a",
        "A16": "eece9bbde62cd26e799b79c6893ed98e",
        "C64": (
            "dbe70c2187313474e28239bc84fcf62eacf29166fa0a1cd3b86fc90c2ef808763fa4109c8e773339"
            "1f1e2fb28e1a671c2b9563a8276788c2860d7f0784351ed4"
        ),
        "E32": "9c358cc602a021a660c758daed0a69882017d1593bb4450022d34ab46bd249ed",
    },
    "ecdh-sha2-nistp256": {
        "H": "e5cd942ffa2a7b22190c3f1e034d0e83aa08a35f0e5c0f41eb2b2b1dcd784f3a",
        "sha256(K)": "a216a4b1d480a9bfb13549c9d04e40468c00790b1517a113227ac4fa2cb1bc8d",
        "A16": "6fc5c2d503100980895f9675cec51b41",
        "C64": (
            "7e2c6e86c96f2e7506e4a081bb0505483494c1b733b733d4c6b0e9af1f787188f5c51d3bdb49e537"
            "91de68f8c81e2edce06b578cdd9763d17da8b983add430f9"
        ),
        "E32": "f20abc2b86b98271cf0b1bbdc35660ff07f7b6b3af9082df38612b1728dc2989",
    },
}


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_frozen_exchange_hash_and_keys(name: str) -> None:
    expected = FROZEN[name]
    server = Server(name, seed=b"kat")
    result = run_exchange(make_client(name, rng=StreamRng(b"kat " + name.encode())), server)
    assert result.exchange_hash.hex() == expected["H"]
    assert hashlib.sha256(result.shared_secret).hexdigest() == expected["sha256(K)"]
    h = result.exchange_hash
    iv = kex.derive_key(result.hash_name, result.shared_secret, h, b"A", h, 16)
    key = kex.derive_key(result.hash_name, result.shared_secret, h, b"C", h, 64)
    mac = kex.derive_key(result.hash_name, result.shared_secret, h, b"E", h, 32)
    assert (iv.hex(), key.hex(), mac.hex()) == (expected["A16"], expected["C64"], expected["E32"])


# --- complete exchanges against the test server ---------------------------------------------

def test_supported_is_everything_in_algorithms() -> None:
    assert kex.SUPPORTED == alg.SUPPORTED_KEX
    for name in kex.SUPPORTED:
        assert kex.hash_for(name) == HASHES[name]


@pytest.mark.parametrize("name", alg.SUPPORTED_KEX)
def test_exchange_with_simulated_server(name: str) -> None:
    server = Server(name)
    client = make_client(name)
    assert (client.name, client.hash_name) == (name, HASHES[name])
    result = run_exchange(client, server)
    assert result.shared_secret == server.K
    assert result.exchange_hash == server.H
    assert len(result.exchange_hash) == hashlib.new(HASHES[name]).digest_size
    assert result.host_key_blob == HOST_KEY_BLOB
    assert result.hash_name == HASHES[name]
    verify_signature(result)
    # Both sides derive the same keys from the same K and H.
    for letter in b"ABCDEF":
        assert (kex.derive_key(result.hash_name, result.shared_secret, result.exchange_hash,
                               bytes([letter]), result.exchange_hash, 48)
                == kex.derive_key(HASHES[name], server.K, server.H, bytes([letter]), server.H, 48))


def test_mlkem_exchanges_differ_each_time() -> None:
    a = run_exchange(make_client(MLKEM, rng=StreamRng(b"a")), Server(MLKEM))
    b = run_exchange(make_client(MLKEM, rng=StreamRng(b"b")), Server(MLKEM))
    assert a.shared_secret != b.shared_secret
    assert a.shared_secret[:4] == b"\x00\x00\x00\x20"  # string(32-byte hash), not an mpint


@pytest.mark.parametrize(("name", "exponent_bytes"), [
    (alg.KEX_DH_GROUP14_SHA256, 32), (alg.INSECURE_KEX_DH_GROUP14_SHA1, 32),
    (alg.KEX_DH_GROUP16_SHA512, 64), (alg.KEX_DH_GROUP18_SHA512, 64)])
def test_dh_public_value_and_exponent_size(name: str, exponent_bytes: int) -> None:
    # At least twice the group's security strength: 256 bits for 2048-bit p, 512 for 4096+.
    rng = StreamRng(name.encode())
    (init,) = make_client(name, rng=rng).start()
    assert rng.calls == [exponent_bytes]
    x = int.from_bytes(rng.stream[:exponent_bytes], "big") | (1 << (exponent_bytes * 8 - 1))
    assert init == b"\x1e" + mpint(pow(2, x, FIXED_GROUPS[name]))


def test_dh_public_value_falls_back_to_pow(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> int:
        raise ValueError("cryptography refused the placeholder public value")

    name = alg.KEX_DH_GROUP14_SHA256
    expected = make_client(name).start()
    monkeypatch.setattr(kex, "_openssl_generator_power", refuse)
    assert make_client(name).start() == expected
    server = Server(name)
    result = run_exchange(make_client(name), server)
    assert (result.shared_secret, result.exchange_hash) == (server.K, server.H)


def test_gex_request_and_exponent_size() -> None:
    rng = StreamRng(b"gex")
    client = make_client(GEX, rng=rng, gex_bits=(3072, 4096, 6144))
    (request,) = client.start()
    assert request == b"\x22" + uint32(3072) + uint32(4096) + uint32(6144)
    assert rng.calls == []
    server = Server(GEX)
    (init,) = client.receive(server.handle(request))  # type: ignore[misc]
    assert init[0] == 32 and rng.calls == [64]
    result = client.receive(server.handle(init))
    assert isinstance(result, kex.KexResult) and result.exchange_hash == server.H
    assert server.gex_request == (3072, 4096, 6144)


def test_gex_accepts_group_at_both_limits() -> None:
    for bits in ((2048, 2048, 4096), (1024, 3072, 4096)):
        server = Server(GEX, group=(P4096, 2))
        result = run_exchange(make_client(GEX, gex_bits=bits), server)
        assert result.exchange_hash == server.H
    server = Server(GEX, group=(P2048, 2))
    result = run_exchange(make_client(GEX, gex_bits=(2048, 2048, 2048)), server)
    assert result.exchange_hash == server.H


def test_ecdh_private_scalar_comes_from_rng() -> None:
    rng = StreamRng(b"scalar")
    (init,) = make_client(alg.KEX_ECDH_NISTP256, rng=rng).start()
    assert rng.calls == [40]  # 32-byte order + 8 bytes to make the reduction unbiased
    scalar = int.from_bytes(rng.stream[:40], "big") % (kex._P256_ORDER - 1) + 1
    public = ec.derive_private_key(scalar, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert init == b"\x1e" + string(public)


def test_result_repr_hides_shared_secret() -> None:
    name = alg.KEX_CURVE25519_SHA256
    result = run_exchange(make_client(name), Server(name))
    text = repr(result)
    assert result.shared_secret.hex() not in text and "shared_secret" not in text
    assert repr(result.shared_secret) not in text
    assert result.exchange_hash.hex() in text or repr(result.exchange_hash) in text


# --- bad input -----------------------------------------------------------------------------

def _reply_for(name: str) -> tuple[kex.ClientKex, bytes]:
    """A client that has sent its (last) init, and the valid server reply to it."""
    client = make_client(name)
    server = Server(name)
    (outgoing,) = client.start()
    if name == GEX:
        (outgoing,) = client.receive(server.handle(outgoing))  # type: ignore[misc]
    return client, server.handle(outgoing)


@pytest.mark.parametrize("name", [MLKEM, alg.KEX_CURVE25519_SHA256, alg.KEX_ECDH_NISTP384,
                                  alg.KEX_DH_GROUP14_SHA256, GEX])
def test_truncated_or_padded_reply(name: str) -> None:
    for bad in (lambda r: r[:-1], lambda r: r[:5], lambda r: r + b"\x00"):
        client, reply = _reply_for(name)
        with pytest.raises(DecodeError):
            client.receive(bad(reply))
        # Dead after an error, even for the valid reply.
        with pytest.raises(KexError):
            client.receive(reply)


@pytest.mark.parametrize("name", [MLKEM, alg.KEX_CURVE25519_SHA256, alg.KEX_ECDH_NISTP256,
                                  alg.KEX_DH_GROUP16_SHA512, GEX])
def test_wrong_message_number(name: str) -> None:
    client = make_client(name)
    with pytest.raises(KexError):
        client.receive(b"\x1f" + bytes(10))  # before start()
    client.start()
    wrong = 33 if name != GEX else 32
    with pytest.raises(KexError):
        client.receive(bytes([wrong]) + bytes(10))
    with pytest.raises(KexError):
        client.start()


def test_empty_message_and_messages_after_the_end() -> None:
    name = alg.KEX_CURVE25519_SHA256
    client, reply = _reply_for(name)
    with pytest.raises(DecodeError):
        client.receive(b"")
    assert isinstance(client.receive(reply), kex.KexResult)
    with pytest.raises(KexError):
        client.receive(reply)


def test_gex_reply_before_group() -> None:
    client = make_client(GEX)
    client.start()
    with pytest.raises(KexError):
        client.receive(b"\x21" + bytes(12))


def _curve25519_reply(server_public: bytes) -> bytes:
    return b"\x1f" + string(HOST_KEY_BLOB) + string(server_public) + string(b"sig")


# Low-order X25519 points: 0, 1 and a point of order 8; each makes the output all zero.
LOW_ORDER_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_curve25519_rejects_low_order_point(point: bytes) -> None:
    client = make_client(alg.KEX_CURVE25519_SHA256)
    client.start()
    with pytest.raises(KexError):
        client.receive(_curve25519_reply(point))


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_mlkem_hybrid_rejects_low_order_x25519_point(point: bytes) -> None:
    client = make_client(MLKEM)
    client.start()
    with pytest.raises(KexError):
        client.receive(_curve25519_reply(bytes(1088) + point))


def test_curve25519_all_zero_check_does_not_rely_on_openssl() -> None:
    class ZeroKey:
        def exchange(self, peer: object) -> bytes:
            return bytes(32)

    with pytest.raises(KexError, match="all zero"):
        kex._x25519_shared(ZeroKey(), b"\x09" + bytes(31))  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 31, 33])
def test_curve25519_rejects_wrong_length(length: int) -> None:
    client = make_client(alg.KEX_CURVE25519_SHA256)
    client.start()
    with pytest.raises(KexError):
        client.receive(_curve25519_reply(b"\x09" * length))


@pytest.mark.parametrize("length", [0, 1088, 1119, 1121, 1216])
def test_mlkem_rejects_wrong_reply_length(length: int) -> None:
    client = make_client(MLKEM)
    client.start()
    with pytest.raises(KexError):
        client.receive(_curve25519_reply(b"\x09" * length))


def _ecdh_bad_points() -> list[bytes]:
    good = ec.derive_private_key(12345, ec.SECP256R1()).public_key()
    uncompressed = good.public_bytes(serialization.Encoding.X962,
                                     serialization.PublicFormat.UncompressedPoint)
    compressed = good.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.CompressedPoint)
    off_curve = uncompressed[:-1] + bytes([uncompressed[-1] ^ 1])
    p384 = ec.derive_private_key(12345, ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return [off_curve, compressed, b"\x04" + bytes(64), b"\x05" + uncompressed[1:],
            uncompressed[:-1], p384, b""]


@pytest.mark.parametrize("point", _ecdh_bad_points())
def test_ecdh_rejects_invalid_point(point: bytes) -> None:
    client = make_client(alg.KEX_ECDH_NISTP256)
    client.start()
    with pytest.raises(KexError):
        client.receive(_curve25519_reply(point))


def _dh_reply(f: int, number: int = 31) -> bytes:
    return bytes([number]) + string(HOST_KEY_BLOB) + mpint(f) + string(b"sig")


@pytest.mark.parametrize("f", [0, 1, P2048 - 1, P2048, P2048 + 5, -1, -(P2048 - 3)])
def test_dh_rejects_f_out_of_range(f: int) -> None:
    client = make_client(alg.KEX_DH_GROUP14_SHA256)
    client.start()
    with pytest.raises(KexError, match="out of range"):
        client.receive(_dh_reply(f))


def test_dh_accepts_f_at_the_edges() -> None:
    for f in (2, P2048 - 2):
        client = make_client(alg.KEX_DH_GROUP14_SHA256)
        client.start()
        assert isinstance(client.receive(_dh_reply(f)), kex.KexResult)


def _gex_client_after_request(bits: tuple[int, int, int] = (2048, 3072, 8192)) -> kex.ClientKex:
    client = make_client(GEX, gex_bits=bits)
    client.start()
    return client


@pytest.mark.parametrize(("p", "g"), [
    (P2048, 2),  # smaller than the 3072 bits we asked for at least
    ((1 << 1023) | 1, 2),  # 1024 bits
    (P8192, 2),  # larger than the 6144 bits maximum
    (P4096 + 1, 2),  # even
    (P4096, 1), (P4096, 0), (P4096, P4096 - 1), (P4096, P4096), (P4096, -2),
    (0, 2), (-P4096, 2),
])
def test_gex_rejects_bad_group(p: int, g: int) -> None:
    client = _gex_client_after_request((3072, 4096, 6144))
    with pytest.raises(KexError):
        client.receive(b"\x1f" + mpint(p) + mpint(g))


def test_gex_rejects_f_out_of_range() -> None:
    for f in (1, P4096 - 1, 0, P4096):
        client = _gex_client_after_request()
        client.receive(b"\x1f" + mpint(P4096) + mpint(2))
        with pytest.raises(KexError, match="out of range"):
            client.receive(_dh_reply(f, 33))


def test_gex_group_message_truncated_or_padded() -> None:
    group = b"\x1f" + mpint(P4096) + mpint(2)
    for bad in (group[:-1], group + b"\x00", b"\x1f"):
        client = _gex_client_after_request()
        with pytest.raises(DecodeError):
            client.receive(bad)


# --- argument checking -----------------------------------------------------------------------

def test_unknown_method() -> None:
    with pytest.raises(KexError):
        make_client("diffie-hellman-group1-sha1")
    with pytest.raises(KexError):
        kex.hash_for("ext-info-c")


@pytest.mark.parametrize("bits", [(512, 2048, 4096), (2048, 1024, 4096), (2048, 4096, 3072),
                                  (2048, 3072, 16384), (2048, 3072)])
def test_bad_gex_bits(bits: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        make_client(GEX, gex_bits=bits)


def test_transcript_arguments_are_checked() -> None:
    common = dict(rng=StreamRng(b"x"), client_version=V_C, server_version=V_S,
                  client_kexinit=I_C, server_kexinit=I_S)
    name = alg.KEX_CURVE25519_SHA256
    for key, value in (("client_version", V_C + b"\r\n"), ("server_version", V_S + b"\n"),
                       ("client_kexinit", I_C[1:]), ("server_kexinit", b"")):
        with pytest.raises(ValueError):
            kex.new_client_kex(name, **{**common, key: value})  # type: ignore[arg-type]


def test_rng_returning_wrong_length() -> None:
    client = make_client(alg.KEX_CURVE25519_SHA256, rng=lambda n: bytes(n - 1))
    with pytest.raises(ValueError):
        client.start()
