"""`HostConfig`: the options resolved for one host, typed, plus ``ssh -G``'s view of them.

Built from the reader's `Options` the way ssh.c finishes them: defaults
filled in (readconf.c fill_default_options), then ``~``, ``%`` tokens and
``${VAR}`` expanded where ssh expands them.  `as_ssh_g()` prints what
``ssh -G`` prints for every keyword sshlib resolves; the typed attributes
are what `client_config()` and `sshlib.connect()` act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from . import alglists
from .expand import ExpandError, LocalInfo, connection_hash, percent_expand, tilde_expand
from .keywords import MULTISTATE, Forward, Options

if TYPE_CHECKING:
    from ..config import ClientConfig
    from .forwards import ForwardRequest

__all__ = ["HostConfig", "build", "DEFAULT_IDENTITY_FILES", "SSH_G_ORDER"]

DEFAULT_IDENTITY_FILES = tuple(f"~/.ssh/{n}" for n in (
    "id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"))
_USER_HOSTFILES = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_SYSTEM_HOSTFILES = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

# (keyword, multistate table or "" for yes/no, default value) in ssh -G's order
_FLAGS: tuple[tuple[str, str, int], ...] = (
    ("addressfamily", "addressfamily", 0), ("batchmode", "", 0),
    ("canonicalizefallbacklocal", "", 1), ("canonicalizehostname", "canonicalize", 0),
    ("checkhostip", "", 0), ("compression", "", 0), ("controlmaster", "controlmaster", 0),
    ("enablesshkeysign", "", 0), ("clearallforwardings", "", 0),
    ("exitonforwardfailure", "", 0), ("forwardx11", "", 0), ("forwardx11trusted", "", 1),
    ("gatewayports", "", 0), ("gssapiauthentication", "", 0),
    ("gssapidelegatecredentials", "", 0), ("hashknownhosts", "", 0),
    ("hostbasedauthentication", "", 0), ("identitiesonly", "", 0),
    ("kbdinteractiveauthentication", "", 1), ("nohostauthenticationforlocalhost", "", 0),
    ("passwordauthentication", "", 1), ("permitlocalcommand", "", 0),
    ("proxyusefdpass", "", 0), ("pubkeyauthentication", "pubkey", 3),
    ("requesttty", "requesttty", 3), ("sessiontype", "sessiontype", 2), ("stdinnull", "", 0),
    ("forkafterauthentication", "", 0), ("streamlocalbindunlink", "", 0),
    ("stricthostkeychecking", "strict", 2), ("tcpkeepalive", "", 1),
    ("tunnel", "tunnel", 0), ("verifyhostkeydns", "yesnoask", 0),
    ("visualhostkey", "", 0), ("updatehostkeys", "yesnoask", -1),
    ("enableescapecommandline", "", 0),
)
_INTS = (("canonicalizemaxdots", 1), ("connectionattempts", 1), ("forwardx11timeout", 1200),
         ("numberofpasswordprompts", 3), ("serveralivecountmax", 3),
         ("serveraliveinterval", 0), ("requiredrsasize", 1024))
_STRINGS = ("bindaddress", "bindinterface", "ciphers", "controlpath", "hostkeyalgorithms",
            "hostkeyalias", "identityagent", "ignoreunknown", "kbdinteractivedevices",
            "kexalgorithms", "localcommand", "remotecommand", "macs", "pkcs11provider",
            "securitykeyprovider", "preferredauthentications", "pubkeyacceptedalgorithms",
            "revokedhostkeys", "xauthlocation", "knownhostscommand")
_CLEAR_ON_NONE = ("localcommand", "remotecommand", "proxycommand", "controlpath",
                  "revokedhostkeys", "pkcs11provider", "securitykeyprovider",
                  "knownhostscommand")
_MULTI_KEYS = frozenset({"identityfile", "certificatefile", "sendenv", "setenv",
                         "localforward", "remoteforward", "dynamicforward"})
#: Every key as_ssh_g() can return, in ssh -G's order.
SSH_G_ORDER: tuple[str, ...] = (
    "host", "user", "hostname", "port", *(f[0] for f in _FLAGS), *(i[0] for i in _INTS),
    *_STRINGS, "dynamicforward", "localforward", "remoteforward", "identityfile",
    "certificatefile", "globalknownhostsfile", "userknownhostsfile", "sendenv", "setenv",
    "forwardagent", "connecttimeout", "rekeylimit", "proxycommand", "proxyjump")


def _state_name(table: str, value: int) -> str:
    if not table:
        return {0: "no", 1: "yes"}.get(value, "UNKNOWN")
    for name, number in MULTISTATE[table].items():
        if number == value:
            return name
    return "UNKNOWN"


def _format_forward(fwd: Forward, dynamic: bool) -> str:
    def side(host: str | None, port: int, path: str | None) -> str:
        if port == -2:
            return path or ""
        return str(port) if host is None else f"[{host}]:{port}"
    text = side(fwd.listen_host, fwd.listen_port, fwd.listen_path)
    if not dynamic:
        text += " " + side(fwd.connect_host, fwd.connect_port, fwd.connect_path)
    return text


@dataclass
class HostConfig:
    """What the OpenSSH configuration says for one host (see `sshlib.sshconfig.resolve`).

    Attributes are final values: defaults filled in, paths and tokens
    expanded (identity_files, certificate_files, user_known_hosts_files,
    identity_agent, forward_agent, remote_command).  ``options`` holds the
    raw values by lower-case keyword for anything without an attribute.
    """

    host: str
    hostname: str
    port: int
    user: str
    connect_timeout: float | None
    connection_attempts: int
    address_family: str
    bind_address: str | None
    identity_files: list[str]
    #: False when the list is OpenSSH's default one (missing files are then skipped silently).
    identity_files_given: bool
    certificate_files: list[str]
    identities_only: bool
    #: None: the default agent (SSH_AUTH_SOCK); "none": no agent; else an endpoint string.
    identity_agent: str | None
    preferred_authentications: list[str] | None
    pubkey_authentication: bool
    password_authentication: bool
    kbd_interactive_authentication: bool
    number_of_password_prompts: int
    pubkey_accepted_algorithms: list[str]
    user_known_hosts_files: list[str]
    global_known_hosts_files: list[str]
    host_key_alias: str | None
    #: "yes", "accept-new", "no" or "ask"
    strict_host_key_checking: str
    hash_known_hosts: bool
    ciphers: list[str]
    macs: list[str]
    kex_algorithms: list[str]
    host_key_algorithms: list[str]
    #: Whether HostKeyAlgorithms was configured (else known_hosts types go first).
    host_key_algorithms_given: bool
    rekey_limit: int
    rekey_interval: int
    #: False, True (the default agent) or a socket path / endpoint to forward.
    forward_agent: bool | str
    send_env: list[str]
    set_env: dict[str, str]
    #: "yes", "no", "force" or "auto"
    request_tty: str
    remote_command: str | None
    proxy_jump: str | None
    proxy_command: str | None
    local_forwards: list[Forward]
    remote_forwards: list[Forward]
    dynamic_forwards: list[Forward]
    exit_on_forward_failure: bool
    clear_all_forwardings: bool
    server_alive_interval: int
    server_alive_count_max: int
    compression: bool
    batch_mode: bool
    options: Options = field(repr=False)
    _ssh_g: dict[str, str | list[str]] = field(default_factory=dict, repr=False)
    #: How this was resolved (files, local facts, exec runner), for resolving jump hops.
    context: Any = field(default=None, repr=False)
    #: 0 for the destination, 1 for the jump host it goes through, ...
    jump_depth: int = 0

    def as_ssh_g(self) -> dict[str, str | list[str]]:
        """The keys and value spellings ``ssh -G`` prints, for the keywords sshlib resolves.

        Keywords ssh prints once map to a string; those it prints once per
        value (identityfile, certificatefile, sendenv, setenv, the three
        forwards) map to a list.  Algorithm lists are sshlib's (its defaults
        and the names it supports), not OpenSSH's.
        """
        return dict(self._ssh_g)

    def ssh_g_text(self) -> str:
        """as_ssh_g() as ``ssh -G`` lays it out: one ``key value`` line per value."""
        lines: list[str] = []
        for key, value in self._ssh_g.items():
            if isinstance(value, list):
                lines.extend(f"{key} {v}" for v in value)
            else:
                lines.append(f"{key} {value}")
        return "\n".join(lines) + "\n"

    def proxy_command_line(self) -> str | None:
        """ProxyCommand with sshconnect.c's tokens expanded (%h %k %n %p %r %%), or None.

        ConfigError for another token.
        """
        if self.proxy_command is None:
            return None
        tokens = {"h": self.hostname, "k": self.host_key_alias or self.host, "n": self.host,
                  "p": str(self.port), "r": self.user}
        try:
            return percent_expand(self.proxy_command, tokens)
        except ExpandError as exc:
            raise ConfigError(f"ProxyCommand: {exc}") from None

    def forward_requests(self) -> list[ForwardRequest]:
        """The forwards connect() starts, as forward_local/remote/dynamic specs."""
        from .forwards import forward_requests

        return forward_requests(self.local_forwards, self.remote_forwards,
                                self.dynamic_forwards)

    def agent_forward_target(self) -> str | None:
        """The agent endpoint ForwardAgent serves forwarded channels from (None: off)."""
        from .apply import agent_endpoint

        if not self.forward_agent:
            return None
        if isinstance(self.forward_agent, str):
            return agent_endpoint(self.forward_agent)
        return agent_endpoint(self.identity_agent)

    def client_config(self, **kwargs: Any) -> tuple[ClientConfig, str]:
        """The ClientConfig this host's options describe, and the "host:port" to dial.

        Keyword arguments are those of `sshlib.connect` (password,
        passphrase, host_key_callback, ...).  Reads identity files and
        known_hosts and asks the agent for its keys; raises ConfigError for
        an option sshlib cannot honour, KeyLoadError for an unreadable key.
        """
        from .apply import ConnectArgs, make_client_config

        return make_client_config(self, ConnectArgs(**kwargs))

def _tokens(opts: Options, local: LocalInfo, host_arg: str, host: str, port: int,
            user: str) -> dict[str, str]:
    alias = opts.values.get("hostkeyalias")
    return {"C": connection_hash(local.hostname, host, str(port), user), "L": local.shorthost,
            "i": str(local.uid), "k": alias.lower() if alias else host_arg,
            "l": local.hostname, "n": host_arg, "p": str(port), "d": local.home, "h": host,
            "r": user, "u": local.user}


def build(opts: Options, local: LocalInfo, host_arg: str, host: str) -> HostConfig:
    """Fill defaults and expand, as ssh.c does before ``-G`` prints (ConfigError if bad)."""
    v = opts.values
    if v.get("batchmode") and "serveraliveinterval" not in v:
        v["serveraliveinterval"] = 300  # Debian's ssh does this (keepalive-extensions patch)

    def flag(key: str, default: int) -> int:
        return int(v.get(key, default))

    if flag("clearallforwardings", 0):
        opts.local_forwards.clear()
        opts.remote_forwards.clear()
    for key in _CLEAR_ON_NONE:
        if isinstance(v.get(key), str) and v[key].lower() == "none":
            v[key] = None
    if v.get("proxyjump", "").lower() == "none":
        v.pop("proxyjump")
    if v.get("proxycommand") is None:
        v.pop("proxycommand", None)
    port = v.get("port", 22)
    user = v.get("user") or local.user
    if v.get("connectionattempts", 1) <= 0:
        raise ConfigError("Invalid number of ConnectionAttempts")
    tokens = _tokens(opts, local, host_arg, host, port, user)
    env = dict(local.env)

    def expand(text: str, what: str, tilde: bool = True, dollar: bool = True) -> str:
        try:
            if tilde:
                text = tilde_expand(text, local.home)
            return percent_expand(text, tokens, env if dollar else None)
        except ExpandError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    identity_given = bool(opts.identity_files)
    raw_ids = [p for p, _ in opts.identity_files] or list(DEFAULT_IDENTITY_FILES)
    user_files = list(opts.user_hostfiles or _USER_HOSTFILES)
    if user_files and user_files[0].lower() == "none":
        user_files = []
    user_files = [expand(f, "UserKnownHostsFile") for f in user_files]
    system_files = list(opts.system_hostfiles or _SYSTEM_HOSTFILES)
    update_default = int(flag("verifyhostkeydns", 0) <= 0 and (
        not opts.user_hostfiles or opts.user_hostfiles == ["~/.ssh/known_hosts"]))
    agent = v.get("identityagent")
    if agent is not None:
        agent = expand(agent, "IdentityAgent")
    fwd_path = v.get("forwardagentpath")
    if fwd_path is not None:
        fwd_path = expand(fwd_path, "ForwardAgent")
    remote_command = v.get("remotecommand")
    if remote_command is not None:
        remote_command = expand(remote_command, "RemoteCommand", tilde=False, dollar=False)
    control_path = v.get("controlpath")
    if control_path is not None:
        control_path = expand(control_path, "ControlPath")
    alias = v.get("hostkeyalias")
    algos: dict[str, list[str]] = {}
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms",
                "pubkeyacceptedalgorithms"):
        defaults, available = alglists.sshlib_lists(key)
        try:
            algos[key] = alglists.assemble(_known_only(key, v.get(key)), defaults, available)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    setenv: dict[str, str] = {}
    for entry in opts.setenv:
        name, _, value = entry.partition("=")
        setenv[name] = value
    timeout = v.get("connecttimeout")
    pref = v.get("preferredauthentications")
    hc = HostConfig(
        host=host_arg, hostname=host, port=port, user=user,
        connect_timeout=float(timeout) if timeout is not None else None,
        connection_attempts=flag("connectionattempts", 1),
        address_family=_state_name("addressfamily", flag("addressfamily", 0)),
        bind_address=v.get("bindaddress"),
        identity_files=[expand(p, "IdentityFile") for p in raw_ids],
        identity_files_given=identity_given,
        certificate_files=[expand(p, "CertificateFile") for p, _ in opts.certificate_files],
        identities_only=bool(flag("identitiesonly", 0)), identity_agent=agent,
        preferred_authentications=pref.split(",") if pref else None,
        pubkey_authentication=flag("pubkeyauthentication", 3) != 0,
        password_authentication=bool(flag("passwordauthentication", 1)),
        kbd_interactive_authentication=bool(flag("kbdinteractiveauthentication", 1)),
        number_of_password_prompts=flag("numberofpasswordprompts", 3),
        pubkey_accepted_algorithms=algos["pubkeyacceptedalgorithms"],
        user_known_hosts_files=user_files,
        global_known_hosts_files=[] if system_files[0].lower() == "none" else
        [tilde_expand(f, local.home) for f in system_files],
        host_key_alias=alias.lower() if alias else None,
        strict_host_key_checking={1: "yes", 0: "no", 2: "ask", 3: "accept-new"}[
            flag("stricthostkeychecking", 2)],
        hash_known_hosts=bool(flag("hashknownhosts", 0)),
        ciphers=algos["ciphers"], macs=algos["macs"], kex_algorithms=algos["kexalgorithms"],
        host_key_algorithms=algos["hostkeyalgorithms"],
        host_key_algorithms_given="hostkeyalgorithms" in v,
        rekey_limit=v.get("rekeylimit", 0), rekey_interval=v.get("rekeyinterval", 0),
        forward_agent=fwd_path if fwd_path is not None else bool(flag("forwardagent", 0)),
        send_env=list(opts.send_env), set_env=setenv,
        request_tty={1: "yes", 0: "no", 2: "force", 3: "auto"}[flag("requesttty", 3)],
        remote_command=remote_command, proxy_jump=v.get("proxyjump"),
        proxy_command=v.get("proxycommand"),
        local_forwards=[f for f in opts.local_forwards if not f.dynamic],
        remote_forwards=list(opts.remote_forwards),
        dynamic_forwards=[f for f in opts.local_forwards if f.dynamic],
        exit_on_forward_failure=bool(flag("exitonforwardfailure", 0)),
        clear_all_forwardings=bool(flag("clearallforwardings", 0)),
        server_alive_interval=flag("serveraliveinterval", 0),
        server_alive_count_max=flag("serveralivecountmax", 3),
        compression=bool(flag("compression", 0)), batch_mode=bool(flag("batchmode", 0)),
        options=opts)
    g: dict[str, str | list[str]] = {"host": host_arg, "user": user, "hostname": host,
                                     "port": str(port)}
    for key, table, default in _FLAGS:
        number = flag(key, update_default if key == "updatehostkeys" else default)
        g[key] = _state_name(table, number)
    for key, default in _INTS:
        g[key] = str(flag(key, default))
    strings: dict[str, Any] = {**v, "controlpath": control_path, "identityagent": agent,
                               "remotecommand": remote_command,
                               "hostkeyalias": alias.lower() if alias else None,
                               "xauthlocation": v.get("xauthlocation", "/usr/bin/xauth")}
    if "securitykeyprovider" not in v:
        strings["securitykeyprovider"] = "internal"
    for key in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms",
                "pubkeyacceptedalgorithms"):
        strings[key] = ",".join(algos[key])
    for key in _STRINGS:
        if strings.get(key) is not None:
            g[key] = str(strings[key])
    # ssh -G lists a local forward with no connect host (path to path) as dynamic too
    g["dynamicforward"] = [_format_forward(f, True) for f in opts.local_forwards
                           if f.connect_host in (None, "socks")]
    g["localforward"] = [_format_forward(f, False) for f in hc.local_forwards]
    g["remoteforward"] = [_format_forward(f, False) for f in opts.remote_forwards]
    g["identityfile"] = raw_ids
    g["certificatefile"] = [p for p, _ in opts.certificate_files]
    g["globalknownhostsfile"] = " ".join(system_files)
    g["userknownhostsfile"] = " ".join(user_files) or "none"
    g["sendenv"] = list(opts.send_env)
    g["setenv"] = list(opts.setenv)
    g["forwardagent"] = fwd_path if fwd_path is not None else _state_name(
        "", flag("forwardagent", 0))
    g["connecttimeout"] = "none" if timeout is None else str(timeout)
    g["rekeylimit"] = f"{hc.rekey_limit} {hc.rekey_interval}"
    if hc.proxy_jump is not None:
        g["proxyjump"] = _format_jump(hc.proxy_jump)
    elif hc.proxy_command is not None:
        g["proxycommand"] = hc.proxy_command
    hc._ssh_g = {k: val for k, val in g.items() if not (k in _MULTI_KEYS and not val)}
    return hc


def _known_only(key: str, spec: str | None) -> str | None:
    """Drop names OpenSSH knows but sshlib does not implement (from explicit and + lists)."""
    if spec is None or spec.startswith("-"):
        return spec
    prefix = spec[0] if spec[0] in "+^" else ""
    available = alglists.sshlib_lists(key)[1]
    kept = [n for n in spec[len(prefix):].split(",")
            if n in available or "*" in n or "?" in n]
    if not kept:
        if prefix:
            return None
        raise ConfigError(f"{key} {spec}: sshlib supports none of these algorithms "
                          f"(it has {','.join(available)})")
    return prefix + ",".join(kept)


def _format_jump(text: str) -> str:
    from .keywords import parse_jump_host

    hops = text.split(",")
    extra = ",".join(hops[:-1])
    parsed = parse_jump_host(hops[-1])
    assert parsed is not None
    user, host, port = parsed
    numeric = ":" in host or all(c in "1234567890." for c in host)
    out = f"{extra}," if extra else ""
    out += f"{user}@" if user else ""
    out += f"[{host}]" if numeric else host
    out += f":{port}" if port > 0 else ""
    return out
