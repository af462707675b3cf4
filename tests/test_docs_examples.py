"""Every ```python block in docs/ runs against a real sshd, so the docs cannot drift from the API.

The examples stay as a reader would write them (`example.com:22`, `~/.ssh/id_ed25519`, user
"alice"); the harness makes that true for the length of one block:
- the placeholder host names resolve to the test sshd on 127.0.0.1 (socket.getaddrinfo), and
  any attempt to reach an address off this machine fails the test instead;
- HOME is a fresh directory whose ~/.ssh/id_ed25519 is a key the sshd accepts and whose
  ~/.ssh/known_hosts lists the sshd's host keys under the placeholder names;
- the string literals in SUBSTITUTIONS (user names, the password, the agent socket, fixed
  socket paths) are replaced with the test account's values before the block is compiled;
- the files an example names exist: in the current directory (a fresh one per block) a user
  CA `user_ca` made by ssh-keygen (the sshd trusts it) and `id_ed25519.ppk` made by puttygen,
  and in ~/.ssh the key's .pub and, when the block mentions `-cert.pub`, a certificate the CA
  signed for the test account; `report.pdf`, a `local/` directory and `./ssh_config` when
  named; a real `ssh -M` master behind the docs' ControlPath `~/.ssh/cm-alice@host:22`; SFTP's
  relative paths start in a private directory holding the remote files the
  SFTP examples name (`logs/`, `remote/file`, `big.iso`, `incoming/`);
- the sshd itself resolves the names through nss_wrapper's hosts file: the SSH names
  (`bastion`, `target`...) reach it through a relay on port 22 of a loopback address of its
  own, the service names (`db.internal:5432`, `web:80`) an echo server; a port the sshd starts
  listening on for the client (`client.listen`) gets one visitor, as if a program on the
  server connected; child processes (`ssh -W` in a ProxyCommand) see the same hosts and a
  passwd entry whose home is the fresh HOME, where ~/.ssh/config makes the test account the
  default user.

What a block needs is read from its code: a block that uses `client`, `cfg` or `db_cfg`
(or `sftp`) without defining them continues an earlier one and gets a client (or an SFTP
client) connected to the test sshd (an asyncio one when the block awaits) or a ClientConfig
for it, plus the usual imports;
top-level `await` / `async with` / `async for` run in an event loop. Any other name the block
uses but never defines fails the test, saying so. A block that cannot run here says why in an
HTML comment on the line before its fence (invisible on GitHub and on the site):
    <!-- example: not run: REASON -->
SSHLIB_DOCS_DIR=DIR runs the blocks of the pages in DIR instead (to try pages before they merge).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import ipaddress
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("agentfixtures")
import servers as testing  # noqa: E402
from agentfixtures import AgentProcess  # noqa: E402

import sshlib  # noqa: E402
import sshlib.aio  # noqa: E402

pytest_plugins = ["agentfixtures"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = Path(os.environ.get("SSHLIB_DOCS_DIR") or ROOT / "docs")
# Names the examples use for remote machines: all of them are the test sshd here.
PLACEHOLDER_HOSTS = {"example.com": 22, "web1": 22, "web2": 2222, "web3": 22, "db1": 22,
                     "bastion": 22, "bastion.example.com": 22, "target": 22, "inner": 22,
                     "myhost": 22, "host": 22}
# Names of services behind the server (what a server-side connect reaches): an echo server.
SERVICE_HOSTS = {"db.internal": (5432,), "db": (5432,), "web": (80,)}
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
AGENT_PLACEHOLDER = "unix:/run/user/1000/ssh-agent.sock"

_FENCE = re.compile(r"(?:<!-- example: (?P<opts>[^\n]*?) -->\n)?```python\n(?P<code>.*?)```",
                    re.DOTALL)


@dataclass(frozen=True)
class Example:
    where: str  # docs/FILE.md:LINE
    code: str
    not_run: str  # the reason, or ""


def _parse_opts(where: str, opts: str) -> str:
    if not opts:
        return ""
    assert opts.startswith("not run:") and opts[8:].strip(), \
        f"{where}: the only example option is 'not run: REASON', got {opts!r}"
    return opts[8:].strip()


def collect_examples() -> list[Example]:
    found = []
    for md in sorted(DOCS.glob("*.md")):
        text = md.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            line = text.count("\n", 0, m.start("code"))
            where = f"{DOCS.name}/{md.name}:{line}"
            found.append(Example(where, m["code"], _parse_opts(where, m["opts"] or "")))
    return found


PROVIDED = {"client", "cfg", "db_cfg", "sshlib", "asyncio", "sftp"}


def free_names(tree: ast.AST) -> set[str]:
    """Names the code reads but never binds (nor imports, nor defines), builtins aside."""
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


EXAMPLES = collect_examples()


class _Substitute(ast.NodeTransformer):
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.used: set[str] = set()

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str) and node.value in self.table:
            self.used.add(node.value)
            return ast.copy_location(ast.Constant(self.table[node.value]), node)
        if isinstance(node.value, str) and re.search(r"(^|//)alice@", node.value):
            # "alice@myhost", "ssh://alice@myhost:2222": the test account logs in
            value = re.sub(r"(^|//)alice@", lambda m: f"{m.group(1)}{self.table['alice']}@",
                           node.value)
            return ast.copy_location(ast.Constant(value), node)
        return node


def compile_example(ex: Example, table: dict[str, str]) -> tuple[Any, set[str], bool]:
    """The code object, the names it needs from the harness, and whether it awaits."""
    tree = ast.parse(ex.code, filename=ex.where)
    needs = free_names(tree)
    tree = _Substitute(table).visit(tree)
    ast.fix_missing_locations(tree)
    code = compile(tree, ex.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return code, needs, bool(code.co_flags & inspect.CO_COROUTINE)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _serve(listener: socket.socket, handle: Any) -> None:
    """Accept until the listener closes; each connection in a thread of its own."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _relay_to(address: tuple[str, int]) -> Any:
    def handle(conn: socket.socket) -> None:
        with conn, socket.create_connection(address, timeout=10) as up:
            up.settimeout(None)
            t = threading.Thread(target=_pump, args=(up, conn), daemon=True)
            t.start()
            _pump(conn, up)
            t.join(60)
    return handle


def _echo(conn: socket.socket) -> None:
    with conn:
        _pump(conn, conn)


def _listen(family: int, address: Any, handle: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(16)
    threading.Thread(target=_serve, args=(sock, handle), daemon=True).start()
    return sock


@dataclass
class Site:
    """The module's sshd and what stands around it (see the module docstring)."""
    sshd: testing.TestServer
    ca: Path  # the user CA's private key; the sshd trusts ca.pub
    hosts_file: Path
    shared: Path  # world-writable: sockets both we and the sshd's user reach
    app_sock: str  # a Unix echo socket


def _sftp_files(root: Path) -> Path:
    """The remote files the SFTP examples name, writable by the sshd's login user."""
    files = {"logs/app.log": b"started\n" * 100, "logs/old/app.log.1": b"older\n",
             "remote/file": b"remote file\n", "remote/sub/other": b"x" * 5000,
             "big.iso": os.urandom(1 << 20), "incoming/.keep": b""}
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o666)
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        path.chmod(0o1777)
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    assert os.geteuid() == 0, ("the docs examples need root: the sshd resolves `target:22` to a "
                               "relay on port 22 of a loopback address (run bash scripts/test.sh)")
    assert os.path.exists(NSS_WRAPPER), f"{NSS_WRAPPER} is missing: apt-get install libnss-wrapper"
    shared = Path(tempfile.mkdtemp(prefix="sshlib-docs-"))
    shared.chmod(0o1777)
    ca = shared / "user_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "user_ca", "-f", str(ca)],
                   check=True)
    # One loopback address for the SSH names, one for the services: ports as the docs write them.
    net = f"127.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    ssh_addr, service_addr = f"{net}.1", f"{net}.2"
    hosts_file = shared / "hosts"
    hosts_file.write_text(f"{ssh_addr} {' '.join(PLACEHOLDER_HOSTS)}\n"
                          f"{service_addr} {' '.join(SERVICE_HOSTS)}\n")
    sftp_root = _sftp_files(shared / "sftp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LD_PRELOAD", NSS_WRAPPER)
        mp.setenv("NSS_WRAPPER_HOSTS", str(hosts_file))
        server = testing.start_openssh(extra_config={
            "AcceptEnv": "LANG LC_*", "TrustedUserCAKeys": f"{ca}.pub",
            # SFTP's relative paths start in a private directory, not the shared home
            "Subsystem": f"sftp internal-sftp -d {sftp_root}"})
    listeners = []
    try:
        for port in sorted(set(PLACEHOLDER_HOSTS.values())):
            listeners.append(_listen(socket.AF_INET, (ssh_addr, port),
                                     _relay_to((server.host, server.port))))
        for port in sorted({p for ports in SERVICE_HOSTS.values() for p in ports}):
            listeners.append(_listen(socket.AF_INET, (service_addr, port), _echo))
        app_sock = str(shared / "app.sock")
        listeners.append(_listen(socket.AF_UNIX, app_sock, _echo))
        os.chmod(app_sock, 0o777)
        yield Site(server, ca, hosts_file, shared, app_sock)
    finally:
        for sock in listeners:
            sock.close()
        server.stop()
        shutil.rmtree(shared, ignore_errors=True)


def _visit_forwards(sshd: testing.TestServer, start: int, stop: threading.Event) -> None:
    """Connect once to each port the sshd starts listening on after `start` (a remote forward)."""
    visited = 0
    while not stop.wait(0.05):
        found, host = [], ""
        for line in sshd.log_text(start).splitlines():
            if m := re.search(r"Local forwarding listening on (\S+) port (\d+)\.", line):
                host = m[1]
                if m[2] != "0":
                    found.append((host, int(m[2])))
            elif m := re.search(r"Allocated listen port (\d+)", line):
                found.append((host, int(m[1])))
        for address in found[visited:]:
            try:
                with socket.create_connection(address, timeout=5) as c:
                    c.sendall(b"hello from the server side\n")
                    c.shutdown(socket.SHUT_WR)
                    c.recv(65536)
            except OSError:
                pass
        visited = len(found)


def _make_ppk(key: Path, out: Path, passphrase: str, scratch: Path) -> None:
    pass_file = scratch / "ppk-passphrase"
    pass_file.write_text(passphrase + "\n")
    subprocess.run(["puttygen", str(key), "-O", "private", "-o", str(out),
                    "--new-passphrase", str(pass_file)], check=True, capture_output=True)
    pass_file.unlink()


def _sign_user_cert(ca: Path, pub: Path, principal: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", f"{principal}@example",
                    "-n", principal, "-V", "-5m:+1h", str(pub)], check=True, capture_output=True)


@pytest.fixture
def world(site: Site, ssh_agent: AgentProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    sshd = site.sshd
    example: Example = request.node.callspec.params["example"]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh" / "id_ed25519"
    shutil.copyfile(sshd.user_key_paths["ed25519-openssh"], key)
    key.chmod(0o600)
    pub = home / ".ssh" / "id_ed25519.pub"
    pub.write_text(sshd.user_public_keys["ed25519-openssh"] + " alice@laptop\n")
    if "-cert.pub" in example.code:
        _sign_user_cert(site.ca, pub, sshd.user)
    password = sshd.password or "not-the-password"
    work = tmp_path / "work"  # the example's current directory
    work.mkdir()
    if "user_ca" in example.code:
        shutil.copyfile(site.ca, work / "user_ca")
        (work / "user_ca").chmod(0o600)
        shutil.copyfile(f"{site.ca}.pub", work / "user_ca.pub")
    if "id_ed25519.ppk" in example.code:
        _make_ppk(key, work / "id_ed25519.ppk", password, tmp_path)
    if "report.pdf" in example.code:
        (work / "report.pdf").write_bytes(b"%PDF-1.4 not really\n" * 50)
    if "local/file" in example.code:
        (work / "local").mkdir()
    if "./ssh_config" in example.code:
        (work / "ssh_config").write_text("Host myhost\n    IdentityFile ~/.ssh/id_ed25519\n")
    monkeypatch.chdir(work)
    ssh_agent.run_client("ssh-add", str(key))
    # The sshd's host keys under every placeholder name.
    lines = []
    for line in Path(sshd.known_hosts_path).read_text().splitlines():
        _pattern, rest = line.split(" ", 1)
        for name in PLACEHOLDER_HOSTS:  # the relay listens on both ports for every name
            lines += [f"{name} {rest}", f"[{name}]:2222 {rest}"]
    (home / ".ssh" / "known_hosts").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SSH_AUTH_SOCK", ssh_agent.sock)
    # Child processes (ssh -W in a ProxyCommand): the same hosts, and a passwd entry for this
    # uid whose name is the test account and whose home is the fresh HOME (ssh reads ~ there).
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    me = pwd.getpwuid(os.getuid())
    passwd.write_text(f"{me.pw_name}:x:{me.pw_uid}:{me.pw_gid}::{home}:{me.pw_shell}\n"
                      + Path("/etc/passwd").read_text())
    shutil.copyfile("/etc/group", group)
    # ssh (a ProxyCommand's ssh -W) logs in as the test account, as sshlib's examples do.
    (home / ".ssh" / "config").write_text(f"Host *\n    User {sshd.user}\n")
    for name, value in {"LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_HOSTS": str(site.hosts_file),
                        "NSS_WRAPPER_PASSWD": str(passwd),
                        "NSS_WRAPPER_GROUP": str(group)}.items():
        monkeypatch.setenv(name, value)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in PLACEHOLDER_HOSTS:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     (sshd.host, sshd.port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            if not ipaddress.ip_address(address[0]).is_loopback:
                raise AssertionError(f"a docs example tried to reach {address}: loopback only")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    master = None
    if "~/.ssh/cm-alice@host:22" in example.code:  # the docs' ControlPath: a real ssh -M
        control = home / ".ssh" / "cm-alice@host:22"
        master = subprocess.Popen(
            ["ssh", "-M", "-N", "-o", "ControlMaster=yes", "-o", f"ControlPath={control}",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-i", str(key), "host"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):
            if control.exists() or master.poll() is not None:
                break
            time.sleep(0.05)
        assert control.exists(), ("the ssh -M master for the example did not start: "
                                  + (master.stderr.read().decode() if master.poll() is not None
                                     else "no control socket after 15 s"))

    cfg = sshlib.ClientConfig(user=sshd.user,
                              auth=[sshlib.PublicKeys(sshlib.load_private_key(key))],
                              host_key_callback=sshlib.knownhosts.callback(
                                  str(home / ".ssh" / "known_hosts")))
    scratch = Path(tempfile.mkdtemp(dir=site.shared))  # the sshd's user may bind here
    scratch.chmod(0o1777)
    substitutions = {"alice": sshd.user, "me": sshd.user, "pw": password,
                     AGENT_PLACEHOLDER: f"unix:{ssh_agent.sock}",
                     "/run/app.sock": site.app_sock, "/tmp/fwd.sock": str(scratch / "fwd.sock")}
    stop = threading.Event()
    visitor = threading.Thread(target=_visit_forwards, args=(sshd, sshd.log_size(), stop),
                               daemon=True)
    visitor.start()
    start = sshd.log_size()
    try:
        yield {"cfg": cfg, "substitutions": substitutions}
    finally:
        stop.set()
        visitor.join(10)
        shutil.rmtree(scratch, ignore_errors=True)
        if master is not None:
            master.terminate()
            master.wait(10)
    if "-cert.pub" in example.code:
        log = sshd.log_text(start)
        assert "Accepted publickey" not in log or "ED25519-CERT" in log, \
            "the example was given a certificate but logged in without it"


def test_the_docs_have_examples_and_each_unrun_one_says_why() -> None:
    fences = sum(md.read_text(encoding="utf-8").count("```python") for md in DOCS.glob("*.md"))
    assert len(EXAMPLES) == fences >= 9
    unrun = [(e.where, e.not_run) for e in EXAMPLES if e.not_run]
    assert len(unrun) <= 2, f"most examples must run: {unrun}"


@pytest.mark.parametrize("example", [e for e in EXAMPLES if not e.not_run],
                         ids=lambda e: e.where)
def test_docs_example_runs(example: Example, world: dict[str, Any],
                           capsys: pytest.CaptureFixture[str]) -> None:
    code, needs, awaits = compile_example(example, world["substitutions"])
    unknown = needs - PROVIDED
    assert not unknown, (f"{example.where} uses {sorted(unknown)}, which nothing defines: "
                         "define them in the block, or mark it <!-- example: not run: WHY -->")
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    if needs:  # a continuation: the earlier block's imports are in scope
        namespace.update(sshlib=sshlib, asyncio=asyncio)
    for name in needs & {"cfg", "db_cfg"}:
        namespace[name] = world["cfg"]
    if "sftp" in needs and not awaits:  # a continuation of an SFTP example
        with sshlib.dial("tcp", "example.com:22", world["cfg"]) as client, \
                client.sftp(timeout=30) as sftp:
            namespace["sftp"] = sftp
            exec(code, namespace)
    elif awaits:
        async def run() -> None:
            if "client" in needs:
                async with sshlib.aio.dial("tcp", "example.com:22", world["cfg"]) as client:
                    namespace["client"] = client
                    await eval(code, namespace)
            else:
                await eval(code, namespace)

        asyncio.run(asyncio.wait_for(run(), 120))
    elif "client" in needs:
        with sshlib.dial("tcp", "example.com:22", world["cfg"]) as client:
            namespace["client"] = client
            exec(code, namespace)
    else:
        exec(code, namespace)
    printed = capsys.readouterr().out
    assert "failed:" not in printed, printed  # run_on prints failures instead of raising
