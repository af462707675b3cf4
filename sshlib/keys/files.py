"""Loading keys from files: a thin layer over the parsers, which work on bytes."""

from __future__ import annotations

import logging
import os

from ..errors import KeyLoadError, PassphraseRequiredError
from .certs import Certificate, parse_certificate
from .formats.text import parse_public_key_text
from .model import PrivateKey, PublicKey
from .parse import parse_private_key

__all__ = ["read_key_file", "load_private_key", "load_public_key", "load_certificate"]

log = logging.getLogger("sshlib.keys")

#: Key files are small; refusing bigger ones bounds memory on a wrong path.
MAX_KEY_FILE = 1 << 20


def read_key_file(path: str | os.PathLike[str], what: str) -> tuple[str, bytes]:
    """(expanded file name, content); KeyLoadError if it cannot be read."""
    filename = os.path.expanduser(os.fspath(path))
    try:
        with open(filename, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyLoadError(f"{filename}: cannot read {what}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE:
        raise KeyLoadError(f"{filename}: larger than {MAX_KEY_FILE} bytes, not a {what}")
    return filename, data


def load_private_key(path: str | os.PathLike[str],
                     passphrase: str | bytes | None = None) -> PrivateKey:
    """Read and parse a private key file (see `parse_private_key`); ~ is expanded.

    If ``<path>-cert.pub`` exists and certifies this key (as ``ssh-keygen -s``
    writes it), it becomes the key's `.certificate`; one that cannot be read
    or certifies another key is logged and ignored, as OpenSSH does.
    """
    filename, data = read_key_file(path, "private key")
    try:
        key = parse_private_key(data, passphrase)
    except PassphraseRequiredError as exc:
        raise PassphraseRequiredError(f"{filename}: {exc}") from None
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None
    cert_path = filename + "-cert.pub"
    if os.path.exists(cert_path):
        try:
            cert = load_certificate(cert_path)
        except KeyLoadError as exc:
            log.warning("ignoring certificate: %s", exc)
        else:
            if cert.public_key == key.public_key:
                key.certificate = cert
            else:
                log.warning("ignoring %s: it certifies another key (%s)", cert_path,
                            cert.public_key.fingerprint())
    return key


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file (OpenSSH one-line form or RFC 4716)."""
    filename, data = read_key_file(path, "public key")
    try:
        return parse_public_key_text(data)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None


def load_certificate(path: str | os.PathLike[str]) -> Certificate:
    """Read an OpenSSH certificate file (``id_ed25519-cert.pub``); ~ is expanded.

    KeyLoadError if it cannot be read, is malformed, or holds a plain key.
    """
    filename, data = read_key_file(path, "certificate")
    try:
        return parse_certificate(data)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None
