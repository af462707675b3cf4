"""Reading ssh_config files: Host and Match blocks, Include, the final pass (readconf.c).

`read_options()` does what ssh(1) does between parsing its command line and
filling in defaults: options given on the command line first (`-o`), then
each file top to bottom, ``Include`` in place, ``Host``/``Match`` switching
lines on and off, and a second pass over all files when ``Match final`` or
``CanonicalizeHostname`` asks for one.  The only I/O is reading files and,
for ``Match exec``, the injected `ExecRunner`.
"""

from __future__ import annotations

import glob
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .expand import ExpandError, LocalInfo, connection_hash, percent_expand
from .keywords import Line as KLine
from .keywords import LineError, Options, lookup
from .lexer import WHITESPACE, QuoteError, argv_split, match_pattern, match_pattern_list, strdelim

__all__ = ["ExecRunner", "ConfigFile", "read_options", "run_in_shell", "MAX_DEPTH"]

log = logging.getLogger("sshlib.sshconfig")

#: command -> exit status, or None if it died abnormally (a signal).
ExecRunner = Callable[[str], "int | None"]
MAX_DEPTH = 16
EXEC_TIMEOUT = 60.0
SYSTEM_DIR = "/etc/ssh"


def run_in_shell(command: str) -> int | None:
    """The default Match exec runner: ``$SHELL -c command``, stdin/stdout at /dev/null.

    On Windows (no $SHELL) ``cmd.exe /c`` runs it, as Win32-OpenSSH does.
    """
    if sys.platform == "win32" and not os.environ.get("SHELL"):
        shell, argv = "cmd.exe", ["cmd.exe", "/c", command]
    else:
        shell = os.environ.get("SHELL") or "/bin/sh"
        argv = [shell, "-c", command]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, timeout=EXEC_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    except OSError as exc:
        raise ConfigError(f'Shell "{shell}" cannot run: {exc}') from None
    return done.returncode if done.returncode >= 0 else None


@dataclass(frozen=True)
class ConfigFile:
    """A file to read: user files anchor relative Includes in ~/.ssh, system ones in /etc/ssh."""

    path: str
    user: bool = True
    #: Missing is an error (like ``ssh -F``) unless this says otherwise.
    optional: bool = False
    check_perm: bool = False


@dataclass
class _State:
    opts: Options
    local: LocalInfo
    runner: ExecRunner
    host: str
    original_host: str
    final: bool
    want_final: bool = False
    #: unused keywords already logged
    logged: set[str] = field(default_factory=set)


def read_options(files: Sequence[ConfigFile], host: str, *, opts: Options,
                 command_line: Sequence[tuple[str, str]] = (), local: LocalInfo,
                 runner: ExecRunner = run_in_shell) -> tuple[Options, str]:
    """Fill `opts` from `command_line` (-o style) and `files`; return it and the host name.

    The host name is HostName with %h expanded (lower-cased unless an
    address), or `host` itself.  ConfigError names the file and line of
    anything wrong.
    """
    state = _State(opts, local, runner, host, host, final=False)
    for keyword, value in command_line:
        _command_line(state, keyword, value)
    for cf in files:
        _read_file(state, cf, [True], 0, never_match=False)
    resolved = host
    if "hostname" in opts.values:
        try:
            resolved = percent_expand(opts.values["hostname"], {"h": host})
        except ExpandError as exc:
            raise ConfigError(f"HostName: {exc}") from None
        opts.values["hostname"] = resolved
    if not _is_address(resolved):
        resolved = resolved.lower()
    if opts.values.get("canonicalizehostname", 0) != 0:
        state.want_final = True
    if state.want_final:
        log.debug("re-parsing configuration (final pass)")
        opts.values["hostname"] = resolved
        state.host = resolved
        state.final = True
        for cf in files:
            _read_file(state, cf, [True], 0, never_match=False)
    return opts, resolved


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _command_line(state: _State, keyword: str, value: str) -> None:
    text = f"{keyword} {value}"
    where = f"option {keyword}={value!r}"
    try:
        _process_line(state, text, ConfigFile("<options>", user=True), 0, [True], 0,
                      never_match=False, cmdline=True)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.reason}") from None


def _read_file(state: _State, cf: ConfigFile, active: list[bool], depth: int, *,
               never_match: bool) -> bool:
    """Process one file; False if it does not exist."""
    if depth > MAX_DEPTH:
        raise ConfigError("Too many recursive configuration includes", filename=cf.path)
    try:
        with open(cf.path, "rb") as fh:
            if cf.check_perm and hasattr(os, "getuid"):
                st = os.fstat(fh.fileno())
                if (st.st_uid not in (0, os.getuid())) or (stat.S_IMODE(st.st_mode) & 0o022):
                    raise ConfigError("Bad owner or permissions", filename=cf.path)
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        if cf.optional:
            return False
        raise ConfigError("Can't open user config file: No such file or directory",
                          filename=cf.path) from None
    except IsADirectoryError:
        return True
    except OSError as exc:
        raise ConfigError(f"Can't open config file: {exc.strerror}", filename=cf.path) from None
    log.debug("Reading configuration data %s", cf.path)
    text = data.decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.split("\n"), 1):
        _process_line(state, line, cf, number, active, depth, never_match=never_match)
    return True


def _process_line(state: _State, text: str, cf: ConfigFile, number: int, active: list[bool],
                  depth: int, *, never_match: bool, cmdline: bool = False) -> None:
    def fail(message: str) -> ConfigError:
        return ConfigError(message, filename=cf.path, line=number)

    text = text.rstrip(WHITESPACE + "\f")
    if not text:
        return
    keyword, rest = strdelim(text)
    if keyword == "":
        keyword, rest = strdelim(rest)
    if not keyword or keyword.startswith("#"):
        return
    keyword = keyword.lower()
    if rest is not None:
        rest = rest.lstrip(WHITESPACE)
    if not rest:
        raise fail(f'no argument after keyword "{keyword}"')
    entry = lookup(keyword)
    if entry is None:
        ignored = state.opts.values.get("ignoreunknown")
        if ignored is None or match_pattern_list(keyword, ignored, True) != 1:
            raise fail(f"Bad configuration option: {keyword}")
        log.debug('%s line %d: Ignored unknown option "%s"', cf.path, number, keyword)
        return
    try:
        args = argv_split(rest)
    except QuoteError:
        raise fail("invalid quotes") from None
    name = entry.name
    if name in ("host", "match", "include") and cmdline:
        raise fail(f"{name} directive not supported as a command-line option")
    if name == "host":
        active[0] = _host_line(state, args, never_match, fail)
        return
    if name == "match":
        matched, consumed = _match_line(state, rest, cf, number, fail)
        active[0] = False if never_match else matched
        if not consumed:
            raise fail("keyword match extra arguments at end of line")
        return
    if name == "include":
        _include(state, args, cf, number, active, depth, fail)
        return
    line = KLine(keyword=name, args=args, rest=rest, active=active[0], user_config=cf.user,
                 filename=cf.path, number=number)
    try:
        entry.handler(state.opts, line)
    except LineError as exc:
        raise fail(str(exc)) from None
    if line.args:
        raise fail(f"keyword {keyword} extra arguments at end of line")
    if not entry.used and active[0] and name not in state.logged:
        state.logged.add(name)
        log.debug("%s line %d: %s is accepted but sshlib does not act on it", cf.path,
                  number, name)


def _host_line(state: _State, args: list[str], never_match: bool,
               fail: Callable[[str], ConfigError]) -> bool:
    matched = False
    for arg in args:
        if not arg:
            raise fail("keyword host empty argument")
        if never_match:
            return False
        negated = arg.startswith("!")
        pattern = arg[1:] if negated else arg
        if match_pattern(state.host, pattern):
            if negated:
                return False
            matched = True
    return matched


def _match_line(state: _State, rest: str, cf: ConfigFile, number: int,
                fail: Callable[[str], ConfigError]) -> tuple[bool, bool]:
    """readconf.c match_cfg_line(): (matched, all arguments consumed)."""
    opts = state.opts.values
    local = state.local
    port = opts.get("port") or 22
    ruser = opts.get("user") or local.user
    if state.final:
        host = opts["hostname"]
    elif "hostname" in opts:
        try:
            host = percent_expand(opts["hostname"], {"h": state.host})
        except ExpandError as exc:
            raise fail(str(exc)) from None
    else:
        host = state.host
    result = True
    attributes = 0
    cp: str | None = rest
    while True:
        attrib, cp = strdelim(cp)
        if attrib is None or attrib == "":
            break
        if attrib.startswith("#"):
            cp = None
            break
        negate = attrib.startswith("!")
        name = (attrib[1:] if negate else attrib).lower()
        if name == "all":
            arg, after = strdelim(cp)
            if attributes > 1 or (arg is not None and arg != "" and not arg.startswith("#")):
                raise fail(f"'{attrib}' cannot be combined with other Match attributes")
            cp = None if (arg is not None and arg.startswith("#")) else after
            if result:
                result = not negate
            return result, not cp
        attributes += 1
        if name in ("canonical", "final"):
            if name == "final":
                state.want_final = True
            if state.final == negate:
                result = False
            continue
        arg, cp = strdelim(cp)
        if arg is None or arg == "" or arg.startswith("#"):
            raise fail(f"Missing Match criteria for {name}")
        if name == "host":
            r = match_pattern_list(host.lower(), arg, True) == 1
        elif name == "originalhost":
            r = match_pattern_list(state.original_host.lower(), arg, True) == 1
        elif name == "user":
            r = match_pattern_list(ruser, arg) == 1
        elif name == "localuser":
            r = match_pattern_list(local.user, arg) == 1
        elif name == "exec":
            if not result:
                continue  # an earlier criterion failed: the command is not run
            command = _exec_command(state, arg, host, str(port), ruser, fail)
            status = state.runner(command)
            if status is None:
                raise fail(f"match exec '{command}' error")
            r = status == 0
        else:
            raise fail(f"Unsupported Match attribute {name}")
        if r == negate:
            result = False
    if attributes == 0:
        raise fail("One or more attributes required for Match")
    return result, not cp


def _exec_command(state: _State, arg: str, host: str, port: str, ruser: str,
                  fail: Callable[[str], ConfigError]) -> str:
    local = state.local
    alias = state.opts.values.get("hostkeyalias") or host
    tokens = {"C": connection_hash(local.hostname, host, port, ruser), "L": local.shorthost,
              "d": local.home, "h": host, "k": alias, "l": local.hostname,
              "n": state.original_host, "p": port, "r": ruser, "u": local.user,
              "i": str(local.uid)}
    try:
        return percent_expand(arg, tokens)
    except ExpandError as exc:
        raise fail(str(exc)) from None


def _include(state: _State, args: list[str], cf: ConfigFile, number: int, active: list[bool],
             depth: int, fail: Callable[[str], ConfigError]) -> None:
    for arg in args:
        if not arg:
            raise fail("keyword include empty argument")
        if arg.startswith("~") and not cf.user:
            raise fail(f"bad include path {arg}.")
        if not os.path.isabs(arg) and not arg.startswith("~"):
            path = f"~/.ssh/{arg}" if cf.user else f"{SYSTEM_DIR}/{arg}"
        else:
            path = arg
        if path.startswith("~"):  # glob(3) GLOB_TILDE: $HOME first
            home = state.local.env.get("HOME") or state.local.home
            path = home.rstrip("/") + path[1:] if path[1:2] in ("", "/") else \
                os.path.expanduser(path)
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else (
            [path] if os.path.lexists(path) else [])
        if not matches:
            log.debug("%s line %d: include %s matched no files", cf.path, number, path)
            continue
        was_active = active[0]
        for match in matches:
            log.debug("including %s (depth %d)%s", match, depth, "" if was_active else
                      " (parse only)")
            sub = ConfigFile(match, user=cf.user, optional=True, check_perm=True)
            try:
                _read_file(state, sub, active, depth + 1, never_match=not was_active)
            except ConfigError as exc:
                if exc.reason.startswith("Too many recursive"):
                    raise fail(f"Include {arg}: too many recursive configuration includes "
                               f"(depth {MAX_DEPTH}; an Include loop?)") from None
                raise
            active[0] = was_active
