"""`sshlib agent bridge` with Windows listeners, for real: Windows CPython under Wine.

Everything that runs on the Windows side is this checkout's sshlib started as
``python.exe -m sshlib agent bridge ...`` (or relay / doctor), in front of the
Windows fixture agent (tests/winfixtures/winagent.py) on a named pipe:

- ``--listen pipe:NAME``, ``--listen pageant-window`` and ``--listen cygwin:PATH``
  served by one Windows bridge process; Windows sshlib clients use the pipe
  and the window (protocol, refusals, 300 parallel connections), Linux
  clients the Cygwin socket file (sshlib, and real ssh-add through a Linux
  bridge);
- a Linux bridge whose upstream is ``exec:wine python.exe -m sshlib agent
  relay --to pipe:...`` (the WSL2 shape, no shell wrapper), used by real
  OpenSSH ssh and ssh-add;
- console close (the SetConsoleCtrlHandler routine) removing socket files;
- ``doctor`` run by Windows Python with the fixture agent on the OpenSSH pipe
  and a fixture Pageant window up.

Signatures are verified on Linux with `cryptography` only.  Few Windows
processes are started (each costs seconds under Wine): the checks are batched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures", "wine")
from agentfixtures import need_tool, verify_ssh_signature, wait_for  # noqa: E402
from wine import WindowsPython, win_json  # noqa: E402

import sshlib.agent  # noqa: E402
from sshlib.agent.bridge import Bridge  # noqa: E402
from sshlib.agent.listeners import open_listener  # noqa: E402

pytest_plugins = ["agentfixtures", "wine"]

RUN = secrets.token_hex(4)
FIXTURE_PIPE = f"sshlib-w2-fixture-{RUN}"
BRIDGE_PIPE = f"sshlib-w2-bridge-{RUN}"
REPO = Path(__file__).resolve().parent.parent


class Output:
    """Drains a process's stdout and stderr (so it never blocks on a full pipe)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                         for stream, sink in ((process.stdout, self.stdout),
                                              (process.stderr, self.stderr))]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(stream: Any, sink: list[str]) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line.decode("utf-8", "replace"))

    def text(self) -> str:
        return "".join(self.stdout) + "--- stderr\n" + "".join(self.stderr)

    def wait_stdout(self, needle: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while sum(needle in line for line in self.stdout) < count:
            assert self.process.poll() is None or time.monotonic() < deadline, (
                f"process exited ({self.process.returncode}) before printing {needle!r}:\n"
                f"{self.text()}")
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s:\n{self.text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        for thread in self._threads:
            thread.join(5)


@dataclass
class Setup:
    """The fixture agent, the Windows bridge in front of it, and where things are."""

    python: WindowsPython
    work: Path
    keys: dict[str, Path]
    agent: Output
    bridge: Output | None = None
    cygwin_file: Path = Path()
    extra: dict[str, Any] = field(default_factory=dict)

    def pub(self, name: str) -> str:
        return self.keys[name].with_suffix(".pub").read_text()

    def blob(self, name: str) -> bytes:
        return base64.b64decode(self.pub(name).split()[1])

    def name_of(self, blob: bytes) -> str:
        return next(n for n in self.keys if self.blob(n) == blob)

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None


def _keygen(work: Path) -> dict[str, Path]:
    keygen = need_tool("ssh-keygen")
    paths = {}
    for name, spec in (("ed25519", ["-t", "ed25519"]), ("rsa", ["-t", "rsa", "-b", "2048"])):
        path = work / f"id_{name}"
        subprocess.run([keygen, "-q", *spec, "-N", "", "-C", f"w2 {name}", "-f", str(path)],
                       check=True, stdin=subprocess.DEVNULL, timeout=60)
        os.rename(path, work / f"id_{name}.key")  # so with_suffix(".pub") finds the .pub
        paths[name] = work / f"id_{name}.key"
    return paths


def _start_fixture_agent(python: WindowsPython, keys: list[Path], *extra: str) -> Output:
    process = python.popen(["-m", "winagent", "serve", "--instances", "32",
                            *(a for k in keys for a in ("--key", python.winpath(k))), *extra])
    out = Output(process)
    out.wait_stdout('"ready": true')
    return out


@pytest.fixture(scope="module")
def setup(windows_python: WindowsPython,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("w2")
    keys = _keygen(work)
    agent = _start_fixture_agent(windows_python, [keys["ed25519"], keys["rsa"]],
                                 "--pipe", FIXTURE_PIPE)
    state = Setup(windows_python, work, keys, agent, cygwin_file=work / "agent.cygwin")
    bridge = windows_python.popen(
        ["-m", "sshlib", "agent", "-v", "bridge", "--listen", f"pipe:{BRIDGE_PIPE}",
         "--listen", "pageant-window",
         "--listen", f"cygwin:{windows_python.winpath(state.cygwin_file)}",
         "--to", f"pipe:{FIXTURE_PIPE}", "--request-timeout", "20"])
    state.bridge = Output(bridge)
    try:
        state.bridge.wait_stdout("listening on", count=3)
        yield state
    finally:
        state.stop_bridge()
        assert agent.process.stdin is not None
        agent.process.stdin.close()
        agent.stop()


# --- pipe: and pageant-window, from Windows clients -----------------------------------------

_WINDOWS_CLIENT = r'''
import ctypes, threading, sshlib, sshlib.agent
from sshlib.agent import _win32 as w32, pageant
from sshlib.agent.listeners import open_listener
from sshlib.errors import AgentError
from sshlib.keys import generate_private_key
out = {}
# 1. the whole protocol through each bridged endpoint
extra = generate_private_key("ecdsa-sha2-nistp256")
for endpoint in ARGS["endpoints"]:
    r = out[endpoint] = {"signatures": []}
    with sshlib.agent.connect(endpoint, timeout=20) as agent:
        r["endpoint"] = agent.endpoint
        keys = agent.list_keys()
        r["listed"] = sorted(k.blob.hex() for k in keys)
        for key in keys:
            for flags in ((0,) if key.key_type == "ssh-ed25519" else (2, 4)):
                data = os.urandom(40)
                r["signatures"].append([key.blob.hex(), data.hex(),
                                        agent.sign(key, data, flags=flags).hex()])
        agent.add_key(extra, comment="added through the bridge")
        r["after_add"] = sorted(k.comment for k in agent.list_keys())
        agent.remove_key(extra.public_key)
        r["after_remove"] = len(agent.list_keys())
# 2. the bridge's pipe is owned by our user (its security descriptor says so)
stream = sshlib.agent.open_stream("pipe:" + ARGS["pipe"], timeout=10)
out["pipe_owner"] = w32.sid_to_string(w32.handle_owner_sid(stream.handle))
stream.close()
out["user_sid"] = w32.sid_to_string(w32.user_sid())
# 3. refusals: the name and the window are taken; Wine has no AF_UNIX
def refused(text):
    try:
        open_listener(text).close()
        return ["listening!"]
    except AgentError as exc:
        return [type(exc).__name__, str(exc)]
out["second_pipe"] = refused("pipe:" + ARGS["pipe"])
out["second_window"] = refused("pageant-window")
out["af_unix"] = refused("unix:" + ARGS["unix"])
# 4. a mapping owned by another SID is refused (return 0, mapping untouched);
#    the same request in a mapping we own is answered
w = w32.api()
def send(owner_sid, request=b"\0\0\0\1\x0b", size=pageant.MAPPING_SIZE):
    attrs = w32.owner_security_attributes(owner_sid)
    name = b"SshlibW2" + os.urandom(8).hex().encode()
    mapping = w.CreateFileMappingA(w32.INVALID_HANDLE_VALUE, attrs.pointer(),
                                   w32.PAGE_READWRITE, 0, size, name)
    view = w.MapViewOfFile(mapping, w32.FILE_MAP_WRITE, 0, 0, 0)
    ctypes.memmove(view, request, len(request))
    buf = ctypes.create_string_buffer(name)
    cds = w32.COPYDATASTRUCT(pageant.AGENT_COPYDATA_ID, len(name) + 1, ctypes.addressof(buf))
    result = ctypes.c_size_t(0)
    sent = w.SendMessageTimeoutW(pageant.find_pageant_window(), w32.WM_COPYDATA, 0,
                                 ctypes.addressof(cds), w32.SMTO_BLOCK, 30000,
                                 ctypes.byref(result))
    reply = ctypes.string_at(view, 9).hex()
    w.UnmapViewOfFile(view); w.CloseHandle(mapping)
    return [sent, result.value, reply]
out["foreign_owner"] = send(w32.string_to_sid("S-1-5-18"))
out["own_owner"] = send(None)
# a length field pointing past the end of a small mapping: refused, not read out of bounds
out["overlong"] = send(None, b"\x00\x01\x00\x00\x0b", 4096)
# 5. parallel clients through the window (serialised by the window, none lost)
results, errors = [], []
def window_client(i):
    try:
        with sshlib.agent.connect("pageant-window", timeout=60) as agent:
            keys = agent.list_keys()
            data = b"window %d " % i + os.urandom(8)
            key = keys[i % len(keys)]
            results.append([len(keys), key.blob.hex(), data.hex(), agent.sign(key, data).hex()])
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=window_client, args=(i,)) for i in range(ARGS["window_clients"])]
for t in threads: t.start()
for t in threads: t.join(120)
out["window_parallel"] = {"results": results, "errors": errors}
print(json.dumps(out))
'''


def _check_signatures(setup: Setup, triples: list[list[str]]) -> list[str]:
    algorithms = []
    for blob_hex, data_hex, sig_hex in triples:
        name = setup.name_of(bytes.fromhex(blob_hex))
        algorithms.append(verify_ssh_signature(setup.pub(name), bytes.fromhex(data_hex),
                                               bytes.fromhex(sig_hex)))
    return algorithms


def test_pipe_and_pageant_window_listeners_from_windows_clients(setup: Setup) -> None:
    endpoints = [f"pipe:{BRIDGE_PIPE}", "pageant-window", "pageant"]
    out = win_json(setup.python, _WINDOWS_CLIENT, {
        "endpoints": endpoints, "pipe": BRIDGE_PIPE, "window_clients": 24,
        "unix": setup.python.winpath(setup.work / "af_unix.sock")}, timeout=180)
    expected = sorted(setup.blob(n).hex() for n in ("ed25519", "rsa"))
    for endpoint in endpoints:
        r = out[endpoint]
        assert r["listed"] == expected, endpoint
        assert sorted(_check_signatures(setup, r["signatures"])) == [
            "rsa-sha2-256", "rsa-sha2-512", "ssh-ed25519"], endpoint
        assert "added through the bridge" in r["after_add"] and len(r["after_add"]) == 3
        assert r["after_remove"] == 2
    # "pageant" found no Pageant pipe and used our window
    assert out["pageant"]["endpoint"] == "pageant"
    assert out["pipe_owner"] == out["user_sid"]
    kind, message = out["second_pipe"]
    assert kind == "AgentConnectError" and "already serves pipe" in message, out["second_pipe"]
    kind, message = out["second_window"]
    assert kind == "AgentConnectError" and "Pageant window already exists" in message
    kind, message = out["af_unix"]
    assert kind == "AgentUnsupportedError" and "AF_UNIX" in message, out["af_unix"]
    _sent, result, reply = out["foreign_owner"]
    assert (result, reply) == (0, "000000010b00000000"), out["foreign_owner"]
    _sent, result, reply = out["own_owner"]
    assert result == 1 and reply[8:10] == "0c" and reply[10:18] == "00000002", out["own_owner"]
    _sent, result, reply = out["overlong"]
    assert result == 0 and reply.startswith("000100000b"), out["overlong"]
    parallel = out["window_parallel"]
    assert parallel["errors"] == [] and len(parallel["results"]) == 24
    assert all(r[0] == 2 for r in parallel["results"])
    _check_signatures(setup, [r[1:] for r in parallel["results"]])
    assert setup.bridge is not None
    log = setup.bridge.text()
    assert "refused a request: its mapping is not owned by our user" in log
    assert "requests" in log or "request(s)" in log


_PARALLEL = r'''
import threading, sshlib.agent
results, errors = [], []
barrier = threading.Barrier(ARGS["threads"])
def client(i):
    try:
        barrier.wait(60)
        with sshlib.agent.connect("pipe:" + ARGS["pipe"], timeout=60) as agent:
            keys = agent.list_keys()
            key = keys[i % len(keys)]
            data = ("%s-%d-" % (ARGS["tag"], i)).encode() + os.urandom(8)
            results.append([sorted(k.blob.hex() for k in keys), key.blob.hex(), data.hex(),
                            agent.sign(key, data, flags=4).hex()])
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=client, args=(i,)) for i in range(ARGS["threads"])]
start = time.monotonic()
for t in threads: t.start()
for t in threads: t.join(150)
print(json.dumps({"results": results, "errors": errors, "seconds": time.monotonic() - start}))
'''


def test_300_parallel_clients_through_the_pipe_listener(setup: Setup) -> None:
    """300 connections at once from two Windows processes: every one answered, none mixed up."""
    python = setup.python
    processes = []
    for tag in ("a", "b"):
        args = {"pipe": BRIDGE_PIPE, "threads": 150, "tag": tag}
        code = ("import json, os, sys, time\nARGS = json.loads(os.environ['SSHLIB_TEST_ARGS'])\n"
                + _PARALLEL)
        processes.append(python.popen(code, env={"SSHLIB_TEST_ARGS": json.dumps(args)}))
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=200)
        assert process.returncode == 0, stderr.decode(errors="replace")
        outputs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    expected = sorted(setup.blob(n).hex() for n in ("ed25519", "rsa"))
    seen_data = set()
    triples = []
    for tag, out in zip(("a", "b"), outputs, strict=True):
        assert out["errors"] == [], out["errors"][:5]
        assert len(out["results"]) == 150
        for listed, blob_hex, data_hex, sig_hex in out["results"]:
            assert listed == expected
            assert bytes.fromhex(data_hex).startswith(f"{tag}-".encode())
            seen_data.add(data_hex)
            triples.append([blob_hex, data_hex, sig_hex])
    assert len(seen_data) == 300
    # Each signature is over its own client's data, by the key it asked for.
    _check_signatures(setup, triples)
    assert setup.bridge is not None
    wait_for(lambda: setup.bridge is not None and
             setup.bridge.text().count("ended: closed") >= 300, 30, "300 client log lines")
    # GetNamedPipeClientProcessId named each peer; each did list + sign, none failed.
    served = re.findall(rf"pipe:{BRIDGE_PIPE} client \d+ \(pid \d+\): 2 request\(s\) "
                        rf"\(0 answered FAILURE\)", setup.bridge.text())
    assert len(served) >= 300, setup.bridge.text()[-2000:]


# --- cygwin: written by Windows Python, used from Linux ---------------------------------------


def test_windows_cygwin_listener_from_linux(setup: Setup, tmp_path: Path) -> None:
    path = setup.cygwin_file
    data = path.read_bytes()
    assert data.startswith(b"!<socket >") and data.endswith(b"\x00") and b" s " in data
    # Wine keeps DOS attributes in the user.DOSATTRIB xattr: FILE_ATTRIBUTE_SYSTEM (0x4) set.
    attrib = os.getxattr(path, "user.DOSATTRIB").rstrip(b"\x00")
    assert int(attrib.split(b",")[0].decode(), 16) & 0x4, attrib
    expected = {setup.blob("ed25519"), setup.blob("rsa")}
    with sshlib.agent.connect(f"cygwin:{path}", timeout=30) as agent:
        keys = agent.list_keys()
        assert {k.blob for k in keys} == expected
        for key in keys:
            data_to_sign = os.urandom(32)
            signature = agent.sign(key, data_to_sign)
            verify_ssh_signature(setup.pub(setup.name_of(key.blob)), data_to_sign, signature)
    # Real ssh-add through a Linux bridge in front of the Windows-written socket file.
    sock = Path(f"/tmp/sshlib-w2-{os.getpid()}-{RUN}.sock")
    bridge = Bridge([open_listener(f"unix:{sock}")], f"cygwin:{path}")
    bridge.start()
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        done = subprocess.run([need_tool("ssh-add"), "-l"], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        fingerprints = {subprocess.run([need_tool("ssh-keygen"), "-lf",
                                        str(setup.keys[n].with_suffix(".pub"))],
                                       capture_output=True, text=True, check=True,
                                       timeout=30).stdout.split()[1] for n in setup.keys}
        assert {line.split()[1] for line in done.stdout.splitlines()} == fingerprints
    finally:
        bridge.close()
    assert not sock.exists()


# --- a Linux bridge whose upstream is an exec: relay into Windows Python -----------------------


def test_linux_bridge_exec_relay_into_wine_used_by_real_ssh(setup: Setup, openssh_server: Any,
                                                            tmp_path: Path) -> None:
    python = setup.python
    relay = python.command_line(["-m", "sshlib", "agent", "relay", "--to",
                                 f"pipe:{FIXTURE_PIPE}"])
    sock = Path(f"/tmp/sshlib-w2-exec-{os.getpid()}-{RUN}.sock")
    # The Wine settings reach the relay through the bridge's environment: no shell wrapper.
    env = {**os.environ, **{k: python.env[k] for k in ("WINEPREFIX", "WINEDEBUG", "WINEARCH",
                                                         "WINEDLLOVERRIDES")}}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "sshlib", "agent", "-v", "bridge", "--listen", f"unix:{sock}",
         "--to", f"exec:{shlex.join(relay)}", "--connect-timeout", "60",
         "--request-timeout", "60"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Output(bridge)
    key_name = "ed25519-openssh"
    key_path = openssh_server.user_key_paths[key_name]
    client_env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    agent_env = {**client_env, "SSH_AUTH_SOCK": str(sock)}
    try:
        out.wait_stdout("listening on")
        added = subprocess.run([need_tool("ssh-add"), str(key_path)], env=agent_env,
                               capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        assert added.returncode == 0, f"{added.stderr}\n{out.text()}"
        try:
            listed = subprocess.run([need_tool("ssh-add"), "-l"], env=agent_env,
                                    capture_output=True, text=True, timeout=120,
                                    stdin=subprocess.DEVNULL)
            assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed
            pub = tmp_path / "id.pub"  # IdentitiesOnly: only the agent key matching this file
            pub.write_text(openssh_server.user_public_keys[key_name] + "\n")
            log_start = openssh_server.log_size()
            ssh = subprocess.run(
                ["ssh", "-F", "/dev/null", "-p", str(openssh_server.port),
                 "-o", f"IdentityAgent={sock}", "-o", "IdentitiesOnly=yes",
                 "-o", f"IdentityFile={pub}", "-o", "PasswordAuthentication=no",
                 "-o", "KbdInteractiveAuthentication=no",
                 "-o", f"UserKnownHostsFile={openssh_server.known_hosts_path}",
                 "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                 "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                 f"{openssh_server.user}@127.0.0.1", "echo through-wine-relay"],
                env=client_env, capture_output=True, text=True, timeout=120,
                stdin=subprocess.DEVNULL)
            assert (ssh.returncode, ssh.stdout) == (0, "through-wine-relay\n"), (
                f"{ssh.stderr}\n{out.text()}")
            assert "Accepted publickey" in openssh_server.log_text(log_start)
        finally:
            removed = subprocess.run([need_tool("ssh-add"), "-d", str(key_path)], env=agent_env,
                                     capture_output=True, text=True, timeout=120,
                                     stdin=subprocess.DEVNULL)
            assert removed.returncode == 0, removed.stderr
        # One relay process per client, each reaped: 4 clients, 4 clean ends.
        wait_for(lambda: out.text().count("ended: closed") >= 4, 30, "4 client log lines")
    finally:
        bridge.terminate()
        bridge.wait(30)
        out.stop()
    assert bridge.returncode == 0, out.text()
    assert not sock.exists()


# --- console close: the control handler cleans up like SIGTERM --------------------------------

_CONSOLE = r'''
import ctypes, threading, sshlib.agent
from sshlib.cli import main
from sshlib.cli import agent as agent_cli
from sshlib.errors import AgentError
out = {}
def console_closes():
    deadline = time.monotonic() + 30
    while not (os.path.exists(ARGS["file"]) and agent_cli.console_handlers):
        if time.monotonic() > deadline:
            out["error"] = "the bridge did not start"
            os._exit(3)
        time.sleep(0.05)
    with sshlib.agent.connect("pipe:" + ARGS["pipe"], timeout=20) as agent:
        out["before"] = len(agent.list_keys())
    out["system_attribute"] = bool(ctypes.windll.kernel32.GetFileAttributesW(ARGS["file"]) & 4)
    # What Windows does when the console window closes: call the routine in a new thread.
    routine = agent_cli.console_handlers[-1]
    out["ctrl_c_passed_on"] = routine(0)
    out["handled"] = routine(2)  # CTRL_CLOSE_EVENT
    out["file_after"] = os.path.exists(ARGS["file"])
    try:
        sshlib.agent.connect("pipe:" + ARGS["pipe"], timeout=2)
        out["pipe_after"] = "still there"
    except AgentError as exc:
        out["pipe_after"] = str(exc)
checker = threading.Thread(target=console_closes, daemon=True)
checker.start()
# The bridge command runs in the main thread, as it does from a console.
out["status"] = main(["agent", "bridge", "--listen", "cygwin:" + ARGS["file"],
                      "--listen", "pipe:" + ARGS["pipe"], "--to", "pipe:" + ARGS["upstream"]])
checker.join(30)
out["handlers_left"] = len(agent_cli.console_handlers)
print(json.dumps(out))
'''


def test_console_close_removes_socket_files(setup: Setup) -> None:
    file = setup.work / "console.cygwin"
    out = win_json(setup.python, _CONSOLE, {
        "file": setup.python.winpath(file), "pipe": f"sshlib-w2-console-{RUN}",
        "upstream": FIXTURE_PIPE})
    assert out["before"] == 2 and out["system_attribute"]
    assert (out["ctrl_c_passed_on"], out["handled"]) == (0, 1)
    assert out["file_after"] is False and not file.exists()
    assert "no agent pipe" in out["pipe_after"], out
    assert out["status"] == 0 and out["handlers_left"] == 0


# --- doctor, run by Windows Python --------------------------------------------------------------


def test_doctor_under_wine_finds_pipe_and_pageant_window(setup: Setup) -> None:
    """The fixture agent on the OpenSSH pipe (2 keys), a fixture Pageant window (1 key)."""
    setup.stop_bridge()  # it owns the Pageant window; the fixture's takes its place
    window_agent = _start_fixture_agent(setup.python, [setup.keys["rsa"]], "--window")
    pipe_agent = _start_fixture_agent(setup.python, [setup.keys["ed25519"], setup.keys["rsa"]],
                                      "--pipe", "openssh-ssh-agent")
    try:
        env = {"SSH_AUTH_SOCK": ""}
        table = setup.python.run(["-m", "sshlib", "agent", "doctor", "--timeout", "10"],
                                 env=env, timeout=120)
        as_json = setup.python.run(["-m", "sshlib", "agent", "doctor", "--json", "--timeout",
                                    "10"], env=env, timeout=120)
    finally:
        for fixture in (window_agent, pipe_agent):
            assert fixture.process.stdin is not None
            fixture.process.stdin.close()
            fixture.stop()
    report = json.loads(as_json.stdout)
    agents = {a["endpoint"]: a for a in report["agents"]}
    pipe, window = agents["pipe:openssh-ssh-agent"], agents["pageant-window"]
    assert report["platform"] == "win32" and report["any_usable"] is True
    assert (pipe["reachable"], pipe["key_count"]) == (True, 2), pipe
    assert (window["reachable"], window["key_count"]) == (True, 1), window
    fingerprints = {n: "SHA256:" + base64.b64encode(hashlib.sha256(setup.blob(n)).digest())
                    .decode().rstrip("=") for n in setup.keys}
    assert {k["fingerprint"] for k in pipe["keys"]} == set(fingerprints.values())
    assert [k["fingerprint"] for k in window["keys"]] == [fingerprints["rsa"]]
    assert agents["pageant-pipe"]["reachable"] is False
    text = table.stdout
    assert table.returncode == 0
    assert 'use: IdentityAgent "//./pipe/openssh-ssh-agent"' in text
    assert 'use: $env:SSH_AUTH_SOCK = "\\\\.\\pipe\\openssh-ssh-agent"' in text
    assert ("use: sshlib agent bridge --listen pipe:openssh-ssh-agent --to pageant-window"
            in text)
    for fingerprint in fingerprints.values():
        assert fingerprint in text
    assert "2 usable agents found." in text
