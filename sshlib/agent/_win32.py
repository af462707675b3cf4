"""The Win32 calls the Windows agent channels need, declared once with ctypes.

Nothing is loaded at import time: `api()` loads kernel32, advapi32, user32,
crypt32 and secur32 on first use (on Windows only), so ``import sshlib`` on
Linux never touches ``ctypes.WinDLL``.  Every function is declared with its
argument and result types (so 64-bit handles are not truncated) and with
``use_last_error``, read back through `last_error()`.

Used by winpipe (named pipes), pageant (pipe name, WM_COPYDATA window), cygwin
(msysGit named events), winunix (Winsock AF_UNIX) and the Windows test
fixtures, which also serve pipes and a Pageant window with these declarations.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

__all__ = [
    "api",
    "last_error",
    "win_error",
    "OVERLAPPED",
    "SECURITY_ATTRIBUTES",
    "COPYDATASTRUCT",
    "WNDCLASSW",
    "MSG",
    "WNDPROC",
    "INVALID_HANDLE_VALUE",
    "user_sid",
    "sid_to_string",
    "user_name",
    "owner_security_attributes",
    "handle_owner_sid",
    "MEMORY_BASIC_INFORMATION",
    "HANDLER_ROUTINE",
    "SddlSecurityAttributes",
]

# --- constants ----------------------------------------------------------------------------

INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
OPEN_EXISTING = 3
FILE_FLAG_OVERLAPPED = 0x40000000
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000
PIPE_ACCESS_DUPLEX = 0x3
PIPE_TYPE_BYTE = 0x0
PIPE_READMODE_BYTE = 0x0
PIPE_WAIT = 0x0
PIPE_REJECT_REMOTE_CLIENTS = 0x8
PIPE_UNLIMITED_INSTANCES = 255
PAGE_READWRITE = 0x04
FILE_MAP_WRITE = 0x0002
FILE_MAP_ALL_ACCESS = 0x000F001F
EVENT_ALL_ACCESS = 0x001F0003
SYNCHRONIZE = 0x00100000
EVENT_MODIFY_STATE = 0x0002
WAIT_OBJECT_0 = 0
WAIT_TIMEOUT = 0x102
WAIT_FAILED = 0xFFFFFFFF
INFINITE = 0xFFFFFFFF
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
TOKEN_QUERY = 0x0008
TOKEN_USER_CLASS = 1  # TokenUser
SECURITY_DESCRIPTOR_REVISION = 1
SECURITY_DESCRIPTOR_MIN_LENGTH = 64  # 40 on x64; room to spare
SE_KERNEL_OBJECT = 6
OWNER_SECURITY_INFORMATION = 0x1
WM_COPYDATA = 0x004A
WM_CLOSE = 0x0010
WM_DESTROY = 0x0002
SMTO_BLOCK = 0x0001
SMTO_ABORTIFHUNG = 0x0002
CRYPTPROTECTMEMORY_BLOCK_SIZE = 16
CRYPTPROTECTMEMORY_CROSS_PROCESS = 1
NAME_USER_PRINCIPAL = 8
SDDL_REVISION_1 = 1
FILE_MAP_READ = 0x0004
ERROR_CLASS_ALREADY_EXISTS = 1410
CTRL_C_EVENT = 0
CTRL_BREAK_EVENT = 1
CTRL_CLOSE_EVENT = 2
CTRL_LOGOFF_EVENT = 5
CTRL_SHUTDOWN_EVENT = 6

ERROR_FILE_NOT_FOUND = 2
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_BROKEN_PIPE = 109
ERROR_SEM_TIMEOUT = 121
ERROR_ALREADY_EXISTS = 183
ERROR_PIPE_BUSY = 231
ERROR_NO_DATA = 232
ERROR_PIPE_NOT_CONNECTED = 233
ERROR_MORE_DATA = 234
ERROR_PIPE_CONNECTED = 535
ERROR_OPERATION_ABORTED = 995
ERROR_IO_INCOMPLETE = 996
ERROR_IO_PENDING = 997

# --- structures (need only ctypes, so they are defined on every platform) ---------------------


class OVERLAPPED(ctypes.Structure):
    """Win32 OVERLAPPED: one per pending pipe read or write; `hEvent` is set when it completes."""

    _fields_ = [("Internal", ctypes.c_size_t), ("InternalHigh", ctypes.c_size_t),
                ("Offset", ctypes.c_uint32), ("OffsetHigh", ctypes.c_uint32),
                ("hEvent", ctypes.c_void_p)]


class SECURITY_ATTRIBUTES(ctypes.Structure):
    """Win32 SECURITY_ATTRIBUTES; `nLength` must be its own size (russh 565 got this wrong)."""

    _fields_ = [("nLength", ctypes.c_uint32), ("lpSecurityDescriptor", ctypes.c_void_p),
                ("bInheritHandle", ctypes.c_int)]


class COPYDATASTRUCT(ctypes.Structure):
    """dwData is ULONG_PTR: x64 layout dwData@0, cbData@8, lpData@16."""

    _fields_ = [("dwData", ctypes.c_size_t), ("cbData", ctypes.c_uint32),
                ("lpData", ctypes.c_void_p)]


class MSG(ctypes.Structure):
    """Win32 MSG, filled by GetMessageW in the hidden Pageant window's message loop."""

    _fields_ = [("hwnd", ctypes.c_void_p), ("message", ctypes.c_uint), ("wParam", ctypes.c_size_t),
                ("lParam", ctypes.c_ssize_t), ("time", ctypes.c_uint32),
                ("pt_x", ctypes.c_long), ("pt_y", ctypes.c_long), ("lPrivate", ctypes.c_uint32)]


_functype: Any = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
#: LRESULT CALLBACK WndProc(HWND, UINT, WPARAM, LPARAM)
WNDPROC: Any = _functype(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_uint, ctypes.c_size_t,
                         ctypes.c_ssize_t)


class WNDCLASSW(ctypes.Structure):
    """Win32 WNDCLASSW: registers the window class "Pageant" for the pageant-window listener."""

    _fields_ = [("style", ctypes.c_uint), ("lpfnWndProc", WNDPROC), ("cbClsExtra", ctypes.c_int),
                ("cbWndExtra", ctypes.c_int), ("hInstance", ctypes.c_void_p),
                ("hIcon", ctypes.c_void_p), ("hCursor", ctypes.c_void_p),
                ("hbrBackground", ctypes.c_void_p), ("lpszMenuName", ctypes.c_wchar_p),
                ("lpszClassName", ctypes.c_wchar_p)]


class MEMORY_BASIC_INFORMATION(ctypes.Structure):
    """Win32 MEMORY_BASIC_INFORMATION: VirtualQuery gives a mapping's real `RegionSize`."""

    _fields_ = [("BaseAddress", ctypes.c_void_p), ("AllocationBase", ctypes.c_void_p),
                ("AllocationProtect", ctypes.c_uint32), ("PartitionId", ctypes.c_uint16),
                ("RegionSize", ctypes.c_size_t), ("State", ctypes.c_uint32),
                ("Protect", ctypes.c_uint32), ("Type", ctypes.c_uint32)]


#: BOOL WINAPI HandlerRoutine(DWORD dwCtrlType)
HANDLER_ROUTINE: Any = _functype(ctypes.c_int, ctypes.c_uint32)


# --- function table ---------------------------------------------------------------------------

_H = ctypes.c_void_p      # HANDLE, HWND, PSID, pointers
_B = ctypes.c_int         # BOOL
_D = ctypes.c_uint32      # DWORD / UINT
_W = ctypes.c_wchar_p     # LPCWSTR
_A = ctypes.c_char_p      # LPCSTR
_P = ctypes.c_void_p      # any pointer (pass byref(...) or a buffer)
_SZ = ctypes.c_size_t
_L = ctypes.c_ssize_t     # LRESULT / LPARAM

_PROTOTYPES: dict[str, tuple[str, Any, list[Any]]] = {
    # kernel32: files, pipes, events, waits, mappings
    "CreateFileW": ("kernel32", _H, [_W, _D, _D, _P, _D, _D, _H]),
    "ReadFile": ("kernel32", _B, [_H, _P, _D, _P, _P]),
    "WriteFile": ("kernel32", _B, [_H, _P, _D, _P, _P]),
    "CloseHandle": ("kernel32", _B, [_H]),
    "WaitNamedPipeW": ("kernel32", _B, [_W, _D]),
    "CreateNamedPipeW": ("kernel32", _H, [_W, _D, _D, _D, _D, _D, _D, _P]),
    "ConnectNamedPipe": ("kernel32", _B, [_H, _P]),
    "DisconnectNamedPipe": ("kernel32", _B, [_H]),
    "FlushFileBuffers": ("kernel32", _B, [_H]),
    "GetOverlappedResult": ("kernel32", _B, [_H, _P, _P, _B]),
    "CancelIoEx": ("kernel32", _B, [_H, _P]),
    "CreateEventW": ("kernel32", _H, [_P, _B, _B, _W]),
    "CreateEventA": ("kernel32", _H, [_P, _B, _B, _A]),
    "OpenEventA": ("kernel32", _H, [_D, _B, _A]),
    "SetEvent": ("kernel32", _B, [_H]),
    "ResetEvent": ("kernel32", _B, [_H]),
    "WaitForSingleObject": ("kernel32", _D, [_H, _D]),
    "WaitForMultipleObjects": ("kernel32", _D, [_D, _P, _B, _D]),
    "CreateFileMappingA": ("kernel32", _H, [_H, _P, _D, _D, _D, _A]),
    "OpenFileMappingA": ("kernel32", _H, [_D, _B, _A]),
    "MapViewOfFile": ("kernel32", _P, [_H, _D, _D, _D, _SZ]),
    "UnmapViewOfFile": ("kernel32", _B, [_P]),
    "GetCurrentProcess": ("kernel32", _H, []),
    "GetCurrentThreadId": ("kernel32", _D, []),
    "LocalFree": ("kernel32", _P, [_P]),
    "GetModuleHandleW": ("kernel32", _H, [_W]),
    "GetNamedPipeClientProcessId": ("kernel32", _B, [_H, _P]),
    "GetNamedPipeServerProcessId": ("kernel32", _B, [_H, _P]),
    "OpenProcess": ("kernel32", _H, [_D, _B, _D]),
    "QueryFullProcessImageNameW": ("kernel32", _B, [_H, _D, _P, _P]),
    "VirtualQuery": ("kernel32", _SZ, [_P, _P, _SZ]),
    "SetConsoleCtrlHandler": ("kernel32", _B, [_P, _B]),
    # advapi32: tokens, SIDs, security descriptors, user name
    "OpenProcessToken": ("advapi32", _B, [_H, _D, _P]),
    "GetTokenInformation": ("advapi32", _B, [_H, _D, _P, _D, _P]),
    "InitializeSecurityDescriptor": ("advapi32", _B, [_P, _D]),
    "SetSecurityDescriptorOwner": ("advapi32", _B, [_P, _H, _B]),
    "GetSecurityInfo": ("advapi32", _D, [_H, _D, _D, _P, _P, _P, _P, _P]),
    "EqualSid": ("advapi32", _B, [_H, _H]),
    "IsValidSid": ("advapi32", _B, [_H]),
    "GetLengthSid": ("advapi32", _D, [_H]),
    "ConvertSidToStringSidW": ("advapi32", _B, [_H, _P]),
    "ConvertStringSidToSidW": ("advapi32", _B, [_W, _P]),
    "ConvertStringSecurityDescriptorToSecurityDescriptorW": ("advapi32", _B, [_W, _D, _P, _P]),
    "GetUserNameA": ("advapi32", _B, [_P, _P]),
    # secur32
    "GetUserNameExA": ("secur32", ctypes.c_ubyte, [_D, _P, _P]),
    # crypt32
    "CryptProtectMemory": ("crypt32", _B, [_P, _D, _D]),
    # user32: the Pageant window, both sides
    "FindWindowW": ("user32", _H, [_W, _W]),
    "SendMessageTimeoutW": ("user32", _L, [_H, _D, _SZ, _L, _D, _D, _P]),
    "RegisterClassW": ("user32", ctypes.c_uint16, [_P]),
    "CreateWindowExW": ("user32", _H, [_D, _W, _W, _D, _B, _B, _B, _B, _H, _H, _H, _P]),
    "DefWindowProcW": ("user32", _L, [_H, _D, _SZ, _L]),
    "DestroyWindow": ("user32", _B, [_H]),
    "GetMessageW": ("user32", _B, [_P, _H, _D, _D]),
    "TranslateMessage": ("user32", _B, [_P]),
    "DispatchMessageW": ("user32", _L, [_P]),
    "PostMessageW": ("user32", _B, [_H, _D, _SZ, _L]),
    "PostQuitMessage": ("user32", None, [_B]),
    "UnregisterClassW": ("user32", _B, [_W, _H]),
}


class _Api:
    """Attribute access to the declared functions (each typed Any for callers)."""

    def __init__(self) -> None:
        windll: Any = getattr(ctypes, "WinDLL")  # noqa: B009 - absent on POSIX
        dlls: dict[str, Any] = {}
        for name, (dll, restype, argtypes) in _PROTOTYPES.items():
            if dll not in dlls:
                dlls[dll] = windll(dll, use_last_error=True)
            function = getattr(dlls[dll], name)
            function.restype = restype
            function.argtypes = argtypes
            setattr(self, name, function)

    def __getattr__(self, name: str) -> Any:  # only reached for undeclared names
        raise AttributeError(f"{name} is not declared in sshlib.agent._win32")


_api: _Api | None = None
_api_lock = threading.Lock()


def api() -> Any:
    """The loaded function table; OSError off Windows (callers check the platform first)."""
    global _api
    if sys.platform != "win32":
        raise OSError("the Win32 API is only available on Windows")
    with _api_lock:
        if _api is None:
            _api = _Api()
        return _api


def last_error() -> int:
    """GetLastError() as saved by the last call through `api()` in this thread."""
    getter: Any = getattr(ctypes, "get_last_error")  # noqa: B009 - absent on POSIX
    return int(getter())


def win_error(what: str, code: int | None = None) -> OSError:
    """An OSError for a failed call: ``winerror`` set and a message naming the call."""
    code = last_error() if code is None else code
    formatter: Any = getattr(ctypes, "FormatError", None)
    text = str(formatter(code)).strip() if formatter is not None else f"error {code}"
    error = OSError(0, f"{what}: {text} (Windows error {code})")
    setattr(error, "winerror", code)  # noqa: B010 - typeshed declares it on Windows only
    return error


# --- users, SIDs and security descriptors -------------------------------------------------------


def user_sid() -> bytes:
    """The current process user's SID (TokenUser), as the raw SID bytes."""
    w = api()
    token = ctypes.c_void_p()
    if not w.OpenProcessToken(w.GetCurrentProcess(), TOKEN_QUERY, ctypes.byref(token)):
        raise win_error("OpenProcessToken")
    try:
        size = ctypes.c_uint32(0)
        w.GetTokenInformation(token, TOKEN_USER_CLASS, None, 0, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(max(size.value, 64))
        if not w.GetTokenInformation(token, TOKEN_USER_CLASS, buffer, len(buffer),
                                     ctypes.byref(size)):
            raise win_error("GetTokenInformation(TokenUser)")
        # TOKEN_USER = SID_AND_ATTRIBUTES { PSID Sid; DWORD Attributes; }
        sid = ctypes.c_void_p.from_buffer(buffer).value or 0
        return ctypes.string_at(sid, w.GetLengthSid(sid))
    finally:
        w.CloseHandle(token)


def sid_to_string(sid: bytes) -> str:
    """``S-1-5-21-...`` for raw SID bytes."""
    w = api()
    raw = ctypes.create_string_buffer(sid, len(sid))
    text = ctypes.c_wchar_p()
    if not w.ConvertSidToStringSidW(raw, ctypes.byref(text)):
        raise win_error("ConvertSidToStringSid")
    try:
        return str(text.value)
    finally:
        w.LocalFree(text)


def string_to_sid(text: str) -> bytes:
    """Raw SID bytes for ``S-1-...`` (for tests that need a foreign owner)."""
    w = api()
    sid = ctypes.c_void_p()
    if not w.ConvertStringSidToSidW(text, ctypes.byref(sid)):
        raise win_error(f"ConvertStringSidToSid({text})")
    try:
        return ctypes.string_at(sid, w.GetLengthSid(sid))
    finally:
        w.LocalFree(sid)


def user_name() -> str:
    """The user name as PuTTY derives it: the UPN cut at '@', else GetUserNameA."""
    w = api()
    size = ctypes.c_uint32(0)
    w.GetUserNameExA(NAME_USER_PRINCIPAL, None, ctypes.byref(size))
    if size.value:
        buffer = ctypes.create_string_buffer(size.value + 1)
        if w.GetUserNameExA(NAME_USER_PRINCIPAL, buffer, ctypes.byref(size)):
            return buffer.value.split(b"@", 1)[0].decode("mbcs")
    size = ctypes.c_uint32(257)
    buffer = ctypes.create_string_buffer(size.value)
    if not w.GetUserNameA(buffer, ctypes.byref(size)):
        raise win_error("GetUserNameA")
    return buffer.value.decode("mbcs")


class OwnedSecurityAttributes:
    """A SECURITY_ATTRIBUTES whose descriptor names `sid` as owner; keeps its buffers alive."""

    def __init__(self, sid: bytes) -> None:
        w = api()
        self.sid = ctypes.create_string_buffer(sid, len(sid))
        self.descriptor = ctypes.create_string_buffer(SECURITY_DESCRIPTOR_MIN_LENGTH)
        if not w.InitializeSecurityDescriptor(self.descriptor, SECURITY_DESCRIPTOR_REVISION):
            raise win_error("InitializeSecurityDescriptor")
        if not w.SetSecurityDescriptorOwner(self.descriptor, ctypes.addressof(self.sid), False):
            raise win_error("SetSecurityDescriptorOwner")
        self.attributes = SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES),
                                              ctypes.addressof(self.descriptor), 0)

    def pointer(self) -> Any:
        """`LPSECURITY_ATTRIBUTES` for a Win32 call; valid while this object lives."""
        return ctypes.byref(self.attributes)


def owner_security_attributes(sid: bytes | None = None) -> OwnedSecurityAttributes:
    """Security attributes owned by `sid` (default: the current user), as Pageant wants."""
    return OwnedSecurityAttributes(user_sid() if sid is None else sid)


def handle_owner_sid(handle: int) -> bytes:
    """The owner SID of a kernel object (a pipe, a file mapping) by GetSecurityInfo."""
    w = api()
    owner = ctypes.c_void_p()
    descriptor = ctypes.c_void_p()
    status = w.GetSecurityInfo(handle, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION,
                               ctypes.byref(owner), None, None, None, ctypes.byref(descriptor))
    if status != 0:
        raise win_error("GetSecurityInfo", status)
    try:
        if not owner.value:
            return b""
        return ctypes.string_at(owner.value, w.GetLengthSid(owner))
    finally:
        if descriptor.value:
            w.LocalFree(descriptor)


class SddlSecurityAttributes:
    """SECURITY_ATTRIBUTES from an SDDL string (owner and DACL); frees the descriptor on close."""

    def __init__(self, sddl: str) -> None:
        w = api()
        self._w = w
        self.sddl = sddl
        descriptor = ctypes.c_void_p()
        if not w.ConvertStringSecurityDescriptorToSecurityDescriptorW(
                sddl, SDDL_REVISION_1, ctypes.byref(descriptor), None):
            raise win_error(f"ConvertStringSecurityDescriptorToSecurityDescriptor({sddl})")
        self.descriptor = descriptor
        self.attributes = SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES),
                                              descriptor.value, 0)

    def pointer(self) -> Any:
        """`LPSECURITY_ATTRIBUTES` for a Win32 call; valid until `close()`."""
        return ctypes.byref(self.attributes)

    def close(self) -> None:
        """Frees the descriptor (LocalFree); idempotent. Objects made with it keep a copy."""
        if self.descriptor.value:
            self._w.LocalFree(self.descriptor)
            self.descriptor = ctypes.c_void_p()
