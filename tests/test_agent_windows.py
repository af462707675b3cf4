"""The Windows agent channels, for real: Windows CPython under Wine running this checkout.

A Windows fixture process (tests/winfixtures/winagent.py) serves an agent on
named pipes (a test pipe, Win32-OpenSSH's name, Pageant's derived name), as a
Pageant window, and behind an msysGit socket file.  Each test starts one
Windows client process that runs many checks and prints JSON; the Linux side
asserts on it and verifies signatures with `cryptography` directly.
Linux-side Cygwin/libassuan bridges (agentfixtures.BridgeServer) in front of a
real OpenSSH ssh-agent are reached from both sides.  See tests/wine.py for how
the Windows interpreter is built.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shlex
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures", "wine")
from agentfixtures import (  # noqa: E402
    AgentProcess,
    BridgeServer,
    KeySet,
    need_tool,
    verify_ssh_signature,
)
from wine import WindowsPython, win_json  # noqa: E402

import sshlib.agent  # noqa: E402
from sshlib.errors import AgentConnectError, AgentUnsupportedError  # noqa: E402

pytest_plugins = ["agentfixtures", "wine"]  # wine: the windows_python fixture

RUN = secrets.token_hex(4)
TEST_PIPE = f"sshlib-test-{RUN}"
BUSY_PIPE = f"sshlib-busy-{RUN}"
HANG_PIPE = f"sshlib-hang-{RUN}"


# --- fixtures ---


@dataclass
class WinAgent:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    key_paths: dict[str, Path]
    msys_file: Path
    msys_wrong_file: Path
    stats: dict[str, Any] | None = None

    def pub(self, name: str) -> str:
        return self.key_paths[name].with_suffix(".pub").read_text()

    def blob(self, name: str) -> bytes:
        return base64.b64decode(self.pub(name).split()[1])


@pytest.fixture(scope="module")
def win_agent(windows_python: WindowsPython,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[WinAgent]:
    """One Windows agent process for the module: pipes, Pageant pipe and window, msysGit file."""
    keygen = need_tool("ssh-keygen")
    work = tmp_path_factory.mktemp("winagent")
    paths = {}
    for name, spec in (("ed25519", ["-t", "ed25519"]), ("rsa", ["-t", "rsa", "-b", "2048"])):
        paths[name] = work / f"id_{name}"
        subprocess.run([keygen, "-q", *spec, "-N", "", "-C", f"win {name}", "-f",
                        str(paths[name])], check=True, stdin=subprocess.DEVNULL, timeout=60)
    for name in paths:  # id_X.key next to id_X.pub, so with_suffix(".pub") finds it
        paths[name] = work / f"id_{name}.key"
        os.rename(work / f"id_{name}", paths[name])
    msys, msys_wrong = work / "agent.msys", work / "agent.msys-wrong"
    process = windows_python.popen([
        "-m", "winagent", "serve",
        "--key", windows_python.winpath(paths["ed25519"]),
        "--key", windows_python.winpath(paths["rsa"]),
        "--pipe", TEST_PIPE, "--pipe", "openssh-ssh-agent", "--pageant-pipe",
        "--busy-pipe", BUSY_PIPE, "--hang-pipe", HANG_PIPE,
        "--window", "--hang-window",
        "--msys", windows_python.winpath(msys),
        "--msys-wrong", windows_python.winpath(msys_wrong),
    ])
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        assert process.stderr is not None
        raise AssertionError(f"Windows agent fixture did not start (status {process.returncode}):"
                             f"\n{process.stderr.read().decode(errors='replace')}")
    agent = WinAgent(process, json.loads(line), paths, msys, msys_wrong)
    try:
        yield agent
    finally:
        process.stdin.close()
        try:
            out, _ = process.communicate(timeout=20)
            agent.stats = json.loads(out.decode().strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            process.kill()
            process.wait()


# --- Linux side: the Windows channels are named, and refused clearly ---


@pytest.mark.parametrize("endpoint", ["pipe:openssh-ssh-agent", "//./pipe/openssh-ssh-agent",
                                      "pageant", "pageant-pipe", "pageant-window"])
def test_windows_channels_from_linux_are_unsupported(endpoint: str) -> None:
    with pytest.raises(AgentUnsupportedError, match="Windows") as info:
        sshlib.agent.connect(endpoint, timeout=2)
    assert info.value.endpoint == str(sshlib.agent.parse_endpoint(endpoint))


def test_pageant_pipe_name_matches_puttys_formula(win_agent: WinAgent) -> None:
    """Wine's CryptProtectMemory is a no-op, so the name is SHA-256 of the plain padded string.

    Computed here with hashlib alone from the formula in PuTTY's
    capi_obfuscate_string (windows/utils/cryptoapi.c): string-prefixed
    b"Pageant" + NULs up to 16 bytes, hex digest.
    """
    buffer = b"Pageant".ljust(16, b"\x00")
    expected = hashlib.sha256(struct.pack(">I", 16) + buffer).hexdigest()
    user = win_agent.info["user"]
    assert f"\\\\.\\pipe\\pageant.{user}.{expected}" in win_agent.info["pipes"]
    assert user and "@" not in user


# --- the full protocol through every Windows channel ---

_PROTOCOL = r'''
import sshlib, sshlib.agent
from sshlib.errors import AgentRefusedError
results = {}
from sshlib.keys import generate_private_key
extra = generate_private_key("ecdsa-sha2-nistp256")
for endpoint in ARGS["endpoints"]:
    r = results[endpoint] = {"signatures": []}
    with sshlib.agent.connect(endpoint, timeout=10) as agent:
        keys = agent.list_keys()
        r["listed"] = sorted(k.blob.hex() for k in keys)
        r["comments"] = sorted(k.comment for k in keys)
        for key in keys:
            for flags in ((0,) if key.key_type == "ssh-ed25519" else (0, 2, 4)):
                data = os.urandom(40)
                sig = agent.sign(key, data, flags=flags)
                r["signatures"].append([key.blob.hex(), data.hex(), sig.hex()])
        agent.add_key(extra, comment="added on windows", lifetime=600)
        r["after_add"] = sorted(k.comment for k in agent.list_keys())
        agent.remove_key(extra.public_key)
        r["after_remove"] = len(agent.list_keys())
        agent.lock(b"pw")
        r["locked_list"] = len(agent.list_keys())
        try:
            agent.sign(keys[0], b"data")
            r["locked_sign"] = "signed!"
        except AgentRefusedError:
            r["locked_sign"] = "refused"
        try:
            agent.unlock(b"wrong")
            r["wrong_unlock"] = "unlocked!"
        except AgentRefusedError:
            r["wrong_unlock"] = "refused"
        agent.unlock(b"pw")
        r["after_unlock"] = len(agent.list_keys())
        agent.remove_all()
        r["after_remove_all"] = len(agent.list_keys())
        for key in (sshlib.load_private_key(path) for path in ARGS["keys"]):
            agent.add_key(key)
        r["restored"] = len(agent.list_keys())
print(json.dumps(results))
'''


def test_protocol_through_pipe_and_pageant_channels(windows_python: WindowsPython,
                                                    win_agent: WinAgent) -> None:
    endpoints = [f"pipe:{TEST_PIPE}", f"\\\\.\\pipe\\{TEST_PIPE}", f"//./pipe/{TEST_PIPE}",
                 "pipe:openssh-ssh-agent", "pageant-pipe", "pageant-window", "pageant"]
    keys = [windows_python.winpath(win_agent.key_paths[n]) for n in ("ed25519", "rsa")]
    results = win_json(windows_python, _PROTOCOL, {"endpoints": endpoints, "keys": keys})
    by_blob = {win_agent.blob(n): n for n in ("ed25519", "rsa")}
    for endpoint in endpoints:
        r = results[endpoint]
        assert sorted(r["listed"]) == sorted(b.hex() for b in by_blob), endpoint
        algorithms = []
        for blob_hex, data_hex, sig_hex in r["signatures"]:
            name = by_blob[bytes.fromhex(blob_hex)]
            algorithms.append(verify_ssh_signature(win_agent.pub(name), bytes.fromhex(data_hex),
                                                   bytes.fromhex(sig_hex)))
        assert sorted(algorithms) == ["rsa-sha2-256", "rsa-sha2-512", "ssh-ed25519", "ssh-rsa"]
        assert "added on windows" in r["after_add"] and len(r["after_add"]) == 3
        assert r["after_remove"] == 2
        assert (r["locked_list"], r["locked_sign"], r["wrong_unlock"]) == (0, "refused",
                                                                           "refused")
        assert r["after_unlock"] == 2
        assert (r["after_remove_all"], r["restored"]) == (0, 2)


# --- discovery, busy pipes, timeouts, ownership checks, AF_UNIX ---

_DISCOVERY = r'''
import sshlib.agent
from sshlib.agent import discover
out = {}
os.environ.pop("SSH_AUTH_SOCK", None)
out["default"] = sshlib.agent.default_endpoints()
with sshlib.agent.connect(timeout=5) as agent:
    out["chosen"] = agent.endpoint
    out["n"] = len(agent.list_keys())
for sock in ARGS["socks"]:
    os.environ["SSH_AUTH_SOCK"] = sock
    with sshlib.agent.connect(timeout=5) as agent:
        out[sock] = [agent.endpoint, len(agent.list_keys())]
# SSH_AUTH_SOCK naming a dead AF_UNIX path: discovery moves on to Pageant's pipe.
os.environ["SSH_AUTH_SOCK"] = "Z:\\nonexistent\\agent.sock"
with sshlib.agent.connect(timeout=5) as agent:
    out["after_dead"] = agent.endpoint
print(json.dumps(out))
'''


def test_discovery_order_on_windows(windows_python: WindowsPython, win_agent: WinAgent) -> None:
    socks = [f"\\\\.\\pipe\\{TEST_PIPE}", f"//./pipe/{TEST_PIPE}",
             windows_python.winpath(win_agent.msys_file)]
    out = win_json(windows_python, _DISCOVERY, {"socks": socks})
    assert out["default"] == ["pageant-pipe", "pipe:openssh-ssh-agent", "pageant-window"]
    assert (out["chosen"], out["n"]) == ("pageant-pipe", 2)
    # pipe paths are named pipe:NAME once parsed; a sniffed file says what it was
    assert out[socks[0]] == out[socks[1]] == [f"pipe:{TEST_PIPE}", 2]
    assert out[socks[2]] == [f"cygwin:{socks[2]}", 2]
    assert out["after_dead"] == "pageant-pipe"


_BUSY = r'''
import logging, threading, sshlib.agent
class Count(logging.Handler):
    waits = 0
    def emit(self, record):
        if "is busy; waiting" in record.getMessage():
            Count.waits += 1
logging.getLogger("sshlib.agent").addHandler(Count())
logging.getLogger("sshlib.agent").setLevel(logging.DEBUG)
results, errors = [], []
def client(i):
    try:
        with sshlib.agent.connect("pipe:" + ARGS["pipe"], timeout=30) as agent:
            for _ in range(3):
                keys = agent.list_keys()
                keys[0].signer.sign(b"busy %d" % i)
            results.append(i)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=client, args=(i,)) for i in range(ARGS["clients"])]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join(60)
print(json.dumps({"ok": len(results), "errors": errors, "seconds": time.monotonic() - start,
                  "busy_waits": Count.waits}))
'''


def test_pipe_busy_is_retried_for_many_concurrent_clients(windows_python: WindowsPython,
                                                          win_agent: WinAgent) -> None:
    """12 clients, 2 pipe instances, slow answers: the others see ERROR_PIPE_BUSY and wait."""
    out = win_json(windows_python, _BUSY, {"pipe": BUSY_PIPE, "clients": 12})
    assert out["errors"] == []
    assert out["ok"] == 12
    assert out["busy_waits"] >= 10  # ERROR_PIPE_BUSY was seen and waited out, not an error
    # 2 instances x 6 requests x 0.05 s each: serialised on two instances, so >= 1.5 s
    assert out["seconds"] >= 1.5


_FAILURES = r'''
import ctypes, sshlib.agent
from sshlib.agent import _win32 as w32, pageant
from sshlib.errors import AgentConnectError, AgentTimeoutError, AgentUnsupportedError
out = {}
def attempt(name, call, limit=2):
    start = time.monotonic()
    try:
        call()
        out[name] = ["no error", time.monotonic() - start]
    except Exception as exc:
        out[name] = [type(exc).__name__, time.monotonic() - start, str(exc)]
def never_answers():
    with sshlib.agent.connect("pipe:" + ARGS["hang"], timeout=2) as agent:
        agent.list_keys()
attempt("hang_pipe", never_answers)
attempt("missing_pipe", lambda: sshlib.agent.connect("pipe:sshlib-no-such-pipe", timeout=2))
def hanging_window():
    transport = pageant.PageantWindowTransport(ARGS["hang_hwnd"], "pageant-window")
    with sshlib.agent.AgentClient(transport, timeout=2) as agent:
        agent.list_keys()
attempt("hang_window", hanging_window)
attempt("af_unix", lambda: sshlib.agent.connect("unix:Z:\\tmp\\sshlib-none.sock", timeout=2))
# A recv blocked on a silent pipe is woken by close() from another thread.
import threading
stream = sshlib.agent.open_stream("pipe:" + ARGS["hang"], timeout=5)
stream.send_all(b"\0\0\0\1\x0b", 5)
got = []
reader = threading.Thread(target=lambda: got.append(stream.recv(10, 30)))
start = time.monotonic(); reader.start(); time.sleep(0.5); stream.close(); reader.join(10)
out["close_wakes_recv"] = [[g.hex() for g in got], time.monotonic() - start, reader.is_alive()]
# Pageant's pipe under a name we do not own is refused (anti-squatting): point the
# derivation at a pipe created with the default owner.
pageant.pageant_pipe_name = lambda: "\\\\.\\pipe\\" + ARGS["pipe"]
attempt("squatted_pageant_pipe", lambda: pageant.open_pageant_pipe(2, "pageant-pipe"))
# A mapping owned by another SID: the Pageant window must ignore it (return 0);
# the same request in a mapping we own is answered (1).
w = w32.api()
def send(owner_sid):
    attrs = w32.owner_security_attributes(owner_sid)
    name = b"SshlibTest" + os.urandom(8).hex().encode()
    mapping = w.CreateFileMappingA(w32.INVALID_HANDLE_VALUE, attrs.pointer(),
                                   w32.PAGE_READWRITE, 0, pageant.MAPPING_SIZE, name)
    if not mapping:
        return ["CreateFileMapping failed", w32.last_error()]
    owner = w32.sid_to_string(w32.handle_owner_sid(mapping))
    view = w.MapViewOfFile(mapping, w32.FILE_MAP_WRITE, 0, 0, 0)
    ctypes.memmove(view, b"\0\0\0\1\x0b", 5)
    buf = ctypes.create_string_buffer(name)
    cds = w32.COPYDATASTRUCT(pageant.AGENT_COPYDATA_ID, len(name) + 1, ctypes.addressof(buf))
    result = ctypes.c_size_t(0)
    sent = w.SendMessageTimeoutW(pageant.find_pageant_window(), w32.WM_COPYDATA, 0,
                                 ctypes.addressof(cds), w32.SMTO_BLOCK, 5000,
                                 ctypes.byref(result))
    reply = ctypes.string_at(view, 5).hex()
    w.UnmapViewOfFile(view); w.CloseHandle(mapping)
    return [sent, result.value, owner, reply]
out["foreign_owner"] = send(w32.string_to_sid("S-1-5-18"))
out["own_owner"] = send(None)
out["user_sid"] = w32.sid_to_string(w32.user_sid())
print(json.dumps(out))
'''


def test_failures_are_typed_and_bounded(windows_python: WindowsPython,
                                        win_agent: WinAgent) -> None:
    out = win_json(windows_python, _FAILURES, {"hang": HANG_PIPE, "pipe": TEST_PIPE,
                                                "hang_hwnd": win_agent.info["hang_hwnd"]})
    kind, seconds, message = out["hang_pipe"]
    assert kind == "AgentTimeoutError" and 1.5 < seconds < 5, out["hang_pipe"]
    kind, seconds, message = out["missing_pipe"]
    assert kind == "AgentConnectError" and seconds < 2 and "no agent pipe" in message
    kind, seconds, message = out["hang_window"]
    assert kind == "AgentTimeoutError" and seconds < 8, out["hang_window"]
    # Wine 8 has no AF_UNIX in Winsock (WSAEAFNOSUPPORT): a typed, explained refusal.
    kind, seconds, message = out["af_unix"]
    assert kind == "AgentUnsupportedError" and "AF_UNIX" in message, out["af_unix"]
    got, seconds, alive = out["close_wakes_recv"]
    assert got == [""] and not alive and seconds < 3, out["close_wakes_recv"]
    kind, seconds, message = out["squatted_pageant_pipe"]
    assert kind == "AgentConnectError" and "not owned by the current user" in message
    sent, result, owner, reply = out["foreign_owner"]
    assert owner == "S-1-5-18" and result == 0 and reply == "000000010b", out["foreign_owner"]
    sent, result, owner, reply = out["own_owner"]
    assert owner == out["user_sid"] and (sent, result) != (0, 0) and result == 1
    assert reply.startswith("00000"), reply
    assert reply[8:10] == "0c"  # IDENTITIES_ANSWER written into our mapping


# --- Cygwin / MSYS / libassuan files, from both sides ---

_FILES = r'''
import sshlib.agent
from sshlib.errors import AgentError
out = {}
for endpoint in ARGS["endpoints"]:
    try:
        with sshlib.agent.connect(endpoint, timeout=5) as agent:
            keys = agent.list_keys()
            data = os.urandom(32)
            out[endpoint] = [len(keys), keys[0].blob.hex(), data.hex(),
                             agent.sign(keys[0], data).hex()]
    except AgentError as exc:
        out[endpoint] = [type(exc).__name__, str(exc)]
start = time.monotonic()
try:
    sshlib.agent.connect(ARGS["wrong"], timeout=2)
    out["wrong"] = ["no error"]
except AgentError as exc:
    out["wrong"] = [type(exc).__name__, str(exc), time.monotonic() - start]
# A POSIX SSH_AUTH_SOCK as Git Bash sets it, run from C:\ so only cygpath can map it.
os.environ["SSH_AUTH_SOCK"] = ARGS["posix"]
os.environ["PATH"] = ARGS["cygpath_dir"] + ";" + os.environ["PATH"]
os.chdir("C:\\")
with sshlib.agent.connect(timeout=5) as agent:
    out["posix"] = [agent.endpoint, len(agent.list_keys())]
print(json.dumps(out))
'''


def test_cygwin_msys_and_assuan_files_from_windows_and_linux(
        windows_python: WindowsPython, win_agent: WinAgent, ssh_agent: AgentProcess,
        agent_keys: KeySet, tmp_path: Path) -> None:
    ssh_agent.run_client("ssh-add", str(agent_keys.paths["ed25519"]))
    bridges = [
        BridgeServer("cygwin", ssh_agent.sock, tmp_path / "agent.cygwin"),
        BridgeServer("cygwin", ssh_agent.sock, tmp_path / "agent.keeagent", upper_hex=True),
        BridgeServer("cygwin-plain", ssh_agent.sock, tmp_path / "agent.plain"),
        BridgeServer("assuan", ssh_agent.sock, tmp_path / "S.gpg-agent.ssh"),
    ]
    cygpath_dir = tmp_path / "bin"
    cygpath_dir.mkdir()
    # Stands in for MSYS2's cygpath -w: / is Z: under Wine.
    (cygpath_dir / "cygpath.bat").write_text("@echo Z:%~2\r\n")
    try:
        endpoints = [f"{b.endpoint.split(':')[0]}:{windows_python.winpath(b.file_path or '')}"
                     for b in bridges]
        endpoints += [windows_python.winpath(b.file_path or "") for b in bridges]  # sniffed
        endpoints.append(f"cygwin:{windows_python.winpath(win_agent.msys_file)}")
        out = win_json(windows_python, _FILES, {
            "endpoints": endpoints,
            "wrong": f"cygwin:{windows_python.winpath(win_agent.msys_wrong_file)}",
            "posix": str(bridges[0].file_path),
            "cygpath_dir": windows_python.winpath(cygpath_dir)})
        ed_blob = agent_keys.keys["ed25519"].public_key.blob
        ed_pub = agent_keys.paths["ed25519"].with_suffix(".pub").read_text()
        for endpoint in endpoints[:-1]:
            count, blob_hex, data_hex, sig_hex = out[endpoint]
            assert count == 1 and bytes.fromhex(blob_hex) == ed_blob, endpoint
            verify_ssh_signature(ed_pub, bytes.fromhex(data_hex), bytes.fromhex(sig_hex))
        count, blob_hex, data_hex, sig_hex = out[endpoints[-1]]  # msysGit: the Windows agent
        assert count == 2
        name = "ed25519" if bytes.fromhex(blob_hex) == win_agent.blob("ed25519") else "rsa"
        verify_ssh_signature(win_agent.pub(name), bytes.fromhex(data_hex),
                             bytes.fromhex(sig_hex))
        kind, message, seconds = out["wrong"]
        assert kind == "AgentConnectError" and "secret event" in message and seconds < 4
        # cygpath.bat mapped the POSIX path (the process ran from C:\, where it means nothing)
        assert out["posix"] == [f"cygwin:Z:{bridges[0].file_path}", 1]
        # The same files from Linux: every bridge works, the msysGit file needs Windows.
        for bridge in bridges:
            with sshlib.agent.connect(bridge.endpoint, timeout=5) as agent:
                assert [k.blob for k in agent.list_keys()] == [ed_blob]
        with pytest.raises(AgentUnsupportedError, match="only works from Windows"):
            sshlib.agent.connect(f"cygwin:{win_agent.msys_file}", timeout=2)
        assert bridges[0].handshakes_ok >= 3  # cygwin: prefix, bare path, POSIX path
    finally:
        for bridge in bridges:
            bridge.close()


# --- exec: relay from Linux into a Windows process (the WSL2 + npiperelay shape) ---


def test_exec_relay_from_linux_into_wine(windows_python: WindowsPython,
                                         win_agent: WinAgent) -> None:
    argv = windows_python.command_line(["-m", "winagent", "relay", f"pipe:{TEST_PIPE}"])
    env = " ".join(f"{k}={shlex.quote(windows_python.env[k])}"
                   for k in ("WINEPREFIX", "WINEDEBUG"))
    # No shell in between: the relay's stdio (stderr included) are pipes, which is
    # what Windows Python needs.
    command = f"env {env} {shlex.join(argv)}"
    start = time.monotonic()
    with sshlib.agent.connect(f"exec:{command}", timeout=60) as agent:
        keys = agent.list_keys()
        assert {k.blob for k in keys} == {win_agent.blob("ed25519"), win_agent.blob("rsa")}
        for key in keys:
            assert key.public_key is not None
            for algorithm in key.public_key.signature_algorithms[:2]:
                data = os.urandom(64)
                signature = key.signer.sign(data, algorithm)
                name = "ed25519" if key.blob == win_agent.blob("ed25519") else "rsa"
                assert verify_ssh_signature(win_agent.pub(name), data, signature) == algorithm
        process = agent.transport.process  # type: ignore[attr-defined]
    assert process.returncode is not None  # reaped on close
    assert time.monotonic() - start < 60


# --- a Windows sshlib client logging in to the Linux sshd with the Windows agent's key ---

_LOGIN = r'''
import sshlib, sshlib.agent
out = {}
key = sshlib.load_private_key(ARGS["key"])
for endpoint in ARGS["endpoints"]:
    with sshlib.agent.connect(endpoint, timeout=10) as agent:
        agent.add_key(key, comment="for sshd")
        try:
            signers = [s for s in agent.signers() if s.public_key == key.public_key]
            config = sshlib.ClientConfig(
                user=ARGS["user"], auth=[sshlib.PublicKeys(*signers)],
                host_key_callback=sshlib.knownhosts.callback(ARGS["known_hosts"]), timeout=30)
            with sshlib.dial("tcp", ARGS["addr"], config) as client:
                with client.new_session() as session:
                    out[endpoint] = session.output("echo windows-agent-ok").decode()
        finally:
            agent.remove_key(key.public_key)
print(json.dumps(out))
'''


@pytest.mark.parametrize("key_name", ["ed25519-openssh", "rsa-openssh"])
def test_windows_client_logs_in_with_windows_agent_key(windows_python: WindowsPython,
                                                       win_agent: WinAgent, openssh_server: Any,
                                                       key_name: str) -> None:
    endpoints = ["pipe:openssh-ssh-agent", "pageant-window"]
    log_start = openssh_server.log_size()
    out = win_json(windows_python, _LOGIN, {
        "key": windows_python.winpath(openssh_server.user_key_paths[key_name]),
        "endpoints": endpoints, "user": openssh_server.user, "addr": openssh_server.address,
        "known_hosts": windows_python.winpath(openssh_server.known_hosts_path)})
    assert out == {e: "windows-agent-ok\n" for e in endpoints}
    assert openssh_server.log_text(log_start).count("Accepted publickey") == 2


def test_unsupported_errors_are_agent_connect_errors() -> None:
    assert issubclass(AgentUnsupportedError, AgentConnectError)
