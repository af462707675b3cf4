"""Agents and bridges for the sshlib.agent tests (load with ``pytest_plugins``).

Real agents: OpenSSH's ``ssh-agent -D -a SOCK`` and PuTTY's Unix ``pageant
--debug``.  Small Python stand-ins, on 127.0.0.1 or a Unix socket:

- `BridgeServer`: serves the Cygwin (secret + credentials), old Cygwin (no
  handshake), libassuan (nonce) or plain TCP handshakes, writes the matching
  socket file, then relays each connection to a real agent's Unix socket;
- `ScriptedAgent`: answers each request with whatever a test scripts
  (truncated, oversized, unknown type, silence) and records the requests.

Run as a script (``python agentfixtures.py relay SOCK``) this file is a
stdio relay to SOCK, for the ``exec:`` tests.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import sshlib
from sshlib import keys

HERE = Path(__file__).resolve()

#: Reply a ScriptedAgent handler returns to keep silent (the client must time out).
HANG = object()
#: Reply that closes the connection without a word.
CLOSE = object()


@dataclass(frozen=True)
class ThenClose:
    """Reply: send these bytes, then close the connection."""

    data: bytes

KEY_SPECS = {  # name -> ssh-keygen arguments
    "ed25519": ["-t", "ed25519"],
    "ecdsa-256": ["-t", "ecdsa", "-b", "256"],
    "ecdsa-384": ["-t", "ecdsa", "-b", "384"],
    "ecdsa-521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


def need_tool(name: str) -> str:
    path = shutil.which(name)
    assert path, (f"{name} is not installed: run bash scripts/test.sh as root (it installs it), "
                  f"or apt-get install the package that has it")
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _connectable(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


# --- real agents -------------------------------------------------------------------------------


@dataclass
class AgentProcess:
    """A running agent program and the socket it serves."""

    name: str
    process: subprocess.Popen[bytes]
    sock: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def run_client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ssh-add/pageant as a client of this agent."""
        env = {**os.environ, **self.env, "SSH_AUTH_SOCK": self.sock}
        return subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60,
                              check=check, stdin=subprocess.DEVNULL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_ssh_agent(workdir: Path, binary: str | None = None) -> AgentProcess:
    """``ssh-agent -D -a SOCK`` with an askpass that says yes iff ``workdir/allow`` exists.

    `binary`: another OpenSSH's ssh-agent (tests/peers.py), default the system's.
    """
    binary = binary or need_tool("ssh-agent")
    need_tool("ssh-add")
    workdir.mkdir(parents=True, exist_ok=True)
    sock = str(workdir / "agent.sock")
    askpass = workdir / "askpass"
    askpass.write_text(f"#!/bin/sh\ntest -e '{workdir / 'allow'}'\n")
    askpass.chmod(0o755)
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
           "DISPLAY": ":0"}
    env.pop("SSH_AUTH_SOCK", None)
    log_path = workdir / "ssh-agent.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "-D", "-a", sock], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, env=env)
    agent = AgentProcess("ssh-agent", process, sock, log_path)
    try:
        wait_for(lambda: process.poll() is not None or _connectable(sock), 10, "ssh-agent")
        assert process.poll() is None, f"ssh-agent exited: {agent.log_text()}"
    except BaseException:
        agent.stop()
        raise
    return agent


def to_ppk(key_path: Path) -> Path:
    """Convert an OpenSSH private key file to PuTTY's format with puttygen."""
    out = key_path.with_suffix(".ppk")
    subprocess.run([need_tool("puttygen"), str(key_path), "-O", "private", "-o", str(out)],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return out


def start_pageant(workdir: Path, key_files: list[Path]) -> AgentProcess:
    """PuTTY's Unix Pageant, headless (``--debug`` keeps it in the foreground)."""
    binary = need_tool("pageant")
    workdir.mkdir(parents=True, exist_ok=True)
    link = str(workdir / "pageant.sock")
    log_path = workdir / "pageant.log"
    env = {**os.environ}
    env.pop("DISPLAY", None)
    env.pop("SSH_AUTH_SOCK", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "--debug", "--symlink", link,
                                    *map(str, key_files)],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    agent = AgentProcess("pageant", process, link, log_path)
    try:
        wait_for(lambda: process.poll() is not None or _connectable(link), 10, "pageant")
        assert process.poll() is None, f"pageant exited: {agent.log_text()}"
    except BaseException:
        agent.stop()
        raise
    return agent


# --- relaying ----------------------------------------------------------------------------------


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (dst, src):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(client: socket.socket, upstream_path: str) -> None:
    """Carry bytes both ways between `client` and the agent socket; closes both at the end."""
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(upstream_path)
    except OSError:
        upstream.close()
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join(10)
    upstream.close()
    client.close()


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


_S = TypeVar("_S", bound="_Server")


class _Server:
    """A listening socket with an accept thread; each connection gets its own thread."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.connections: list[socket.socket] = []
        self.errors: list[str] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._guarded, args=(conn,), daemon=True).start()

    def _guarded(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except Exception as exc:
            self.errors.append(repr(exc))
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tcp_listener() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


def cygwin_secret_text(words: tuple[int, int, int, int], upper: bool = False) -> str:
    text = "-".join(f"{w:08x}" for w in words)
    return text.upper() if upper else text


class BridgeServer(_Server):
    """A TCP bridge to a real agent, speaking one socket-file handshake.

    kind: "tcp" (none), "cygwin" (secret + credentials), "cygwin-plain"
    (``!<socket >PORT``: none), "assuan" (16-byte nonce).  `file_path`
    gets the socket file a client reads.  Knobs for bad-input tests:
    `file_secret` (write another secret than the server checks),
    `echo_secret` (send back other bytes), `stall` (never answer the handshake).
    """

    def __init__(self, kind: str, upstream: str, file_path: Path | None = None, *,
                 file_words: tuple[int, int, int, int] | None = None,
                 echo_secret: bytes | None = None, upper_hex: bool = False,
                 stall: bool = False) -> None:
        self.kind = kind
        self.upstream = upstream
        self.words = (secrets.randbits(32), secrets.randbits(32), secrets.randbits(32),
                      secrets.randbits(32))
        self.secret = struct.pack("<4I", *self.words)
        self.nonce = secrets.token_bytes(16)
        self.echo_secret = echo_secret
        self.stall = stall
        self.client_credentials: list[tuple[int, int, int]] = []
        self.handshakes_ok = 0
        listener = _tcp_listener()
        self.port: int = listener.getsockname()[1]
        self.file_path = file_path
        if file_path is not None:
            words = file_words or self.words
            if kind == "cygwin":
                text = f"!<socket >{self.port} s {cygwin_secret_text(words, upper_hex)}"
                file_path.write_bytes(text.encode() + b"\x00")
            elif kind == "cygwin-plain":
                file_path.write_bytes(f"!<socket >{self.port}".encode() + b"\x00")
            elif kind == "assuan":
                file_path.write_bytes(f"{self.port}\n".encode() + self.nonce)
        super().__init__(listener)

    @property
    def endpoint(self) -> str:
        if self.kind == "tcp":
            return f"tcp:127.0.0.1:{self.port}"
        prefix = "assuan" if self.kind == "assuan" else "cygwin"
        return f"{prefix}:{self.file_path}"

    def handle(self, conn: socket.socket) -> None:
        if self.stall:
            _recv_exact(conn, 1 << 20)  # read until the client gives up
            conn.close()
            return
        if self.kind == "cygwin":
            got = _recv_exact(conn, 16)
            if got != self.secret:  # like Cygwin: close on a wrong secret
                conn.close()
                return
            conn.sendall(self.echo_secret if self.echo_secret is not None else self.secret)
            creds = _recv_exact(conn, 12)
            if len(creds) < 12:
                conn.close()
                return
            pid, uid, gid = struct.unpack("<iII", creds)
            self.client_credentials.append((pid, uid, gid))
            conn.sendall(struct.pack("<iII", os.getpid(), os.getuid(), os.getgid()))
        elif self.kind == "assuan":
            if _recv_exact(conn, 16) != self.nonce:
                conn.close()
                return
        self.handshakes_ok += 1
        relay(conn, self.upstream)


def dead_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# --- scripted agent ----------------------------------------------------------------------------

Handler = Callable[[bytes], "bytes | object"]


class ScriptedAgent(_Server):
    """A Unix-socket 'agent' whose replies a test chooses; records every request payload.

    `handler(payload)` returns the raw bytes to send (framing included, so
    tests can send broken frames), ThenClose(bytes), HANG or CLOSE.
    """

    def __init__(self, path: Path, handler: Handler, backlog: int = 64) -> None:
        self.path = str(path)
        self.handler = handler
        self.requests: list[bytes] = []
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(backlog)
        super().__init__(listener)

    @property
    def endpoint(self) -> str:
        return f"unix:{self.path}"

    def close(self) -> None:
        super().close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def handle(self, conn: socket.socket) -> None:
        while True:
            header = _recv_exact(conn, 4)
            if len(header) < 4:
                break
            payload = _recv_exact(conn, struct.unpack(">I", header)[0])
            self.requests.append(payload)
            reply = self.handler(payload)
            if reply is HANG:
                _recv_exact(conn, 1 << 20)
                break
            if reply is CLOSE:
                break
            if isinstance(reply, ThenClose):
                conn.sendall(reply.data)
                break
            assert isinstance(reply, bytes)
            conn.sendall(reply)
        conn.close()


def ssh_args(server: Any, agent_sock: str | os.PathLike[str], pub: Path) -> list[str]:
    """OpenSSH's ssh to `server` with only the agent key matching `pub` (no passwords)."""
    return ["ssh", "-F", "/dev/null", "-p", str(server.port),
            "-o", f"IdentityAgent={agent_sock}", "-o", "IdentitiesOnly=yes",
            "-o", f"IdentityFile={pub}", "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no",
            "-o", f"UserKnownHostsFile={server.known_hosts_path}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{server.user}@127.0.0.1"]


def captured_add(path: Path, *args: str, ssh_add: str = "ssh-add",
                 env: dict[str, str] | None = None) -> bytes:
    """The one ADD_IDENTITY(_CONSTRAINED) request ``ssh-add ARGS`` sends (to a recording
    ScriptedAgent at `path`)."""
    with ScriptedAgent(path, recording_success) as recorder:
        run_env = {**(env or os.environ), "SSH_AUTH_SOCK": recorder.path}
        done = subprocess.run([ssh_add, *args], env=run_env, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        adds = [r for r in recorder.requests if r[0] in (17, 25)]
    assert len(adds) == 1, recorder.requests
    return adds[0]


def framed(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def always(reply: bytes | object) -> Handler:
    return lambda payload: reply


def recording_success(payload: bytes) -> bytes:
    """SUCCESS to everything, an empty key list to REQUEST_IDENTITIES (for ssh-add)."""
    if payload[:1] == b"\x0b":
        return framed(b"\x0c" + struct.pack(">I", 0))
    return framed(b"\x06")


# --- pytest fixtures ---------------------------------------------------------------------------


@dataclass
class KeySet:
    """Keys made by ssh-keygen: name -> (file path, the key as sshlib loads it)."""

    paths: dict[str, Path]
    keys: dict[str, keys.PrivateKey]


@pytest.fixture(scope="session")
def agent_keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    keygen = need_tool("ssh-keygen")
    directory = tmp_path_factory.mktemp("agentkeys")
    paths: dict[str, Path] = {}
    procs = []
    for name, spec in KEY_SPECS.items():
        path = directory / f"id_{name}"
        paths[name] = path
        procs.append(subprocess.Popen([keygen, "-q", *spec, "-N", "", "-C", f"test {name}",
                                       "-f", str(path)], stdin=subprocess.DEVNULL))
    for proc in procs:
        assert proc.wait(60) == 0
    loaded = {name: sshlib.load_private_key(path) for name, path in paths.items()}
    return KeySet(paths, loaded)


@pytest.fixture(scope="session")
def ssh_agent_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One real OpenSSH ssh-agent for the session."""
    agent = start_ssh_agent(tmp_path_factory.mktemp("ssh-agent"))
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def ssh_agent(ssh_agent_process: AgentProcess) -> Iterator[AgentProcess]:
    """The session ssh-agent, emptied and unlocked before and after the test."""
    def reset() -> None:
        assert ssh_agent_process.process.poll() is None, ssh_agent_process.log_text()
        ssh_agent_process.run_client("ssh-add", "-D", check=False)
        allow = Path(ssh_agent_process.sock).parent / "allow"
        allow.unlink(missing_ok=True)
    reset()
    yield ssh_agent_process
    reset()


# --- sshlib agent bridge as a process -------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m sshlib``: the checkout's sshlib, whether installed or not."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", ""))
                                        if p)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m sshlib ARGS`` as a subprocess; text output."""
    return subprocess.run([sys.executable, "-m", "sshlib", *args], env=env or cli_env(),
                          input=None if input is None else input.decode(),
                          stdin=None if input is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


class BridgeProcess:
    """``python -m sshlib -v agent bridge ...`` running in the background."""

    def __init__(self, tmp: Path, listen: list[str], to: str, *extra: str) -> None:
        self.log_path = tmp / f"bridge-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "sshlib", "-v", "agent", "bridge", "--to", to, *extra]
        for endpoint in listen:
            args += ["--listen", endpoint]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log,
                                        stdin=subprocess.DEVNULL, env=cli_env())
        self.endpoints: list[str] = []
        assert self.process.stdout is not None
        lines: list[str] = []

        def read() -> None:
            assert self.process.stdout is not None
            for _ in listen:
                line = self.process.stdout.readline().decode()
                if not line:
                    return
                lines.append(line.strip())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(20)
        if len(lines) != len(listen):
            self.stop()
            raise AssertionError(f"bridge did not start (exit {self.process.returncode}): "
                                 f"{self.log_text()}")
        for line in lines:
            assert line.startswith("listening on "), line
            self.endpoints.append(line[len("listening on "):])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"bridge ignored signal {signum}: "
                                     f"{self.log_text()}") from None
        self.log.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@pytest.fixture
def bridges(tmp_path: Path) -> Iterator[Any]:
    """bridges(listen, to, *extra) -> BridgeProcess, stopped after the test."""
    started: list[BridgeProcess] = []

    def start(listen: list[str], to: str, *extra: str) -> BridgeProcess:
        bridge = BridgeProcess(tmp_path, listen, to, *extra)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


@pytest.fixture
def loaded_agent(ssh_agent: AgentProcess, agent_keys: KeySet) -> AgentProcess:
    for name in ("ed25519", "rsa", "ecdsa-384"):
        ssh_agent.run_client("ssh-add", str(agent_keys.paths[name]))
    return ssh_agent


def ssh_add_l(sock: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SSH_AUTH_SOCK": sock}
    return subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"


def private_passwd_env(tmp_path: Path, home: Path) -> dict[str, str]:
    """os.environ without SSH_AUTH_SOCK and HOME, and with a passwd entry (via
    libnss-wrapper) whose home is `home` for the current user."""
    assert os.path.exists(NSS_WRAPPER), ("libnss-wrapper is not installed: run bash "
                                         "scripts/test.sh as root (it installs it)")
    me = pwd.getpwuid(os.getuid())
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text(f"{me.pw_name}:x:{me.pw_uid}:{me.pw_gid}:test:{home}:/bin/sh\n")
    group.write_text(f"{me.pw_name}:x:{me.pw_gid}:\n")
    env = cli_env(LD_PRELOAD=NSS_WRAPPER, NSS_WRAPPER_PASSWD=str(passwd),
                  NSS_WRAPPER_GROUP=str(group))
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("HOME", None)
    return env


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[Callable[[Handler], ScriptedAgent]]:
    """Make ScriptedAgents on Unix sockets in tmp_path (closed at the end of the test)."""
    made: list[ScriptedAgent] = []

    def make(handler: Handler) -> ScriptedAgent:
        agent = ScriptedAgent(tmp_path / f"scripted{len(made)}.sock", handler)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def main(argv: list[str]) -> int:
    """``relay SOCK``: copy stdin to the Unix socket SOCK and its output to stdout."""
    if len(argv) != 2 or argv[0] != "relay":
        print("usage: agentfixtures.py relay SOCK", file=sys.stderr)
        return 2
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    upstream.connect(argv[1])

    def down() -> None:
        while True:
            data = upstream.recv(65536)
            if not data:
                os._exit(0)
            os.write(1, data)

    threading.Thread(target=down, daemon=True).start()
    while True:
        data = os.read(0, 65536)
        if not data:
            upstream.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
            return 0
        upstream.sendall(data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def verify_ssh_signature(pub_line: str, data: bytes, signature: bytes) -> str:
    """Verify an SSH signature blob over `data` with `cryptography` alone (not sshlib).

    `pub_line` is an OpenSSH public key line; returns the signature's algorithm name.
    """
    fields, pos = [], 0
    while pos < len(signature):
        length = int.from_bytes(signature[pos:pos + 4], "big")
        fields.append(signature[pos + 4:pos + 4 + length])
        pos += 4 + length
    algorithm, raw = fields
    key = serialization.load_ssh_public_key(pub_line.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(raw, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        r_len = int.from_bytes(raw[:4], "big")
        r = int.from_bytes(raw[4:4 + r_len], "big")
        s = int.from_bytes(raw[8 + r_len:], "big")
        digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[
            key.curve.key_size]
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        digest = {b"rsa-sha2-256": hashes.SHA256(), b"rsa-sha2-512": hashes.SHA512(),
                  b"ssh-rsa": hashes.SHA1()}[algorithm]
        key.verify(raw, data, padding.PKCS1v15(), digest)
    return algorithm.decode()
