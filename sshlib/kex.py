"""Client side of every SSH key exchange method, plus the exchange hash and key derivation.

Sans-IO on purpose: a `ClientKex` is fed the server's kex messages (numbers 30..49) and answers
with payloads to send or the final `KexResult`.  It never touches sockets, clocks or the OS
random source; randomness comes from the caller's ``rng(n) -> bytes`` so that the handshake layer
stays testable with fixed inputs.  All group arithmetic on secrets is done by `cryptography`;
this module only builds and parses messages, validates what the server sent and hashes.

Specifications: RFC 4253 section 7.2 (key derivation) and 8 (DH, exchange hash), RFC 8268 (groups
14/16/18 with SHA-2, primes from RFC 3526), RFC 4419 (group exchange), RFC 5656 (ECDH), RFC 8731
(curve25519-sha256) and draft-ietf-sshm-mlkem-hybrid-kex / OpenSSH (mlkem768x25519-sha256).
"""

from __future__ import annotations

import abc
import hashlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from . import algorithms as alg
from .errors import DecodeError, KexError
from .wire import Reader, byte, mpint, string, uint32

__all__ = [
    "KexResult",
    "ClientKex",
    "new_client_kex",
    "derive_key",
    "hash_for",
    "SUPPORTED",
]

log = logging.getLogger("sshlib.kex")

Rng = Callable[[int], bytes]

# --- message numbers (RFC 4253 12, RFC 4419 5, RFC 5656 7.1, mlkem draft) -------------------
MSG_KEXINIT = 20
MSG_KEXDH_INIT = 30  # also SSH_MSG_KEX_ECDH_INIT and SSH_MSG_KEX_HYBRID_INIT
MSG_KEXDH_REPLY = 31  # also SSH_MSG_KEX_ECDH_REPLY, SSH_MSG_KEX_HYBRID_REPLY
MSG_KEX_DH_GEX_GROUP = 31
MSG_KEX_DH_GEX_INIT = 32
MSG_KEX_DH_GEX_REPLY = 33
MSG_KEX_DH_GEX_REQUEST = 34

_HASHES = frozenset({"sha1", "sha256", "sha384", "sha512"})

# RFC 4419 section 3: "min" and "max" SHOULD stay within 1024..8192 bits.
GEX_MIN_BITS = 1024
GEX_MAX_BITS = 8192

# ML-KEM-768 sizes (FIPS 203) and X25519 (RFC 7748).
_MLKEM768_PUBLIC = 1184
_MLKEM768_CIPHERTEXT = 1088
_X25519_LEN = 32


# --- constants, checked by tests against OpenSSL and the RFC 3526 formula ---------------------
# RFC 3526 MODP primes (generator 2), used by RFC 8268 groups 14, 16 and 18.
_MODP_2048_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)

_MODP_4096_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
    16,
)

_MODP_8192_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026"
    "C1D4DCB2602646DEC9751E763DBA37BDF8FF9406AD9E530EE5DB382F413001AE"
    "B06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1B"
    "DB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92EC"
    "F032EA15D1721D03F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E"
    "59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AA"
    "CC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76"
    "F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468"
    "043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DBE115974A3926F12FEE5E4"
    "38777CB6A932DF8CD8BEC4D073B931BA3BC832B68D9DD300741FA7BF8AFC47ED"
    "2576F6936BA424663AAB639C5AE4F5683423B4742BF1C978238F16CBE39D652D"
    "E3FDB8BEFC848AD922222E04A4037C0713EB57A81A23F0C73473FC646CEA306B"
    "4BCBC8862F8385DDFA9D4B7FA2C087E879683303ED5BDD3A062B3CF5B3A278A6"
    "6D2A13F83F44F82DDF310EE074AB6A364597E899A0255DC164F31CC50846851D"
    "F9AB48195DED7EA1B1D510BD7EE74D73FAF36BC31ECFA268359046F4EB879F92"
    "4009438B481C6CD7889A002ED5EE382BC9190DA6FC026E479558E4475677E9AA"
    "9E3050E2765694DFC81F56E880B96E7160C980DD98EDD3DFFFFFFFFFFFFFFFFF",
    16,
)

_P256_ORDER = int(
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551",
    16,
)
_P384_ORDER = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
    "581A0DB248B0A77AECEC196ACCC52973",
    16,
)
_P521_ORDER = int(
    "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
    "FFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E9138"
    "6409",
    16,
)

_GROUP_G = 2


# --- optional backends ----------------------------------------------------------------------------
class _FFDHBackend:
    """cryptography's finite-field DH classes, fetched once.

    cryptography 50 deprecates FFDH and warns on every attribute access of its ``dh`` module; we
    take the classes once at import with that warning silenced so users don't see it on every key
    exchange.  If a later cryptography drops FFDH, the FFDH methods simply leave `SUPPORTED`.
    """

    def __init__(self, parameter_numbers: Any, public_numbers: Any, private_numbers: Any) -> None:
        self.parameter_numbers = parameter_numbers
        self.public_numbers = public_numbers
        self.private_numbers = private_numbers


def _load_ffdh() -> _FFDHBackend | None:
    try:
        from cryptography.hazmat.primitives.asymmetric import dh

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _FFDHBackend(dh.DHParameterNumbers, dh.DHPublicNumbers, dh.DHPrivateNumbers)
    except (ImportError, AttributeError):  # pragma: no cover - depends on the installed version
        return None


def _load_mlkem() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import mlkem

        mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(64))  # backend may lack ML-KEM
        return mlkem
    except Exception:  # pragma: no cover - ImportError / UnsupportedAlgorithm on old builds
        return None


_FFDH = _load_ffdh()
_MLKEM = _load_mlkem()


# --- results and the abstract interface -----------------------------------------------------------
@dataclass(frozen=True)
class KexResult:
    """What one key exchange produced; the caller verifies `signature` over `exchange_hash`."""

    #: K exactly as it enters the exchange hash and `derive_key`: mpint(K) for DH/ECDH/X25519,
    #: string(K) for mlkem768x25519-sha256.  Secret: kept out of repr.
    shared_secret: bytes = field(repr=False)
    exchange_hash: bytes
    host_key_blob: bytes
    signature: bytes
    hash_name: str


class ClientKex(abc.ABC):
    """One client-side key exchange; make a new one (via `new_client_kex`) for every exchange."""

    name: str
    hash_name: str

    @abc.abstractmethod
    def start(self) -> list[bytes]:
        """Payloads the client sends first (message number byte included)."""

    @abc.abstractmethod
    def receive(self, payload: bytes) -> list[bytes] | KexResult:
        """Handle one server message in the kex range (30..49).

        Returns more payloads to send, or the final `KexResult`.  Raises `KexError` or
        `DecodeError` for anything unexpected or invalid; the object is unusable afterwards.
        """


@dataclass(frozen=True)
class _Transcript:
    """The fixed inputs of the exchange hash: V_C, V_S, I_C, I_S."""

    client_version: bytes
    server_version: bytes
    client_kexinit: bytes
    server_kexinit: bytes

    def prefix(self, host_key_blob: bytes) -> bytes:
        return b"".join((string(self.client_version), string(self.server_version),
                         string(self.client_kexinit), string(self.server_kexinit),
                         string(host_key_blob)))


def _random(rng: Rng, count: int) -> bytes:
    data = rng(count)
    if not isinstance(data, (bytes, bytearray)) or len(data) != count:
        raise ValueError(f"rng({count}) must return {count} bytes")
    return bytes(data)


class _KexBase(ClientKex):
    """Shared state machine: one expected message number at a time, dead after any error."""

    def __init__(self, name: str, hash_name: str, transcript: _Transcript, rng: Rng) -> None:
        self.name = name
        self.hash_name = hash_name
        self._transcript = transcript
        self._rng = rng
        self._started = False
        self._expected: int | None = None  # message number we accept next; None = none

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def start(self) -> list[bytes]:
        if self._started:
            raise KexError(f"{self.name}: key exchange already started")
        self._started = True
        try:
            return self._start()
        except BaseException:
            self._finish()
            raise

    def receive(self, payload: bytes) -> list[bytes] | KexResult:
        if not payload:
            raise DecodeError("empty key exchange message")
        number = payload[0]
        expected = self._expected
        if expected is None:
            state = "not started" if not self._started else "finished"
            raise KexError(f"{self.name}: unexpected message {number}: key exchange {state}")
        if number != expected:
            self._finish()
            raise KexError(f"{self.name}: expected message {expected}, got {number}")
        try:
            return self._handle(Reader(payload, 1))
        except BaseException:
            self._finish()
            raise

    def _hash(self, *parts: bytes) -> bytes:
        return hashlib.new(self.hash_name, b"".join(parts)).digest()

    def _finish(self) -> None:
        """Accept nothing more and drop private values."""
        self._expected = None
        self._forget()

    @abc.abstractmethod
    def _start(self) -> list[bytes]: ...

    @abc.abstractmethod
    def _handle(self, reader: Reader) -> list[bytes] | KexResult: ...

    @abc.abstractmethod
    def _forget(self) -> None: ...


# --- ECDH-shaped methods: one INIT with our public value, one REPLY (K_S, Q_S, sig) -------------
class _EcdhShaped(_KexBase):
    """RFC 5656 message flow, shared by ECDH, curve25519 and the ML-KEM hybrid.

    H = HASH(V_C || V_S || I_C || I_S || K_S || string Q_C || string Q_S || K)
    """

    _client_public: bytes = b""

    def _start(self) -> list[bytes]:
        self._client_public = self._make_public()
        self._expected = MSG_KEXDH_REPLY
        return [byte(MSG_KEXDH_INIT) + string(self._client_public)]

    def _handle(self, reader: Reader) -> KexResult:
        host_key_blob = reader.string()
        server_public = reader.string()
        signature = reader.string()
        reader.check_end()
        shared_secret = self._shared_secret(server_public)
        exchange_hash = self._hash(self._transcript.prefix(host_key_blob),
                                   string(self._client_public), string(server_public),
                                   shared_secret)
        self._finish()
        log.debug("%s complete (host key %d bytes)", self.name, len(host_key_blob))
        return KexResult(shared_secret, exchange_hash, host_key_blob, signature, self.hash_name)

    @abc.abstractmethod
    def _make_public(self) -> bytes:
        """Generate our key pair and return the public value Q_C."""

    @abc.abstractmethod
    def _shared_secret(self, server_public: bytes) -> bytes:
        """Validate Q_S and return K encoded for the exchange hash."""


def _x25519_shared(private: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    """Raw X25519 output, refusing malformed keys and the all-zero result (RFC 7748 6.1)."""
    if len(peer) != _X25519_LEN:
        raise KexError(f"X25519 public key is {len(peer)} bytes, expected {_X25519_LEN}")
    try:
        shared = private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        # OpenSSL refuses low-order points (all-zero output) with a ValueError.
        raise KexError("X25519 key agreement failed: low-order public key") from None
    if shared == bytes(len(shared)):
        raise KexError("X25519 shared secret is all zero: low-order public key")
    return shared


class _Curve25519Kex(_EcdhShaped):
    """curve25519-sha256 (RFC 8731): K is the X25519 output read as a big-endian integer."""

    _private: x25519.X25519PrivateKey | None = None

    def _make_public(self) -> bytes:
        self._private = x25519.X25519PrivateKey.from_private_bytes(_random(self._rng, 32))
        return self._private.public_key().public_bytes_raw()

    def _shared_secret(self, server_public: bytes) -> bytes:
        assert self._private is not None
        shared = _x25519_shared(self._private, server_public)
        return mpint(int.from_bytes(shared, "big"))

    def _forget(self) -> None:
        self._private = None


class _EcdhNistKex(_EcdhShaped):
    """ecdh-sha2-nistp256/384/521 (RFC 5656): K is the x-coordinate of the shared point."""

    _private: ec.EllipticCurvePrivateKey | None = None

    def __init__(self, name: str, hash_name: str, transcript: _Transcript, rng: Rng,
                 curve: ec.EllipticCurve, order: int) -> None:
        super().__init__(name, hash_name, transcript, rng)
        self._curve = curve
        self._order = order
        self._coordinate_len = (curve.key_size + 7) // 8

    def _make_public(self) -> bytes:
        # 64 extra random bits make the bias of the modular reduction negligible (FIPS 186-5 A.4.1).
        raw = _random(self._rng, (self._order.bit_length() + 7) // 8 + 8)
        scalar = int.from_bytes(raw, "big") % (self._order - 1) + 1
        self._private = ec.derive_private_key(scalar, self._curve)
        return self._private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def _shared_secret(self, server_public: bytes) -> bytes:
        assert self._private is not None
        # RFC 5656 sections 4 and 7.1: Q_S is an uncompressed point on our curve.
        if len(server_public) != 1 + 2 * self._coordinate_len or server_public[0] != 0x04:
            raise KexError(f"{self.name}: server public key is not an uncompressed "
                           f"{self._curve.name} point")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, server_public)
            shared = self._private.exchange(ec.ECDH(), peer)
        except ValueError:
            raise KexError(f"{self.name}: server public key is not on the curve") from None
        return mpint(int.from_bytes(shared, "big"))

    def _forget(self) -> None:
        self._private = None


class _MlkemHybridKex(_EcdhShaped):
    """mlkem768x25519-sha256: ML-KEM-768 encapsulation key || X25519 key, answered by
    ciphertext || X25519 key; K = SHA-256(mlkem secret || x25519 secret), sent as a *string*."""

    _mlkem_private: Any = None
    _x_private: x25519.X25519PrivateKey | None = None

    def _make_public(self) -> bytes:
        assert _MLKEM is not None
        self._mlkem_private = _MLKEM.MLKEM768PrivateKey.from_seed_bytes(_random(self._rng, 64))
        self._x_private = x25519.X25519PrivateKey.from_private_bytes(_random(self._rng, 32))
        mlkem_public: bytes = self._mlkem_private.public_key().public_bytes_raw()
        return mlkem_public + self._x_private.public_key().public_bytes_raw()

    def _shared_secret(self, server_public: bytes) -> bytes:
        assert self._mlkem_private is not None and self._x_private is not None
        if len(server_public) != _MLKEM768_CIPHERTEXT + _X25519_LEN:
            raise KexError(f"{self.name}: server reply is {len(server_public)} bytes, expected "
                           f"{_MLKEM768_CIPHERTEXT + _X25519_LEN}")
        ciphertext = server_public[:_MLKEM768_CIPHERTEXT]
        try:
            mlkem_secret: bytes = self._mlkem_private.decapsulate(ciphertext)
        except ValueError:
            raise KexError(f"{self.name}: ML-KEM decapsulation failed") from None
        x_secret = _x25519_shared(self._x_private, server_public[_MLKEM768_CIPHERTEXT:])
        return string(hashlib.sha256(mlkem_secret + x_secret).digest())

    def _forget(self) -> None:
        self._mlkem_private = None
        self._x_private = None


# --- finite-field Diffie-Hellman ------------------------------------------------------------------
def _exponent_bits(prime_bits: int) -> int:
    """Private exponent size: at least twice the group's security strength (NIST SP 800-57:
    2048-bit p ~ 112 bits, 3072 ~ 128, 4096+ ~ 150..200)."""
    return 256 if prime_bits <= 3072 else 512


def _openssl_generator_power(params: Any, g: int, x: int) -> int:
    """g^x mod p computed by OpenSSL (constant time).

    cryptography only builds a DH private key from both x and its public value y, but its
    exchange() never reads the stored y.  So a key holding a placeholder public value,
    "exchanged" with the generator g, yields exactly y = g^x mod p.
    """
    assert _FFDH is not None
    probe = _FFDH.private_numbers(x, _FFDH.public_numbers(g, params)).private_key()
    generator = _FFDH.public_numbers(g, params).public_key()
    return int.from_bytes(probe.exchange(generator), "big")


class _DiffieHellman:
    """Our half of one FFDH agreement in group (p, g).

    For the fixed RFC 3526 groups OpenSSL does the arithmetic.  For a group the server
    chooses (GEX), cryptography validates p with a full safe-prime test on every key object
    it builds (about 1.7 s each for 3072 bits, several per exchange, measured), which makes
    GEX unusable; there we use Python's pow(), as the OpenSSH client also skips that test.
    """

    def __init__(self, p: int, g: int, rng: Rng, use_openssl: bool = True) -> None:
        assert _FFDH is not None
        bits = _exponent_bits(p.bit_length())
        # Top bit set: x has full size, and 1 < x < p - 1 holds for every group we accept.
        x = int.from_bytes(_random(rng, bits // 8), "big") | (1 << (bits - 1))
        self.p = p
        self.g = g
        self._use_openssl = use_openssl
        self._params = _FFDH.parameter_numbers(p, g)
        self._x: int | None = None
        self._private: Any = None
        if use_openssl:
            self.public = self._public_value(x)
        else:
            self.public = pow(g, x, p)
            self._x = x
        if not 1 < self.public < p - 1:
            raise KexError("our DH public value is degenerate: the group's generator is bad")
        if use_openssl:
            self._private = _FFDH.private_numbers(
                x, _FFDH.public_numbers(self.public, self._params)).private_key()

    def _public_value(self, x: int) -> int:
        """y = g^x mod p, by OpenSSL when possible (see `_openssl_generator_power`)."""
        try:
            return _openssl_generator_power(self._params, self.g, x)
        except ValueError:
            # Should a cryptography release refuse that trick, pow() is an acceptable fallback
            # for the *public* value; its only cost is that Python's pow() is not constant time.
            return pow(self.g, x, self.p)

    def check_peer(self, value: int, what: str = "f") -> None:
        # RFC 4253 section 8: values outside [1, p-1] MUST NOT be accepted; 1 and p-1 generate
        # subgroups of order 1 and 2, so they are refused too.
        if not 1 < value < self.p - 1:
            raise KexError(f"server DH value {what} is out of range (must be 1 < {what} < p-1)")

    def shared(self, peer_value: int) -> int:
        assert _FFDH is not None
        self.check_peer(peer_value)
        if not self._use_openssl:
            if self._x is None:
                raise KexError("DH key agreement already finished")
            secret = pow(peer_value, self._x, self.p)
            if not 1 < secret < self.p - 1:
                raise KexError("DH shared secret is degenerate")
            return secret
        assert self._private is not None
        try:
            peer = _FFDH.public_numbers(peer_value, self._params).public_key()
            raw: bytes = self._private.exchange(peer)
        except ValueError:
            raise KexError("DH key agreement failed: invalid server value") from None
        secret = int.from_bytes(raw, "big")
        if not 1 < secret < self.p - 1:
            raise KexError("DH shared secret is degenerate")
        return secret

    def forget(self) -> None:
        self._private = None
        self._x = None


class _DhGroupKex(_KexBase):
    """diffie-hellman-group14/16/18 (RFC 4253 8, RFC 8268): fixed group.

    H = HASH(V_C || V_S || I_C || I_S || K_S || mpint e || mpint f || mpint K)
    """

    _dh: _DiffieHellman | None = None

    def __init__(self, name: str, hash_name: str, transcript: _Transcript, rng: Rng,
                 prime: int) -> None:
        super().__init__(name, hash_name, transcript, rng)
        self._prime = prime

    def _start(self) -> list[bytes]:
        self._dh = _DiffieHellman(self._prime, _GROUP_G, self._rng)
        self._expected = MSG_KEXDH_REPLY
        return [byte(MSG_KEXDH_INIT) + mpint(self._dh.public)]

    def _handle(self, reader: Reader) -> KexResult:
        assert self._dh is not None
        host_key_blob = reader.string()
        f = reader.mpint()
        signature = reader.string()
        reader.check_end()
        shared_secret = mpint(self._dh.shared(f))
        exchange_hash = self._hash(self._transcript.prefix(host_key_blob), mpint(self._dh.public),
                                   mpint(f), shared_secret)
        self._finish()
        log.debug("%s complete (host key %d bytes)", self.name, len(host_key_blob))
        return KexResult(shared_secret, exchange_hash, host_key_blob, signature, self.hash_name)

    def _forget(self) -> None:
        if self._dh is not None:
            self._dh.forget()


class _DhGexKex(_KexBase):
    """diffie-hellman-group-exchange-sha256 (RFC 4419): the server picks the group.

    H = HASH(V_C || V_S || I_C || I_S || K_S || uint32 min || uint32 n || uint32 max ||
             mpint p || mpint g || mpint e || mpint f || mpint K)
    """

    _dh: _DiffieHellman | None = None

    def __init__(self, name: str, hash_name: str, transcript: _Transcript, rng: Rng,
                 bits: tuple[int, int, int]) -> None:
        super().__init__(name, hash_name, transcript, rng)
        self._bits = bits

    def _start(self) -> list[bytes]:
        minimum, preferred, maximum = self._bits
        self._expected = MSG_KEX_DH_GEX_GROUP
        return [byte(MSG_KEX_DH_GEX_REQUEST) + uint32(minimum) + uint32(preferred)
                + uint32(maximum)]

    def _handle(self, reader: Reader) -> list[bytes] | KexResult:
        if self._dh is None:
            return self._handle_group(reader)
        return self._handle_reply(reader)

    def _handle_group(self, reader: Reader) -> list[bytes]:
        p = reader.mpint()
        g = reader.mpint()
        reader.check_end()
        minimum, _, maximum = self._bits
        bits = p.bit_length() if p > 0 else 0
        if not minimum <= bits <= maximum:
            raise KexError(f"{self.name}: server's group has {bits} bits, we asked for "
                           f"{minimum}..{maximum}")
        if p % 2 == 0:
            raise KexError(f"{self.name}: server's group modulus is even")
        if not 2 <= g <= p - 2:
            raise KexError(f"{self.name}: server's generator is out of range (2 <= g <= p-2)")
        self._dh = _DiffieHellman(p, g, self._rng, use_openssl=False)
        self._expected = MSG_KEX_DH_GEX_REPLY
        log.debug("%s: server chose a %d-bit group", self.name, bits)
        return [byte(MSG_KEX_DH_GEX_INIT) + mpint(self._dh.public)]

    def _handle_reply(self, reader: Reader) -> KexResult:
        assert self._dh is not None
        host_key_blob = reader.string()
        f = reader.mpint()
        signature = reader.string()
        reader.check_end()
        shared_secret = mpint(self._dh.shared(f))
        minimum, preferred, maximum = self._bits
        exchange_hash = self._hash(
            self._transcript.prefix(host_key_blob),
            uint32(minimum), uint32(preferred), uint32(maximum),
            mpint(self._dh.p), mpint(self._dh.g), mpint(self._dh.public), mpint(f),
            shared_secret)
        self._finish()
        log.debug("%s complete (host key %d bytes)", self.name, len(host_key_blob))
        return KexResult(shared_secret, exchange_hash, host_key_blob, signature, self.hash_name)

    def _forget(self) -> None:
        if self._dh is not None:
            self._dh.forget()


# --- registry -------------------------------------------------------------------------------------
_HASH_FOR: dict[str, str] = {
    alg.KEX_MLKEM768X25519_SHA256: "sha256",
    alg.KEX_CURVE25519_SHA256: "sha256",
    alg.KEX_CURVE25519_SHA256_LIBSSH: "sha256",
    alg.KEX_ECDH_NISTP256: "sha256",
    alg.KEX_ECDH_NISTP384: "sha384",
    alg.KEX_ECDH_NISTP521: "sha512",
    alg.KEX_DH_GEX_SHA256: "sha256",
    alg.KEX_DH_GROUP16_SHA512: "sha512",
    alg.KEX_DH_GROUP18_SHA512: "sha512",
    alg.KEX_DH_GROUP14_SHA256: "sha256",
    alg.INSECURE_KEX_DH_GROUP14_SHA1: "sha1",
}

_FIXED_GROUPS: dict[str, int] = {
    alg.KEX_DH_GROUP14_SHA256: _MODP_2048_P,
    alg.INSECURE_KEX_DH_GROUP14_SHA1: _MODP_2048_P,
    alg.KEX_DH_GROUP16_SHA512: _MODP_4096_P,
    alg.KEX_DH_GROUP18_SHA512: _MODP_8192_P,
}

_NIST_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    alg.KEX_ECDH_NISTP256: (ec.SECP256R1(), _P256_ORDER),
    alg.KEX_ECDH_NISTP384: (ec.SECP384R1(), _P384_ORDER),
    alg.KEX_ECDH_NISTP521: (ec.SECP521R1(), _P521_ORDER),
}


def _available(name: str) -> bool:
    if name == alg.KEX_MLKEM768X25519_SHA256:
        return _MLKEM is not None
    if name in _FIXED_GROUPS or name == alg.KEX_DH_GEX_SHA256:
        return _FFDH is not None
    return True


#: Key exchange names this module implements with the installed `cryptography`, in the
#: preference order of `algorithms.SUPPORTED_KEX`.
SUPPORTED: tuple[str, ...] = tuple(n for n in alg.SUPPORTED_KEX if n in _HASH_FOR and _available(n))


def hash_for(name: str) -> str:
    """The hash a key exchange method uses for H and key derivation ("sha256", ...)."""
    try:
        return _HASH_FOR[name]
    except KeyError:
        raise KexError(f"unsupported key exchange method {name!r}") from None


def _check_gex_bits(bits: tuple[int, int, int]) -> tuple[int, int, int]:
    if len(bits) != 3 or not all(isinstance(b, int) for b in bits):
        raise ValueError("gex_bits must be a (min, preferred, max) tuple of ints")
    minimum, preferred, maximum = bits
    if not GEX_MIN_BITS <= minimum <= preferred <= maximum <= GEX_MAX_BITS:
        raise ValueError(f"gex_bits must satisfy {GEX_MIN_BITS} <= min <= preferred <= max "
                         f"<= {GEX_MAX_BITS}, got {bits}")
    return minimum, preferred, maximum


def new_client_kex(name: str, *, rng: Callable[[int], bytes], client_version: bytes,
                   server_version: bytes, client_kexinit: bytes, server_kexinit: bytes,
                   gex_bits: tuple[int, int, int] = (2048, 3072, 8192)) -> ClientKex:
    """Make the client side of key exchange `name` for one exchange.

    The versions are the identification strings without CR LF; the KEXINITs are the complete
    payloads starting with byte 20.  Both enter the exchange hash verbatim, so mistakes here only
    show up later as a bad host key signature: they are checked now and raise ValueError.
    """
    if name not in SUPPORTED:
        raise KexError(f"unsupported key exchange method {name!r}")
    for label, version in (("client_version", client_version),
                           ("server_version", server_version)):
        if b"\r" in version or b"\n" in version:
            raise ValueError(f"{label} must not include CR or LF")
    for label, payload in (("client_kexinit", client_kexinit),
                           ("server_kexinit", server_kexinit)):
        if not payload or payload[0] != MSG_KEXINIT:
            raise ValueError(f"{label} must be a complete KEXINIT payload starting with byte 20")
    transcript = _Transcript(bytes(client_version), bytes(server_version),
                             bytes(client_kexinit), bytes(server_kexinit))
    hash_name = _HASH_FOR[name]
    if name == alg.KEX_MLKEM768X25519_SHA256:
        return _MlkemHybridKex(name, hash_name, transcript, rng)
    if name in (alg.KEX_CURVE25519_SHA256, alg.KEX_CURVE25519_SHA256_LIBSSH):
        return _Curve25519Kex(name, hash_name, transcript, rng)
    if name in _NIST_CURVES:
        curve, order = _NIST_CURVES[name]
        return _EcdhNistKex(name, hash_name, transcript, rng, curve, order)
    if name in _FIXED_GROUPS:
        return _DhGroupKex(name, hash_name, transcript, rng, _FIXED_GROUPS[name])
    if name == alg.KEX_DH_GEX_SHA256:
        return _DhGexKex(name, hash_name, transcript, rng, _check_gex_bits(gex_bits))
    raise KexError(f"unsupported key exchange method {name!r}")  # pragma: no cover


def derive_key(hash_name: str, shared_secret: bytes, exchange_hash: bytes, letter: bytes,
               session_id: bytes, length: int) -> bytes:
    """RFC 4253 section 7.2: key material for one direction and purpose ("A".."F").

    K1 = HASH(K || H || letter || session_id), Kn = HASH(K || H || K1 || ... || Kn-1), and the
    concatenation is cut to `length`.  `shared_secret` is the encoded K from `KexResult`.
    """
    if hash_name not in _HASHES:
        raise ValueError(f"unknown hash {hash_name!r}")
    if len(letter) != 1:
        raise ValueError("letter must be a single byte such as b'A'")
    if length < 0:
        raise ValueError("length must not be negative")
    prefix = shared_secret + exchange_hash
    out = hashlib.new(hash_name, prefix + letter + session_id).digest()
    while len(out) < length:
        out += hashlib.new(hash_name, prefix + out).digest()
    return out[:length]
