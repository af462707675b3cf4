"""Public key text forms: the one-line OpenSSH form and RFC 4716 (``ssh-keygen -e``)."""

from __future__ import annotations

import base64
import binascii

from ...errors import KeyLoadError
from ..model import PublicKey, parse_public_key

__all__ = ["b64decode", "parse_openssh_public_key", "parse_rfc4716", "parse_public_key_text",
           "decode_text"]


def b64decode(text: str | bytes, what: str) -> bytes:
    """Strict base64; KeyLoadError naming `what` if it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"{what} is not valid base64") from None


def decode_text(data: str | bytes, what: str) -> str:
    """UTF-8 text; KeyLoadError if it is not."""
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyLoadError(f"{what} is not valid UTF-8") from None


def parse_openssh_public_key(text: str | bytes) -> PublicKey:
    """Parse ``type base64 [comment]`` (a .pub file line, no authorized_keys options).

    A certificate line gives a `sshlib.keys.Certificate`.
    """
    text = decode_text(text, "public key text")
    fields = text.strip().split(None, 2)
    if len(fields) < 2:
        raise KeyLoadError("public key line needs a key type and base64 key data")
    key_type, data = fields[0], fields[1]
    key = parse_public_key(b64decode(data, "public key data"))
    if key.key_type != key_type:
        raise KeyLoadError(f"public key line says {key_type!r} but the key is {key.key_type!r}")
    return key


def parse_rfc4716(text: str) -> PublicKey:
    """``ssh-keygen -e`` output (RFC 4716): headers, then base64 lines."""
    body: list[str] = []
    lines = iter(text.splitlines()[1:])
    for line in lines:
        line = line.strip()
        if line.startswith("---- END SSH2 PUBLIC KEY"):
            return parse_public_key(b64decode("".join(body), "public key data"))
        if ":" in line:
            # A header; a trailing backslash continues it on the next line.
            while line.endswith("\\"):
                line = next(lines, "").strip()
            continue
        body.append(line)
    raise KeyLoadError("RFC 4716 public key has no END line")


def parse_public_key_text(data: str | bytes) -> PublicKey:
    """The first key in a .pub file's content: OpenSSH one-line form or RFC 4716."""
    text = decode_text(data, "public key file")
    if text.lstrip().startswith("---- BEGIN SSH2 PUBLIC KEY"):
        return parse_rfc4716(text.lstrip())
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return parse_openssh_public_key(line)
    raise KeyLoadError("no public key in file")
