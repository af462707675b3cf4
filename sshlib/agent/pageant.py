"""``pageant-pipe``, ``pageant-window`` and ``pageant``: PuTTY's Pageant on Windows.

Pageant >= 0.75 serves a named pipe whose name only its own user can
predict: ``\\\\.\\pipe\\pageant.<user>.<hex>``, where <hex> is SHA-256 of the
length-prefixed, CryptProtectMemory(CROSS_PROCESS)-scrambled string
"Pageant" (`pageant_pipe_name`).  Every Pageant (and KeeAgent, gpg-agent's
PuTTY support) also answers the older WM_COPYDATA protocol: the client writes
one framed request into a named shared-memory mapping, sends the window
classed "Pageant" the mapping's name, and finds the reply in the same mapping.

The window protocol carries one whole message per call, so its transport is
a `MessageTransport`.  The mapping gets a random name (predictable names
allowed hijacking) and a security descriptor owned by the user's SID, since
Pageant silently ignores mappings owned by anyone else.  SendMessageTimeout
bounds the wait: Pageant may sit in a passphrase or confirmation prompt.

``pageant`` tries the pipe, then the window, like PuTTY's own clients.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import secrets
import struct
import sys
import threading

from ..errors import AgentConnectError, AgentError, AgentTimeoutError, AgentUnsupportedError
from . import _win32 as w32
from .protocol import DEFAULT_MAX_MESSAGE, frame_length
from .transport import MessageTransport, Transport, seconds
from .winpipe import PipeTransport, open_pipe

__all__ = [
    "AGENT_COPYDATA_ID",
    "MAPPING_SIZE",
    "pageant_pipe_suffix",
    "pageant_pipe_name",
    "PageantWindowTransport",
    "open_pageant_pipe",
    "open_pageant_window",
    "open_pageant",
]

log = logging.getLogger("sshlib.agent")

#: COPYDATASTRUCT.dwData that marks an agent request (PuTTY's AGENT_COPYDATA_ID).
AGENT_COPYDATA_ID = 0x804E50BA
#: Size of the shared mapping: PuTTY's AGENT_MAX_MSGLEN (the reply must fit too).
MAPPING_SIZE = 256 * 1024


def pageant_pipe_suffix(scrambled: bytes) -> str:
    """The hex part of Pageant's pipe name from the (already protected) 16-byte buffer.

    Pure, so it can be checked anywhere: SHA-256 over ``uint32_be(len) || buf``.
    """
    return hashlib.sha256(struct.pack(">I", len(scrambled)) + scrambled).hexdigest()


def _protected_pageant_string() -> bytes:
    """b"Pageant" NUL-padded to a 16-byte block, through CryptProtectMemory (if it works)."""
    text = b"Pageant\x00"
    size = -(-len(text) // w32.CRYPTPROTECTMEMORY_BLOCK_SIZE) * w32.CRYPTPROTECTMEMORY_BLOCK_SIZE
    buffer = ctypes.create_string_buffer(text.ljust(size, b"\x00"), size)
    try:
        # PuTTY ignores failure too: the name is then the hash of the plain string.
        w32.api().CryptProtectMemory(buffer, size, w32.CRYPTPROTECTMEMORY_CROSS_PROCESS)
    except (OSError, AttributeError) as exc:  # pragma: no cover - crypt32 missing
        log.debug("agent: CryptProtectMemory unavailable: %s", exc)
    return buffer.raw[:size]


def pageant_pipe_name() -> str:
    """``\\\\.\\pipe\\pageant.<user>.<hex>`` exactly as PuTTY computes it (Windows only)."""
    suffix = pageant_pipe_suffix(_protected_pageant_string())
    return f"\\\\.\\pipe\\pageant.{w32.user_name()}.{suffix}"


def _unsupported(what: str, endpoint: str) -> AgentUnsupportedError:
    return AgentUnsupportedError(f"{what} only exists on Windows (from WSL2 use an exec: relay "
                                 f"such as wsl2-ssh-pageant)", endpoint=endpoint)


def open_pageant_pipe(timeout: float | None, endpoint: str) -> PipeTransport:
    """Connect to Pageant's pipe and check that our own user owns it (anti-squatting)."""
    if sys.platform != "win32":
        raise _unsupported("Pageant's named pipe", endpoint)
    try:
        name = pageant_pipe_name()
    except OSError as exc:
        raise AgentConnectError(f"cannot derive Pageant's pipe name: {exc}",
                                endpoint=endpoint) from None
    transport = open_pipe(name, timeout, endpoint)
    transport.max_in_flight = 1  # like its window: Pageant is only promised one at a time
    try:
        owner = w32.handle_owner_sid(transport.handle)
        mine = w32.user_sid()
    except OSError as exc:
        log.debug("agent %s: cannot check the pipe owner: %s", endpoint, exc)
        return transport
    if owner != mine:
        transport.close()
        raise AgentConnectError(f"pipe {name} is not owned by the current user: refusing it "
                                f"(another user's process may be squatting the name)",
                                endpoint=endpoint)
    return transport


class PageantWindowTransport(MessageTransport):
    """Requests through the "Pageant" window: shared mapping + WM_COPYDATA, one at a time."""

    def __init__(self, hwnd: int, endpoint: str, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        super().__init__(endpoint, max_message)
        self._w = w32.api()
        self._hwnd = hwnd
        self._lock = threading.Lock()

    def _exchange(self, request: bytes, timeout: float | None) -> bytes:
        if len(request) > MAPPING_SIZE:
            raise AgentError(f"request of {len(request)} bytes does not fit Pageant's "
                             f"{MAPPING_SIZE}-byte mapping", endpoint=self._endpoint)
        with self._lock:
            return self._exchange_locked(request, timeout)

    def _exchange_locked(self, request: bytes, timeout: float | None) -> bytes:
        w = self._w
        name = f"PageantRequest{secrets.token_hex(16)}".encode("ascii")
        try:
            attributes = w32.owner_security_attributes()
        except OSError as exc:
            raise AgentConnectError(f"cannot build the mapping's security descriptor: {exc}",
                                    endpoint=self._endpoint) from None
        mapping = w.CreateFileMappingA(w32.INVALID_HANDLE_VALUE, attributes.pointer(),
                                       w32.PAGE_READWRITE, 0, MAPPING_SIZE, name)
        if not mapping:
            raise AgentConnectError(str(w32.win_error("CreateFileMapping")),
                                    endpoint=self._endpoint)
        try:
            view = w.MapViewOfFile(mapping, w32.FILE_MAP_WRITE, 0, 0, 0)
            if not view:
                raise AgentConnectError(str(w32.win_error("MapViewOfFile")),
                                        endpoint=self._endpoint)
            try:
                ctypes.memmove(view, request, len(request))
                name_buffer = ctypes.create_string_buffer(name)  # NUL included
                cds = w32.COPYDATASTRUCT(AGENT_COPYDATA_ID, len(name) + 1,
                                         ctypes.addressof(name_buffer))
                result = ctypes.c_size_t(0)
                millis = 0x7FFFFFFF if timeout is None else max(1, int(timeout * 1000))
                sent = w.SendMessageTimeoutW(self._hwnd, w32.WM_COPYDATA, 0,
                                             ctypes.addressof(cds),
                                             w32.SMTO_BLOCK | w32.SMTO_ABORTIFHUNG,
                                             millis, ctypes.byref(result))
                if not sent:
                    raise AgentTimeoutError(
                        f"Pageant's window did not answer within {seconds(timeout)} "
                        f"(busy, hung, or waiting on a prompt)", endpoint=self._endpoint)
                if not result.value:
                    raise AgentConnectError(
                        "Pageant refused the request (it answers 0 when the mapping is not "
                        "owned by its user, or it cannot parse the request)",
                        endpoint=self._endpoint)
                header = ctypes.string_at(view, 4)
                length = frame_length(header, min(self.max_message, MAPPING_SIZE - 4),
                                      self._endpoint)
                return header + ctypes.string_at(view + 4, length)
            finally:
                w.UnmapViewOfFile(view)
        finally:
            w.CloseHandle(mapping)


def find_pageant_window() -> int:
    """The window handle of class and title "Pageant", or 0."""
    hwnd = w32.api().FindWindowW("Pageant", "Pageant")
    return int(hwnd or 0)


def open_pageant_window(timeout: float | None, endpoint: str,
                        max_message: int = DEFAULT_MAX_MESSAGE) -> PageantWindowTransport:
    """Talks to Pageant through its window (WM_COPYDATA and a shared file mapping).

    Windows only (`AgentUnsupportedError` elsewhere); `AgentConnectError` when no
    "Pageant" window exists in this desktop session. Each request is one
    SendMessageTimeout, bounded by the request's timeout; Pageant answers one
    request at a time, so concurrent callers queue.
    """
    if sys.platform != "win32":
        raise _unsupported("Pageant's WM_COPYDATA window", endpoint)
    hwnd = find_pageant_window()
    if not hwnd:
        raise AgentConnectError("no Pageant window (is Pageant running in this desktop "
                                "session?)", endpoint=endpoint)
    return PageantWindowTransport(hwnd, endpoint, max_message)


def open_pageant(timeout: float | None, endpoint: str) -> Transport:
    """Pageant's pipe if it is there, else its window."""
    if sys.platform != "win32":
        raise _unsupported("Pageant", endpoint)
    try:
        return open_pageant_pipe(timeout, endpoint)
    except AgentTimeoutError:
        raise
    except AgentConnectError as pipe_error:
        try:
            return open_pageant_window(timeout, endpoint)
        except AgentConnectError as window_error:
            raise AgentConnectError(f"no Pageant pipe ({pipe_error.reason}) and "
                                    f"{window_error.reason}", endpoint=endpoint) from None
