"""``cygwin:PATH``: a Cygwin / MSYS2 / Git for Windows agent socket file.

Cygwin emulates AF_UNIX with a TCP port on 127.0.0.1 and a small file naming
it; ssh-agent from Cygwin or MSYS2 (Git for Windows), KeeAgent and
gpg-agent write such files.  Three generations exist, told apart by the file:

``!<socket >PORT s XXXXXXXX-XXXXXXXX-XXXXXXXX-XXXXXXXX``
    Cygwin >= 1.7 and MSYS2.  After connecting, each side proves it read the
    file: the client sends the 16-byte secret (four 32-bit words,
    little-endian) and must get the same 16 bytes back; then both exchange
    credentials (``struct ucred``: int32 pid, uint32 uid, uint32 gid).
``!<socket >PORT XXXXXXXX-...`` (no type character)
    Cygwin 1.5, MSYS 1.0, msysGit: the secret is proven with named Windows
    events (``cygwin.local_socket.secret.<port>.<secret>``, one per side's
    local port), so only Windows can speak it.
``!<socket >PORT``
    very old: no authentication at all.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field

from ..errors import AgentConnectError, AgentError, AgentUnsupportedError
from .tcp import connect_tcp
from .transport import Deadline, SocketTransport

__all__ = [
    "CYGWIN_MAGIC",
    "CygwinSocketFile",
    "parse_cygwin_socket_file",
    "read_socket_file",
    "open_cygwin",
    "open_cygwin_data",
    "secret_event_name",
    "windows_path",
]

log = logging.getLogger("sshlib.agent")

CYGWIN_MAGIC = b"!<socket >"
#: Socket files are tiny; anything bigger is not one.
_MAX_FILE = 4096

_WORD = rb"[0-9A-Fa-f]{8}"
_FILE_RE = re.compile(
    rb"!<socket >(?P<port>[0-9]{1,5})"
    rb"(?: (?P<type>[sd]))?"
    rb"(?: (?P<secret>" + _WORD + rb"-" + _WORD + rb"-" + _WORD + rb"-" + _WORD + rb"))?"
    rb"[\x00\r\n\t ]*")


@dataclass(frozen=True)
class CygwinSocketFile:
    """What a Cygwin-style socket file says."""

    port: int
    #: "s" (stream), "d" (datagram) or None (older formats without the character).
    type_char: str | None
    #: The 16 secret bytes as sent on the wire, or None (very old format).
    secret: bytes | None = field(repr=False)

    @property
    def variant(self) -> str:
        """"cygwin" (secret + credentials), "msysgit" (named events) or "plain"."""
        if self.secret is None:
            return "plain"
        return "cygwin" if self.type_char is not None else "msysgit"


def read_socket_file(path: str, endpoint: str) -> bytes:
    """The first bytes of a socket file, or AgentConnectError naming why it can't be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(_MAX_FILE)
    except FileNotFoundError:
        raise AgentConnectError(f"no socket file at {path}", endpoint=endpoint) from None
    except OSError as exc:
        raise AgentConnectError(f"cannot read socket file {path}: {exc.strerror or exc}",
                                endpoint=endpoint) from None


def parse_cygwin_socket_file(data: bytes, endpoint: str | None = None) -> CygwinSocketFile:
    """Parse the file's contents; AgentConnectError if it is not a Cygwin socket file."""
    match = _FILE_RE.fullmatch(data)
    if match is None:
        shown = data[:60].decode("ascii", "replace")
        raise AgentConnectError(f"not a Cygwin/MSYS socket file (starts {shown!r})",
                                endpoint=endpoint)
    port = int(match["port"])
    if not 0 < port < 65536:
        raise AgentConnectError(f"Cygwin socket file names port {port}", endpoint=endpoint)
    type_char = match["type"].decode("ascii") if match["type"] else None
    secret: bytes | None = None
    if match["secret"]:
        # Cygwin prints lowercase hex, KeeAgent uppercase: int() takes both.
        words = [int(word, 16) for word in match["secret"].split(b"-")]
        secret = struct.pack("<4I", *words)
    elif type_char is not None:
        raise AgentConnectError("Cygwin socket file has a type but no secret",
                                endpoint=endpoint)
    return CygwinSocketFile(port, type_char, secret)


def _credentials() -> bytes:
    """Our ``struct ucred`` for the handshake (a Cygwin agent only checks the uid)."""
    getuid = getattr(os, "getuid", None)
    getgid = getattr(os, "getgid", None)
    uid = getuid() if getuid is not None else 0
    gid = getgid() if getgid is not None else 0
    return struct.pack("<iII", os.getpid() & 0x7FFFFFFF, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF)


def _handshake(transport: SocketTransport, info: CygwinSocketFile, path: str,
               deadline: Deadline, endpoint: str) -> None:
    assert info.secret is not None
    where = f"port {info.port} (from {path})"
    try:
        transport.send_all(info.secret, deadline.remaining(endpoint))
        echo = transport.recv_exact(16, deadline.remaining(endpoint))
        if len(echo) < 16:
            raise AgentConnectError(
                f"the peer on {where} closed the connection during the Cygwin handshake "
                f"(wrong secret, or not the agent that wrote the file?)", endpoint=endpoint)
        if not hmac.compare_digest(echo, info.secret):
            raise AgentConnectError(
                f"secret mismatch in the Cygwin handshake on {where}: the listener is not "
                f"the agent that wrote the file", endpoint=endpoint)
        transport.send_all(_credentials(), deadline.remaining(endpoint))
        peer = transport.recv_exact(12, deadline.remaining(endpoint))
        if len(peer) < 12:
            raise AgentConnectError(
                f"the peer on {where} closed the connection after the secret, during the "
                f"credentials exchange (Cygwin agents drop peers with another uid)",
                endpoint=endpoint)
    except AgentConnectError:
        raise
    except AgentError as exc:  # a timeout: still a failure to connect
        raise AgentConnectError(f"Cygwin handshake on {where} failed: {exc.reason}",
                                endpoint=endpoint) from None
    pid, uid, gid = struct.unpack("<iII", peer)
    log.debug("agent %s: Cygwin peer pid %d uid %d gid %d", endpoint, pid, uid, gid)


#: Cygwin 1.5's SECRET_EVENT_NAME; the port is sin_port (network byte order) printed as
#: a decimal number, the words as in the socket file.
EVENT_NAME_FORMAT = "cygwin.local_socket.secret.{port}.{words}"
#: Cygwin waits this long for the peer's event.
_EVENT_WAIT = 10.0


def secret_event_name(port: int, secret: bytes) -> str:
    """The named event a side of an msysGit-style connection sets for its local `port`."""
    words = "-".join(f"{word:08x}" for word in struct.unpack("<4I", secret))
    return EVENT_NAME_FORMAT.format(port=socket.htons(port), words=words)


def _event_handshake(transport: SocketTransport, sock: socket.socket, info: CygwinSocketFile,
                     path: str, deadline: Deadline, endpoint: str) -> None:
    """msysGit / Cygwin 1.5: set the event named for our port, wait for the listener's.

    Only someone who read the socket file knows the secret in the names, so
    the listener signalling its event proves it is the agent that wrote it.
    """
    from . import _win32 as w32

    assert info.secret is not None
    w = w32.api()
    local_port = sock.getsockname()[1]
    mine = w.CreateEventA(None, False, False, secret_event_name(local_port, info.secret).encode())
    if not mine:
        raise AgentConnectError(str(w32.win_error("CreateEvent")), endpoint=endpoint)
    try:
        theirs = w.CreateEventA(None, False, False,
                                secret_event_name(info.port, info.secret).encode())
        if not theirs:
            raise AgentConnectError(str(w32.win_error("CreateEvent")), endpoint=endpoint)
        try:
            w.SetEvent(mine)
            left = deadline.left()
            wait = _EVENT_WAIT if left is None else min(_EVENT_WAIT, left)
            status = w.WaitForSingleObject(theirs, int(wait * 1000))
        finally:
            w.CloseHandle(theirs)
    finally:
        w.CloseHandle(mine)
    if status != w32.WAIT_OBJECT_0:
        raise AgentConnectError(
            f"the listener on port {info.port} (from {path}) did not signal its secret event "
            f"within {wait:.3g} s (msysGit handshake): wrong secret, or not the agent that "
            f"wrote the file", endpoint=endpoint)


def windows_path(path: str, endpoint: str) -> str:
    """On Windows, a POSIX path from MSYS2/Cygwin (/tmp/ssh-XXX/agent.1) as a Windows path.

    Only the Cygwin/MSYS mount table knows where /tmp is, so ask ``cygpath -w``
    when it is on PATH; elsewhere the path is returned unchanged.
    """
    if sys.platform != "win32" or not path.startswith("/") or path.startswith("//"):
        return path
    cygpath = shutil.which("cygpath")
    if cygpath is None:
        if os.path.exists(path):
            return path
        raise AgentConnectError(
            f"{path} is a Cygwin/MSYS path and cygpath is not on PATH to translate it "
            f"(run from a Git Bash/MSYS2 shell, or set SSH_AUTH_SOCK to the Windows path, "
            f"e.g. the output of `cygpath -w {path}`)", endpoint=endpoint)
    try:
        done = subprocess.run([cygpath, "-w", path], capture_output=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentConnectError(f"running cygpath -w {path} failed: {exc}",
                                endpoint=endpoint) from None
    translated = done.stdout.decode("utf-8", "replace").strip()
    if done.returncode != 0 or not translated:
        raise AgentConnectError(f"cygpath -w {path} failed (status {done.returncode}): "
                                f"{done.stderr.decode('utf-8', 'replace').strip()}",
                                endpoint=endpoint)
    log.debug("agent %s: cygpath maps %s to %s", endpoint, path, translated)
    return translated


def open_cygwin_data(data: bytes, path: str, timeout: float | None,
                     endpoint: str) -> SocketTransport:
    """Connect as the socket file contents `data` (read from `path`) say."""
    info = parse_cygwin_socket_file(data, endpoint)
    if info.type_char == "d":
        raise AgentConnectError(f"{path} is a Cygwin datagram socket; agents use stream "
                                f"sockets", endpoint=endpoint)
    if info.variant == "msysgit" and sys.platform != "win32":
        raise AgentUnsupportedError(
            f"{path} is an msysGit/MSYS 1.0-style socket file (no type character): its "
            f"handshake uses named Windows events, so it only works from Windows",
            endpoint=endpoint)
    deadline = Deadline(timeout)
    sock = connect_tcp("127.0.0.1", info.port, timeout, endpoint)
    transport = SocketTransport(sock, endpoint)
    if info.variant == "plain":
        return transport
    try:
        if info.variant == "msysgit":
            _event_handshake(transport, sock, info, path, deadline, endpoint)
        else:
            _handshake(transport, info, path, deadline, endpoint)
    except BaseException:
        transport.close()
        raise
    return transport


def open_cygwin(path: str, timeout: float | None, endpoint: str) -> SocketTransport:
    """Read the socket file at `path` and connect; a libassuan file is accepted too."""
    path = windows_path(path, endpoint)
    data = read_socket_file(path, endpoint)
    if not data.startswith(CYGWIN_MAGIC):
        from .assuan import is_assuan_data, open_assuan_data

        if is_assuan_data(data):
            return open_assuan_data(data, path, timeout, endpoint)
    return open_cygwin_data(data, path, timeout, endpoint)
