"""Private key parsing on bytes: the format is sniffed from the content."""

from __future__ import annotations

from ..errors import DecodeError, KeyLoadError
from .formats import openssh, pem, ppk
from .model import PrivateKey, PrivateKeyFormat, key_types

__all__ = ["FORMATS", "parse_private_key"]

#: Tried in order; the first whose sniff() matches parses (pem is the fallback).
FORMATS: list[PrivateKeyFormat] = [openssh.FORMAT, ppk.FORMAT, pem.FORMAT]


def _refusal(data: bytes) -> str | None:
    """Why data that is not a private key in any format we read is refused, if we can tell."""
    stripped = data.lstrip()
    if not stripped:
        return "empty private key data"
    if b"BEGIN SSH2 ENCRYPTED PRIVATE KEY" in data:
        return "SSH.com private keys are not supported"
    first = stripped.split(None, 1)[0].decode("ascii", "replace")
    if first in key_types() or first.startswith(("ssh-", "ecdsa-", "sk-")):
        return "this is a public key, not a private key"
    return None


def parse_private_key(data: bytes, passphrase: str | bytes | None = None) -> PrivateKey:
    """Parse a private key in openssh-key-v1, PuTTY .ppk, PKCS#1/SEC1 PEM or PKCS#8 form.

    Raises PassphraseRequiredError if the key is encrypted and `passphrase` is
    None, KeyLoadError for a wrong passphrase, corruption or an unsupported type.
    A passphrase given for an unencrypted key is ignored.
    """
    data = bytes(data)
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    try:
        for fmt in FORMATS:
            if fmt.sniff(data):
                if fmt is pem.FORMAT:
                    reason = _refusal(data)
                    if reason is not None:
                        raise KeyLoadError(reason)
                return fmt.parse(data, passphrase)
    except DecodeError as exc:
        raise KeyLoadError(f"corrupt private key: {exc}") from None
    raise KeyLoadError("not a private key in any supported format")
