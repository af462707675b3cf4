"""OpenSSH certificates (PROTOCOL.certkeys): parsing, checking, signing, CertSigner.

A `Certificate` is a `PublicKey` whose blob is the whole certificate, so it
travels wherever a key does: as a host key in the key exchange, as a user key
in publickey authentication, as an agent identity.  Checking one against a
time, a principal and a CA never reads a clock: the caller passes `now`.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import CertificateError, DecodeError, KeyLoadError
from ..wire import Reader, Writer, string
from .formats.text import parse_openssh_public_key
from .model import (
    MAX_NAME,
    KeyType,
    PublicKey,
    Signer,
    key_types,
    parse_public_key,
    printable,
    register_key_type,
)

__all__ = [
    "Certificate",
    "CertSigner",
    "CERT_USER",
    "CERT_HOST",
    "CERT_SUFFIX",
    "DEFAULT_USER_EXTENSIONS",
    "KNOWN_CRITICAL_OPTIONS",
    "cert_type_name",
    "parse_certificate",
    "plain_algorithm",
    "register_certificate_type",
    "sign_certificate",
]

CERT_SUFFIX = "-cert-v01@openssh.com"
CERT_USER = 1
CERT_HOST = 2
_TYPE_NAMES = {CERT_USER: "user", CERT_HOST: "host"}
_TYPE_NUMBERS = {v: k for k, v in _TYPE_NAMES.items()}
FOREVER = (1 << 64) - 1

#: Critical options OpenSSH defines; a certificate with any other is unusable.
KNOWN_CRITICAL_OPTIONS = frozenset({"force-command", "source-address", "verify-required"})
#: What ``ssh-keygen -s`` puts in a user certificate unless told otherwise.
DEFAULT_USER_EXTENSIONS: Mapping[str, str] = {
    "permit-X11-forwarding": "", "permit-agent-forwarding": "",
    "permit-port-forwarding": "", "permit-pty": "", "permit-user-rc": ""}

# Bounds for untrusted input: OpenSSH allows 256 principals (SSHKEY_CERT_MAX_PRINCIPALS).
MAX_PRINCIPALS = 256
MAX_OPTIONS = 256

#: Signature algorithms a CA may have used (OpenSSH's CASignatureAlgorithms default):
#: SHA-1 RSA signatures are refused unless the caller allows them.
_SHA1_CA_ALGORITHMS = frozenset({"ssh-rsa"})


def cert_type_name(plain_type: str) -> str:
    """The certificate key type for a plain key type (ssh-ed25519 -> ssh-ed25519-cert-v01@...)."""
    if plain_type.endswith("@openssh.com"):  # sk-ssh-ed25519@openssh.com
        return plain_type[:-len("@openssh.com")] + CERT_SUFFIX
    return plain_type + CERT_SUFFIX


def plain_algorithm(algorithm: str) -> str:
    """The signature algorithm behind a certificate algorithm (rsa-sha2-512-cert-v01@... ->
    rsa-sha2-512); other names are returned unchanged."""
    if not algorithm.endswith(CERT_SUFFIX):
        return algorithm
    base = algorithm[:-len(CERT_SUFFIX)]
    return base + "@openssh.com" if base.startswith("sk-") else base


def _read_options(raw: bytes, what: str, ordered: bool) -> dict[str, str]:
    """Packed (string name, string data) pairs; data holds one string or nothing."""
    reader = Reader(raw)
    options: dict[str, str] = {}
    last = b""
    while reader.remaining:
        if len(options) >= MAX_OPTIONS:
            raise KeyLoadError(f"certificate has more than {MAX_OPTIONS} {what}")
        name = reader.string(256)
        data = reader.string()
        if ordered and options and name <= last:
            raise KeyLoadError(f"certificate {what} are not in order or repeat {printable(name)!r}")
        last = name
        value = b""
        if data:
            inner = Reader(data)
            value = inner.string()
            inner.check_end()
        try:
            options[name.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyLoadError(f"certificate {what} are not UTF-8") from None
    return options


def _write_options(options: Mapping[str, str]) -> bytes:
    writer = Writer()
    for name in sorted(options):
        value = options[name]
        writer.string(name).string(string(value) if value else b"")
    return writer.getvalue()


class Certificate(PublicKey):
    """An OpenSSH certificate: a key, signed by a CA key, with who and when it is for.

    Attributes: `cert_type` ("user" or "host"), `key_id`, `serial`,
    `principals` (tuple of names; empty means any), `valid_after` and
    `valid_before` (seconds since the epoch; 0 and 2**64-1 mean unbounded),
    `critical_options` and `extensions` (name -> value, "" for flags),
    `public_key` (the certified key), `signature_key` (the CA key), `nonce`.
    """

    def __init__(self, blob: bytes, *, key_type: str, nonce: bytes, public_key: PublicKey,
                 serial: int, cert_type: str, key_id: str, principals: tuple[str, ...],
                 valid_after: int, valid_before: int, critical_options: dict[str, str],
                 extensions: dict[str, str], reserved: bytes, signature_key: PublicKey,
                 signature: bytes, signed_data: bytes) -> None:
        super().__init__(blob)
        self.key_type = key_type
        self.nonce = nonce
        self.public_key = public_key
        self.serial = serial
        self.cert_type = cert_type
        self.key_id = key_id
        self.principals = principals
        self.valid_after = valid_after
        self.valid_before = valid_before
        self.critical_options = critical_options
        self.extensions = extensions
        self.reserved = reserved
        self.signature_key = signature_key
        self.signature = signature
        self.signed_data = signed_data

    # --- PublicKey ------------------------------------------------------------------
    @property
    def signature_algorithms(self) -> tuple[str, ...]:
        return tuple(cert_type_name(a) for a in self.public_key.signature_algorithms)

    def signature_name(self, algorithm: str) -> str:
        return plain_algorithm(algorithm)

    @property
    def key_size(self) -> int:
        return self.public_key.key_size

    @property
    def crypto_key(self) -> Any:
        return self.public_key.crypto_key

    def fingerprint(self) -> str:
        """The certified key's fingerprint, as ``ssh-keygen -l`` prints it for a certificate."""
        return self.public_key.fingerprint()

    def verify_raw(self, data: bytes, sig: bytes, algorithm: str) -> None:
        self.public_key.verify_raw(data, sig, plain_algorithm(algorithm))

    def verify(self, data: bytes, signature: bytes, algorithm: str) -> bool:
        """A signature by the certified key (see PublicKey.verify)."""
        if algorithm not in self.signature_algorithms:
            return False
        return self.public_key.verify(data, signature, plain_algorithm(algorithm))

    # --- certificate specifics --------------------------------------------------------
    @property
    def force_command(self) -> str | None:
        """The ``force-command`` critical option, or None."""
        return self.critical_options.get("force-command")

    @property
    def source_address(self) -> tuple[str, ...] | None:
        """The ``source-address`` critical option as a tuple of CIDR patterns, or None."""
        value = self.critical_options.get("source-address")
        if value is None:
            return None
        return tuple(p.strip() for p in value.split(",") if p.strip())

    @property
    def unknown_critical_options(self) -> tuple[str, ...]:
        """Critical options OpenSSH does not define: any makes the certificate unusable."""
        return tuple(n for n in self.critical_options if n not in KNOWN_CRITICAL_OPTIONS)

    def signature_valid(self, *, allow_sha1: bool = False) -> bool:
        """Whether the CA signature verifies (SHA-1 RSA signatures only if allowed)."""
        try:
            name = Reader(self.signature).string(256).decode("ascii")
        except (DecodeError, UnicodeDecodeError):
            return False
        if name in _SHA1_CA_ALGORITHMS and not allow_sha1:
            return False
        if isinstance(self.signature_key, Certificate):
            return False  # a CA key must be a plain key
        return self.signature_key.verify(self.signed_data, self.signature, name)

    def check(self, *, now: float, cert_type: str, principal: str | None = None,
              principal_patterns: bool = False, allow_sha1: bool = False) -> None:
        """Raise CertificateError unless usable as a `cert_type` certificate at `now`.

        Checks the type, the validity interval (`now` in seconds since the
        epoch: the caller's clock), the principal (if given; an empty
        principal list allows any; with `principal_patterns` the listed
        principals may hold ``*``/``?`` wildcards, as OpenSSH allows for host
        certificates), unknown critical options and the CA signature.  Which
        CA is trusted is the caller's business.
        """
        label = f"{self.cert_type} certificate {self.key_id!r} (serial {self.serial})"
        if self.cert_type != cert_type:
            raise CertificateError(f"{label} is not a {cert_type} certificate",
                                   reason=CertificateError.WRONG_TYPE, certificate=self)
        if now < self.valid_after:
            raise CertificateError(f"{label} is not valid until {_when(self.valid_after)}",
                                   reason=CertificateError.NOT_YET_VALID, certificate=self)
        if now >= self.valid_before:
            raise CertificateError(f"{label} expired at {_when(self.valid_before)}",
                                   reason=CertificateError.EXPIRED, certificate=self)
        if principal is not None and self.principals:
            if principal_patterns:
                matched = any(fnmatch.fnmatchcase(principal.lower(), p.lower())
                              for p in self.principals)
            else:
                matched = principal in self.principals
            if not matched:
                raise CertificateError(
                    f"{label} is for {', '.join(self.principals)}, not {principal!r}",
                    reason=CertificateError.WRONG_PRINCIPAL, certificate=self)
        unknown = self.unknown_critical_options
        if unknown:
            raise CertificateError(f"{label} has unsupported critical option(s) "
                                   f"{', '.join(unknown)}",
                                   reason=CertificateError.UNSUPPORTED_OPTION, certificate=self)
        if not self.signature_valid(allow_sha1=allow_sha1):
            raise CertificateError(f"{label}: the CA signature does not verify",
                                   reason=CertificateError.BAD_SIGNATURE, certificate=self)

    def __repr__(self) -> str:
        return (f"<Certificate {self.key_type} {self.cert_type} id={self.key_id!r} "
                f"serial={self.serial} {self.public_key.fingerprint()}>")


def _when(seconds: int) -> str:
    if seconds >= FOREVER:
        return "forever"
    try:
        stamp = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert_parser(key_type: str, plain_type: str) -> Callable[[Reader, bytes], PublicKey]:
    def parse(reader: Reader, blob: bytes) -> PublicKey:
        start = len(blob) - reader.remaining - len(string(key_type))
        nonce = reader.string(1024)
        public_key = key_types()[plain_type].parse_public(reader, blob)
        serial = reader.uint64()
        type_number = reader.uint32()
        cert_type = _TYPE_NAMES.get(type_number)
        if cert_type is None:
            raise KeyLoadError(f"certificate type {type_number} is neither user (1) nor host (2)")
        key_id = reader.text(4096)
        principals_reader = Reader(reader.string())
        principals: list[str] = []
        while principals_reader.remaining:
            if len(principals) >= MAX_PRINCIPALS:
                raise KeyLoadError(f"certificate has more than {MAX_PRINCIPALS} principals")
            principals.append(principals_reader.text(1024))
        valid_after = reader.uint64()
        valid_before = reader.uint64()
        critical = _read_options(reader.string(), "critical options", True)
        extensions = _read_options(reader.string(), "extensions", True)
        reserved = reader.string()
        signature_blob = reader.string()
        signed_end = len(blob) - reader.remaining
        if Reader(signature_blob).string(MAX_NAME).endswith(CERT_SUFFIX.encode()):
            # OpenSSH refuses this too; it also keeps parsing from recursing.
            raise KeyLoadError("certificate is signed by a certificate, not a CA key")
        signature_key = _parse_blob(signature_blob, "CA key")
        signature = reader.string()
        end = len(blob) - reader.remaining
        return Certificate(
            blob[start:end], key_type=key_type, nonce=nonce, public_key=public_key,
            serial=serial, cert_type=cert_type, key_id=key_id, principals=tuple(principals),
            valid_after=valid_after, valid_before=valid_before, critical_options=critical,
            extensions=extensions, reserved=reserved, signature_key=signature_key,
            signature=signature, signed_data=blob[start:signed_end])
    return parse


def _parse_blob(blob: bytes, what: str) -> PublicKey:
    try:
        return parse_public_key(blob)
    except KeyLoadError as exc:
        raise KeyLoadError(f"certificate {what}: {exc}") from None


def register_certificate_type(plain_type: str) -> None:
    """Make certificates of keys of `plain_type` parse (the plain type must be registered)."""
    name = cert_type_name(plain_type)
    register_key_type(KeyType(name, _cert_parser(name, plain_type)))


class CertSigner:
    """A private key (or agent key) presented with its certificate, for user authentication.

    ``sshlib.PublicKeys(CertSigner(key, cert))`` offers the certificate and
    signs with the key behind it.  ValueError if `cert` certifies another
    key; CertificateError if it has critical options OpenSSH does not know
    (a server would refuse it).
    """

    def __init__(self, key: Signer, cert: Certificate) -> None:
        if not isinstance(cert, Certificate):
            raise TypeError("CertSigner needs a sshlib.keys.Certificate")
        if cert.public_key != key.public_key:
            raise ValueError(f"the certificate {cert.key_id!r} certifies "
                             f"{cert.public_key.fingerprint()}, not this key "
                             f"({key.public_key.fingerprint()})")
        unknown = cert.unknown_critical_options
        if unknown:
            raise CertificateError(
                f"certificate {cert.key_id!r} has unsupported critical option(s) "
                f"{', '.join(unknown)}", reason=CertificateError.UNSUPPORTED_OPTION,
                certificate=cert)
        self.key = key
        self.certificate = cert

    @property
    def public_key(self) -> Certificate:
        """The certificate (what the server sees as the key)."""
        return self.certificate

    def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
        """Sign with the key; `algorithm` is a certificate algorithm name (None: preferred)."""
        cert = self.certificate
        if algorithm is None:
            algorithm = cert.signature_algorithms[0]
        elif algorithm not in cert.signature_algorithms:
            raise ValueError(f"a {cert.key_type} certificate cannot sign with {algorithm!r}")
        return self.key.sign(data, plain_algorithm(algorithm))

    def bind_session(self, host_key_blob: bytes, session_id: bytes, signature: bytes) -> bool:
        """Pass an agent session-bind on to the key behind the certificate (if it is an
        agent key); False otherwise."""
        bind = getattr(self.key, "bind_session", None)
        return bool(bind(host_key_blob, session_id, signature)) if callable(bind) else False

    def __repr__(self) -> str:
        return f"<CertSigner {self.certificate!r}>"


def _timestamp(value: int | float | datetime.datetime) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("certificate times must be timezone-aware datetimes or epoch seconds")
        return int(value.timestamp())
    value = int(value)
    if not 0 <= value <= FOREVER:
        raise ValueError(f"certificate time {value} is outside 0..2**64-1")
    return value


def sign_certificate(ca_key: Signer, public_key: PublicKey, *, cert_type: str = "user",
                     key_id: str = "", principals: Iterable[str] = (),
                     valid_after: int | float | datetime.datetime = 0,
                     valid_before: int | float | datetime.datetime = FOREVER,
                     critical_options: Mapping[str, str] | None = None,
                     extensions: Mapping[str, str] | None = None, serial: int = 0,
                     signature_algorithm: str | None = None,
                     nonce: bytes | None = None) -> Certificate:
    """Certify `public_key` with `ca_key`, like ``ssh-keygen -s``.

    `cert_type` is "user" or "host"; times are epoch seconds or aware
    datetimes (defaults: valid forever); `extensions` None gives ssh-keygen's
    defaults for user certificates (permit-pty and friends) and none for host
    certificates.  `signature_algorithm` None picks the CA key's preferred one
    (rsa-sha2-512 for RSA).  The nonce is random unless given.
    """
    if cert_type not in _TYPE_NUMBERS:
        raise ValueError(f"cert_type must be 'user' or 'host', not {cert_type!r}")
    if isinstance(public_key, Certificate):
        raise ValueError("cannot certify a certificate; pass its public_key")
    if isinstance(principals, str):
        raise TypeError("principals must be a list of names, not a string")
    if extensions is None:
        extensions = DEFAULT_USER_EXTENSIONS if cert_type == "user" else {}
    key_type = cert_type_name(public_key.key_type)
    if key_type not in key_types():
        raise ValueError(f"cannot certify {public_key.key_type} keys")
    if not 0 <= serial < 1 << 64:
        raise ValueError("serial must fit in 64 bits")
    plain_fields = Reader(public_key.blob)
    plain_fields.string()
    body = (Writer().string(key_type).string(nonce if nonce is not None else os.urandom(32))
            .raw(plain_fields.rest()).uint64(serial).uint32(_TYPE_NUMBERS[cert_type])
            .string(key_id)
            .string(b"".join(string(p) for p in principals))
            .uint64(_timestamp(valid_after)).uint64(_timestamp(valid_before))
            .string(_write_options(critical_options or {}))
            .string(_write_options(extensions)).string(b"")
            .string(ca_key.public_key.blob).getvalue())
    signature = ca_key.sign(body, signature_algorithm)
    cert = _parse_blob(body + string(signature), "just signed")
    assert isinstance(cert, Certificate)
    return cert


def parse_certificate(data: str | bytes) -> Certificate:
    """A certificate from a ``-cert.pub`` line (``type base64 [comment]``) or a raw blob.

    KeyLoadError if it is malformed or a plain key.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    if stripped[:1].isalpha():
        key = parse_openssh_public_key(stripped)
    else:
        key = parse_public_key(raw)
    if not isinstance(key, Certificate):
        raise KeyLoadError(f"this is a plain {key.key_type} key, not a certificate")
    return key
