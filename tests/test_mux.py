"""sshlib.mux against a real OpenSSH ControlMaster (ssh -M) in front of the test sshd."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_streams import EchoServer, echo_port, tcp_echo_fixture  # noqa: F401  (fixture)

import sshlib
import sshlib.mux
from sshlib.errors import (
    ChannelClosedError,
    ExitError,
    ExitMissingError,
    MuxConnectError,
    MuxError,
    MuxProtocolError,
    MuxRefusedError,
    MuxTimeoutError,
    RequestDeniedError,
)


class Master:
    """A running ``ssh -M -N`` master; `path` is its ControlPath."""

    def __init__(self, server: Any, workdir: Path, *options: str,
                 env: dict[str, str] | None = None) -> None:
        ssh = shutil.which("ssh")
        assert ssh, "OpenSSH's ssh client is missing: scripts/test.sh installs openssh-client"
        self.server = server
        self.path = str(workdir / "cm")
        self.log = workdir / "master.log"
        key = server.user_key_paths["ed25519-openssh"]
        self.args = [ssh, "-F", "none", "-i", str(key), "-o", "IdentitiesOnly=yes",
                     "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={server.known_hosts_path}",
                     "-o", "StrictHostKeyChecking=yes", "-o", f"ControlPath={self.path}",
                     "-p", str(server.port), "-l", server.user]
        # ssh keeps the first value it sees of an option: `options` go before the defaults.
        command = [*self.args, *options, "-M", "-N", "-o", "ControlMaster=yes",
                   "-E", str(self.log), "-v", server.host]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 20
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"ssh -M did not come up:\n{self.log_text()}")
            time.sleep(0.02)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def control(self, command: str) -> subprocess.CompletedProcess[bytes]:
        """ssh -O COMMAND against this master."""
        return subprocess.run([*self.args, "-O", command, self.server.host],
                              capture_output=True, timeout=20, check=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(name="short_dir")
def short_dir_fixture() -> Iterator[Path]:
    """A directory with a short path (a Unix socket path has at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="mux", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(name="start_master")
def start_master_fixture(openssh_server: Any, short_dir: Path) -> Iterator[Callable[..., Master]]:
    masters: list[Master] = []

    def start(*options: str, server: Any = None, **kwargs: Any) -> Master:
        workdir = short_dir / str(len(masters))
        workdir.mkdir()
        master = Master(server or openssh_server, workdir, *options, **kwargs)
        masters.append(master)
        return master

    yield start
    for master in masters:
        master.stop()


@pytest.fixture(name="master")
def master_fixture(start_master: Callable[..., Master]) -> Master:
    return start_master("-o", "SendEnv=SSHLIB_*")


@pytest.fixture(name="echo_server")
def echo_server_fixture(tcp_echo: EchoServer) -> tuple[str, int]:
    """A local TCP echo server (the far end of dial and forwards): (host, port)."""
    return "127.0.0.1", echo_port(tcp_echo)


# --- check, sessions -------------------------------------------------------------------------
def test_check_returns_the_masters_pid(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m:
        assert m.check() == master.process.pid
        assert m.check() == master.process.pid  # request ids advance; same connection


def test_session_output_and_exit_status(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m:
        with m.new_session() as s:
            assert s.output("echo out; echo err >&2", timeout=20) == b"out\n"
            assert s.exit_status == 0
        with m.new_session() as s, pytest.raises(ExitError) as info:
            s.run("echo oops >&2; exit 3", timeout=20)
        assert info.value.exit_status == 3
        assert info.value.stderr == b"oops\n"
        with m.new_session() as s:
            assert s.combined_output("echo a; echo b >&2", timeout=20) in (b"a\nb\n", b"b\na\n")


def test_session_stdin_stdout_stderr(master: Master) -> None:
    data = os.urandom(3 << 20)  # more than the pump buffers: flow control both ways
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.start("sha256sum; cat >&2", timeout=20)
        writer = threading.Thread(target=lambda: (s.stdin.write(data, timeout=60),
                                                  s.stdin.close()))
        writer.start()
        assert s.stdout.read(timeout=60).split()[0].decode() == hashlib.sha256(data).hexdigest()
        writer.join(60)
        assert s.stderr.read(timeout=60) == b""  # cat got no input: sha256sum read it all
        s.wait(timeout=20)
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.start("cat; echo done >&2", timeout=20)
        s.stdin.write(b"line one\nline two\n", timeout=10)
        assert s.stdout.readline(timeout=10) == b"line one\n"
        s.stdin.close()
        assert s.stdout.read(timeout=10) == b"line two\n"
        assert s.stderr.read(timeout=10) == b"done\n"
        s.wait(timeout=10)
        with pytest.raises(ChannelClosedError):
            s.stdin.write(b"late", timeout=5)


def test_unread_output_stays_bounded(master: Master) -> None:
    """Nobody reads: the pump stops at its buffer limit (the master then holds back)."""
    from sshlib.mux.fds import BUFFER_LIMIT, READ_CHUNK

    size = 24 << 20
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.start(f"head -c {size} /dev/zero", timeout=20)
        channel = s.stdout._channel  # white-box: what the pump has buffered
        deadline = time.monotonic() + 20
        while channel.buffered[0] < BUFFER_LIMIT:
            assert time.monotonic() < deadline, "the pump never filled its buffer"
            time.sleep(0.01)
        time.sleep(0.3)  # would it keep reading? (a bound cannot be shown without waiting)
        assert channel.buffered[0] < BUFFER_LIMIT + READ_CHUNK
        assert len(s.stdout.read(timeout=60)) == size
        s.wait(timeout=20)


def test_killed_by_a_signal_has_no_exit_status(master: Master) -> None:
    """A master relays exit-status only (clientloop.c): a signal ends without a status."""
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        with pytest.raises(ExitMissingError, match="signal"):
            s.run("kill -KILL $$", timeout=20)
        assert s.exit_status is None and s.exit_signal is None
        with m.new_session() as s2, pytest.raises(RequestDeniedError):
            s2.start("sleep 5", timeout=20)
            s2.signal("TERM")


def test_setenv_goes_through_the_masters_sendenv(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.setenv("SSHLIB_MUX", "via-master")
        s.setenv("LC_SSHLIB_NOT_SENT", "x")  # sshd accepts LC_*, but the master's SendEnv not
        out = s.output('echo "$SSHLIB_MUX/${LC_SSHLIB_NOT_SENT:-unset}"', timeout=20)
        assert out == b"via-master/unset\n"


def test_pty_session(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.request_pty("xterm-256color", 30, 100)
        s.start('tty; echo "$TERM"; stty size; read x; '
                'for i in $(seq 100); do [ "$(stty size)" = "40 120" ] && break; sleep 0.05; done;'
                ' stty size', timeout=20)
        assert s.stdout.readline(timeout=10).startswith(b"/dev/pts/")
        assert s.stdout.readline(timeout=10) == b"xterm-256color\r\n"
        assert s.stdout.readline(timeout=10) == b"30 100\r\n"
        s.window_change(40, 120)
        s.stdin.write(b"\r", timeout=10)
        rest = s.stdout.read(timeout=20)
        assert rest.endswith(b"40 120\r\n"), rest
        s.wait(timeout=10)


def test_subsystem_session(master: Master) -> None:
    """request_subsystem sets NEW_SESSION's subsystem flag: the server starts sftp-server."""
    init = b"\x00\x00\x00\x05\x01\x00\x00\x00\x03"  # SSH_FXP_INIT, version 3
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.request_subsystem("sftp", timeout=20)
        s.stdin.write(init, timeout=10)
        length = int.from_bytes(s.stdout.readexactly(4, timeout=10), "big")
        reply = s.stdout.readexactly(length, timeout=10)
        assert reply[0] == 2 and reply[1:5] == b"\x00\x00\x00\x03"  # SSH_FXP_VERSION 3
        s.stdin.close()


def test_login_shell_in_a_pty(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m, m.new_session() as s:
        s.request_pty("xterm", 24, 80, modes={"ECHO": 0})
        s.shell(timeout=20)
        s.stdin.write(b"echo shell-$((40+2)); exit 5\r", timeout=10)
        out = s.stdout.read(timeout=20)
        assert b"shell-42\r\n" in out and b"$((40+2))" not in out  # ECHO 0 reached the pty
        with pytest.raises(ExitError) as info:
            s.wait(timeout=10)
        assert info.value.exit_status == 5


def test_many_sessions_at_once(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m:
        sessions = [m.new_session() for _ in range(8)]
        for i, s in enumerate(sessions):
            s.start(f"echo {i}", timeout=20)
        assert [s.stdout.read(timeout=20) for s in sessions] == [f"{i}\n".encode()
                                                                for i in range(8)]
        for s in sessions:
            s.wait(timeout=20)
            s.close()


# --- dial and forwards -----------------------------------------------------------------------
def test_dial_carries_data(master: Master, echo_server: tuple[str, int]) -> None:
    host, port = echo_server
    data = os.urandom(1 << 20)
    with sshlib.mux.connect(master.path, timeout=10) as m:
        with m.dial("tcp", f"{host}:{port}", timeout=10) as conn:
            assert isinstance(conn, sshlib.Stream)
            conn.settimeout(30)
            threading.Thread(target=conn.sendall, args=(data,), daemon=True).start()
            got = b""
            while len(got) < len(data):
                chunk = conn.recv(65536)
                assert chunk
                got += chunk
            assert got == data
            conn.shutdown_write()
            assert conn.recv() == b""  # the echo server saw EOF and closed


def test_dial_and_forward_unix_sockets(master: Master, short_dir: Path) -> None:
    """A forward from a local Unix socket path to a remote one; dial("unix") cannot be done
    (OpenSSH's master opens every stdio forward as direct-tcpip)."""
    short_dir.chmod(0o755)
    shared = short_dir / "u"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # the sshd's login user may be another account
    path = str(shared / "echo.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    sock.listen()
    echo = EchoServer(sock)  # accepts at once: listening first
    try:
        with sshlib.mux.connect(master.path, timeout=10) as m:
            with pytest.raises(ValueError, match="always TCP"):
                m.dial("unix", path, timeout=10)
            local = str(short_dir / "local.sock")
            with m.forward_local(local, path) as fw:
                assert fw.address == local and fw.kind == "local"
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.settimeout(10)
                    c.connect(local)
                    c.sendall(b"forwarded\n")
                    assert c.makefile("rb").readline() == b"forwarded\n"
    finally:
        echo.close()


def test_dial_refused_by_the_server(master: Master) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with sshlib.mux.connect(master.path, timeout=10) as m, pytest.raises(MuxRefusedError):
        m.dial("tcp", f"127.0.0.1:{port}", timeout=10)


def test_forward_local_carries_data_and_close_removes_it(master: Master,
                                                        echo_server: tuple[str, int]) -> None:
    host, port = echo_server
    with sshlib.mux.connect(master.path, timeout=10) as m:
        fw = m.forward_local("127.0.0.1:0", f"{host}:{port}")
        listen = fw.address
        assert listen[1] != 0
        with socket.create_connection(listen, timeout=10) as c:
            c.sendall(b"through the master\n")
            assert c.makefile("rb").readline() == b"through the master\n"
        fw.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(listen, timeout=10).close()
        with pytest.raises(MuxRefusedError):  # closing it again: the master no longer has it
            m.close_forward(fw, 10)
        kept = m.forward_local("127.0.0.1:0", f"{host}:{port}")
    # The master holds forwards, not the client: this one outlives the connection.
    with socket.create_connection(kept.address, timeout=10) as c:
        c.sendall(b"still here\n")
        assert c.makefile("rb").readline() == b"still here\n"
    with sshlib.mux.connect(master.path, timeout=10) as m2:
        m2.close_forward(kept)


def test_forward_remote_carries_data_and_close_removes_it(master: Master,
                                                         echo_server: tuple[str, int]) -> None:
    """ssh -R through the master: the test sshd listens (port 0: it picks and says)."""
    host, port = echo_server
    with sshlib.mux.connect(master.path, timeout=10) as m:
        with m.forward_remote("127.0.0.1:0", f"{host}:{port}") as fw:
            assert fw.kind == "remote" and fw.address[0] == "127.0.0.1"
            assert fw.address[1] not in (0, port)
            with socket.create_connection(fw.address, timeout=10) as c:
                c.sendall(b"back through the master\n")
                assert c.makefile("rb").readline() == b"back through the master\n"
        deadline = time.monotonic() + 10  # the cancel reaches sshd after the master's reply
        while True:
            try:
                socket.create_connection(fw.address, timeout=10).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "the server still listens after close()"
            time.sleep(0.05)


def test_forward_local_on_a_port_in_use_is_refused(master: Master,
                                                  echo_server: tuple[str, int]) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m, pytest.raises(MuxRefusedError):
        m.forward_local(f"{echo_server[0]}:{echo_server[1]}", "127.0.0.1:9")


# --- masters that are gone, refuse, or are not masters -------------------------------------
def test_no_socket_and_stale_socket(short_dir: Path) -> None:
    with pytest.raises(MuxConnectError, match="does not exist"):
        sshlib.mux.connect(str(short_dir / "nothing"), timeout=5)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_dir / "stale"))
    stale.close()  # the file stays, nobody listens: what a killed master leaves behind
    start = time.monotonic()
    with pytest.raises(MuxConnectError, match="stale"):
        sshlib.mux.connect(str(short_dir / "stale"), timeout=5)
    assert time.monotonic() - start < 5


def test_dead_master(master: Master) -> None:
    m = sshlib.mux.connect(master.path, timeout=10)
    session = m.new_session()
    master.process.kill()
    master.process.wait()
    start = time.monotonic()
    with pytest.raises(MuxConnectError):
        m.check(timeout=5)
    with pytest.raises(MuxConnectError):
        session.output("true", timeout=5)
    with pytest.raises(MuxConnectError):
        sshlib.mux.connect(master.path, timeout=5)  # the socket file is left, stale
    assert time.monotonic() - start < 5
    m.close()


def test_master_that_stopped_listening(master: Master) -> None:
    with sshlib.mux.connect(master.path, timeout=10) as m:
        result = master.control("stop")
        assert result.returncode == 0, result.stderr
        with pytest.raises(MuxConnectError):
            sshlib.mux.connect(master.path, timeout=5)
        assert m.check() == master.process.pid  # connections made before keep working
        m.terminate()
    master.process.wait(10)


def test_master_that_asks_and_is_refused(start_master: Callable[..., Master],
                                         short_dir: Path) -> None:
    """ssh -M -M (ControlMaster=ask) with an askpass that says no: MUX_S_PERMISSION_DENIED."""
    askpass = short_dir / "no"
    askpass.write_text("#!/bin/sh\necho no\n")
    askpass.chmod(0o755)
    refusing = start_master("-M",  # a second -M: ask before each session and forward
                            env={"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force",
                                 "DISPLAY": ":0"})
    with sshlib.mux.connect(refusing.path, timeout=10) as m:
        assert m.check() == refusing.process.pid  # alive checks are not asked about
        with m.new_session() as s, pytest.raises(MuxRefusedError) as info:
            s.output("true", timeout=20)
        assert info.value.permission_denied
        with pytest.raises(MuxRefusedError):
            m.forward_local("127.0.0.1:0", "127.0.0.1:9")


def _fake_master(path: str, reply: bytes) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.sendall(reply)
            conn.recv(1024)
            time.sleep(3)  # holds the connection open: a client must not wait for more

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH_9.2\r\n",                            # an sshd, not a master
    b"\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x03",   # HELLO version 3
    b"\x7f\xff\xff\xff",                                    # a 2 GiB packet
])
def test_socket_that_speaks_garbage(short_dir: Path, reply: bytes) -> None:
    path = str(short_dir / "fake")
    _fake_master(path, reply)
    start = time.monotonic()
    with pytest.raises(MuxProtocolError):
        sshlib.mux.connect(path, timeout=5)
    assert time.monotonic() - start < 2


def test_socket_that_says_nothing(short_dir: Path) -> None:
    path = str(short_dir / "silent")
    _fake_master(path, b"")
    start = time.monotonic()
    with pytest.raises(MuxTimeoutError):
        sshlib.mux.connect(path, timeout=1)
    assert time.monotonic() - start < 2.5
    assert issubclass(MuxTimeoutError, sshlib.Timeout) and issubclass(MuxTimeoutError, MuxError)


def test_master_that_never_answers_a_session(short_dir: Path) -> None:
    """HELLO, then silence after NEW_SESSION: the caller's timeout ends it, nothing leaks."""
    path = str(short_dir / "mute")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    received: list[int] = []

    def run() -> None:
        with server:
            for _ in range(2):  # MuxClient's connection, then the session's
                conn, _ = server.accept()
                conn.sendall(b"\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x04")
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    def serve(conn: socket.socket) -> None:
        with conn:
            while True:
                data, fds, _, _ = socket.recv_fds(conn, 4096, 4)
                received.extend(fds)
                if not data:
                    return
                if b"\x10\x00\x00\x04" in data:  # answer the alive check only
                    rid = data[data.index(b"\x10\x00\x00\x04") + 4:][:4]
                    conn.sendall(b"\x00\x00\x00\x0c\x80\x00\x00\x05" + rid + b"\x00\x00\x00\x07")

    threading.Thread(target=run, daemon=True).start()
    with sshlib.mux.connect(path, timeout=5) as m:
        s = m.new_session()
        start = time.monotonic()
        with pytest.raises(MuxTimeoutError):
            s.output("true", timeout=1)
        assert time.monotonic() - start < 2.5
        assert len(received) == 3  # stdin, stdout, stderr arrived as descriptors
        for fd in received:
            os.close(fd)


def test_exit_message_in_the_same_read_as_the_session_reply(short_dir: Path) -> None:
    """A quick command's EXIT_MESSAGE can arrive with SESSION_OPENED: it must not be lost."""
    path = str(short_dir / "quick")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    hello = b"\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x04"

    def u32(*values: int) -> bytes:
        body = b"".join(v.to_bytes(4, "big") for v in values)
        return len(body).to_bytes(4, "big") + body

    def run() -> None:
        with server:
            first, _ = server.accept()  # the MuxClient's connection: HELLO only
            first.sendall(hello)
            conn, _ = server.accept()  # the session's own connection
            with conn, first:
                conn.sendall(hello)
                got = b""
                while u32(0x10000004, 0)[4:] not in got:  # HELLO, then ALIVE_CHECK id 0
                    got += conn.recv(4096)
                conn.sendall(u32(0x80000005, 0, 4242))
                passed: list[int] = []
                while len(passed) < 3:  # NEW_SESSION (id 1), then stdin, stdout, stderr
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 3)
                    passed += fds
                os.write(passed[1], b"hi\n")
                for fd in passed:
                    os.close(fd)
                conn.sendall(u32(0x80000006, 1, 9) + u32(0x80000004, 9, 0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with sshlib.mux.connect(path, timeout=5) as m, m.new_session() as session:
        assert session.output("true", timeout=5) == b"hi\n"
        assert session.exit_status == 0
    thread.join(5)
