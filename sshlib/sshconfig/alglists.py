"""Algorithm lists in ssh_config: ``list``, ``+list``, ``-list``, ``^list`` (kex.c).

`assemble()` is OpenSSH's kex_assemble_names(): the modifiers apply to a
default list (sshlib's own defaults when resolving for sshlib) and the
result keeps only names from `available`.  `OPENSSH_NAMES` is every name
OpenSSH (9.2 and later) knows, so a name that is neither OpenSSH's nor
sshlib's is an error at parse time, as ``ssh`` reports it.
"""

from __future__ import annotations

from .. import algorithms as algs
from .lexer import match_pattern, match_pattern_list

__all__ = ["OPENSSH_NAMES", "KINDS", "assemble", "names_valid", "sshlib_lists"]

_CIPHERS = ("3des-cbc aes128-cbc aes192-cbc aes256-cbc aes128-ctr aes192-ctr aes256-ctr "
            "aes128-gcm@openssh.com aes256-gcm@openssh.com chacha20-poly1305@openssh.com "
            "rijndael-cbc@lysator.liu.se none")
_MACS = ("hmac-sha1 hmac-sha1-96 hmac-sha2-256 hmac-sha2-512 hmac-md5 hmac-md5-96 "
         "umac-64@openssh.com umac-128@openssh.com hmac-sha1-etm@openssh.com "
         "hmac-sha1-96-etm@openssh.com hmac-sha2-256-etm@openssh.com "
         "hmac-sha2-512-etm@openssh.com hmac-md5-etm@openssh.com hmac-md5-96-etm@openssh.com "
         "umac-64-etm@openssh.com umac-128-etm@openssh.com")
_KEX = ("diffie-hellman-group1-sha1 diffie-hellman-group14-sha1 diffie-hellman-group14-sha256 "
        "diffie-hellman-group16-sha512 diffie-hellman-group18-sha512 "
        "diffie-hellman-group-exchange-sha1 diffie-hellman-group-exchange-sha256 "
        "ecdh-sha2-nistp256 ecdh-sha2-nistp384 ecdh-sha2-nistp521 curve25519-sha256 "
        "curve25519-sha256@libssh.org sntrup761x25519-sha512 "
        "sntrup761x25519-sha512@openssh.com mlkem768x25519-sha256")
_KEYS = ("ssh-ed25519 ssh-ed25519-cert-v01@openssh.com sk-ssh-ed25519@openssh.com "
         "sk-ssh-ed25519-cert-v01@openssh.com ecdsa-sha2-nistp256 "
         "ecdsa-sha2-nistp256-cert-v01@openssh.com ecdsa-sha2-nistp384 "
         "ecdsa-sha2-nistp384-cert-v01@openssh.com ecdsa-sha2-nistp521 "
         "ecdsa-sha2-nistp521-cert-v01@openssh.com sk-ecdsa-sha2-nistp256@openssh.com "
         "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com webauthn-sk-ecdsa-sha2-nistp256@openssh.com "
         "ssh-dss ssh-dss-cert-v01@openssh.com ssh-rsa ssh-rsa-cert-v01@openssh.com "
         "rsa-sha2-256 rsa-sha2-256-cert-v01@openssh.com rsa-sha2-512 "
         "rsa-sha2-512-cert-v01@openssh.com")

#: keyword -> every name OpenSSH accepts there.
OPENSSH_NAMES: dict[str, frozenset[str]] = {
    "ciphers": frozenset(_CIPHERS.split()),
    "macs": frozenset(_MACS.split()),
    "kexalgorithms": frozenset(_KEX.split()),
    "hostkeyalgorithms": frozenset(_KEYS.split()),
    "pubkeyacceptedalgorithms": frozenset(_KEYS.split()),
    "hostbasedacceptedalgorithms": frozenset(_KEYS.split()),
    "casignaturealgorithms": frozenset(_KEYS.split()),
}
KINDS = tuple(OPENSSH_NAMES)
#: Key-type lists accept wildcards (sshkey_names_valid2 with allow_wildcard); the others not.
_WILDCARDS = frozenset({"hostkeyalgorithms", "pubkeyacceptedalgorithms",
                        "hostbasedacceptedalgorithms", "casignaturealgorithms"})


def names_valid(keyword: str, spec: str) -> bool:
    """Whether every name in `spec` (a modifier already removed) is a known name."""
    known = OPENSSH_NAMES[keyword] | frozenset(sshlib_lists(keyword)[1])
    for name in spec.split(","):
        if not name:
            return False
        if keyword in _WILDCARDS and ("*" in name or "?" in name or name.startswith("!")):
            if name.startswith("!"):
                name = name[1:]
            continue
        if name not in known:
            return False
    return True


def _cat(first: list[str], second: list[str]) -> list[str]:
    """kex_names_cat(): `first` then the names of `second` not already there."""
    out = list(first)
    for name in second:
        if name not in out:
            out.append(name)
    return out


def assemble(spec: str | None, default: tuple[str, ...] | list[str],
             available: tuple[str, ...] | list[str]) -> list[str]:
    """kex_assemble_names(): the list `spec` gives, with + - ^ applied to `default`.

    ValueError if the result is empty or a pattern is negated.
    """
    if not spec:
        return list(default)
    if spec.startswith("-"):
        return [n for n in default if match_pattern_list(n, spec[1:]) != 1]
    if spec.startswith("+"):
        names = _cat(list(default), spec[1:].split(","))
    elif spec.startswith("^"):
        names = _cat(spec[1:].split(","), list(default))
    else:
        names = spec.split(",")
    result: list[str] = []
    for pattern in names:
        if pattern.startswith("!"):
            raise ValueError(f"negated algorithm pattern {pattern!r} is not allowed here")
        result = _cat(result, [n for n in available if match_pattern(n, pattern)])
    if not result:
        raise ValueError(f"no supported algorithm left in {spec!r}")
    return result


def sshlib_lists(keyword: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(sshlib's default, everything sshlib supports) for an algorithm keyword."""
    if keyword == "ciphers":
        return algs.DEFAULT_CIPHERS, algs.SUPPORTED_CIPHERS
    if keyword == "macs":
        return algs.DEFAULT_MACS, algs.SUPPORTED_MACS
    if keyword == "kexalgorithms":
        from ..kex import SUPPORTED as kex_available

        return (tuple(n for n in algs.DEFAULT_KEX if n in kex_available),
                tuple(n for n in algs.SUPPORTED_KEX if n in kex_available))
    if keyword in ("hostkeyalgorithms", "pubkeyacceptedalgorithms"):
        return algs.DEFAULT_HOST_KEY, algs.SUPPORTED_HOST_KEY
    return (), ()
