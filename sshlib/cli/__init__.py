"""The ``sshlib`` command: ``sshlib agent ...`` (bridge, relay, doctor, list, add, ...),
``sshlib cp`` (SFTP copies) and ``sshlib config`` (resolved ssh_config options).

The CLI prints results for people; the library underneath logs (``-v`` shows
the ``sshlib.*`` logs, ``--log-level`` picks any level).  Expected failures
(a typed sshlib error, a bad argument) are one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import errors
from . import agent, cp
from . import config as config_command

__all__ = ["main", "build_parser"]

_LEVELS = ("debug", "info", "warning", "error", "critical")


def _common_options() -> argparse.ArgumentParser:
    """-v and --log-level, accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="log more: -v info, -vv debug")
    common.add_argument("--log-level", choices=_LEVELS, type=str.lower,
                        default=argparse.SUPPRESS, help="log level (default: warning)")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The `sshlib` argument parser with every subcommand (also what `--help` prints)."""
    common = _common_options()
    parser = argparse.ArgumentParser(prog="sshlib", parents=[common],
                                     description="sshlib command line tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    agent_parser = commands.add_parser(
        "agent", parents=[common], help="SSH agent tools: bridge, relay, doctor, list, add...",
        description="SSH agent tools over any channel sshlib.agent reaches "
                    "(see docs/agent.md for endpoint strings)")
    agent.add_commands(agent_parser, common)
    cp.add_command(commands, common)
    config_command.add_command(commands, common)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    level_name = getattr(args, "log_level", None)
    verbose = getattr(args, "verbose", 0)
    if level_name:
        level = getattr(logging, level_name.upper())
    elif verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    else:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger("sshlib")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    _configure_logging(args)
    name = f"sshlib {args.command} {getattr(args, 'subcommand', '')}".rstrip()
    try:
        status: int = args.func(args)
    except errors.SSHError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except agent.UsageError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return status
