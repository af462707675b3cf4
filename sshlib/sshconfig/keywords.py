"""Every ssh_config keyword: how its arguments parse and where the value goes (readconf.c).

`KEYWORDS` is the registry: lower-case keyword -> `Keyword` (the name
``ssh -G`` prints, the handler that parses a line).  Handlers validate their
arguments on every line, active or not, as OpenSSH does, and store a value
only while the line is active and (for most keywords) only the first time:
the first obtained value wins.  Keywords sshlib does not act on are listed
with `_raw` handlers: accepted, stored as written, logged once at debug.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import alglists
from .expand import ExpandError, percent_expand
from .lexer import a2port, atoi, convtime, match_pattern, scan_scaled

__all__ = ["Keyword", "KEYWORDS", "Options", "Forward", "LineError", "Line", "MULTISTATE",
           "lookup"]

log = logging.getLogger("sshlib.sshconfig")


class LineError(ValueError):
    """A line's arguments are wrong; the reader adds the file and line number."""


@dataclass(frozen=True)
class Forward:
    """One LocalForward / RemoteForward / DynamicForward (readconf.c struct Forward)."""

    listen_host: str | None = None
    listen_port: int = 0
    listen_path: str | None = None
    connect_host: str | None = None
    connect_port: int = 0
    connect_path: str | None = None

    @property
    def dynamic(self) -> bool:
        """A SOCKS forward (DynamicForward, or RemoteForward with one argument)."""
        return self.connect_host == "socks" and self.connect_path is None


@dataclass
class Options:
    """Values collected so far (readconf.c Options); unset means absent from `values`."""

    values: dict[str, Any] = field(default_factory=dict)
    identity_files: list[tuple[str, bool]] = field(default_factory=list)
    certificate_files: list[tuple[str, bool]] = field(default_factory=list)
    local_forwards: list[Forward] = field(default_factory=list)
    remote_forwards: list[Forward] = field(default_factory=list)
    send_env: list[str] = field(default_factory=list)
    setenv: list[str] = field(default_factory=list)
    user_hostfiles: list[str] = field(default_factory=list)
    system_hostfiles: list[str] = field(default_factory=list)
    #: Keywords sshlib accepted but does not act on (each logged once).
    unused: set[str] = field(default_factory=set)

    def first(self, key: str, value: Any, line: Line) -> None:
        """Store `value` if the line is active and `key` has no value yet (first wins)."""
        if line.active and key not in self.values:
            self.values[key] = value


@dataclass
class Line:
    """One configuration line as a handler sees it."""

    keyword: str
    args: list[str]
    #: The text after the keyword, unsplit (ProxyCommand and friends take it whole).
    rest: str
    active: bool
    user_config: bool
    filename: str = "<options>"
    number: int = 0

    def arg(self, what: str = "argument") -> str:
        """Take the next argument; LineError if there is none (or it is empty)."""
        if not self.args or self.args[0] == "":
            raise LineError(f"missing {what}")
        return self.args.pop(0)


Handler = Callable[[Options, Line], None]


@dataclass(frozen=True)
class Keyword:
    """A registry entry: the canonical (ssh -G) name and the line handler."""

    name: str
    handler: Handler
    #: False: accepted and ignored by sshlib (logged once at debug).
    used: bool = True


# --- multistate tables (readconf.c): name -> value; ssh -G prints the first name of a value
_FLAG = {"true": 1, "false": 0, "yes": 1, "no": 0}
MULTISTATE: dict[str, dict[str, int]] = {
    "flag": _FLAG,
    "yesnoask": {**_FLAG, "ask": 2},
    "strict": {"true": 1, "false": 0, "yes": 1, "no": 0, "ask": 2, "off": 0, "accept-new": 3},
    "yesnoaskconfirm": {**_FLAG, "ask": 2, "confirm": 3},
    "addressfamily": {"inet": 2, "inet6": 10, "any": 0},
    "controlmaster": {"true": 1, "yes": 1, "false": 0, "no": 0, "auto": 2, "ask": 3,
                      "autoask": 4},
    "tunnel": {"ethernet": 2, "point-to-point": 1, "true": 1, "yes": 1, "false": 0, "no": 0},
    "requesttty": {"true": 1, "yes": 1, "false": 0, "no": 0, "force": 2, "auto": 3},
    "sessiontype": {"none": 0, "subsystem": 1, "default": 2},
    "canonicalize": {"true": 1, "false": 0, "yes": 1, "no": 0, "always": 2},
    "pubkey": {"true": 3, "false": 0, "yes": 3, "no": 0, "unbound": 1, "host-bound": 2},
    "compression": {"yes": 1, "no": 0},
}


def _multistate(table: str, key: str | None = None) -> Handler:
    states = MULTISTATE[table]

    def handle(opts: Options, line: Line) -> None:
        arg = line.arg()
        value = states.get(arg.lower())
        if value is None:
            raise LineError(f'unsupported option "{arg}"')
        opts.first(key or line.keyword, value, line)
    return handle


def _flag(key: str | None = None) -> Handler:
    return _multistate("flag", key)


def _time(opts: Options, line: Line) -> None:
    arg = line.arg("time value")
    if arg == "none":
        return  # "none" leaves the value unset (so a later line may still set it)
    value = convtime(arg)
    if value < 0:
        raise LineError("invalid time value")
    opts.first(line.keyword, value, line)


def _int(opts: Options, line: Line) -> None:
    arg = line.args.pop(0) if line.args else None
    value = atoi(arg)
    if value is None:
        raise LineError(f"integer value {'missing' if arg is None else 'invalid'}")
    opts.first(line.keyword, value, line)


def _string(opts: Options, line: Line) -> None:
    opts.first(line.keyword, line.arg(), line)


def _command(opts: Options, line: Line) -> None:
    """ProxyCommand, LocalCommand, RemoteCommand, KnownHostsCommand: the rest of the line."""
    key = line.keyword
    if key == "proxycommand" and "proxyjump" in opts.values:
        key = "_skipped"  # ProxyJump came first: ProxyCommand is ignored
    opts.first(key, line.rest.lstrip(" \t=").rstrip(), line)
    line.args.clear()


def _port(opts: Options, line: Line) -> None:
    arg = line.arg()
    value = a2port(arg)
    if value <= 0:
        raise LineError(f"Bad port '{arg}'")
    opts.first("port", value, line)


def _files(target: str) -> Handler:
    def handle(opts: Options, line: Line) -> None:
        if not line.args:
            raise LineError("missing argument")
        files: list[str] = getattr(opts, target)
        was_empty = not files
        count = len(line.args)
        for i, arg in enumerate(line.args):
            if not arg:
                raise LineError(f"keyword {line.keyword} empty argument")
            if arg.lower() == "none" and (i > 0 or count > 1):
                raise LineError(f'keyword {line.keyword} "none" argument must appear alone.')
            if line.active and was_empty:
                files.append(arg)
        line.args.clear()
    return handle


def _identity(target: str) -> Handler:
    def handle(opts: Options, line: Line) -> None:
        arg = line.arg()
        if line.active:
            entries: list[tuple[str, bool]] = getattr(opts, target)
            entry = (arg, line.user_config)
            if entry not in entries:
                entries.append(entry)
    return handle


def _algorithms(opts: Options, line: Line) -> None:
    arg = line.arg()
    if not arg.startswith("-"):
        names = arg[1:] if arg[:1] in ("+", "^") else arg
        if not alglists.names_valid(line.keyword, names):
            raise LineError(f"Bad {line.keyword} algorithm list '{arg}'")
    opts.first(line.keyword, arg, line)


def _rekeylimit(opts: Options, line: Line) -> None:
    arg = line.arg()
    if arg == "default":
        size = 0
    else:
        parsed = scan_scaled(arg)
        if parsed is None:
            raise LineError(f"Bad number '{arg}'")
        if 0 < parsed < 16:
            raise LineError("RekeyLimit too small")
        size = parsed
    opts.first("rekeylimit", size, line)
    if line.args:
        if line.args[0] == "none":
            line.args.pop(0)
            return
        line.keyword = "rekeyinterval"
        _time(opts, line)


def _parse_fwd_fields(spec: str) -> list[tuple[str, bool]] | None:
    fields: list[tuple[str, bool]] = []
    i, n = 0, len(spec)
    while i < n and len(fields) < 4:
        if spec[i] == "[":
            end = spec.find("]", i + 1)
            if end < 0 or (end + 1 < n and spec[end + 1] != ":"):
                return None
            text = spec[i + 1:end]
            fields.append((text, "/" in text))
            i = end + 2
            continue
        out: list[str] = []
        ispath = False
        while i < n and spec[i] != ":":
            c = spec[i]
            if c == "\\":
                i += 1
                if i >= n:
                    return None
                c = spec[i]
            elif c == "/":
                ispath = True
            out.append(c)
            i += 1
        fields.append(("".join(out), ispath))
        i += 1
    if i < n:
        return None
    return fields


def parse_forward(spec: str, dynamic: bool, remote: bool,
                  env: dict[str, str] | None = None) -> Forward | None:
    """readconf.c parse_forward(); None if the specification is bad."""
    try:
        spec = percent_expand(spec, None, env if env is not None else {})
    except ExpandError:
        return None
    fields = _parse_fwd_fields(spec.lstrip())
    if not fields:
        return None
    f: dict[str, Any] = {}
    count = len(fields)
    (a0, p0) = fields[0]
    if count == 1:
        f.update(listen_path=a0, listen_port=-2) if p0 else f.update(listen_port=a2port(a0))
        f["connect_host"] = "socks"
    elif count == 2:
        a1, p1 = fields[1]
        if p0 and p1:
            f.update(listen_path=a0, listen_port=-2, connect_path=a1, connect_port=-2)
        elif p1:
            f.update(listen_port=a2port(a0), connect_path=a1, connect_port=-2)
        else:
            f.update(listen_host=a0, listen_port=a2port(a1), connect_host="socks")
    elif count == 3:
        a1, _ = fields[1]
        a2, p2 = fields[2]
        if p0:
            f.update(listen_path=a0, listen_port=-2, connect_host=a1, connect_port=a2port(a2))
        elif p2:
            f.update(listen_host=a0, listen_port=a2port(a1), connect_path=a2, connect_port=-2)
        else:
            f.update(listen_port=a2port(a0), connect_host=a1, connect_port=a2port(a2))
    else:
        f.update(listen_host=a0, listen_port=a2port(fields[1][0]), connect_host=fields[2][0],
                 connect_port=a2port(fields[3][0]))
    fwd = Forward(**f)
    if dynamic:
        if count not in (1, 2):
            return None
    else:
        if count not in (3, 4) and fwd.connect_path is None and fwd.listen_path is None:
            return None
        if fwd.connect_port <= 0 and fwd.connect_path is None:
            return None
    if (fwd.listen_port < 0 and fwd.listen_path is None) or (not remote and
                                                           fwd.listen_port == 0):
        return None
    return fwd


def _forward(opts: Options, line: Line) -> None:
    arg = line.arg()
    remote = line.keyword == "remoteforward"
    dynamic = line.keyword == "dynamicforward"
    if not dynamic:
        target = line.args.pop(0) if line.args else ""
        if not target:
            if not remote:
                raise LineError("Missing target argument.")
            dynamic = True
        else:
            arg = f"{arg}:{target}"
    fwd = parse_forward(arg, dynamic, remote)
    if fwd is None:
        raise LineError("Bad forwarding specification.")
    if line.active:
        target_list = opts.remote_forwards if remote else opts.local_forwards
        if fwd not in target_list:
            target_list.append(fwd)


def _sendenv(opts: Options, line: Line) -> None:
    for arg in line.args:
        if not arg or "=" in arg:
            raise LineError("Invalid environment name.")
        if not line.active:
            continue
        if arg.startswith("-"):
            opts.send_env[:] = [e for e in opts.send_env if not match_pattern(e, arg[1:])]
        else:
            opts.send_env.append(arg)
    line.args.clear()


def _setenv(opts: Options, line: Line) -> None:
    was_empty = not opts.setenv
    for arg in line.args:
        if "=" not in arg:
            raise LineError("Invalid SetEnv.")
        if not line.active or not was_empty:
            continue
        name = arg.split("=", 1)[0]
        if any(e.split("=", 1)[0] == name for e in opts.setenv):
            continue
        opts.setenv.append(arg)
    line.args.clear()


def _agent_path(key: str) -> Handler:
    def handle(opts: Options, line: Line) -> None:
        arg = line.arg()
        if key == "forwardagent":
            value = _FLAG.get(arg.lower())
            if value is not None:
                opts.first("forwardagent", value, line)
                return
            opts.first("forwardagent", 1, line)
        try:
            percent_expand(arg, None, _AnyEnv())
        except ExpandError:
            raise LineError(f"Invalid environment expansion {arg}.") from None
        if arg.startswith("$") and not arg.startswith("${"):
            name = arg[1:]
            if not name or not (name[0].isalpha() or name[0] == "_") or not all(
                    c.isalnum() or c == "_" for c in name):
                raise LineError(f"Invalid environment name {arg}.")
        opts.first(key if key != "forwardagent" else "forwardagentpath", arg, line)
    return handle


class _AnyEnv(dict[str, str]):
    """For syntax checks: every variable exists."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return ""


def _proxyjump(opts: Options, line: Line) -> None:
    text = line.rest.lstrip(" \t=")
    text = text.split("#", 1)[0].rstrip()
    line.args.clear()
    hops = [h for h in text.split(",")]
    if text.lower() != "none":
        for hop in hops:
            if parse_jump_host(hop) is None:
                raise LineError(f'Invalid ProxyJump "{text}"')
    if line.active and "proxycommand" not in opts.values and "proxyjump" not in opts.values:
        opts.values["proxyjump"] = text


def parse_jump_host(text: str) -> tuple[str | None, str, int] | None:
    """One ProxyJump hop, ``[user@]host[:port]`` or ``ssh://[user@]host[:port]``."""
    if text.startswith("ssh://"):
        text = text[6:]
        if "/" in text:
            return None
    user: str | None = None
    if "@" in text:
        user, _, text = text.rpartition("@")
        if not user:
            return None
    port = -1
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return None
        if rest:
            if not rest.startswith(":"):
                return None
            port = a2port(rest[1:])
            if port <= 0:
                return None
    elif ":" in text:
        host, _, port_text = text.partition(":")
        port = a2port(port_text)
        if port <= 0:
            return None
    else:
        host = text
    if not host:
        return None
    return user, host, port


def _ignoreunknown(opts: Options, line: Line) -> None:
    opts.first("ignoreunknown", line.arg(), line)


def _raw(opts: Options, line: Line) -> None:
    """A keyword sshlib does not act on: keep its words (first value wins)."""
    opts.first(line.keyword, " ".join(line.args), line)
    line.args.clear()


def _ignore(opts: Options, line: Line) -> None:
    line.args.clear()


def _deprecated(opts: Options, line: Line) -> None:
    log.debug('%s line %d: Deprecated option "%s"', line.filename, line.number, line.keyword)
    line.args.clear()


def _unsupported(opts: Options, line: Line) -> None:
    log.warning('%s line %d: Unsupported option "%s"', line.filename, line.number,
                line.keyword)
    line.args.clear()


def _structural(opts: Options, line: Line) -> None:  # Host, Match, Include: the reader's
    raise AssertionError("handled by the reader")


_TABLE: list[tuple[str, Handler, bool]] = [
    ("host", _structural, True), ("match", _structural, True), ("include", _structural, True),
    ("hostname", _string, True), ("port", _port, True), ("user", _string, True),
    ("connecttimeout", _time, True), ("connectionattempts", _int, True),
    ("addressfamily", _multistate("addressfamily"), True), ("bindaddress", _string, True),
    ("identityfile", _identity("identity_files"), True),
    ("certificatefile", _identity("certificate_files"), True),
    ("identitiesonly", _flag(), True), ("identityagent", _agent_path("identityagent"), True),
    ("preferredauthentications", _string, True),
    ("pubkeyauthentication", _multistate("pubkey"), True),
    ("passwordauthentication", _flag(), True),
    ("kbdinteractiveauthentication", _flag(), True),
    ("numberofpasswordprompts", _int, True),
    ("userknownhostsfile", _files("user_hostfiles"), True),
    ("globalknownhostsfile", _files("system_hostfiles"), True),
    ("hostkeyalias", _string, True), ("stricthostkeychecking", _multistate("strict"), True),
    ("hashknownhosts", _flag(), True),
    ("ciphers", _algorithms, True), ("macs", _algorithms, True),
    ("kexalgorithms", _algorithms, True), ("hostkeyalgorithms", _algorithms, True),
    ("pubkeyacceptedalgorithms", _algorithms, True),
    ("hostbasedacceptedalgorithms", _algorithms, False),
    ("casignaturealgorithms", _algorithms, False),
    ("rekeylimit", _rekeylimit, True),
    ("forwardagent", _agent_path("forwardagent"), True),
    ("sendenv", _sendenv, True), ("setenv", _setenv, True),
    ("requesttty", _multistate("requesttty"), True), ("remotecommand", _command, True),
    ("proxyjump", _proxyjump, True), ("proxycommand", _command, True),
    ("localforward", _forward, True), ("remoteforward", _forward, True),
    ("dynamicforward", _forward, True), ("exitonforwardfailure", _flag(), True),
    ("clearallforwardings", _flag(), True),
    ("serveraliveinterval", _time, True), ("serveralivecountmax", _int, True),
    ("compression", _multistate("compression"), True),
    ("ignoreunknown", _ignoreunknown, True), ("batchmode", _flag(), True),
    # parsed exactly (they shape ssh -G) but not acted on
    ("canonicalizehostname", _multistate("canonicalize"), False),
    ("canonicalizefallbacklocal", _flag(), False), ("canonicalizemaxdots", _int, False),
    ("checkhostip", _flag(), False), ("controlmaster", _multistate("controlmaster"), False),
    ("enablesshkeysign", _flag(), False), ("forwardx11", _flag(), False),
    ("forwardx11trusted", _flag(), False), ("forwardx11timeout", _time, False),
    ("gatewayports", _flag(), False), ("hostbasedauthentication", _flag(), False),
    ("nohostauthenticationforlocalhost", _flag(), False),
    ("permitlocalcommand", _flag(), False), ("proxyusefdpass", _flag(), False),
    ("sessiontype", _multistate("sessiontype"), False), ("stdinnull", _flag(), False),
    ("forkafterauthentication", _flag(), False), ("streamlocalbindunlink", _flag(), False),
    ("tcpkeepalive", _flag(), False), ("tunnel", _multistate("tunnel"), False),
    ("verifyhostkeydns", _multistate("yesnoask"), False),
    ("visualhostkey", _flag(), False), ("updatehostkeys", _multistate("yesnoask"), False),
    ("enableescapecommandline", _flag(), False), ("requiredrsasize", _int, False),
    ("localcommand", _command, False), ("knownhostscommand", _command, False),
    ("controlpath", _string, False), ("bindinterface", _string, False),
    ("kbdinteractivedevices", _string, False), ("xauthlocation", _string, False),
    ("pkcs11provider", _string, False), ("securitykeyprovider", _string, False),
    ("revokedhostkeys", _string, False),
    ("gssapiauthentication", _flag(), False), ("gssapidelegatecredentials", _flag(), False),
]
_RAW = ("addkeystoagent canonicaldomains canonicalizepermittedcnames controlpersist escapechar "
        "fingerprinthash ipqos loglevel logverbose permitremoteopen streamlocalbindmask "
        "syslogfacility tunneldevice gssapikeyexchange gssapitrustdns gssapirenewalforcesrekey "
        "gssapikexalgorithms gssapiclientidentity gssapiserveridentity "
        # keywords of OpenSSH releases after 9.2, so newer configurations still load
        "tag channeltimeout obscurekeystroketiming enableescapecommandline refuseconnection "
        "warnweakcrypto versionaddendum pubkeyauthoptions").split()
_ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "tisauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication", "identityfile2": "identityfile",
    "keepalive": "tcpkeepalive", "hostbasedkeytypes": "hostbasedacceptedalgorithms",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms", "smartcarddevice": "pkcs11provider",
    # Debian's keepalive-extensions patch
    "protocolkeepalives": "serveraliveinterval", "setuptimeout": "connecttimeout",
}
_SPECIAL: dict[str, Handler] = {"protocol": _ignore}
_SPECIAL.update({k: _deprecated for k in (
    "cipher fallbacktorsh globalknownhostsfile2 rhostsauthentication userknownhostsfile2 "
    "useroaming usersh useprivilegedport").split()})
_SPECIAL.update({k: _unsupported for k in (
    "afstokenpassing kerberosauthentication kerberostgtpassing rsaauthentication "
    "rhostsrsaauthentication compressionlevel").split()})

KEYWORDS: dict[str, Keyword] = {name: Keyword(name, handler, used)
                                for name, handler, used in _TABLE}
for _name in _RAW:
    KEYWORDS.setdefault(_name, Keyword(_name, _raw, False))
for _alias, _target in _ALIASES.items():
    KEYWORDS[_alias] = KEYWORDS[_target]
for _name, _handler in _SPECIAL.items():
    KEYWORDS[_name] = Keyword(_name, _handler, False)


def lookup(keyword: str) -> Keyword | None:
    """The keyword's entry (`keyword` lower-cased already), or None if OpenSSH lacks it."""
    return KEYWORDS.get(keyword)
