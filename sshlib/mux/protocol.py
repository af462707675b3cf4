"""OpenSSH's ControlMaster protocol (PROTOCOL.mux, version 4), client side, without I/O.

`MuxProtocol` is one control connection as a state machine: requests are
queued as bytes (`data_to_send()`) and return their request id; bytes the
master sent go into `receive_data()`, which returns typed events matched to
the requests that caused them.  Anything the protocol does not allow (an
oversized or truncated packet, a reply to a request never made, a message
type we do not know, a wrong version) raises `MuxProtocolError`; the
connection is unusable afterwards.

Field encodings follow OpenSSH's mux.c where it and PROTOCOL.mux disagree:
the NEW_SESSION flags and the stdio-forward port are uint32 on the wire.
File descriptors (stdin/stdout/stderr) are not part of this byte stream:
the front-end passes them with SCM_RIGHTS after NEW_SESSION/NEW_STDIO_FWD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DecodeError, MuxProtocolError
from ..wire import Reader, Writer, uint32

__all__ = [
    "MUX_VERSION", "MAX_PACKET", "PORT_STREAMLOCAL", "NO_ESCAPE", "FWD_LOCAL", "FWD_REMOTE",
    "FWD_DYNAMIC", "MuxProtocol", "MuxEvent", "HelloReceived", "Succeeded", "RequestFailed",
    "AliveReported", "SessionOpened", "RemotePortAllocated", "ExitReported", "TtyAllocFailed",
    "MasterClosed",
]

MUX_VERSION = 4
#: Largest packet accepted from the master (its replies are tiny; this bounds the buffer).
MAX_PACKET = 256 * 1024
#: A port of (uint32)-2 makes the host field a Unix socket path (OPEN_FWD, STDIO_FWD).
PORT_STREAMLOCAL = 0xFFFFFFFE
NO_ESCAPE = 0xFFFFFFFF

MSG_HELLO = 0x00000001
C_NEW_SESSION = 0x10000002
C_ALIVE_CHECK = 0x10000004
C_TERMINATE = 0x10000005
C_OPEN_FWD = 0x10000006
C_CLOSE_FWD = 0x10000007
C_NEW_STDIO_FWD = 0x10000008
C_STOP_LISTENING = 0x10000009
S_OK = 0x80000001
S_PERMISSION_DENIED = 0x80000002
S_FAILURE = 0x80000003
S_EXIT_MESSAGE = 0x80000004
S_ALIVE = 0x80000005
S_SESSION_OPENED = 0x80000006
S_REMOTE_PORT = 0x80000007
S_TTY_ALLOC_FAIL = 0x80000008

FWD_LOCAL = 1
FWD_REMOTE = 2
FWD_DYNAMIC = 3

_REASON_LIMIT = 64 * 1024


@dataclass(frozen=True)
class MuxEvent:
    """Something the master said."""


@dataclass(frozen=True)
class HelloReceived(MuxEvent):
    """MUX_MSG_HELLO: the master's protocol version (only 4 is accepted) and extensions."""
    version: int
    extensions: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Succeeded(MuxEvent):
    """MUX_S_OK."""
    request_id: int


@dataclass(frozen=True)
class RequestFailed(MuxEvent):
    """MUX_S_FAILURE or (permission_denied) MUX_S_PERMISSION_DENIED, with the master's reason."""
    request_id: int
    reason: str
    permission_denied: bool


@dataclass(frozen=True)
class AliveReported(MuxEvent):
    """MUX_S_ALIVE, the reply to alive_check(): the master's process id."""
    request_id: int
    pid: int


@dataclass(frozen=True)
class SessionOpened(MuxEvent):
    """MUX_S_SESSION_OPENED; `session_id` is what its ExitReported and TtyAllocFailed name."""
    request_id: int
    session_id: int


@dataclass(frozen=True)
class RemotePortAllocated(MuxEvent):
    """MUX_S_REMOTE_PORT: the port the server bound for a remote forward asked with port 0."""
    request_id: int
    port: int


@dataclass(frozen=True)
class ExitReported(MuxEvent):
    """MUX_S_EXIT_MESSAGE: the remote command's exit status (never a signal: see docs/mux.md)."""
    session_id: int
    exit_status: int


@dataclass(frozen=True)
class TtyAllocFailed(MuxEvent):
    """MUX_S_TTY_ALLOC_FAIL: the server refused the pty; the session goes on without one."""
    session_id: int


@dataclass(frozen=True)
class MasterClosed(MuxEvent):
    """The master closed the control connection (end of a session, or it went away)."""
    clean: bool  # no partial packet was pending


#: Which replies each request may get.
_REPLIES: dict[int, frozenset[int]] = {
    C_ALIVE_CHECK: frozenset({S_ALIVE, S_FAILURE, S_PERMISSION_DENIED}),
    C_TERMINATE: frozenset({S_OK, S_FAILURE, S_PERMISSION_DENIED}),
    C_STOP_LISTENING: frozenset({S_OK, S_FAILURE, S_PERMISSION_DENIED}),
    C_OPEN_FWD: frozenset({S_OK, S_REMOTE_PORT, S_FAILURE, S_PERMISSION_DENIED}),
    C_CLOSE_FWD: frozenset({S_OK, S_FAILURE, S_PERMISSION_DENIED}),
    C_NEW_SESSION: frozenset({S_SESSION_OPENED, S_FAILURE, S_PERMISSION_DENIED}),
    C_NEW_STDIO_FWD: frozenset({S_SESSION_OPENED, S_FAILURE, S_PERMISSION_DENIED}),
}


def _port(value: int, what: str) -> int:
    if not (0 <= value <= 65535 or value == PORT_STREAMLOCAL):
        raise ValueError(f"{what} {value} is not a port (0-65535)")
    return value


def _cstring(value: str, what: str) -> bytes:
    raw = value.encode()
    if b"\0" in raw:
        raise ValueError(f"{what} must not contain NUL bytes")
    return raw


class MuxProtocol:
    """One control connection to a master: our HELLO is queued at construction."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._max_packet = max_packet
        self._in = bytearray()
        self._out = bytearray()
        self._next_id = 0
        self._pending: dict[int, int] = {}  # request id -> request type
        self._sessions: dict[int, bool] = {}  # session id -> exit reported
        self.hello_received = False
        self.version: int | None = None
        self.closed = False
        self._send(uint32(MSG_HELLO) + uint32(MUX_VERSION))

    # --- output ------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes to write to the control socket, in order (then forgotten here)."""
        data, self._out = bytes(self._out), bytearray()
        return data

    def _send(self, body: bytes) -> None:
        self._out += uint32(len(body)) + body

    def _request(self, kind: int, body: bytes = b"") -> int:
        if self.closed:
            raise MuxProtocolError("the control connection is closed")
        rid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._pending[rid] = kind
        self._send(uint32(kind) + uint32(rid) + body)
        return rid

    @property
    def pending(self) -> int:
        """Requests still waiting for their reply."""
        return len(self._pending)

    # --- requests ----------------------------------------------------------------------------
    def alive_check(self) -> int:
        """MUX_C_ALIVE_CHECK; the master answers with its pid (AliveReported)."""
        return self._request(C_ALIVE_CHECK)

    def terminate(self) -> int:
        """MUX_C_TERMINATE: ask the master to exit (Succeeded, or RequestFailed)."""
        return self._request(C_TERMINATE)

    def stop_listening(self) -> int:
        """MUX_C_STOP_LISTENING: the master removes its socket, keeps existing sessions."""
        return self._request(C_STOP_LISTENING)

    def _forward(self, kind: int, ftype: int, listen_host: str, listen_port: int,
                 connect_host: str, connect_port: int) -> int:
        if ftype not in (FWD_LOCAL, FWD_REMOTE, FWD_DYNAMIC):
            raise ValueError(f"unknown forward type {ftype}")
        body = (Writer().uint32(ftype).string(_cstring(listen_host, "listen host"))
                .uint32(_port(listen_port, "listen port"))
                .string(_cstring(connect_host, "connect host"))
                .uint32(_port(connect_port, "connect port")).getvalue())
        return self._request(kind, body)

    def open_forward(self, ftype: int, listen_host: str, listen_port: int,
                     connect_host: str, connect_port: int) -> int:
        """MUX_C_OPEN_FWD (Succeeded, RemotePortAllocated for remote port 0, RequestFailed)."""
        return self._forward(C_OPEN_FWD, ftype, listen_host, listen_port, connect_host,
                             connect_port)

    def close_forward(self, ftype: int, listen_host: str, listen_port: int,
                      connect_host: str, connect_port: int) -> int:
        """MUX_C_CLOSE_FWD with exactly the fields the forward was opened with."""
        return self._forward(C_CLOSE_FWD, ftype, listen_host, listen_port, connect_host,
                             connect_port)

    def new_session(self, command: str | bytes, *, tty: bool = False, x11: bool = False,
                    agent: bool = False, subsystem: bool = False, term: str = "",
                    env: Sequence[str] = (), escape: int = NO_ESCAPE) -> int:
        """MUX_C_NEW_SESSION; send stdin, stdout, stderr as fds right after these bytes.

        `env` holds "NAME=value" strings; the master passes on only names its own
        SendEnv allows.  An empty command starts the login shell.
        """
        raw = command.encode() if isinstance(command, str) else command
        if b"\0" in raw:
            raise ValueError("command must not contain NUL bytes")
        w = (Writer().string(b"").uint32(int(tty)).uint32(int(x11)).uint32(int(agent))
             .uint32(int(subsystem)).uint32(escape).string(_cstring(term, "terminal type"))
             .string(raw))
        for item in env:
            if "=" not in item or item.startswith("="):
                raise ValueError(f"environment entry {item!r} is not NAME=value")
            w.string(_cstring(item, "environment entry"))
        return self._request(C_NEW_SESSION, w.getvalue())

    def new_stdio_forward(self, host: str, port: int) -> int:
        """MUX_C_NEW_STDIO_FWD (like ssh -W); send stdin then stdout as fds after these bytes.

        The port is a uint32 as in OpenSSH's mux.c; PORT_STREAMLOCAL makes `host` a path.
        """
        body = (Writer().string(b"").string(_cstring(host, "connect host"))
                .uint32(_port(port, "connect port")).getvalue())
        return self._request(C_NEW_STDIO_FWD, body)

    # --- input -------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[MuxEvent]:
        """Feed bytes from the master (b"" at end of stream); returns the complete messages.

        Raises MuxProtocolError (and stays closed) on anything malformed.
        """
        if self.closed:
            return []
        if not data:
            self.closed = True
            return [MasterClosed(clean=not self._in)]
        self._in += data
        events: list[MuxEvent] = []
        while len(self._in) >= 4:
            length = int.from_bytes(self._in[:4], "big")
            if length > self._max_packet:
                self.closed = True
                raise MuxProtocolError(f"packet of {length} bytes exceeds the limit of "
                                       f"{self._max_packet}")
            if len(self._in) < 4 + length:
                break
            packet = bytes(self._in[4:4 + length])
            del self._in[:4 + length]
            try:
                events.append(self._parse(Reader(packet)))
            except DecodeError as exc:
                self.closed = True
                raise MuxProtocolError(f"malformed message from the master: {exc}") from None
            except MuxProtocolError:
                self.closed = True
                raise
        return events

    def _parse(self, r: Reader) -> MuxEvent:
        kind = r.uint32()
        if not self.hello_received:
            if kind != MSG_HELLO:
                raise MuxProtocolError(f"expected MUX_MSG_HELLO, got message type 0x{kind:08x} "
                                       "(is this an OpenSSH ControlMaster socket?)")
            return self._hello(r)
        if kind == MSG_HELLO:
            raise MuxProtocolError("the master sent HELLO twice")
        if kind == S_EXIT_MESSAGE:
            sid, status = r.uint32(), r.uint32()
            r.check_end()
            if sid not in self._sessions:
                raise MuxProtocolError(f"exit message for unknown session {sid}")
            if self._sessions[sid]:
                raise MuxProtocolError(f"exit message for session {sid} sent twice")
            self._sessions[sid] = True
            return ExitReported(sid, status)
        if kind == S_TTY_ALLOC_FAIL:
            sid = r.uint32()
            r.check_end()
            if sid not in self._sessions:
                raise MuxProtocolError(f"tty allocation failure for unknown session {sid}")
            return TtyAllocFailed(sid)
        rid = r.uint32()
        request = self._pending.pop(rid, None)
        if request is None:
            raise MuxProtocolError(f"reply type 0x{kind:08x} to request {rid}, never made")
        if kind not in _REPLIES[request]:
            raise MuxProtocolError(f"reply type 0x{kind:08x} does not answer request "
                                   f"0x{request:08x}")
        event: MuxEvent
        if kind in (S_FAILURE, S_PERMISSION_DENIED):
            reason = r.string(_REASON_LIMIT).decode("utf-8", "replace")
            event = RequestFailed(rid, reason, kind == S_PERMISSION_DENIED)
        elif kind == S_OK:
            event = Succeeded(rid)
        elif kind == S_ALIVE:
            event = AliveReported(rid, r.uint32())
        elif kind == S_SESSION_OPENED:
            sid = r.uint32()
            self._sessions[sid] = False
            event = SessionOpened(rid, sid)
        else:  # S_REMOTE_PORT
            port = r.uint32()
            if port > 65535:
                raise MuxProtocolError(f"allocated port {port} is not a port")
            event = RemotePortAllocated(rid, port)
        r.check_end()
        return event

    def _hello(self, r: Reader) -> HelloReceived:
        version = r.uint32()
        if version != MUX_VERSION:
            raise MuxProtocolError(f"unsupported mux protocol version {version} "
                                   f"(sshlib speaks {MUX_VERSION})")
        extensions: list[tuple[str, bytes]] = []
        while r.remaining:
            name = r.string(_REASON_LIMIT).decode("utf-8", "replace")
            extensions.append((name, r.string(_REASON_LIMIT)))
        self.hello_received = True
        self.version = version
        return HelloReceived(version, tuple(extensions))
