"""Loading keys from files: a thin layer over the parsers, which work on bytes."""

from __future__ import annotations

import os

from ..errors import KeyLoadError, PassphraseRequiredError
from .formats.text import parse_public_key_text
from .model import PrivateKey, PublicKey
from .parse import parse_private_key

__all__ = ["read_key_file", "load_private_key", "load_public_key"]

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
    """Read and parse a private key file (see `parse_private_key`); ~ is expanded."""
    filename, data = read_key_file(path, "private key")
    try:
        return parse_private_key(data, passphrase)
    except PassphraseRequiredError as exc:
        raise PassphraseRequiredError(f"{filename}: {exc}") from None
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file (OpenSSH one-line form or RFC 4716)."""
    filename, data = read_key_file(path, "public key")
    try:
        return parse_public_key_text(data)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{filename}: {exc}") from None
