"""OpenSSH client configuration (ssh_config): parsing and matching equal to ``ssh -G``.

    hc = sshlib.sshconfig.resolve("myhost")      # ~/.ssh/config, then /etc/ssh/ssh_config
    hc.hostname, hc.port, hc.user, hc.identity_files, hc.proxy_jump
    hc.as_ssh_g()                                # {"hostname": "...", "port": "22", ...}
    cfg, addr = hc.client_config()               # a ClientConfig and "host:port"

Resolution follows OpenSSH 9.2's readconf.c and ssh.c: Host and Match
blocks, Include, first value wins, the accumulating keywords, tokens and
``${VAR}``, algorithm lists with + - ^ (applied to sshlib's own defaults).
The only I/O is reading the files and running ``Match exec`` commands (an
injectable runner).  docs/config.md lists every keyword and what sshlib does
with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .expand import LocalInfo
from .forwards import jump_hops
from .hostconfig import HostConfig, build
from .keywords import Forward, Options
from .reader import ConfigFile, ExecRunner, read_options, run_in_shell

__all__ = ["resolve", "resolve_jump", "HostConfig", "ConfigError", "Forward", "LocalInfo",
           "ConfigFile", "ExecRunner", "default_config_files", "parse_destination", "USER_CONFIG",
           "SYSTEM_CONFIG"]

USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"


def default_config_files(local: LocalInfo | None = None) -> list[ConfigFile]:
    """What ``ssh`` reads without ``-F``: ~/.ssh/config (its mode checked), /etc/ssh/ssh_config."""
    local = local or LocalInfo.current()
    user_file = os.path.join(local.home, ".ssh", "config")
    return [ConfigFile(user_file, user=True, optional=True, check_perm=True),
            ConfigFile(SYSTEM_CONFIG, user=False, optional=True)]


def parse_destination(destination: str) -> tuple[str | None, str, int | None]:
    """``host``, ``user@host`` or ``ssh://[user@]host[:port]`` -> (user, host, port)."""
    if destination.startswith("ssh://"):
        rest = destination[6:].rstrip("/")
        if "/" in rest:
            raise ConfigError(f"bad ssh:// destination {destination!r}: no path allowed")
        user = None
        if "@" in rest:
            user, _, rest = rest.rpartition("@")
            user = user.replace("%40", "@") or None
        port: int | None = None
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
        else:
            host, _, tail = rest.partition(":")
            tail = ":" + tail if tail else ""
        if tail:
            if not tail.startswith(":") or not tail[1:].isdigit():
                raise ConfigError(f"bad port in {destination!r}")
            port = int(tail[1:])
        if not host:
            raise ConfigError(f"no host in {destination!r}")
        return user, host, port
    if "@" in destination:
        user, _, host = destination.rpartition("@")
        if not user or not host:
            raise ConfigError(f"bad destination {destination!r}")
        return user, host, None
    return None, destination, None


_SHELL_META = "'`\";&<>|(){}"


def _check_destination(host: str, user: str | None) -> None:
    """ssh.c valid_hostname()/valid_ruser() (CVE-2023-51385): no shell metacharacters.

    Applied to names given by the caller, not to HostName/User from files.
    """
    if host.startswith("-") or any(c in _SHELL_META + "$\\" or c.isspace() or
                                   not c.isprintable() for c in host):
        raise ConfigError(f"hostname contains invalid characters: {host!r}")
    if user is None:
        return
    if user.startswith("-") or any(c in _SHELL_META for c in user) or user.endswith("\\") \
            or any(c.isspace() and user[i + 1:i + 2] == "-" for i, c in enumerate(user)):
        raise ConfigError(f"remote username contains invalid characters: {user!r}")


def resolve(host: str, user: str | None = None, port: int | None = None,
            config_files: Sequence[str | os.PathLike[str] | ConfigFile] | None = None, *,
            options: Mapping[str, str | int | bool] | None = None,
            local: LocalInfo | None = None,
            exec_runner: ExecRunner | None = None) -> HostConfig:
    """Resolve the OpenSSH options for `host` as ``ssh -G host`` does.

    `host` may be ``user@host`` or an ``ssh://`` URI.  `user` and `port`
    win over the files (like ``ssh -l``/``-p``), and so do `options`
    (keyword -> value, like ``ssh -o``).  `config_files`: None reads
    ~/.ssh/config and /etc/ssh/ssh_config, ``[]`` reads nothing, a list
    reads those files as user files (like ``ssh -F``; a missing one is an
    error).  `local` replaces the local user/home/environment facts and
    `exec_runner` the runner of ``Match exec`` commands (tests).

    Raises ConfigError, naming the file and line, for anything ssh rejects.
    """
    local = local or LocalInfo.current()
    dest_user, host, dest_port = parse_destination(host)
    if not host:
        raise ConfigError("empty host name")
    _check_destination(host, user if user is not None else dest_user)
    if config_files is None:
        files = default_config_files(local)
    else:
        files = [f if isinstance(f, ConfigFile) else ConfigFile(os.fspath(f), user=True)
                 for f in config_files]
    opts = Options()
    command_line: list[tuple[str, str]] = []
    if user is not None or dest_user is not None:
        opts.values["user"] = user if user is not None else dest_user
    chosen_port = port if port is not None else dest_port
    if chosen_port is not None:
        if not 0 < int(chosen_port) < 65536:
            raise ConfigError(f"bad port {chosen_port}")
        opts.values["port"] = int(chosen_port)
    for keyword, value in (options or {}).items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        command_line.append((str(keyword), str(value)))
    opts, resolved = read_options(files, host, opts=opts, command_line=command_line,
                                  local=local, runner=exec_runner or run_in_shell)
    hc = build(opts, local, host, resolved)
    hc.context = _Context(files, local, exec_runner)
    return hc


@dataclass(frozen=True)
class _Context:
    files: list[ConfigFile]
    local: LocalInfo
    exec_runner: ExecRunner | None


MAX_JUMPS = 8


def resolve_jump(hc: HostConfig) -> HostConfig | None:
    """The jump host `hc` is reached through (ProxyJump's last hop), or None.

    Resolved as ``ssh -J a,b c`` does it: the last hop is looked up in the
    same files with its own options, and the earlier hops become its
    ProxyJump, so each hop gets its own HostName, User, keys and known_hosts.
    A chain deeper than 8 hops (a loop through the configuration) is a
    ConfigError.
    """
    if not hc.proxy_jump:
        return None
    if hc.jump_depth >= MAX_JUMPS:
        raise ConfigError(f"ProxyJump: more than {MAX_JUMPS} jump hosts for {hc.host} "
                          "(a loop in the configuration?)")
    hops = jump_hops(hc.proxy_jump)
    last = hops[-1]
    earlier = hc.proxy_jump.rsplit(",", 1)[0] if len(hops) > 1 else None
    context = hc.context if isinstance(hc.context, _Context) else _Context(
        default_config_files(), LocalInfo.current(), None)
    hop = resolve(last.destination, port=last.port, config_files=context.files,
                  options={"ProxyJump": earlier} if earlier else None, local=context.local,
                  exec_runner=context.exec_runner)
    # ssh.c's check: the hop as written (name, port, user) is the destination itself
    if (last.host, last.port or 22, last.user or hc.user) == (hc.hostname, hc.port, hc.user):
        raise ConfigError(f"jumphost loop via {last.host}")
    hop.jump_depth = hc.jump_depth + 1
    return hop
