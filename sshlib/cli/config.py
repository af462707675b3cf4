"""``sshlib config HOST``: the resolved OpenSSH options for a host, printed like ``ssh -G``.

Same options as ssh: ``-F FILE`` (repeatable; ``-F none`` reads nothing),
``-l USER``, ``-p PORT``, ``-o KEYWORD=VALUE`` (repeatable).  Only the
keywords sshlib resolves are printed; algorithm lists are sshlib's.
"""

from __future__ import annotations

import argparse
import sys

from ..sshconfig import resolve

__all__ = ["add_command"]


def _option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        key, _, value = text.partition(" ")
    if not key or not value:
        raise argparse.ArgumentTypeError(f"expected KEYWORD=VALUE, not {text!r}")
    return key.strip(), value.strip()


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                common: argparse.ArgumentParser) -> None:
    """Register ``sshlib config`` on the top-level subcommand parser."""
    parser = commands.add_parser(
        "config", parents=[common], help="print the OpenSSH options for a host, like ssh -G",
        description="Resolve ~/.ssh/config and /etc/ssh/ssh_config (or -F files) for HOST "
                    "and print the result like `ssh -G HOST` (see docs/config.md)")
    parser.add_argument("host", metavar="HOST", help="alias, user@host or ssh://user@host:port")
    parser.add_argument("-F", dest="files", action="append", metavar="FILE",
                        help="configuration file instead of the defaults (repeatable; "
                             "'none' for no file)")
    parser.add_argument("-l", dest="user", metavar="USER", help="login user")
    parser.add_argument("-p", dest="port", type=int, metavar="PORT", help="port")
    parser.add_argument("-o", dest="options", action="append", type=_option, default=[],
                        metavar="KEYWORD=VALUE", help="an option that wins over the files")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    files = args.files
    if files is not None:
        files = [f for f in files if f.lower() != "none"]
    hc = resolve(args.host, user=args.user, port=args.port, config_files=files,
                 options=dict(args.options))
    sys.stdout.write(hc.ssh_g_text())
    return 0
