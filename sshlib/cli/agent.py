"""``sshlib agent ...``: bridge, relay, doctor, and the ssh-add equivalents over any endpoint.

list/add/remove/lock/unlock print what ssh-add prints (so scripts and eyes
used to it need no change) but reach any endpoint sshlib.agent speaks.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from .. import keys
from ..agent import AgentClient, AgentKey, connect
from ..agent import protocol as p
from ..agent.bridge import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CLIENTS,
    DEFAULT_REQUEST_TIMEOUT,
    Bridge,
    FdTransport,
    StreamServer,
)
from ..agent.constraints import Destination, parse_destination
from ..agent.discover import parse_endpoint
from ..agent.listeners import Listener, open_listener
from ..errors import AgentRefusedError, DecodeError, KeyLoadError, PassphraseRequiredError
from ..wire import Reader

__all__ = ["add_commands", "UsageError", "describe_key", "fingerprint"]


class UsageError(Exception):
    """A wrong combination of arguments or an unusable input: one line, exit status 2."""


# --- parser ----------------------------------------------------------------------------------


def _seconds(text: str) -> float | None:
    """A timeout argument: seconds, or 0/none for no timeout."""
    if text.lower() in ("0", "none", "never"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a timeout cannot be negative")
    return value


def _whole_number(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value
    return parse


_positive_int = _whole_number(1)
_count = _whole_number(0)


def _mode(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str,
                description: str | None = None) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, parents=[common], help=help_text,
                             description=description or help_text)
        cmd.set_defaults(func=func)
        return cmd

    def retry_option(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--retry", type=_count, default=0, metavar="N",
                         help="re-send a request that is safe to repeat (list, sign, "
                              "remove all, query, session-bind) up to N times on a fresh "
                              "upstream connection when the upstream failed or hung; an "
                              "answer, FAILURE included, is never retried (default 0)")

    bridge = command("bridge", cmd_bridge, "serve agent requests on one channel from another",
                     "Serve agent requests arriving on --listen from the agent at --to. "
                     "Listen on unix:PATH, tcp:127.0.0.1:PORT (0: any free port), "
                     "cygwin:PATH, assuan:PATH, vsock:CID:PORT, and on Windows pipe:NAME "
                     "(e.g. pipe:openssh-ssh-agent) and pageant-window. --to is any agent "
                     "endpoint, exec: relays included. Runs until SIGINT/SIGTERM (or the "
                     "console closes, on Windows), then removes its socket files.")
    bridge.add_argument("--listen", action="append", required=True, metavar="ENDPOINT",
                        help="where clients connect (repeat to listen on several)")
    bridge.add_argument("--to", required=True, metavar="ENDPOINT", help="the real agent")
    bridge.add_argument("--max-clients", type=_positive_int, default=DEFAULT_MAX_CLIENTS,
                        help="clients served at once; more wait (default %(default)s)")
    bridge.add_argument("--idle-timeout", type=_seconds, default=DEFAULT_IDLE_TIMEOUT,
                        metavar="S", help="drop a client idle this long (default %(default)s; "
                                          "0: never)")
    bridge.add_argument("--request-timeout", type=_seconds, default=DEFAULT_REQUEST_TIMEOUT,
                        metavar="S", help="how long the agent may take to answer "
                                          "(default %(default)s)")
    bridge.add_argument("--connect-timeout", type=_seconds, default=DEFAULT_CONNECT_TIMEOUT,
                        metavar="S", help="to reach the agent, or for a client's handshake "
                                          "(default %(default)s)")
    bridge.add_argument("--max-message", type=_positive_int, default=p.DEFAULT_MAX_MESSAGE,
                        metavar="BYTES", help="largest message (default %(default)s)")
    retry_option(bridge)
    bridge.add_argument("--allow-remote", action="store_true",
                        help="allow a tcp: listen address that is not loopback (UNSAFE: "
                             "anyone reaching it can use your keys)")
    bridge.add_argument("--mode", type=_mode, default=0o600,
                        help="permission bits of a unix: socket (octal, default 600)")

    relay = command("relay", cmd_relay, "stdin/stdout <-> an agent (for socat, WSL2, exec:)",
                    "Carry agent messages between stdin/stdout and the agent at --to; exits "
                    "when stdin closes. E.g. socat UNIX-LISTEN:$SOCK,fork "
                    "EXEC:'python.exe -m sshlib agent relay --to pageant'.")
    relay.add_argument("--to", required=True, metavar="ENDPOINT", help="the agent")
    relay.add_argument("--request-timeout", type=_seconds, default=DEFAULT_REQUEST_TIMEOUT,
                       metavar="S")
    relay.add_argument("--connect-timeout", type=_seconds, default=DEFAULT_CONNECT_TIMEOUT,
                       metavar="S")
    retry_option(relay)

    doctor = command("doctor", cmd_doctor, "find every agent reachable from here",
                     "Look for agents (SSH_AUTH_SOCK, Windows pipes and Pageant, Cygwin/MSYS2 "
                     "and GnuPG socket files, WSL) and say how to use each. Exit status 0 "
                     "if any agent answered.")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--format", choices=("table", "json", "dot", "svg"),
                        help="table (default), json, or a picture: Graphviz dot source, or "
                             "SVG drawn by dot (needs Graphviz)")
    doctor.add_argument("--svg", action="store_const", const="svg", dest="format",
                        help="the same as --format svg")
    doctor.add_argument("--timeout", type=float, default=3.0, metavar="S",
                        help="per agent (default %(default)s)")

    def agent_option(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--agent", "-a", metavar="ENDPOINT",
                         help="the agent (default: SSH_AUTH_SOCK, then the Windows agents)")
        cmd.add_argument("--timeout", type=float, default=30.0, metavar="S",
                         help="per request (default %(default)s)")

    listing = command("list", cmd_list, "list the agent's keys (like ssh-add -l / -L)")
    agent_option(listing)
    listing.add_argument("-E", dest="hash", choices=("sha256", "md5"), default="sha256",
                         type=str.lower, help="fingerprint hash (default sha256)")
    listing.add_argument("-L", dest="public", action="store_true",
                         help="print the public keys instead of fingerprints")

    add = command("add", cmd_add, "add private keys to the agent (like ssh-add FILE)")
    agent_option(add)
    add.add_argument("keyfiles", nargs="+", metavar="KEYFILE")
    add.add_argument("--lifetime", "-t", type=_positive_int, metavar="S",
                     help="the agent forgets the key after S seconds")
    add.add_argument("--confirm", "-c", action="store_true",
                     help="the agent asks before every use of the key")
    add.add_argument("--passphrase-env", metavar="VAR",
                     help="take the key passphrase from environment variable VAR")
    add.add_argument("--host", dest="destinations", action="append", default=[],
                     metavar="SPEC",
                     help="only for this destination (ssh-add -h): host, user@host, user@, "
                          "or from>to (repeat for several); host keys from known_hosts")
    add.add_argument("-H", "--known-hosts", dest="known_hosts", action="append",
                     metavar="FILE", help="read host keys for --host from FILE instead of "
                                          "~/.ssh/known_hosts{,2} and /etc/ssh/ssh_known_hosts"
                                          "{,2} (ssh-add -H; repeat for several)")
    add.add_argument("--maxsign", type=_positive_int, metavar="N",
                     help="the agent signs at most N times with the key")
    add.add_argument("--extension", dest="extensions", action="append", default=[],
                     metavar="NAME[=BASE64]",
                     help="a constraint extension with its body (base64), repeatable")

    remove = command("remove", cmd_remove, "remove keys from the agent (like ssh-add -d / -D)")
    agent_option(remove)
    remove.add_argument("keyfiles", nargs="*", metavar="KEYFILE",
                        help="private or public key files (FILE.pub is used when present)")
    remove.add_argument("--all", "-D", action="store_true", help="remove every key")
    remove.add_argument("--passphrase-env", metavar="VAR",
                        help="passphrase for a private key file without a .pub")

    query = command("query", cmd_query, "list the agent's protocol extensions (ssh-add -Q)",
                    "Ask the agent which extensions it supports (the 'query' extension, "
                    "OpenSSH >= 10.3's ssh-add -Q) and print one per line. Exit status 1 if "
                    "the agent does not support 'query'.")
    agent_option(query)

    for name, func, what in (("lock", cmd_lock, "lock the agent with a password (ssh-add -x)"),
                             ("unlock", cmd_unlock, "unlock the agent (ssh-add -X)")):
        cmd = command(name, func, what)
        agent_option(cmd)
        cmd.add_argument("--passphrase-env", metavar="VAR",
                         help="take the password from environment variable VAR")


# --- bridge and relay ------------------------------------------------------------------------


def cmd_bridge(args: argparse.Namespace) -> int:
    upstream = parse_endpoint(args.to)
    listeners: list[Listener] = []
    try:
        for text in args.listen:
            listeners.append(open_listener(text, allow_remote=args.allow_remote,
                                           mode=args.mode, request_timeout=args.request_timeout,
                                           max_message=args.max_message))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    bridge = Bridge(listeners, upstream, max_clients=args.max_clients,
                    idle_timeout=args.idle_timeout, request_timeout=args.request_timeout,
                    connect_timeout=args.connect_timeout, max_message=args.max_message,
                    retries=args.retry)
    stop = threading.Event()

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        stop.set()

    signals = [signal.SIGINT, signal.SIGTERM]
    for extra in ("SIGHUP", "SIGBREAK"):
        if hasattr(signal, extra):
            signals.append(getattr(signal, extra))
    previous = {signum: signal.signal(signum, on_signal) for signum in signals}
    console = _install_console_handler(stop, bridge)
    try:
        bridge.start()
        for listener in listeners:
            print(f"listening on {listener.endpoint}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        bridge.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _remove_console_handler(console)
    return 0


#: Console control routines installed by running bridges (kept alive while installed).
console_handlers: list[Any] = []


def _install_console_handler(stop: threading.Event, bridge: Bridge) -> Any:
    """Windows: clean up like SIGTERM when the console closes, or on logoff / shutdown.

    Python maps Ctrl+C and Ctrl+Break to signals, but closing the console
    window, logging off and shutting down only reach a SetConsoleCtrlHandler
    routine, in a thread of its own, and the process dies as soon as it
    returns (or ~5 s later): so it stops the bridge and waits for the socket
    files to be gone before returning.
    """
    if sys.platform != "win32":
        return None
    from ..agent import _win32 as w32

    closing = (w32.CTRL_CLOSE_EVENT, w32.CTRL_LOGOFF_EVENT, w32.CTRL_SHUTDOWN_EVENT)

    def routine(event: int) -> int:
        if event not in closing:
            return 0  # Ctrl+C / Ctrl+Break: Python's own handler turns them into signals
        # Clean up here, not in the main thread: the process ends when this returns.
        bridge.close()
        bridge.wait(4.0)  # if the main thread was already closing it, let it finish
        stop.set()
        return 1

    try:
        callback = w32.HANDLER_ROUTINE(routine)
        if not w32.api().SetConsoleCtrlHandler(callback, True):
            return None
    except (OSError, AttributeError):
        return None
    console_handlers.append(callback)
    return callback


def _remove_console_handler(callback: Any) -> None:
    if callback is None:
        return
    from ..agent import _win32 as w32

    w32.api().SetConsoleCtrlHandler(callback, False)
    if callback in console_handlers:
        console_handlers.remove(callback)


def cmd_relay(args: argparse.Namespace) -> int:
    upstream = parse_endpoint(args.to)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    server = StreamServer(FdTransport(stdin, stdout, "stdio"), upstream, idle_timeout=None,
                          request_timeout=args.request_timeout,
                          connect_timeout=args.connect_timeout, name="relay",
                          retries=args.retry)
    why = server.serve()
    if why != "closed":
        print(f"sshlib agent relay: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import MachineState, diagnose
    from .doctor_graph import render_report

    report = diagnose(MachineState.current(), timeout=args.timeout)
    print(render_report(report, args.format or ("json" if args.json else "table")), end="")
    return 0 if report.any_usable else 1


# --- ssh-add equivalents -------------------------------------------------------------------


_KEY_LABELS = {
    "ssh-ed25519": "ED25519",
    "ssh-rsa": "RSA",
    "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}
_CURVE_BITS = {"nistp256": 256, "nistp384": 384, "nistp521": 521}
_CERT_SUFFIX = "-cert-v01@openssh.com"


def describe_key(blob: bytes) -> tuple[int, str]:
    """(bits, type label) for a public key blob, as ``ssh-add -l`` prints them.

    Works for types sshlib cannot use (DSA, security keys, certificates), so
    every key the agent lists gets a line; unknown types give (0, name).
    """
    try:
        reader = Reader(blob)
        name = reader.string(256).decode("ascii", "replace")
        base = name
        if name.endswith(_CERT_SUFFIX):
            base = name[:-len(_CERT_SUFFIX)]
            reader.string()  # nonce
        label = _KEY_LABELS.get(base, base)
        if base != name:
            label += "-CERT"
        if "ed25519" in base:
            return 256, label
        if "ecdsa" in base:
            return _CURVE_BITS.get(base.rsplit("-", 1)[-1].replace("@openssh.com", ""), 0), label
        if base == "ssh-rsa":
            reader.mpint()  # e
            return reader.mpint().bit_length(), label
        if base == "ssh-dss":
            return reader.mpint().bit_length(), label
        return 0, label
    except DecodeError:
        return 0, "?"


def fingerprint(blob: bytes, hash_name: str = "sha256") -> str:
    """``SHA256:base64`` or ``MD5:hex:pairs``, as ssh-add -l -E prints them."""
    if hash_name == "md5":
        digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
        return "MD5:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _connect(args: argparse.Namespace) -> AgentClient:
    return connect(args.agent, timeout=args.timeout)


def _secret_from_env(var: str) -> str:
    value = os.environ.get(var)
    if value is None:
        raise UsageError(f"environment variable {var} is not set")
    return value


def cmd_list(args: argparse.Namespace) -> int:
    with _connect(args) as agent:
        listed: list[AgentKey] = agent.list_keys()
    if not listed:
        print("The agent has no identities.")
        return 1
    for key in listed:
        if args.public:
            print(f"{key.key_type} {base64.b64encode(key.blob).decode()} {key.comment}")
        else:
            bits, label = describe_key(key.blob)
            print(f"{bits} {fingerprint(key.blob, args.hash)} {key.comment} ({label})")
    return 0


def _load_private(path: str, passphrase_env: str | None) -> keys.PrivateKey:
    """Load a private key, asking for its passphrase (three tries) if it has one."""
    try:
        return keys.load_private_key(path)
    except PassphraseRequiredError:
        pass
    if passphrase_env:
        return keys.load_private_key(path, _secret_from_env(passphrase_env))
    prompt = f"Enter passphrase for {path}: "
    for attempt in range(3):
        passphrase = getpass.getpass(prompt)
        if not passphrase:
            raise UsageError(f"no passphrase given for {path}")
        try:
            return keys.load_private_key(path, passphrase)
        except PassphraseRequiredError:
            raise
        except KeyLoadError:
            if attempt == 2:
                raise
            prompt = f"Bad passphrase, try again for {path}: "
    raise AssertionError("unreachable")


def _destinations(args: argparse.Namespace) -> list[Destination]:
    try:
        return [parse_destination(spec, args.known_hosts) for spec in args.destinations]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _extensions(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    out = []
    for text in args.extensions:
        name, _, body = text.partition("=")
        try:
            out.append((name, base64.b64decode(body, validate=True)))
        except ValueError:
            raise UsageError(f"--extension {text}: the body is not base64") from None
    return out


def cmd_add(args: argparse.Namespace) -> int:
    loaded = [(path, _load_private(path, args.passphrase_env)) for path in args.keyfiles]
    destinations = _destinations(args)
    extensions = _extensions(args)
    with _connect(args) as agent:
        for path, key in loaded:
            comment = key.comment or path
            agent.add_key(key, comment, lifetime=args.lifetime, confirm=args.confirm,
                          destinations=destinations, maxsign=args.maxsign,
                          extensions=extensions)
            print(f"Identity added: {path} ({comment})", file=sys.stderr)
            if args.lifetime is not None:
                print(f"Lifetime set to {args.lifetime} seconds", file=sys.stderr)
            if args.confirm:
                print("The user must confirm each use of the key", file=sys.stderr)
            for spec in args.destinations:
                print(f"Restricted to destination {spec}", file=sys.stderr)
    return 0


def _load_public(path: str, passphrase_env: str | None) -> tuple[bytes, str]:
    """(blob, comment) for `path`: from PATH.pub, a public key file, or the private key."""
    for candidate in (path + ".pub", path):
        try:
            with open(candidate, "rb") as fh:
                text = fh.read(65536)
        except OSError:
            continue
        try:
            public = keys.parse_openssh_public_key(text)
        except KeyLoadError:
            continue
        fields = text.decode("utf-8", "replace").split(None, 2)
        return public.blob, fields[2].strip() if len(fields) > 2 else ""
    private = _load_private(path, passphrase_env)
    return private.public_key.blob, private.comment


def cmd_remove(args: argparse.Namespace) -> int:
    if args.all == bool(args.keyfiles):
        raise UsageError("give key files to remove, or --all (not both)")
    with _connect(args) as agent:
        if args.all:
            agent.remove_all()
            print("All identities removed.", file=sys.stderr)
            return 0
        status = 0
        for path in args.keyfiles:
            blob, comment = _load_public(path, args.passphrase_env)
            try:
                agent.remove_key(blob)
            except AgentRefusedError as exc:
                print(f"Could not remove identity \"{path}\": {exc.reason}", file=sys.stderr)
                status = 1
                continue
            label = describe_key(blob)[1]
            print(f"Identity removed: {path} {label} ({comment or 'no comment'})",
                  file=sys.stderr)
    return status


def _lock_password(args: argparse.Namespace, confirm: bool) -> bytes:
    if args.passphrase_env:
        return _secret_from_env(args.passphrase_env).encode()
    password = getpass.getpass("Enter lock password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise UsageError("Passwords do not match.")
    return password.encode()


def cmd_lock(args: argparse.Namespace) -> int:
    password = _lock_password(args, confirm=True)
    with _connect(args) as agent:
        agent.lock(password)
    print("Agent locked.", file=sys.stderr)
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    password = _lock_password(args, confirm=False)
    with _connect(args) as agent:
        agent.unlock(password)
    print("Agent unlocked.", file=sys.stderr)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    with _connect(args) as agent:
        names = agent.query_extensions()
    if not names:
        print("The agent does not support the query extension (or reports none).",
              file=sys.stderr)
        return 1
    for name in names:
        print(name)
    return 0
