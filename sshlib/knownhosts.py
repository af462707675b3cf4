"""OpenSSH known_hosts files: parsing, lookup and a fail-closed host key callback.

The file format and matching rules follow sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"
and OpenSSH's hostfile.c, so a file written or hashed by ssh / ssh-keygen /
ssh-keyscan means the same thing here as it does to OpenSSH:

* host patterns are matched against ``host`` for port 22 and ``[host]:port``
  otherwise, case-insensitively, with ``*`` and ``?`` wildcards; a matching
  ``!pattern`` excludes the whole line;
* hashed entries (``|1|salt|hmac``) are HMAC-SHA1 of that same string;
* lines we cannot parse are skipped (logged at debug level), never fatal.

One deliberate difference: a ``@revoked`` key is refused for every host, not
just the hosts its line names (as Go's x/crypto/ssh/knownhosts does), because
a revoked key should never be trusted anywhere.

Host certificates (PROTOCOL.certkeys) are trusted when a ``@cert-authority``
line whose patterns match the host names the certificate's CA key, the
certificate is a host certificate for the host name (or the HostKeyAlias),
and it is valid at the time the callback's clock gives; ``@revoked`` lines
may name a CA key, a certificate or a certified key.  A certificate no CA
line vouches for is still accepted if its plain key is known for the host,
as OpenSSH does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import algorithms as algs
from .errors import (
    CertificateError,
    HostCertificateError,
    HostKeyError,
    HostKeyMismatchError,
    KeyLoadError,
    UnknownHostKeyError,
)
from .keys import Certificate, PublicKey, parse_public_key

__all__ = [
    "HostKeyCallback",
    "Entry",
    "KnownHosts",
    "KnownHostsCallback",
    "callback",
    "line",
    "normalize",
    "hash_hostname",
    "MARKER_REVOKED",
    "MARKER_CERT_AUTHORITY",
]

log = logging.getLogger("sshlib.knownhosts")

#: Called with (hostname, port, key) once the server proved it holds `key`;
#: raises a HostKeyError subclass to stop the connection.
HostKeyCallback = Callable[[str, int, PublicKey], None]

MARKER_REVOKED = "@revoked"
MARKER_CERT_AUTHORITY = "@cert-authority"
_MARKERS = (MARKER_REVOKED, MARKER_CERT_AUTHORITY)

_HASH_MAGIC = "|1|"
_SHA1_LEN = 20


def normalize(host: str, port: int = 22) -> str:
    """The string OpenSSH looks up for a host: ``host`` on port 22, else ``[host]:port``.

    `host` is a name or an IP literal (IPv6 with or without brackets); it is
    lowercased because OpenSSH lowercases host names before using them.
    """
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.lower()
    if port == 22:
        return host
    return f"[{host}]:{port}"


def _split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[host]:port`` / bare host (IPv6 included) like Go's Normalize."""
    if address.startswith("["):
        close = address.find("]")
        if close > 0:
            host, rest = address[1:close], address[close + 1:]
            if rest.startswith(":") and rest[1:].isdigit():
                return host, int(rest[1:])
            if not rest:
                return host, 22
        return address, 22
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        if port.isdigit():
            return host, int(port)
    return address, 22


def line(hosts: Sequence[str], key: PublicKey) -> str:
    """A known_hosts line for `key`; each address is ``host`` or ``host:port``.

    Like Go's knownhosts.Line; non-22 ports are written as ``[host]:port``.
    Already hashed names (``|1|...``) are copied unchanged.
    """
    if isinstance(hosts, str):
        raise TypeError("hosts must be a sequence of addresses, not a string")
    names = [h if h.startswith(_HASH_MAGIC) else normalize(*_split_address(h)) for h in hosts]
    if not names:
        raise ValueError("at least one host is needed")
    return f"{','.join(names)} {key.openssh()}"


def hash_hostname(host: str, salt: bytes | None = None) -> str:
    """Hash `host` the way ``ssh-keygen -H`` does: ``|1|base64(salt)|base64(hmac)``.

    `host` is used exactly as given, so pass ``normalize(host, port)``.
    """
    if salt is None:
        salt = os.urandom(_SHA1_LEN)
    digest = hmac.new(salt, host.encode("utf-8"), hashlib.sha1).digest()
    return (_HASH_MAGIC + base64.b64encode(salt).decode("ascii") + "|"
            + base64.b64encode(digest).decode("ascii"))


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    """OpenSSH match_pattern(): ``*`` any run, ``?`` one character, all else literal."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()]
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Entry:
    """One parsed known_hosts line."""

    #: The host field as written: comma-separated patterns, or ``|1|salt|hash``.
    hosts: str
    key: PublicKey
    #: None, MARKER_REVOKED or MARKER_CERT_AUTHORITY.
    marker: str | None = None
    comment: str = ""
    source: str = "<string>"
    line_number: int = 0
    _patterns: tuple[tuple[bool, re.Pattern[str]], ...] = field(
        default=(), repr=False, compare=False)
    _hashed: tuple[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def location(self) -> str:
        """``file:line`` for messages."""
        return f"{self.source}:{self.line_number}"

    @property
    def hashed(self) -> bool:
        return self._hashed is not None

    def matches(self, host: str, port: int = 22) -> bool:
        """Whether this line's host field matches (ignores the marker)."""
        return self._matches_normalized(normalize(host, port))

    def _matches_normalized(self, target: str) -> bool:
        if self._hashed is not None:
            salt, expected = self._hashed
            actual = hmac.new(salt, target.encode("utf-8"), hashlib.sha1).digest()
            return hmac.compare_digest(actual, expected)
        matched = False
        for negated, regex in self._patterns:
            if regex.fullmatch(target):
                if negated:
                    return False
                matched = True
        return matched


def _parse_hosts(hosts: str) -> tuple[tuple[tuple[bool, re.Pattern[str]], ...],
                                      tuple[bytes, bytes] | None]:
    """Compile a host field; ValueError says why it is malformed."""
    if hosts.startswith("|"):
        parts = hosts.split("|")
        if len(parts) != 4 or parts[1] != "1":
            raise ValueError("unsupported hashed host format")
        try:
            salt = base64.b64decode(parts[2], validate=True)
            digest = base64.b64decode(parts[3], validate=True)
        except binascii.Error:
            raise ValueError("hashed host is not valid base64") from None
        if len(digest) != _SHA1_LEN or not salt:
            raise ValueError("hashed host has the wrong length")
        return (), (salt, digest)
    patterns = []
    for pattern in hosts.split(","):
        negated = pattern.startswith("!")
        if negated:
            pattern = pattern[1:]
        if not pattern:
            raise ValueError("empty host pattern")
        patterns.append((negated, _compile_pattern(pattern)))
    return tuple(patterns), None


def _parse_line(text: str, source: str, number: int) -> Entry | None:
    """Parse one line; None for blanks, comments and (logged) malformed lines."""
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    marker: str | None = None
    if text.startswith("@"):
        first, *rest = text.split(None, 1)
        marker = first
        text = rest[0] if rest else ""
        if marker not in _MARKERS:
            log.debug("%s:%d: unknown marker %r, line skipped", source, number, marker)
            return None
    fields = text.split(None, 3)
    if len(fields) < 3:
        log.debug("%s:%d: too few fields, line skipped", source, number)
        return None
    hosts, key_type, data = fields[:3]
    comment = fields[3] if len(fields) > 3 else ""
    try:
        patterns, hashed = _parse_hosts(hosts)
    except ValueError as exc:
        log.debug("%s:%d: %s, line skipped", source, number, exc)
        return None
    try:
        blob = base64.b64decode(data, validate=True)
        key = parse_public_key(blob)
    except (binascii.Error, KeyLoadError) as exc:
        log.debug("%s:%d: bad %s key (%s), line skipped", source, number, key_type, exc)
        return None
    if key.key_type != key_type:
        log.debug("%s:%d: line says %s but the key is %s, line skipped",
                  source, number, key_type, key.key_type)
        return None
    return Entry(hosts=hosts, key=key, marker=marker, comment=comment, source=source,
                 line_number=number, _patterns=patterns, _hashed=hashed)


class KnownHosts:
    """A parsed set of known_hosts files, in file order."""

    def __init__(self, entries: Iterable[Entry] = (), sources: Sequence[str] = ()) -> None:
        self.entries: list[Entry] = list(entries)
        #: Files (or labels) read, first one first; messages suggest adding keys to sources[0].
        self.sources: list[str] = list(sources)

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "<string>") -> KnownHosts:
        entries = []
        for number, text in enumerate(lines, 1):
            entry = _parse_line(text, source, number)
            if entry is not None:
                entries.append(entry)
        return cls(entries, [source])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KnownHosts:
        """Parse one file (~ expanded); OSError if it cannot be read."""
        filename = os.path.expanduser(os.fspath(path))
        with open(filename, "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        return cls.from_lines(text.splitlines(), filename)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> KnownHosts:
        """Parse several files into one database; missing files count as empty."""
        result = cls()
        for path in paths:
            filename = os.path.expanduser(os.fspath(path))
            try:
                part = cls.from_file(filename)
            except FileNotFoundError:
                log.debug("%s: not found, treated as empty", filename)
                part = cls(sources=[filename])
            result.entries.extend(part.entries)
            result.sources.extend(part.sources)
        return result

    def lookup(self, host: str, port: int = 22) -> list[Entry]:
        """Entries whose host field matches, whatever their marker (see Entry.marker)."""
        target = normalize(host, port)
        return [e for e in self.entries if e._matches_normalized(target)]

    def host_key_algorithms(self, host: str, port: int = 22) -> list[str]:
        """Signature algorithms for the keys known for this host, to offer first in kex.

        Asking the server for a key type we already know avoids a spurious
        mismatch when it has several host keys (OpenSSH does the same).
        """
        result: list[str] = []
        entries = self.lookup(host, port)
        if any(e.marker == MARKER_CERT_AUTHORITY for e in entries):
            result.extend(algs.CERT_HOST_KEY)  # as OpenSSH: certificates first for CA hosts
        for entry in entries:
            if entry.marker is None:
                for name in entry.key.signature_algorithms:
                    if name not in result:
                        result.append(name)
        return result

    def check(self, host: str, port: int, key: PublicKey, *, now: float | None = None,
              host_key_alias: str | None = None) -> None:
        """Return if `key` is known for this host; otherwise raise a HostKeyError subclass.

        A host certificate needs `now` (seconds since the epoch) to check its
        validity; its failures raise HostCertificateError saying which check
        failed.  `host_key_alias` replaces `host` for the lookup and as the
        principal, like OpenSSH's HostKeyAlias.
        """
        if host_key_alias:
            host = host_key_alias
        target = normalize(host, port)
        offered = f"{key.key_type} key {key.fingerprint()}"
        if isinstance(key, Certificate):
            if self._check_certificate(host, port, key, now):
                return
            offered = f"{key.public_key.key_type} key {key.fingerprint()} (from an untrusted " \
                      "host certificate)"
            key = key.public_key
        for entry in self.entries:
            if entry.marker == MARKER_REVOKED and entry.key == key:
                raise HostKeyError(
                    f"host key for {target} is revoked: {offered} is marked "
                    f"@revoked at {entry.location}", host=host, port=port, key=key)
        matching = [e for e in self.entries
                    if e.marker is None and e._matches_normalized(target)]
        if any(e.key == key for e in matching):
            return
        if matching:
            known = "; ".join(f"{e.location} ({e.key.key_type} {e.key.fingerprint()})"
                              for e in matching)
            hint = ""
            if not any(e.key.key_type == key.key_type for e in matching):
                hint = (f" No {key.key_type} key is known for this host, so this may just be"
                        " a different host key type; if so, add it only after checking it"
                        " out of band.")
            raise HostKeyMismatchError(
                f"HOST KEY MISMATCH for {target}: the server offered {offered}, but "
                f"known_hosts has a different key: {known}. Someone may be intercepting "
                f"the connection (man-in-the-middle), or the host key was changed.{hint}",
                host=host, port=port, key=key, known=[e.key for e in matching])
        file = self.sources[0] if self.sources else "known_hosts"
        ca_note = ""
        if any(e.marker == MARKER_CERT_AUTHORITY and e._matches_normalized(target)
               for e in self.entries):
            ca_note = (" (a @cert-authority entry matches this host, but the server sent"
                       " no certificate signed by it)")
        raise UnknownHostKeyError(
            f"unknown host {target}: no known_hosts entry{ca_note}; the server offered "
            f"{offered}. If you trust this key, append this line to {file}:\n"
            f"{line([target], key)}", host=host, port=port, key=key)


    def _check_certificate(self, host: str, port: int, cert: Certificate,
                           now: float | None) -> bool:
        """True if a CA line vouches for `cert`; False if none names its CA (fall back to
        the plain key); HostCertificateError if it is revoked or fails a check."""
        target = normalize(host, port)

        def fail(message: str, reason: str) -> HostCertificateError:
            return HostCertificateError(
                f"host certificate for {target} refused: {message}", reason=reason,
                certificate=cert, host=host, port=port, key=cert)

        for entry in self.entries:
            if entry.marker != MARKER_REVOKED:
                continue
            for what, revoked in (("certificate", cert), ("CA key", cert.signature_key),
                                  ("certified key", cert.public_key)):
                if entry.key == revoked:
                    raise fail(f"its {what} {revoked.fingerprint()} is marked @revoked at "
                               f"{entry.location}", CertificateError.REVOKED)
        authorities = [e for e in self.entries if e.marker == MARKER_CERT_AUTHORITY
                       and e._matches_normalized(target)]
        if not any(e.key == cert.signature_key for e in authorities):
            if any(e.marker is None and e.key == cert.public_key
                   and e._matches_normalized(target) for e in self.entries):
                return False
            known = (f"; the @cert-authority lines for it name "
                     f"{', '.join(e.key.fingerprint() for e in authorities)}"
                     if authorities else "; no @cert-authority line matches this host")
            raise fail(f"it is signed by CA {cert.signature_key.fingerprint()}, which "
                       f"known_hosts does not trust for {target}{known}",
                       CertificateError.UNKNOWN_CA)
        if now is None:
            raise ValueError("checking a host certificate needs now= (seconds since the epoch)")
        try:
            cert.check(now=now, cert_type="host", principal=host.lower(),
                       principal_patterns=True)
        except CertificateError as exc:
            raise fail(str(exc), exc.reason) from None
        return True


class KnownHostsCallback:
    """A host key callback over a KnownHosts database.

    Besides checking keys it tells the connection which key types are known
    for a host (`host_key_algorithms`), so ClientConfig.for_host() can ask
    the server for one of those first, as OpenSSH does.
    """

    def __init__(self, db: KnownHosts, *, clock: Callable[[], float] = time.time,
                 host_key_alias: str | None = None) -> None:
        self.known_hosts = db
        self.clock = clock
        self.host_key_alias = host_key_alias

    def __call__(self, hostname: str, port: int, key: PublicKey) -> None:
        now = self.clock() if isinstance(key, Certificate) else None
        self.known_hosts.check(hostname, port, key, now=now, host_key_alias=self.host_key_alias)

    def host_key_algorithms(self, hostname: str, port: int) -> list[str]:
        return self.known_hosts.host_key_algorithms(self.host_key_alias or hostname, port)

    def __repr__(self) -> str:
        return f"KnownHostsCallback({', '.join(self.known_hosts.sources) or '<lines>'})"


def callback(*paths: str | os.PathLike[str], clock: Callable[[], float] = time.time,
             host_key_alias: str | None = None) -> KnownHostsCallback:
    """A host key callback backed by known_hosts files (Go's knownhosts.New).

    The files are read now, not per connection; missing files count as empty.
    `clock` gives the time (seconds since the epoch) a host certificate's
    validity is checked against, when one is presented; `host_key_alias`
    is looked up (and checked as the certificate principal) instead of the
    host name, like OpenSSH's HostKeyAlias.
    """
    if not paths:
        raise ValueError("callback() needs at least one known_hosts path")
    return KnownHostsCallback(KnownHosts.from_files(paths), clock=clock,
                              host_key_alias=host_key_alias)
