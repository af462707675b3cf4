"""``sshlib cp [-r] [--resume] SRC DST``: copy files to or from a server over SFTP.

One of SRC and DST is remote, written ``[user@]host[:port]:path`` (IPv6 as
``[addr]:path`` or ``[addr]:port:path``).  Authentication uses the keys of
the running agent (SSH_AUTH_SOCK) and then the default key files
(~/.ssh/id_ed25519, id_ecdsa, id_rsa; unencrypted ones); the host key must be
in ~/.ssh/known_hosts (or --known-hosts).  ssh_config is not read yet.

On a terminal a progress bar is shown when tqdm is installed
(``pip install 'sshlib[cli]'``); otherwise the command is quiet.  The exit
status is 0 on success, 1 when a local file operation failed, 2 for any SSH
or SFTP error.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors

log = logging.getLogger("sshlib.cli")

__all__ = ["add_command", "parse_remote", "Remote"]

DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")
_REMOTE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:/\[\]]+)"
                     r"(?::(?P<port>\d+))?:(?P<path>.*)$")


@dataclass(frozen=True)
class Remote:
    """The remote side of `sshlib cp`: user (None: the local user), host, port, path."""

    user: str | None
    host: str
    port: int
    path: str


def parse_remote(spec: str) -> Remote | None:
    """`[user@]host[:port]:path` -> Remote; None for a local path (no colon before any
    slash, or a Windows drive letter such as C:\\x)."""
    if re.match(r"^[A-Za-z]:[\\/]", spec) or ":" not in spec.split("/", 1)[0]:
        return None
    m = _REMOTE.match(spec)
    if m is None:
        return None
    host = m.group("host").strip("[]")
    port = int(m.group("port")) if m.group("port") else 22
    return Remote(m.group("user"), host, port, m.group("path") or ".")


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `cp` subcommand to the `sshlib` parser."""
    p = commands.add_parser("cp", parents=[common], help="copy files over SFTP",
                            description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("-r", "--recursive", action="store_true", help="copy directories")
    p.add_argument("--resume", action="store_true",
                   help="continue a partial copy where the destination ends")
    p.add_argument("-p", "--preserve", action="store_true", help="keep modes and times")
    p.add_argument("-i", "--identity", action="append", default=[], metavar="FILE",
                   help="private key file to try (before the defaults)")
    p.add_argument("--known-hosts", default="~/.ssh/known_hosts", metavar="FILE")
    p.add_argument("--timeout", type=float, default=30, help="seconds per wait (default 30)")
    p.add_argument("src")
    p.add_argument("dst")
    p.set_defaults(func=run)


def _signers(identities: list[str]) -> Iterator[Any]:
    from ..keys import load_private_key

    try:
        from .. import agent
        client = agent.connect()
    except (errors.SSHError, OSError) as exc:
        log.info("no agent: %s", exc)
    else:
        yield from client.signers()
    paths = [Path(p).expanduser() for p in identities]
    paths += [Path("~/.ssh").expanduser() / name for name in DEFAULT_KEYS]
    for path in paths:
        if not path.exists():
            continue
        try:
            yield load_private_key(path)
        except errors.PassphraseRequiredError:
            log.info("skipping %s: it is encrypted (add it to your agent)", path)
        except errors.KeyLoadError as exc:
            log.warning("skipping %s: %s", path, exc)


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar on a terminal (when tqdm is installed); None (quiet) otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    try:
        tqdm = importlib.import_module("tqdm").tqdm  # optional (sshlib[cli]), untyped
    except ImportError:
        log.info("install sshlib[cli] (tqdm) for a progress bar")
        yield None
        return
    bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
               file=sys.stderr, leave=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    try:
        yield update
    finally:
        bar.close()


def run(args: argparse.Namespace) -> int:
    import sshlib

    src, dst = parse_remote(args.src), parse_remote(args.dst)
    if (src is None) == (dst is None):
        print("sshlib cp: exactly one of SRC and DST must be remote ([user@]host[:port]:path)",
              file=sys.stderr)
        return 2
    remote = src or dst
    assert remote is not None
    signers = list(_signers(args.identity))
    if not signers:
        print("sshlib cp: no keys: start an agent or create ~/.ssh/id_ed25519", file=sys.stderr)
        return 2
    config = sshlib.ClientConfig(
        user=remote.user or getpass.getuser(), auth=[sshlib.PublicKeys(*signers)],
        host_key_callback=sshlib.knownhosts.callback(os.path.expanduser(args.known_hosts)),
        timeout=args.timeout)
    host = f"[{remote.host}]" if ":" in remote.host else remote.host
    label = os.path.basename(remote.path.rstrip("/")) or remote.path
    try:
        with sshlib.dial("tcp", f"{host}:{remote.port}", config) as client, \
                client.sftp(timeout=args.timeout) as sftp, _progress(label) as progress:
            if src is not None:
                sftp.get(src.path, args.dst, progress=progress, resume=args.resume,
                         preserve=args.preserve, recursive=args.recursive)
            else:
                assert dst is not None
                sftp.put(args.src, dst.path, progress=progress, resume=args.resume,
                         preserve=args.preserve, recursive=args.recursive)
    except errors.SSHError:
        raise  # one line on stderr, exit status 2 (sshlib.cli.main)
    except OSError as exc:
        print(f"sshlib cp: {exc}", file=sys.stderr)
        return 1
    return 0
