"""Client configuration and authentication method values (Go's ClientConfig/AuthMethod)."""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import algorithms as algs
from .errors import HostKeyError, HostKeyMismatchError

if TYPE_CHECKING:
    from .keys import PublicKey, Signer

__all__ = [
    "ClientConfig",
    "AuthMethod",
    "PublicKeys",
    "Password",
    "KeyboardInteractive",
    "Prompt",
    "HostKeyCallback",
    "fixed_host_key",
    "insecure_ignore_host_key",
]

#: (hostname, port, key) -> None; raise a HostKeyError to refuse the key.
HostKeyCallback = Callable[[str, int, "PublicKey"], None]


class Prompt(str):
    """A keyboard-interactive prompt: the text, plus whether the answer may be echoed."""

    echo: bool

    def __new__(cls, text: str, echo: bool = False) -> Prompt:
        self = super().__new__(cls, text)
        self.echo = echo
        return self


#: (name, instruction, prompts) -> one answer per prompt.
ChallengeCallback = Callable[[str, str, list[Prompt]], Sequence[str]]


class AuthMethod:
    """Base class of the authentication methods a ClientConfig lists."""

    method_name: str = ""


class PublicKeys(AuthMethod):
    """Public key authentication with each signer in turn (keys from files or an agent)."""

    method_name = "publickey"

    def __init__(self, *signers: Signer) -> None:
        self.signers: tuple[Signer, ...] = signers

    def __repr__(self) -> str:
        return f"PublicKeys({len(self.signers)} key(s))"


class Password(AuthMethod):
    """Password authentication; the password is never logged or shown in repr()."""

    method_name = "password"

    def __init__(self, password: str) -> None:
        self.password = password

    def __repr__(self) -> str:
        return "Password(<hidden>)"


class KeyboardInteractive(AuthMethod):
    """keyboard-interactive (RFC 4256): the callback answers each round of prompts."""

    method_name = "keyboard-interactive"

    def __init__(self, callback: ChallengeCallback) -> None:
        self.callback = callback

    def __repr__(self) -> str:
        return "KeyboardInteractive(...)"


def _refuse_unset(hostname: str, port: int, key: PublicKey) -> None:
    raise HostKeyError(
        "no host_key_callback configured: pass sshlib.knownhosts.callback(path), "
        "sshlib.fixed_host_key(key) or, knowingly, sshlib.insecure_ignore_host_key()",
        host=hostname, port=port, key=key)


@dataclass
class ClientConfig:
    """Everything a connection needs to know; the defaults are the safe choices."""

    user: str
    auth: Sequence[AuthMethod] = ()
    host_key_callback: HostKeyCallback = _refuse_unset
    kex_algorithms: Sequence[str] | None = None
    ciphers: Sequence[str] | None = None
    macs: Sequence[str] | None = None
    host_key_algorithms: Sequence[str] | None = None
    #: Seconds for TCP connect + handshake + authentication (None = wait forever).
    timeout: float | None = 30.0
    #: Rekey after this many bytes in both directions together, or this many seconds.
    rekey_bytes: int = 1 << 30
    rekey_interval: float = 3600.0
    #: Receive window and maximum packet size we advertise for each channel.
    window_size: int = 2 * 1024 * 1024
    max_packet_size: int = 32 * 1024
    banner_callback: Callable[[str], None] | None = None
    client_version: str | None = None
    #: Offer zlib@openssh.com (started after authentication), then zlib, then none.  Off by
    #: default: it costs CPU and only pays on slow links with compressible data.
    compression: bool = False
    #: Seconds of silence from the server before asking it for a reply (OpenSSH's
    #: ServerAliveInterval); None turns keepalives off.  After keepalive_count_max
    #: unanswered asks the connection ends with ConnectionLost.
    keepalive_interval: float | None = None
    keepalive_count_max: int = 3
    #: Whether host_key_algorithms was given (then for_host() keeps its order).
    _host_key_algorithms_chosen: bool = field(default=False, init=False, repr=False,
                                              compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.auth, AuthMethod):
            self.auth = [self.auth]
        for method in self.auth:
            if not isinstance(method, AuthMethod):
                raise TypeError(f"auth entries must be sshlib auth methods, not {method!r}")
        from .kex import SUPPORTED as kex_available  # ML-KEM/FFDH depend on cryptography
        self.kex_algorithms = algs.check_names(
            "kex_algorithms", self.kex_algorithms,
            tuple(n for n in algs.DEFAULT_KEX if n in kex_available),
            tuple(n for n in algs.SUPPORTED_KEX if n in kex_available))
        self.ciphers = algs.check_names(
            "ciphers", self.ciphers, algs.DEFAULT_CIPHERS, algs.SUPPORTED_CIPHERS)
        self.macs = algs.check_names("macs", self.macs, algs.DEFAULT_MACS, algs.SUPPORTED_MACS)
        self._host_key_algorithms_chosen = self.host_key_algorithms is not None
        self.host_key_algorithms = algs.check_names(
            "host_key_algorithms", self.host_key_algorithms, algs.DEFAULT_HOST_KEY,
            algs.SUPPORTED_HOST_KEY + algs.SUPPORTED_CERT_HOST_KEY)
        if not 1024 <= self.max_packet_size <= 256 * 1024 - 1024:
            raise ValueError("max_packet_size must be between 1 KiB and 255 KiB")
        if not self.max_packet_size <= self.window_size <= 0xFFFFFFFF:
            raise ValueError("window_size must be at least max_packet_size and below 4 GiB")
        if self.rekey_bytes < 1 << 20:
            raise ValueError("rekey_bytes below 1 MiB would rekey constantly")
        if self.keepalive_interval is not None and self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be positive (or None for no keepalives)")
        if self.keepalive_count_max < 1:
            raise ValueError("keepalive_count_max must be at least 1")


    def for_host(self, host: str, port: int) -> ClientConfig:
        """This config as used for one server: known key types first (as OpenSSH does).

        When the host key callback can tell which key types it already knows
        for the server (knownhosts.callback can) and host_key_algorithms was
        left at its default, those types move to the front.  Otherwise the
        server may pick a type we have no entry for, and a known host would
        fail as unknown.
        """
        known_for = getattr(self.host_key_callback, "host_key_algorithms", None)
        if self._host_key_algorithms_chosen or not callable(known_for):
            return self
        enabled = list(self.host_key_algorithms or ())
        # Host certificate algorithms come in only this way (for a @cert-authority host).
        known = [name for name in known_for(host, port)
                 if name in enabled or name in algs.CERT_HOST_KEY]
        if not known:
            return self
        ordered = known + [name for name in enabled if name not in known]
        if ordered == enabled:
            return self
        copy = dataclasses.replace(self, host_key_algorithms=ordered)
        copy._host_key_algorithms_chosen = False
        return copy


def fixed_host_key(key: PublicKey) -> HostKeyCallback:
    """Accept exactly this host key (Go's ssh.FixedHostKey)."""
    expected = key.blob

    def check(hostname: str, port: int, offered: PublicKey) -> None:
        if not hmac.compare_digest(offered.blob, expected):
            raise HostKeyMismatchError(
                f"host key mismatch for {hostname}:{port}: got {offered.fingerprint()}, "
                f"expected {key.fingerprint()}", host=hostname, port=port, key=offered,
                known=[key])

    return check


def insecure_ignore_host_key() -> HostKeyCallback:
    """Accept any host key. Only for tests and throwaway hosts: it allows MITM attacks."""

    def accept(hostname: str, port: int, offered: PublicKey) -> None:
        return None

    return accept
