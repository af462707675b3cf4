"""A small SSH agent for Windows test processes (runs under Wine in the tests).

Library (import from a Windows Python whose path has this folder and the checkout):

- `Agent(keys)`: in-memory agent state; `handle(payload) -> reply payload`
  answers REQUEST_IDENTITIES, SIGN_REQUEST (rsa-sha2-256/512 flags), ADD_IDENTITY
  / ADD_ID_CONSTRAINED (ed25519, ecdsa, rsa; constraints ignored), REMOVE,
  REMOVE_ALL, LOCK/UNLOCK; FAILURE for anything else.  Thread-safe.
- `serve_pipe(path, agent, instances=..., hang=False) -> PipeServer`: byte-mode
  named pipe server, `instances` worker threads (each one pipe instance), so
  more concurrent clients than that see ERROR_PIPE_BUSY.  `hang` reads and
  never answers.
- `PageantWindow(agent, hang=False)`: a window of class and title "Pageant"
  answering WM_COPYDATA like Pageant, including its refusal (return 0) of
  mappings whose owner is not the user's SID; counts `answered`/`refused`.
- `MsysServer(agent, path, secret_words=None, file_words=None)`: an msysGit
  (Cygwin 1.5) socket file + TCP listener with the named-event handshake.

Script: ``python winagent.py serve [options]`` starts those, prints one JSON
line {"ready": true, ...} on stdout and serves until stdin closes;
``python winagent.py relay ENDPOINT`` is a stdio relay to an sshlib endpoint
(the shape of npiperelay.exe for the exec: tests).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import sshlib
from sshlib import keys
from sshlib.agent import _win32 as w32
from sshlib.agent import protocol as p
from sshlib.agent.pageant import AGENT_COPYDATA_ID, MAPPING_SIZE
from sshlib.wire import Reader, Writer

_CURVES = {b"nistp256": ec.SECP256R1(), b"nistp384": ec.SECP384R1(),
           b"nistp521": ec.SECP521R1()}


def _failure() -> bytes:
    return bytes((p.SSH_AGENT_FAILURE,))


def _success() -> bytes:
    return bytes((p.SSH_AGENT_SUCCESS,))


def parse_added_key(reader: Reader) -> keys.PrivateKey:
    """The key of an ADD_IDENTITY body (type-specific fields as in openssh-key-v1)."""
    key_type = reader.text()
    if key_type == "ssh-ed25519":
        reader.string()
        secret = reader.string()
        return keys.from_crypto_key(ed25519.Ed25519PrivateKey.from_private_bytes(secret[:32]))
    if key_type.startswith("ecdsa-sha2-"):
        curve = _CURVES[reader.string()]
        reader.string()
        private = ec.derive_private_key(reader.mpint(), curve)
        return keys.from_crypto_key(private)
    if key_type == "ssh-rsa":
        n, e, d, iqmp, p_, q = (reader.mpint() for _ in range(6))
        numbers = rsa.RSAPrivateNumbers(p_, q, d, d % (p_ - 1), d % (q - 1), iqmp,
                                        rsa.RSAPublicNumbers(e, n))
        return keys.from_crypto_key(numbers.private_key())
    raise ValueError(f"unsupported key type {key_type}")


class Agent:
    """The agent's keys and lock state; `handle` maps a request payload to a reply payload."""

    def __init__(self, initial: list[keys.PrivateKey] | None = None) -> None:
        self.keys: dict[bytes, tuple[keys.PrivateKey, str]] = {}
        for key in initial or []:
            self.keys[key.public_key.blob] = (key, key.comment)
        self.passphrase: bytes | None = None
        self.requests: list[int] = []
        self._lock = threading.Lock()

    def handle(self, payload: bytes) -> bytes:
        with self._lock:
            self.requests.append(payload[0] if payload else -1)
            try:
                return self._handle(payload)
            except Exception:
                return _failure()

    def _handle(self, payload: bytes) -> bytes:
        reader = Reader(payload)
        kind = reader.byte()
        if kind == p.SSH_AGENTC_LOCK:
            if self.passphrase is not None:
                return _failure()
            self.passphrase = reader.string()
            return _success()
        if kind == p.SSH_AGENTC_UNLOCK:
            if self.passphrase is None or reader.string() != self.passphrase:
                return _failure()
            self.passphrase = None
            return _success()
        if self.passphrase is not None:
            if kind == p.SSH_AGENTC_REQUEST_IDENTITIES:
                return Writer(p.SSH_AGENT_IDENTITIES_ANSWER).uint32(0).getvalue()
            return _failure()
        if kind == p.SSH_AGENTC_REQUEST_IDENTITIES:
            writer = Writer(p.SSH_AGENT_IDENTITIES_ANSWER).uint32(len(self.keys))
            for blob, (_, comment) in self.keys.items():
                writer.string(blob).string(comment)
            return writer.getvalue()
        if kind == p.SSH_AGENTC_SIGN_REQUEST:
            blob, data, flags = reader.string(), reader.string(), reader.uint32()
            if blob not in self.keys:
                return _failure()
            key = self.keys[blob][0]
            algorithm = None
            if key.public_key.key_type == "ssh-rsa":
                algorithm = ("rsa-sha2-512" if flags & p.SSH_AGENT_RSA_SHA2_512 else
                             "rsa-sha2-256" if flags & p.SSH_AGENT_RSA_SHA2_256 else "ssh-rsa")
            signature = key.sign(data, algorithm)
            return Writer(p.SSH_AGENT_SIGN_RESPONSE).string(signature).getvalue()
        if kind in (p.SSH_AGENTC_ADD_IDENTITY, p.SSH_AGENTC_ADD_ID_CONSTRAINED):
            key = parse_added_key(reader)
            self.keys[key.public_key.blob] = (key, reader.text())
            return _success()
        if kind == p.SSH_AGENTC_REMOVE_IDENTITY:
            return _success() if self.keys.pop(reader.string(), None) else _failure()
        if kind == p.SSH_AGENTC_REMOVE_ALL_IDENTITIES:
            self.keys.clear()
            return _success()
        return _failure()


# --- named pipes --------------------------------------------------------------------------------


def _read_exact(handle: int, count: int) -> bytes:
    w = w32.api()
    data = b""
    while len(data) < count:
        buffer = ctypes.create_string_buffer(count - len(data))
        got = ctypes.c_uint32(0)
        if not w.ReadFile(handle, buffer, len(buffer), ctypes.byref(got), None) or not got.value:
            return data
        data += buffer.raw[:got.value]
    return data


def _write_all(handle: int, data: bytes) -> bool:
    w = w32.api()
    while data:
        put = ctypes.c_uint32(0)
        if not w.WriteFile(handle, data, len(data), ctypes.byref(put), None):
            return False
        data = data[put.value:]
    return True


class PipeServer:
    """`instances` threads, each serving one instance of pipe `path`, one client at a time."""

    def __init__(self, path: str, agent: Agent, instances: int = 4, hang: bool = False,
                 delay: float = 0.0, owned: bool = False, shared: bool = False) -> None:
        # shared: no cap on the name's instances, so another process can serve it too
        # (as 1Password, Bitwarden and Win32-OpenSSH do with openssh-ssh-agent).
        self.max_instances = 255 if shared else instances
        # owned: a security descriptor whose owner is the user's SID, as Pageant
        # makes (its clients refuse a pipe with any other owner).
        self.attributes = w32.owner_security_attributes() if owned else None
        self.path = path
        self.agent = agent
        self.hang = hang
        self.delay = delay
        self.instances = instances
        self.connections = 0
        self.max_concurrent = 0
        self._active = 0
        self._lock = threading.Lock()
        self._ready = threading.Barrier(instances + 1)
        for _ in range(instances):
            threading.Thread(target=self._worker, daemon=True).start()
        self._ready.wait(30)

    def _worker(self) -> None:
        w = w32.api()
        handle = w.CreateNamedPipeW(
            self.path, w32.PIPE_ACCESS_DUPLEX,
            w32.PIPE_TYPE_BYTE | w32.PIPE_READMODE_BYTE | w32.PIPE_WAIT,
            self.max_instances, 65536, 65536, 0,
            self.attributes.pointer() if self.attributes is not None else None)
        if handle in (None, w32.INVALID_HANDLE_VALUE):
            raise w32.win_error(f"CreateNamedPipe {self.path}")
        self._ready.wait(30)
        while True:
            if not w.ConnectNamedPipe(handle, None) and \
                    w32.last_error() != w32.ERROR_PIPE_CONNECTED:
                time.sleep(0.01)
                continue
            with self._lock:
                self.connections += 1
                self._active += 1
                self.max_concurrent = max(self.max_concurrent, self._active)
            try:
                self._serve(handle)
            finally:
                with self._lock:
                    self._active -= 1
                w.FlushFileBuffers(handle)
                w.DisconnectNamedPipe(handle)

    def _serve(self, handle: int) -> None:
        while True:
            header = _read_exact(handle, 4)
            if len(header) < 4:
                return
            payload = _read_exact(handle, struct.unpack(">I", header)[0])
            if self.hang:
                while _read_exact(handle, 1):
                    pass
                return
            if self.delay:
                time.sleep(self.delay)
            if not _write_all(handle, p.frame(self.agent.handle(payload))):
                return


# --- the Pageant window ---------------------------------------------------------------------


class PageantWindow:
    """A window classed and titled "Pageant" that answers WM_COPYDATA agent requests.

    Like Pageant, a request whose mapping is not owned by this process's user
    SID gets no answer (the window procedure returns 0).
    """

    def __init__(self, agent: Agent, hang: bool = False, class_name: str = "Pageant") -> None:
        self.class_name = class_name
        self.agent = agent
        self.hang = hang
        self.answered = 0
        self.refused = 0
        self.user_sid = w32.user_sid()
        self.hwnd = 0
        self._proc = w32.WNDPROC(self._wndproc)  # keep the callback alive
        started = threading.Event()
        self._errors: list[str] = []
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(30)
        if self._errors or not self.hwnd:
            raise RuntimeError(f"Pageant window failed: {self._errors}")

    def _run(self, started: threading.Event) -> None:
        w = w32.api()
        try:
            klass = w32.WNDCLASSW()
            klass.lpfnWndProc = self._proc
            klass.hInstance = w.GetModuleHandleW(None)
            klass.lpszClassName = self.class_name
            if not w.RegisterClassW(ctypes.byref(klass)):
                raise w32.win_error("RegisterClass")
            hwnd = w.CreateWindowExW(0, self.class_name, self.class_name, 0, 0, 0, 0, 0, None, None,
                                     klass.hInstance, None)
            if not hwnd:
                raise w32.win_error("CreateWindowEx")
            self.hwnd = int(hwnd)
        except OSError as exc:
            self._errors.append(str(exc))
            return
        finally:
            started.set()
        msg = w32.MSG()
        while w.GetMessageW(ctypes.byref(msg), None, 0, 0) > 0:
            w.TranslateMessage(ctypes.byref(msg))
            w.DispatchMessageW(ctypes.byref(msg))

    def _wndproc(self, hwnd: Any, message: int, wparam: int, lparam: int) -> int:
        w = w32.api()
        if message != w32.WM_COPYDATA:
            return int(w.DefWindowProcW(hwnd, message, wparam, lparam))
        try:
            return self._copydata(lparam)
        except Exception as exc:  # never let an exception cross the C callback
            print(f"PageantWindow: {exc!r}", file=sys.stderr, flush=True)
            return 0

    def _copydata(self, lparam: int) -> int:
        w = w32.api()
        cds = w32.COPYDATASTRUCT.from_address(lparam)
        if cds.dwData != AGENT_COPYDATA_ID or not cds.cbData or not cds.lpData:
            return 0
        name = ctypes.string_at(cds.lpData, cds.cbData)
        if not name.endswith(b"\x00"):
            return 0
        if self.hang:
            time.sleep(3600)
        mapping = w.OpenFileMappingA(w32.FILE_MAP_ALL_ACCESS, False, name[:-1])
        if not mapping:
            return 0
        try:
            if w32.handle_owner_sid(mapping) != self.user_sid:
                self.refused += 1
                return 0
            view = w.MapViewOfFile(mapping, w32.FILE_MAP_WRITE, 0, 0, 0)
            if not view:
                return 0
            try:
                length = struct.unpack(">I", ctypes.string_at(view, 4))[0]
                if not 0 < length <= MAPPING_SIZE - 4:
                    return 0
                reply = p.frame(self.agent.handle(ctypes.string_at(view + 4, length)))
                if len(reply) > MAPPING_SIZE:
                    reply = p.frame(_failure())
                ctypes.memmove(view, reply, len(reply))
                self.answered += 1
                return 1
            finally:
                w.UnmapViewOfFile(view)
        finally:
            w.CloseHandle(mapping)


# --- msysGit socket file (named-event handshake) ----------------------------------------------


class MsysServer:
    """``!<socket >PORT XXXXXXXX-...`` (no type char) with Cygwin 1.5's named events."""

    def __init__(self, agent: Agent, path: str, secret_words: tuple[int, ...] | None = None,
                 file_words: tuple[int, ...] | None = None) -> None:
        from sshlib.agent.cygwin import secret_event_name

        self.agent = agent
        self._name = secret_event_name
        self.words = secret_words or struct.unpack("<4I", os.urandom(16))
        self.secret = struct.pack("<4I", *self.words)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.handshakes_ok = 0
        self.handshakes_failed = 0
        w = w32.api()
        self._listen_event = w.CreateEventA(None, False, False,
                                            self._name(self.port, self.secret).encode())
        shown = "-".join(f"{word:08x}" for word in (file_words or self.words))
        with open(path, "wb") as fh:
            fh.write(f"!<socket >{self.port} {shown}".encode() + b"\x00")
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, (_, peer_port) = self.listener.accept()
            threading.Thread(target=self._serve, args=(conn, peer_port), daemon=True).start()

    def _serve(self, conn: socket.socket, peer_port: int) -> None:
        w = w32.api()
        peer = w.CreateEventA(None, False, False, self._name(peer_port, self.secret).encode())
        w.SetEvent(self._listen_event)
        status = w.WaitForSingleObject(peer, 10000)
        w.CloseHandle(peer)
        if status != w32.WAIT_OBJECT_0:
            self.handshakes_failed += 1
            conn.close()
            return
        self.handshakes_ok += 1
        with conn:
            while True:
                header = _recv_exact(conn, 4)
                if len(header) < 4:
                    return
                payload = _recv_exact(conn, struct.unpack(">I", header)[0])
                conn.sendall(p.frame(self.agent.handle(payload)))


def _recv_exact(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


# --- script -------------------------------------------------------------------------------------


def _relay(endpoint: str) -> int:
    """stdin -> agent, agent -> stdout, one framed message at a time (npiperelay's shape)."""
    stream = sshlib.agent.open_stream(endpoint, timeout=30)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        while True:
            header = stdin.read(4)
            if len(header) < 4:
                return 0
            body = stdin.read(struct.unpack(">I", header)[0])
            stream.send_all(header + body, 30)
            reply_header = stream.recv_exact(4, 30)
            if len(reply_header) < 4:
                return 1
            reply = stream.recv_exact(struct.unpack(">I", reply_header)[0], 30)
            stdout.write(reply_header + reply)
            stdout.flush()
    finally:
        stream.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="winagent.py")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--key", action="append", default=[], help="private key file to hold")
    serve.add_argument("--pipe", action="append", default=[], help="pipe name (full path or bare)")
    serve.add_argument("--pageant-pipe", action="store_true")
    serve.add_argument("--window", action="store_true")
    serve.add_argument("--hang-window", action="store_true",
                       help="also a window (class SshlibHangingPageant) that never answers")
    serve.add_argument("--busy-pipe", help="a pipe with 2 instances and slow answers")
    serve.add_argument("--hang-pipe", action="append", default=[])
    serve.add_argument("--squat-pageant-pipe", action="store_true",
                       help="serve the Pageant pipe name with the default owner")
    serve.add_argument("--instances", type=int, default=4)
    serve.add_argument("--shared-pipe", action="append", default=[],
                       help="a pipe name other processes may serve too")
    serve.add_argument("--msys", help="write an msysGit socket file here and serve it")
    serve.add_argument("--msys-wrong", help="like --msys, but the file has another secret")
    relay = sub.add_parser("relay")
    relay.add_argument("endpoint")
    args = parser.parse_args(argv)
    if args.command == "relay":
        return _relay(args.endpoint)

    from sshlib.agent.pageant import pageant_pipe_name
    from sshlib.agent.winpipe import pipe_path

    agent = Agent([sshlib.load_private_key(path) for path in args.key])
    info: dict[str, Any] = {"ready": True, "pipes": []}
    servers: list[Any] = []
    names = [(pipe_path(name), False) for name in args.pipe]
    if args.pageant_pipe or args.squat_pageant_pipe:
        names.append((pageant_pipe_name(), not args.squat_pageant_pipe))
    for name, owned in names:
        servers.append(PipeServer(name, agent, args.instances, owned=owned))
        info["pipes"].append(name)
    for name in args.shared_pipe:
        servers.append(PipeServer(pipe_path(name), agent, args.instances, shared=True))
        info["pipes"].append(pipe_path(name))
    for name in args.hang_pipe:
        servers.append(PipeServer(pipe_path(name), agent, 2, hang=True))
    if args.busy_pipe:
        servers.append(PipeServer(pipe_path(args.busy_pipe), agent, 2, delay=0.05))
    if args.window:
        window = PageantWindow(agent)
        servers.append(window)
        info["hwnd"] = window.hwnd
    if args.hang_window:
        hanging = PageantWindow(agent, hang=True, class_name="SshlibHangingPageant")
        info["hang_hwnd"] = hanging.hwnd
    if args.msys:
        msys = MsysServer(agent, args.msys)
        servers.append(msys)
        info["msys_port"] = msys.port
    if args.msys_wrong:
        wrong = MsysServer(agent, args.msys_wrong,
                           file_words=tuple(w ^ 1 for w in struct.unpack("<4I", os.urandom(16))))
        servers.append(wrong)
    info["pid"] = os.getpid()
    info["user_sid"] = w32.sid_to_string(w32.user_sid())
    info["user"] = w32.user_name()
    print(json.dumps(info), flush=True)
    sys.stdin.buffer.read()  # serve until the test closes our stdin
    stats = {"requests": agent.requests,
             "pipe_connections": [s.connections for s in servers if isinstance(s, PipeServer)],
             "pipe_max_concurrent": [s.max_concurrent for s in servers
                                     if isinstance(s, PipeServer)],
             "window": [(s.answered, s.refused) for s in servers if isinstance(s, PageantWindow)],
             "msys": [(s.handshakes_ok, s.handshakes_failed) for s in servers
                      if isinstance(s, MsysServer)]}
    print(json.dumps(stats), flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
