"""Bytes-in/bytes-out unit tests of the sans-IO core layers."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import sshlib
from sshlib import algorithms as algs
from sshlib import driver
from sshlib import messages as m
from sshlib.config import Password, Prompt, PublicKeys
from sshlib.errors import AuthError, DecodeError, KexError, ProtocolError
from sshlib.keys import generate_private_key
from sshlib.protocol import events as ev
from sshlib.protocol.connection import Connection
from sshlib.protocol.userauth import UserAuth
from sshlib.protocol.version import VersionExchange
from sshlib.wire import Reader, Writer, mpint, string

ROOT = Path(sshlib.__file__).parent
FORBIDDEN = {"socket", "threading", "asyncio", "select", "time", "selectors"}


def _imports_of(path: Path, package: str) -> set[str]:
    """Absolute module names a source file imports (relative imports resolved)."""
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "." + "__init__"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level)[0]
                module = f"{base}.{node.module}" if node.module else base
                if node.module:  # "from .. import x" names submodules, not the package body
                    names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


def _sans_io_roots() -> list[str]:
    """driver.py, every module of protocol/ and sftp/, agent/protocol.py, the mux codec and
    the other pure layers (found on disk)."""
    package = Path(sshlib.__file__).parent
    roots = ["sshlib.driver", "sshlib.channelstate", "sshlib.agent.protocol",
             "sshlib.compression", "sshlib.socks", "sshlib.forwardspec", "sshlib.mux.protocol"]
    for sub in ("protocol", "sftp"):
        roots += [f"sshlib.{sub}.{p.stem}" for p in sorted((package / sub).glob("*.py"))
                  if p.stem != "__init__"]
    return roots


def _io_imports(roots: list[str]) -> tuple[list[str], set[str]]:
    """(violations, modules seen) for the roots and everything they import from sshlib."""
    todo = list(roots)
    seen: set[str] = set()
    bad: list[str] = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # "from module import Name": Name is not a module
            continue
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        for imported in _imports_of(Path(spec.origin), name):
            top = imported.split(".")[0]
            if top in FORBIDDEN:
                bad.append(f"{name} imports {imported}")
            if imported.startswith("sshlib"):
                todo.append(imported)
    return bad, seen


def test_core_imports_no_io_modules() -> None:
    """The sans-IO core and everything it imports from sshlib stay free of I/O and clocks."""
    roots = _sans_io_roots()
    bad, seen = _io_imports(roots)
    assert not bad, bad
    assert {"sshlib.protocol.handshake", "sshlib.protocol.userauth", "sshlib.protocol.connection",
            "sshlib.protocol.forwarding", "sshlib.driver", "sshlib.agent.protocol",
            "sshlib.kex", "sshlib.cipher", "sshlib.keys"} <= seen
    assert not any(name.startswith(("sshlib.sync", "sshlib.aio")) for name in seen)


@pytest.mark.parametrize(("frontend", "other"), [("aio", "sync"), ("sync", "aio")])
def test_front_ends_do_not_import_each_other(frontend: str, other: str) -> None:
    """sshlib.aio and sshlib.sync share only the core, driver.py and the neutral modules."""
    for path in sorted((ROOT / frontend).glob("*.py")):
        name = f"sshlib.{frontend}.{path.stem}"
        imported = _imports_of(path, name)
        assert not [i for i in imported if i.startswith(f"sshlib.{other}")], (name, imported)


@pytest.mark.parametrize("module", ["socket", "threading", "asyncio", "select", "time"])
def test_core_import_guard_can_fail(module: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard above catches each forbidden import (checked on a planted module)."""
    pkg = tmp_path / f"sshlib_probe_{module}"  # one package per case: find_spec caches
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "core.py").write_text(f"from __future__ import annotations\nimport {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bad, _ = _io_imports([f"{pkg.name}.core"])
    assert bad == [f"{pkg.name}.core imports {module}"]


# --- wire ---------------------------------------------------------------------

@pytest.mark.parametrize(("value", "encoded"), [
    # RFC 4251 section 5 examples
    (0, "00000000"),
    (0x9A378F9B2E332A7, "0000000809a378f9b2e332a7"),
    (0x80, "000000020080"),
    (-0x1234, "00000002edcc"),
    (-0xDEADBEEF, "00000005ff21524111"),
])
def test_mpint_rfc4251_examples(value: int, encoded: str) -> None:
    assert mpint(value).hex() == encoded
    assert Reader(bytes.fromhex(encoded)).mpint() == value


def test_reader_refuses_truncation_and_trailing_bytes() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x00\x00\x00\x05abc").string()
    with pytest.raises(DecodeError):
        Reader(b"\x00\x00").uint32()
    r = Reader(string(b"ab") + b"!")
    assert r.string() == b"ab"
    with pytest.raises(DecodeError):
        r.check_end()
    with pytest.raises(DecodeError):
        Reader(string(b"x" * 10)).string(max_length=5)
    with pytest.raises(DecodeError):
        Reader(string(b"\xff\xfe")).text()


def test_name_list_round_trip() -> None:
    data = Writer().name_list(["a", "b-c@d"]).name_list([]).getvalue()
    r = Reader(data)
    assert r.name_list() == ["a", "b-c@d"]
    assert r.name_list() == []


# --- version exchange --------------------------------------------------------------

def test_version_exchange_with_pre_banner_lines_split_anywhere() -> None:
    stream = b"hello there\r\nsecond line\nSSH-2.0-OpenSSH_9.2 comment\r\n\x00\x00\x00\x0c"
    for split in range(1, len(stream)):
        vx = VersionExchange()
        rest = vx.feed(stream[:split])
        if rest is None:
            rest = vx.feed(stream[split:])
        else:
            rest += stream[split:]
        assert rest == b"\x00\x00\x00\x0c"
        assert vx.server_version == b"SSH-2.0-OpenSSH_9.2 comment"
        assert vx.pre_banner_lines == ["hello there", "second line"]


@pytest.mark.parametrize("stream", [
    b"SSH-2.0-" + b"x" * 300 + b"\r\n",
    b"SSH-1.5-old\r\n",
    b"SSH-2.0\r\n",
    b"junk\n" * 2000,
    b"x" * 10000,
])
def test_version_exchange_rejects(stream: bytes) -> None:
    with pytest.raises(ProtocolError):
        VersionExchange().feed(stream)


def test_version_1_99_accepted() -> None:
    assert VersionExchange().feed(b"SSH-1.99-compat\r\n") == b""


# --- negotiation ---------------------------------------------------------------------

def test_choose_takes_first_client_preference_server_supports() -> None:
    assert algs.choose("kex", ["a", "b", "c"], ["c", "b"]) == "b"
    with pytest.raises(KexError, match="no common"):
        algs.choose("kex", ["a"], ["b"])


def test_weak_algorithms_are_off_by_default_and_opt_in() -> None:
    assert algs.INSECURE_KEX_DH_GROUP14_SHA1 not in algs.DEFAULT_KEX
    assert algs.INSECURE_HOSTKEY_SSH_RSA not in algs.DEFAULT_HOST_KEY
    cfg = sshlib.ClientConfig(user="u", kex_algorithms=[algs.INSECURE_KEX_DH_GROUP14_SHA1])
    assert cfg.kex_algorithms == (algs.INSECURE_KEX_DH_GROUP14_SHA1,)
    with pytest.raises(ValueError, match="unsupported"):
        sshlib.ClientConfig(user="u", ciphers=["3des-cbc"])
    with pytest.raises(TypeError):
        sshlib.ClientConfig(user="u", macs="hmac-sha2-256")  # type: ignore[arg-type]


def test_secrets_not_in_repr() -> None:
    cfg = sshlib.ClientConfig(user="u", auth=[Password("hunter2")])
    assert "hunter2" not in repr(cfg)


# --- user auth ---------------------------------------------------------------------------

class AuthHarness:
    def __init__(self, methods: list[sshlib.AuthMethod], sig_algs: list[str] | None = None) -> None:
        self.sent: list[bytes] = []
        self.ua = UserAuth("alice", methods, self.sent.append, lambda: sig_algs, False)
        self.ua.start(b"session-id")
        assert self.pop()[0] == m.MSG_SERVICE_REQUEST
        self.ua.handle(m.MSG_SERVICE_ACCEPT, Writer(m.MSG_SERVICE_ACCEPT).string("ssh-userauth")
                       .getvalue())
        assert self.method_of(self.pop()) == "none"

    def pop(self) -> bytes:
        return self.sent.pop(0)

    @staticmethod
    def method_of(request: bytes) -> str:
        r = Reader(request, 1)
        r.string()
        r.string()
        return r.text()

    def fail(self, allowed: list[str], partial: bool = False) -> list[ev.Event]:
        return self.ua.handle(m.MSG_USERAUTH_FAILURE, Writer(m.MSG_USERAUTH_FAILURE)
                              .name_list(allowed).boolean(partial).getvalue())


def test_userauth_tries_methods_in_order_and_honours_partial_success() -> None:
    key = generate_private_key("ssh-ed25519")
    h = AuthHarness([Password("pw"), PublicKeys(key)])
    # Only publickey allowed at first: password is skipped, not consumed.
    h.fail(["publickey"])
    query = h.pop()
    assert h.method_of(query) == "publickey"
    events = h.ua.handle(m.MSG_USERAUTH_PK_OK, Writer(m.MSG_USERAUTH_PK_OK).string("ssh-ed25519")
                         .string(key.public_key.blob).getvalue())
    (request,) = events
    assert isinstance(request, ev.SignatureRequested)
    assert request.data.startswith(string(b"session-id") + bytes([m.MSG_USERAUTH_REQUEST]))
    h.ua.provide_signature(key.sign(request.data))
    signed = Reader(h.pop(), 1)
    assert [signed.text(), signed.text(), signed.text(), signed.boolean()] == [
        "alice", "ssh-connection", "publickey", True]
    # Partial success: now the server wants a password as well.
    h.fail(["password"], partial=True)
    assert h.method_of(h.pop()) == "password"
    (done,) = h.ua.handle(m.MSG_USERAUTH_SUCCESS, bytes([m.MSG_USERAUTH_SUCCESS]))
    assert isinstance(done, ev.AuthSucceeded) and done.method == "password"


def test_userauth_runs_out_of_methods() -> None:
    h = AuthHarness([Password("pw")])
    h.fail(["password", "publickey"])
    assert h.method_of(h.pop()) == "password"
    with pytest.raises(AuthError) as info:
        h.fail(["publickey"])
    assert info.value.tried == ["password"]
    assert info.value.allowed == ["publickey"]


def test_keyboard_interactive_round() -> None:
    def answer(name: str, instruction: str, prompts: list[Prompt]) -> list[str]:
        return ["x"] * len(prompts)

    h = AuthHarness([sshlib.KeyboardInteractive(answer)])
    h.fail(["keyboard-interactive"])
    assert h.method_of(h.pop()) == "keyboard-interactive"
    info = (Writer(m.MSG_USERAUTH_PK_OK).string("n").string("i").string("")
            .uint32(2).string("Password: ").boolean(False).string("Echo: ").boolean(True)
            .getvalue())
    (event,) = h.ua.handle(m.MSG_USERAUTH_PK_OK, info)
    assert isinstance(event, ev.PromptsRequested)
    assert event.prompts == ["Password: ", "Echo: "]
    assert [p.echo for p in event.prompts] == [False, True]
    h.ua.answer_prompts(["secret", "shown"])
    r = Reader(h.pop(), 1)
    assert [r.uint32(), r.text(), r.text()] == [2, "secret", "shown"]


def test_rsa_key_uses_sha2_from_server_sig_algs() -> None:
    key = generate_private_key("ssh-rsa", bits=2048)
    h = AuthHarness([PublicKeys(key)], sig_algs=["ssh-ed25519", "rsa-sha2-256"])
    h.fail(["publickey"])
    r = Reader(h.pop(), 1)
    for _ in range(3):
        r.string()
    r.boolean()
    assert r.text() == "rsa-sha2-256"


# --- connection flow control -------------------------------------------------------------

def open_channel(window: int = 4096, max_packet: int = 1024) -> tuple[Connection, list[bytes], int]:
    sent: list[bytes] = []
    conn = Connection(sent.append, window, max_packet)
    cid = conn.open_channel("session")
    sent.clear()
    conn.handle(m.MSG_CHANNEL_OPEN_CONFIRMATION, Writer(m.MSG_CHANNEL_OPEN_CONFIRMATION)
                .uint32(cid).uint32(77).uint32(3000).uint32(1000).getvalue())
    return conn, sent, cid


def data_msg(cid: int, data: bytes) -> bytes:
    return Writer(m.MSG_CHANNEL_DATA).uint32(cid).string(data).getvalue()


def test_send_respects_remote_window_and_max_packet() -> None:
    conn, sent, cid = open_channel()
    assert conn.send_data(cid, b"x" * 5000) == 3000
    assert len(sent) == 3
    assert all(Reader(p, 1).uint32() == 77 for p in sent)
    assert conn.send_data(cid, b"y") == 0
    conn.handle(m.MSG_CHANNEL_WINDOW_ADJUST, Writer(m.MSG_CHANNEL_WINDOW_ADJUST).uint32(cid)
                .uint32(10).getvalue())
    assert conn.window_available(cid) == 10


def test_send_never_exceeds_a_window_smaller_than_max_packet() -> None:
    """dropbear: window 24576 < max packet 32759; the last chunk must be cut to the window."""
    sent: list[bytes] = []
    conn = Connection(sent.append, 4096, 1024)
    cid = conn.open_channel("session")
    conn.handle(m.MSG_CHANNEL_OPEN_CONFIRMATION, Writer(m.MSG_CHANNEL_OPEN_CONFIRMATION)
                .uint32(cid).uint32(5).uint32(24576).uint32(32759).getvalue())
    sent.clear()
    assert conn.send_data(cid, b"x" * 30000) == 24576
    assert sum(len(p) - 9 for p in sent) == 24576


def test_window_credit_only_after_consume() -> None:
    conn, sent, cid = open_channel(window=4096, max_packet=1024)
    for _ in range(4):
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"d" * 1000))
    assert sent == []  # nothing read yet: no credit
    with pytest.raises(ProtocolError, match="window"):
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"d" * 200))
    conn.consume(cid, 2000)
    (adjust,) = sent
    r = Reader(adjust)
    assert [r.byte(), r.uint32(), r.uint32()] == [m.MSG_CHANNEL_WINDOW_ADJUST, 77, 2000]


def test_window_credit_returns_every_eighth_of_the_window() -> None:
    """Credit goes back in batches of an eighth of the window (not half): over a long round
    trip, half-window batches leave a quarter of the window idle on average."""
    conn, sent, cid = open_channel(window=8192, max_packet=512)
    for _ in range(4):
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"d" * 512))
    conn.consume(cid, 1000)
    assert sent == []  # below 8192 // 8
    conn.consume(cid, 24)
    (adjust,) = sent
    r = Reader(adjust)
    assert [r.byte(), r.uint32(), r.uint32()] == [m.MSG_CHANNEL_WINDOW_ADJUST, 77, 1024]


def test_set_window_size_grows_the_window_at_once_and_never_shrinks_it() -> None:
    """SFTP asks for a bigger receive window after the open: the extra credit goes out as one
    WINDOW_ADJUST, the server may then send that much more, and a smaller size is ignored."""
    conn, sent, cid = open_channel(window=4096, max_packet=1024)
    conn.set_window_size(cid, 16384)
    (adjust,) = sent
    r = Reader(adjust)
    assert [r.byte(), r.uint32(), r.uint32()] == [m.MSG_CHANNEL_WINDOW_ADJUST, 77, 12288]
    for _ in range(16):  # 16 KiB unread: within the grown window
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"d" * 1024))
    with pytest.raises(ProtocolError, match="window"):
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"d"))
    conn.set_window_size(cid, 8192)
    assert len(sent) == 1
    conn.consume(cid, 2048)  # credit batches now follow the new size (16384 // 8)
    assert Reader(sent[-1]).byte() == m.MSG_CHANNEL_WINDOW_ADJUST and len(sent) == 2
    with pytest.raises(ValueError):
        conn.set_window_size(cid, 1 << 32)


def test_window_adjust_overflow_is_an_error() -> None:
    conn, _, cid = open_channel()
    with pytest.raises(ProtocolError):
        conn.handle(m.MSG_CHANNEL_WINDOW_ADJUST, Writer(m.MSG_CHANNEL_WINDOW_ADJUST).uint32(cid)
                    .uint32(0xFFFFFFFF).getvalue())


def test_exit_status_and_close_handshake() -> None:
    conn, sent, cid = open_channel()
    (status,) = conn.handle(m.MSG_CHANNEL_REQUEST, Writer(m.MSG_CHANNEL_REQUEST).uint32(cid)
                            .string("exit-status").boolean(False).uint32(3).getvalue())
    assert status == ev.ExitStatusReceived(cid, 3)
    events = conn.handle(m.MSG_CHANNEL_CLOSE, Writer(m.MSG_CHANNEL_CLOSE).uint32(cid).getvalue())
    assert events == [ev.ChannelClosed(cid)]
    assert Reader(sent[-1]).byte() == m.MSG_CHANNEL_CLOSE  # we answered the close
    # Messages for the channel we closed are ignored (as OpenSSH does), without a reply...
    before = len(sent)
    assert conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid, b"late")) == []
    assert conn.handle(m.MSG_CHANNEL_SUCCESS,
                       Writer(m.MSG_CHANNEL_SUCCESS).uint32(cid).getvalue()) == []
    assert conn.handle(m.MSG_CHANNEL_REQUEST, Writer(m.MSG_CHANNEL_REQUEST).uint32(cid)
                       .string("exit-status").boolean(True).uint32(0).getvalue()) == []
    assert len(sent) == before
    # ...while a channel that never existed is still a protocol error.
    with pytest.raises(ProtocolError, match="unknown channel"):
        conn.handle(m.MSG_CHANNEL_DATA, data_msg(cid + 100, b"bogus"))


def test_unknown_channel_request_with_reply_is_refused() -> None:
    conn, sent, cid = open_channel()
    conn.handle(m.MSG_CHANNEL_REQUEST, Writer(m.MSG_CHANNEL_REQUEST).uint32(cid)
                .string("keepalive@openssh.com").boolean(True).getvalue())
    assert sent == [Writer(m.MSG_CHANNEL_FAILURE).uint32(77).getvalue()]


def test_server_global_request_gets_failure() -> None:
    sent: list[bytes] = []
    conn = Connection(sent.append, 4096, 1024)
    conn.handle(m.MSG_GLOBAL_REQUEST, Writer(m.MSG_GLOBAL_REQUEST).string("keepalive@openssh.com")
                .boolean(True).getvalue())
    assert sent == [bytes([m.MSG_REQUEST_FAILURE])]


# --- time-based rekey (the core learns the time only through tick) -------------------------

def test_tick_starts_a_rekey_after_the_interval() -> None:
    import os

    from fakeserver import run_core

    from sshlib.protocol.client import ClientConnection

    host_key = generate_private_key("ssh-ed25519")
    cfg = sshlib.ClientConfig(user="tester", rekey_interval=60.0,
                              host_key_callback=sshlib.fixed_host_key(host_key.public_key))
    core = ClientConnection(cfg, rng=os.urandom, now=1000.0)

    def script(server: object) -> None:
        server.handshake()  # type: ignore[attr-defined]
        server.accept_auth()  # type: ignore[attr-defined]

    server, pipe = run_core(script, core=core, host_key=host_key)
    assert core.authenticated
    assert core.tick(1059.0) == []
    assert not core.kex_in_progress and not core.has_data_to_send()
    core.tick(1061.0)
    assert core.kex_in_progress  # our KEXINIT is queued
    server.do_kex(initiate=False)
    done = [e for e in pipe.events if isinstance(e, ev.KexCompleted)]
    assert [e.first for e in done] == [True, False]
    assert not core.kex_in_progress


# --- ProxyCommand tokens ----------------------------------------------------------

def test_proxy_command_tokens() -> None:
    assert driver.proxy_command_line("nc %h %p # %r %n 100%%", "db", 2222, "ann") == \
        "nc db 2222 # ann db 100%"
    with pytest.raises(ValueError, match="%x"):
        driver.proxy_command_line("nc %x", "db", 22, None)


# --- answers out of turn (typed errors, not asserts that vanish under python -O) ------------

def test_accept_host_key_out_of_turn_ends_the_connection_with_protocol_error() -> None:
    import os

    from fakeserver import run_core

    from sshlib.protocol.client import ClientConnection

    cfg = sshlib.ClientConfig(user="tester", host_key_callback=sshlib.insecure_ignore_host_key())
    early = ClientConnection(cfg, rng=os.urandom, now=0.0)  # no version exchange yet
    events = early.accept_host_key()
    assert [type(e) for e in events] == [ev.ConnectionTerminated]
    error = events[0].error  # type: ignore[attr-defined]
    assert isinstance(error, sshlib.ProtocolError) and "awaiting verification" in str(error)
    assert early.closed and early.accept_host_key() == []

    host_key = generate_private_key("ssh-ed25519")
    cfg = sshlib.ClientConfig(user="tester",
                              host_key_callback=sshlib.fixed_host_key(host_key.public_key))
    late = ClientConnection(cfg, rng=os.urandom, now=0.0)

    def script(server: object) -> None:
        server.handshake()  # type: ignore[attr-defined]
        server.accept_auth()  # type: ignore[attr-defined]

    run_core(script, core=late, host_key=host_key)
    assert late.authenticated
    events = late.accept_host_key()  # the verdict was given already
    assert [type(e) for e in events] == [ev.ConnectionTerminated]
    assert isinstance(events[0].error, sshlib.ProtocolError)  # type: ignore[attr-defined]
