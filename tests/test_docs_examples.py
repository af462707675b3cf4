"""Every ```python block in docs/ runs against a real sshd, so the docs cannot drift from the API.

The examples stay as a reader would write them (`example.com:22`, `~/.ssh/id_ed25519`, user
"alice"); the harness makes that true for the length of one block:
- the placeholder host names resolve to the test sshd on 127.0.0.1 (socket.getaddrinfo), and
  any attempt to reach an address off this machine fails the test instead;
- HOME is a fresh directory whose ~/.ssh/id_ed25519 is a key the sshd accepts and whose
  ~/.ssh/known_hosts lists the sshd's host keys under the placeholder names;
- the string literals in SUBSTITUTIONS (user names, the password, the agent socket) are
  replaced with the test account's values before the block is compiled.

What a block needs is read from its code: a block that uses `client`, `cfg` or `db_cfg`
without defining them continues an earlier one and gets a client connected to the test sshd
(an asyncio one when the block awaits) or a ClientConfig for it, plus the usual imports;
top-level `await` / `async with` / `async for` run in an event loop. Any other name the block
uses but never defines fails the test, saying so. A block that cannot run here says why in an
HTML comment on the line before its fence (invisible on GitHub and on the site):
    <!-- example: not run: REASON -->
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import ipaddress
import re
import shutil
import socket
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
DOCS = ROOT / "docs"
# Names the examples use for remote machines: all of them are the test sshd here.
PLACEHOLDER_HOSTS = {"example.com": 22, "web1": 22, "web2": 2222, "web3": 22, "db1": 22}
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
            where = f"docs/{md.name}:{line}"
            found.append(Example(where, m["code"], _parse_opts(where, m["opts"] or "")))
    return found


PROVIDED = {"client", "cfg", "db_cfg", "sshlib", "asyncio"}


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
        return node


def compile_example(ex: Example, table: dict[str, str]) -> tuple[Any, set[str], bool]:
    """The code object, the names it needs from the harness, and whether it awaits."""
    tree = ast.parse(ex.code, filename=ex.where)
    needs = free_names(tree)
    tree = _Substitute(table).visit(tree)
    ast.fix_missing_locations(tree)
    code = compile(tree, ex.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return code, needs, bool(code.co_flags & inspect.CO_COROUTINE)


@pytest.fixture(scope="module")
def sshd() -> Iterator[testing.TestServer]:
    server = testing.start_openssh(extra_config={"AcceptEnv": "LANG LC_*"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(sshd: testing.TestServer, ssh_agent: AgentProcess, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh" / "id_ed25519"
    shutil.copyfile(sshd.user_key_paths["ed25519-openssh"], key)
    key.chmod(0o600)
    ssh_agent.run_client("ssh-add", str(key))
    # The sshd's host keys under every placeholder name.
    lines = []
    for line in Path(sshd.known_hosts_path).read_text().splitlines():
        _pattern, rest = line.split(" ", 1)
        for name, port in PLACEHOLDER_HOSTS.items():
            lines.append(f"{name if port == 22 else f'[{name}]:{port}'} {rest}")
    (home / ".ssh" / "known_hosts").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("HOME", str(home))

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

    cfg = sshlib.ClientConfig(user=sshd.user,
                              auth=[sshlib.PublicKeys(sshlib.load_private_key(key))],
                              host_key_callback=sshlib.knownhosts.callback(
                                  str(home / ".ssh" / "known_hosts")))
    substitutions = {"alice": sshd.user, "me": sshd.user,
                     "pw": sshd.password or "not-the-password",
                     AGENT_PLACEHOLDER: f"unix:{ssh_agent.sock}"}
    return {"cfg": cfg, "substitutions": substitutions}


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
    if awaits:
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
