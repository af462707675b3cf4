"""``pageant-window``: act as Pageant's WM_COPYDATA window for PuTTY, WinSCP, FileZilla.

A hidden window of class and title "Pageant", with its own message-loop
thread.  A client writes one framed request into a named file mapping and
sends us the mapping's name in a WM_COPYDATA (dwData = AGENT_COPYDATA_ID,
the name NUL-terminated); we answer in the same mapping and return non-zero.
Like Pageant we return 0 and leave the mapping alone unless its owner SID is
our user's SID: a mapping another user created could otherwise be used to
make us sign on their behalf.  Every offset is checked against the mapping's
real size (VirtualQuery), never trusted from the request.

The window has no upstream of its own: each request goes to the bridge as
one more message on a virtual client connection (`WindowClient`), which the
bridge serves like any other client (lazy upstream stream, FAILURE if the
agent is unreachable).  One such connection is shared by every window
request, one at a time, as Pageant serves them; the message loop waits for
the reply at most `request_timeout` seconds, so a hung agent cannot freeze
it (the request then gets 0, and the connection is replaced).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import struct
import sys
import threading
from typing import Any

from ...errors import AgentConnectError, AgentTimeoutError, AgentUnsupportedError
from .. import _win32 as w32
from ..pageant import AGENT_COPYDATA_ID
from ..protocol import DEFAULT_MAX_MESSAGE
from ..transport import BaseTransport, Transport, seconds
from . import Listener, ListenerClosed, PendingClient

__all__ = ["PageantWindowListener", "WindowClient"]

log = logging.getLogger("sshlib.agent.bridge")


def _on_windows() -> bool:
    """A function, not an inline check, so type checkers for POSIX still read the rest."""
    return sys.platform == "win32"

_CLASS = "Pageant"
#: Longest mapping name we read from a WM_COPYDATA (Pageant's names are ~40 chars).
_MAX_NAME = 512
_FAILURE = b"\x00\x00\x00\x01\x05"


class WindowClient(BaseTransport):
    """The bridge's view of the window's requests: a stream of whole frames.

    The window thread calls `exchange`; the bridge's StreamServer reads the
    request with `recv` and writes the reply with `send_all`.
    """

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self._cond = threading.Condition()
        self._incoming = bytearray()
        self._reply = bytearray()
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the bridge side closed this client (then the window answers 0)."""
        return self._closed

    def exchange(self, request: bytes, timeout: float | None) -> bytes | None:
        """The bridge's framed reply to `request`; None if it did not come in time."""
        with self._cond:
            if self._closed:
                return None
            self._reply.clear()
            self._incoming += request
            self._cond.notify_all()
            ok = self._cond.wait_for(lambda: self._closed or self._complete(), timeout)
            if not ok or not self._complete():
                return None
            reply = bytes(self._reply)
            self._reply.clear()
            return reply

    def _complete(self) -> bool:
        if len(self._reply) < 4:
            return False
        length: int = struct.unpack(">I", self._reply[:4])[0]
        return len(self._reply) >= 4 + length

    def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or bool(self._incoming), timeout):
                raise AgentTimeoutError(f"no request for {seconds(timeout)}",
                                        endpoint=self._endpoint)
            if not self._incoming:
                return b""
            chunk = bytes(self._incoming[:max_bytes])
            del self._incoming[:max_bytes]
            return chunk

    def send_all(self, data: bytes, timeout: float | None) -> None:
        with self._cond:
            if self._closed:
                raise AgentConnectError("the window connection is closed",
                                        endpoint=self._endpoint)
            self._reply += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _WindowPending(PendingClient):
    def __init__(self, client: WindowClient) -> None:
        self.client = client
        self.peer = "Pageant window requests"

    def open(self, timeout: float | None) -> Transport:
        return self.client

    def abort(self) -> None:
        self.client.close()


#: hwnd -> listener, for the one window procedure a window class can have.
_windows: dict[int, PageantWindowListener] = {}
_windows_lock = threading.Lock()
_class_registered = False


def _wndproc(hwnd: Any, message: int, wparam: int, lparam: int) -> int:
    w = w32.api()
    listener = _windows.get(int(hwnd or 0))
    if message == w32.WM_COPYDATA and listener is not None:
        try:
            return listener.on_copydata(lparam)
        except Exception:  # never let an exception cross the C callback
            log.exception("%s: unexpected error answering a request", listener.endpoint)
            return 0
    if message == w32.WM_DESTROY:
        w.PostQuitMessage(0)
        return 0
    return int(w.DefWindowProcW(hwnd, message, wparam, lparam))


_WNDPROC: Any = None  # the ctypes callback, kept alive for the process's lifetime


class PageantWindowListener(Listener):
    """The window; `accept` yields the virtual connection that carries its requests."""

    def __init__(self, request_timeout: float | None = 120.0,
                 max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        super().__init__("pageant-window")
        if not _on_windows():
            raise AgentUnsupportedError(
                "a Pageant window can only be served from Windows (on WSL2, run the bridge "
                "with Windows Python: python.exe -m sshlib agent bridge ...)",
                endpoint=self.endpoint)
        self._w = w32.api()
        self.request_timeout = request_timeout
        self.max_message = max_message
        self.answered = 0
        self.refused = 0
        if self._w.FindWindowW(_CLASS, _CLASS):
            raise AgentConnectError(
                "a Pageant window already exists in this session (Pageant, KeeAgent, "
                "gpg-agent or another bridge): stop it first", endpoint=self.endpoint)
        try:
            self._user_sid = w32.user_sid()
        except OSError as exc:
            raise AgentConnectError(f"cannot read the user's SID: {exc}",
                                    endpoint=self.endpoint) from None
        self._queue: queue.Queue[WindowClient | None] = queue.Queue()
        self._client: WindowClient | None = None
        self._closed = False
        self.hwnd = 0
        self._errors: list[str] = []
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True,
                                        name="agent-bridge-pageant-window")
        self._thread.start()
        started.wait(30)
        if self._errors or not self.hwnd:
            raise AgentConnectError(f"cannot create the Pageant window: "
                                    f"{'; '.join(self._errors) or 'timed out'}",
                                    endpoint=self.endpoint)

    # --- the window thread ------------------------------------------------------------------

    def _run(self, started: threading.Event) -> None:
        global _WNDPROC, _class_registered
        w = self._w
        try:
            with _windows_lock:
                if not _class_registered:
                    _WNDPROC = w32.WNDPROC(_wndproc)
                    klass = w32.WNDCLASSW()
                    klass.lpfnWndProc = _WNDPROC
                    klass.hInstance = w.GetModuleHandleW(None)
                    klass.lpszClassName = _CLASS
                    if not w.RegisterClassW(ctypes.byref(klass)) and \
                            w32.last_error() != w32.ERROR_CLASS_ALREADY_EXISTS:
                        raise w32.win_error("RegisterClass")
                    _class_registered = True
                # Hidden (no WS_VISIBLE), top-level, like Pageant's own.
                hwnd = w.CreateWindowExW(0, _CLASS, _CLASS, 0, 0, 0, 0, 0, None, None,
                                         w.GetModuleHandleW(None), None)
                if not hwnd:
                    raise w32.win_error("CreateWindowEx")
                self.hwnd = int(hwnd)
                _windows[self.hwnd] = self
        except OSError as exc:
            self._errors.append(str(exc))
            return
        finally:
            started.set()
        msg = w32.MSG()
        try:
            while w.GetMessageW(ctypes.byref(msg), None, 0, 0) > 0:
                w.TranslateMessage(ctypes.byref(msg))
                w.DispatchMessageW(ctypes.byref(msg))
        finally:
            with _windows_lock:
                _windows.pop(self.hwnd, None)

    def _mapping_name(self, lparam: int) -> bytes | None:
        cds = w32.COPYDATASTRUCT.from_address(lparam)
        if cds.dwData != AGENT_COPYDATA_ID or not cds.lpData:
            return None
        if not 1 < cds.cbData <= _MAX_NAME:
            return None
        name = ctypes.string_at(cds.lpData, cds.cbData)
        end = name.find(b"\x00")
        if end <= 0:
            return None
        return name[:end]

    def on_copydata(self, lparam: int) -> int:
        """Answer one WM_COPYDATA: 1 when the reply is in the mapping, 0 to refuse."""
        name = self._mapping_name(lparam)
        if name is None:
            return 0
        w = self._w
        mapping = w.OpenFileMappingA(w32.FILE_MAP_ALL_ACCESS, False, name)
        if not mapping:
            log.info("%s: cannot open mapping %r: %s", self.endpoint, name,
                     w32.win_error("OpenFileMapping").strerror)
            return 0
        try:
            try:
                owner = w32.handle_owner_sid(mapping)
            except OSError:
                owner = b""
            if owner != self._user_sid:
                self.refused += 1
                log.warning("%s: refused a request: its mapping is not owned by our user",
                            self.endpoint)
                return 0
            view = w.MapViewOfFile(mapping, w32.FILE_MAP_WRITE, 0, 0, 0)
            if not view:
                return 0
            try:
                return self._answer(int(view))
            finally:
                w.UnmapViewOfFile(view)
        finally:
            w.CloseHandle(mapping)

    def _answer(self, view: int) -> int:
        info = w32.MEMORY_BASIC_INFORMATION()
        if not self._w.VirtualQuery(view, ctypes.byref(info), ctypes.sizeof(info)):
            return 0
        size = int(info.RegionSize)
        if size < 5:
            return 0
        length = struct.unpack(">I", ctypes.string_at(view, 4))[0]
        if not 0 < length <= min(size - 4, self.max_message):
            log.warning("%s: refused a request of %d bytes (mapping of %d)", self.endpoint,
                        length, size)
            return 0
        request = ctypes.string_at(view, 4 + length)
        reply = self._forward(request)
        if reply is None:
            return 0
        if len(reply) > size:
            reply = _FAILURE
        ctypes.memmove(view, reply, len(reply))
        self.answered += 1
        return 1

    def _forward(self, request: bytes) -> bytes | None:
        """The bridge's reply through the shared virtual connection (a fresh one if needed)."""
        for _attempt in range(2):
            client = self._client
            if client is None or client.closed:
                if self._closed:
                    return None
                client = self._client = WindowClient(self.endpoint)
                self._queue.put(client)
            reply = client.exchange(request, self.request_timeout)
            if reply is not None:
                return reply
            if not client.closed:  # timed out: abandon it, so a late reply goes nowhere
                client.close()
                log.warning("%s: the agent did not answer within %s", self.endpoint,
                            seconds(self.request_timeout))
                return None
        return None

    # --- Listener ----------------------------------------------------------------------

    def accept(self) -> PendingClient:
        client = self._queue.get()
        if client is None or self._closed:
            self._queue.put(None)  # wake any other accept too
            raise ListenerClosed(self.endpoint)
        return _WindowPending(client)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client = self._client
        if client is not None:
            client.close()  # first: wakes the window thread if it waits for a reply
        if self.hwnd:
            self._w.PostMessageW(self.hwnd, w32.WM_CLOSE, 0, 0)
            self._thread.join(5)
        self._queue.put(None)
