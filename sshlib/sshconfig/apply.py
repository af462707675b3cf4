"""What resolved options do: a `ClientConfig` (auth, host keys, algorithms, keepalive).

`make_client_config()` turns a `HostConfig` into the ClientConfig both
front-ends dial with.  It reads key files, asks the agent for its keys and
builds the StrictHostKeyChecking callback; it never prompts: passwords and
passphrases come from the caller (values or callbacks).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import (
    AuthMethod,
    ClientConfig,
    HostKeyCallback,
    KeyboardInteractive,
    Password,
    Prompt,
    PublicKeys,
)
from ..errors import (
    ConfigError,
    ForwardingError,
    KeyLoadError,
    PassphraseRequiredError,
    SSHError,
)
from ..keys import (
    Certificate,
    CertSigner,
    PublicKey,
    Signer,
    load_certificate,
    load_private_key,
    load_public_key,
)
from .hostkeys import AskCallback, HostKeyPolicy

if TYPE_CHECKING:
    from .forwards import ForwardRequest
    from .hostconfig import HostConfig

__all__ = ["ConnectArgs", "make_client_config", "agent_endpoint", "hop_args", "forward_failed",
           "DEFAULT_PREFERRED"]

log = logging.getLogger("sshlib.sshconfig")

#: sshlib's order when PreferredAuthentications is not set (OpenSSH's, minus gssapi/hostbased).
DEFAULT_PREFERRED = ("publickey", "keyboard-interactive", "password")
DEFAULT_TIMEOUT = 30.0
AGENT_TIMEOUT = 10.0

#: A passphrase, or a callback (key file path) -> passphrase (None to skip that key).
Passphrase = str | bytes | Callable[[str], "str | bytes | None"] | None
#: A password, or a callback () -> password.
PasswordArg = str | Callable[[], str] | None


@dataclass
class ConnectArgs:
    """The caller's side of `sshlib.connect` (everything not in the configuration)."""

    password: PasswordArg = None
    passphrase: Passphrase = None
    #: Replaces the StrictHostKeyChecking callback built from the known_hosts options.
    host_key_callback: HostKeyCallback | None = None
    #: Asked about unknown host keys under StrictHostKeyChecking=ask.
    ask_host_key: AskCallback | None = None
    #: Extra auth methods tried after the configured ones.
    auth: Sequence[AuthMethod] = ()
    #: Seconds for connect + handshake + authentication; None: ConnectTimeout or 30 s.
    timeout: float | None = None
    #: Extra ClientConfig fields (window_size, banner_callback, ...).
    config: dict[str, Any] | None = None


def agent_endpoint(value: str | None, env: dict[str, str] | None = None) -> str | None:
    """The sshlib.agent endpoint IdentityAgent means; None for no agent.

    None/"SSH_AUTH_SOCK" -> $SSH_AUTH_SOCK, "none" -> no agent, "$VAR" -> the
    variable's value, anything else is an endpoint string (a socket path
    or any sshlib.agent endpoint such as ``tcp:HOST:PORT``).
    """
    env = dict(os.environ) if env is None else env
    if value is None or value == "SSH_AUTH_SOCK":
        return env.get("SSH_AUTH_SOCK") or None
    if value.lower() == "none":
        return None
    if value.startswith("$") and not value.startswith("${"):
        return env.get(value[1:]) or None
    return value


def _agent_signers(endpoint: str | None) -> list[Signer]:
    """The agent's keys as signers (each holds the agent connection open); [] if unreachable."""
    if endpoint is None:
        return []
    from .. import agent

    try:
        client = agent.connect(endpoint, timeout=AGENT_TIMEOUT)
        return list(client.signers())
    except SSHError as exc:
        log.info("agent %s not usable: %s", endpoint, exc)
        return []


def _passphrase_for(arg: Passphrase, path: str) -> str | bytes | None:
    if callable(arg):
        return arg(path)
    return arg


def _file_signers(hc: HostConfig, passphrase: Passphrase,
                  agent_keys: set[PublicKey]) -> tuple[list[Signer], set[PublicKey]]:
    """Keys from IdentityFile (missing files skipped), and the public keys they name."""
    signers: list[Signer] = []
    wanted: set[PublicKey] = set()
    for path in hc.identity_files:
        if not os.path.exists(path):
            if hc.identity_files_given:
                log.info("identity file %s not accessible: skipped", path)
            continue
        public: PublicKey | None = None
        try:
            public = load_public_key(path + ".pub")
            wanted.add(public)
        except KeyLoadError:
            pass
        if public is not None and public in agent_keys:
            continue  # the agent holds it: no need to decrypt the file
        try:
            key = load_private_key(path)
        except PassphraseRequiredError:
            secret = _passphrase_for(passphrase, path)
            if secret is None:
                log.info("identity file %s is encrypted and no passphrase was given: skipped",
                         path)
                continue
            try:
                key = load_private_key(path, secret)
            except KeyLoadError as exc:
                log.info("identity file %s: %s", path, exc)
                continue
        except KeyLoadError as exc:
            log.info("identity file %s: %s", path, exc)
            continue
        wanted.add(key.public_key)
        if key.public_key not in agent_keys:
            signers.append(key)
    return signers, wanted


def _certificates(hc: HostConfig) -> list[Certificate]:
    """The user certificates CertificateFile names (missing or unreadable ones skipped, as
    ssh does, with a log line)."""
    certs: list[Certificate] = []
    for path in hc.certificate_files:
        try:
            cert = load_certificate(path)
        except KeyLoadError as exc:
            log.info("certificate file %s: %s", path, exc)
            continue
        if cert.cert_type != "user":
            log.info("certificate file %s: a host certificate, not used for login", path)
            continue
        certs.append(cert)
    return certs


def _with_certificates(signers: list[Signer], certs: Sequence[Certificate]) -> list[Signer]:
    """Each CertificateFile certificate whose key is among `signers` (a key file or the
    agent), offered before the plain keys, as ssh offers them."""
    certified: list[Signer] = []
    for cert in certs:
        for signer in signers:
            if signer.public_key == cert.public_key:
                try:
                    certified.append(CertSigner(signer, cert))
                except (ValueError, SSHError) as exc:
                    log.info("certificate %r not usable: %s", cert.key_id, exc)
                break
        else:
            log.info("certificate %r: no identity holds its key", cert.key_id)
    return [*certified, *signers]


def _accepted(signer: Signer, algorithms: Sequence[str]) -> bool:
    return any(name in algorithms for name in signer.public_key.signature_algorithms)


def _password_answers(password: str, rounds: int) -> Callable[[str, str, list[Prompt]],
                                                               list[str]]:
    left = [rounds]

    def answer(name: str, instruction: str, prompts: list[Prompt]) -> list[str]:
        if not prompts:
            return []
        if left[0] <= 0:
            raise SSHError("keyboard-interactive: NumberOfPasswordPrompts used up")
        left[0] -= 1
        return [password if not p.echo else "" for p in prompts]
    return answer


def hop_args(args: ConnectArgs) -> ConnectArgs:
    """What a ProxyJump hop gets of the caller's arguments: secrets and timeout, not the
    target's host key callback or extra auth methods (each hop checks its own host key)."""
    return ConnectArgs(password=args.password, passphrase=args.passphrase,
                       ask_host_key=args.ask_host_key, timeout=args.timeout)


def forward_failed(hc: HostConfig, request: ForwardRequest, error: Exception) -> None:
    """A forward from the configuration could not start: ssh warns, or with
    ExitOnForwardFailure gives up (ForwardingError)."""
    kind = {"local": "LocalForward", "remote": "RemoteForward",
            "dynamic": "DynamicForward"}[request.kind]
    message = f"{hc.host}: {kind} {request.text} failed: {error}"
    if hc.exit_on_forward_failure:
        raise ForwardingError(message + " (ExitOnForwardFailure yes)") from error
    log.warning("%s", message)


def make_client_config(hc: HostConfig, args: ConnectArgs) -> tuple[ClientConfig, str]:
    """The ClientConfig and "host:port" for `hc`; see HostConfig.client_config()."""
    methods: list[AuthMethod] = []
    order = hc.preferred_authentications or list(DEFAULT_PREFERRED)
    password = args.password() if callable(args.password) else args.password
    for method in order:
        if method == "publickey" and hc.pubkey_authentication:
            endpoint = agent_endpoint(hc.identity_agent)
            from_agent = _agent_signers(endpoint)
            agent_keys = {s.public_key for s in from_agent}
            files, wanted = _file_signers(hc, args.passphrase, agent_keys)
            if hc.identities_only:
                from_agent = [s for s in from_agent if s.public_key in wanted]
            signers = [s for s in [*from_agent, *files]
                       if _accepted(s, hc.pubkey_accepted_algorithms)]
            signers = _with_certificates(signers, _certificates(hc))
            if signers:
                methods.append(PublicKeys(*signers))
        elif method == "keyboard-interactive" and hc.kbd_interactive_authentication:
            if password is not None:
                methods.append(KeyboardInteractive(
                    _password_answers(password, hc.number_of_password_prompts)))
        elif method == "password" and hc.password_authentication:
            if password is not None:
                methods.append(Password(password))
        elif method not in ("publickey", "keyboard-interactive", "password"):
            log.debug("PreferredAuthentications: sshlib does not implement %s", method)
    methods.extend(args.auth)
    callback = args.host_key_callback or HostKeyPolicy(
        hc.user_known_hosts_files, hc.global_known_hosts_files,
        strict=hc.strict_host_key_checking, alias=hc.host_key_alias,
        hash_new=hc.hash_known_hosts, ask=args.ask_host_key)
    if 0 < hc.rekey_limit < 1 << 20:
        raise ConfigError(f"RekeyLimit {hc.rekey_limit}: sshlib rekeys after 1 MiB at the "
                          "earliest")
    fields: dict[str, Any] = dict(
        user=hc.user, auth=methods, host_key_callback=callback,
        kex_algorithms=hc.kex_algorithms, ciphers=hc.ciphers, macs=hc.macs,
        host_key_algorithms=hc.host_key_algorithms if hc.host_key_algorithms_given else None,
        timeout=args.timeout if args.timeout is not None else (
            hc.connect_timeout if hc.connect_timeout is not None else DEFAULT_TIMEOUT))
    if hc.rekey_limit:
        fields["rekey_bytes"] = hc.rekey_limit
    if hc.rekey_interval:
        fields["rekey_interval"] = float(hc.rekey_interval)
    if hc.server_alive_interval > 0:
        fields["keepalive_interval"] = float(hc.server_alive_interval)
        fields["keepalive_count_max"] = max(1, hc.server_alive_count_max)
    if hc.compression:
        if "compression" in {f.name for f in dataclasses.fields(ClientConfig)}:
            fields["compression"] = True
            log.info("Compression yes: zlib@openssh.com / zlib offered")
        else:
            log.info("Compression yes: accepted; this sshlib does not compress")
    fields.update(args.config or {})
    try:
        config = ClientConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{hc.host}: {exc}") from None
    host = hc.hostname
    addr = f"[{host}]:{hc.port}" if ":" in host else f"{host}:{hc.port}"
    return config, addr
