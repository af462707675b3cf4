"""Tests for sshlib.knownhosts.

Matching is checked against OpenSSH itself: ``ssh-keygen -F`` runs the same
hostfile.c matching code the ssh client uses, ``ssh-keygen -H`` hashes files,
and a throwaway sshd is scanned with ``ssh-keyscan`` for real keyscan lines.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshlib import algorithms
from sshlib.errors import HostKeyError, HostKeyMismatchError, UnknownHostKeyError
from sshlib.keys import PublicKey, generate_private_key, load_public_key
from sshlib.knownhosts import (
    MARKER_CERT_AUTHORITY,
    MARKER_REVOKED,
    KnownHosts,
    callback,
    hash_hostname,
    line,
    normalize,
)


def run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, check=False)
    assert proc.returncode == 0, f"{args} failed: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, PublicKey]:
    return {
        "ed": generate_private_key("ssh-ed25519").public_key,
        "ed2": generate_private_key("ssh-ed25519").public_key,
        "ec": generate_private_key("ecdsa-sha2-nistp256").public_key,
        "rsa": generate_private_key("ssh-rsa", 1024).public_key,
    }


def db(text: str, source: str = "kh") -> KnownHosts:
    return KnownHosts.from_lines(text.splitlines(), source)


# --------------------------------------------------------------------------
# agreement with OpenSSH's own matcher
# --------------------------------------------------------------------------

PATTERN_LINES = [
    "# a comment",
    "",
    "example.com,192.0.2.1 {ed}",
    "*.wild.org,!bad.wild.org {ed}",
    "[port.example]:2222 {ed}",
    "host?.q {ec}",
    "::1 {ed}",
    "[::1]:2200 {ed}",
    "[*.ported]:* {rsa}",
    "Mixed.Case.Example {ed}",
    "a.*.b,!a.x.b {ec}",
    "[2001:db8::5]:22022,2001:db8::5 {rsa}",
    "10.0.0.? {ed}",
    "multi.example {ed}",
    "multi.example {ec}",
    "multi.example {rsa}",
]

QUERIES = [
    "example.com", "192.0.2.1", "192.0.2.10", "a.wild.org", "bad.wild.org", "x.bad.wild.org",
    "wild.org", "[port.example]:2222", "port.example", "[port.example]:2223", "host1.q",
    "host12.q", "host.q", "::1", "[::1]:2200", "[::1]:2201", "[a.ported]:1234", "a.ported",
    "mixed.case.example", "a.y.b", "a.x.b", "a..b", "[2001:db8::5]:22022", "2001:db8::5",
    "10.0.0.7", "10.0.0.77", "multi.example", "nothing.here",
]


def split_query(query: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[(.*)\]:(\d+)", query)
    if match:
        return match.group(1), int(match.group(2))
    return query, 22


def ssh_keygen_find(path: Path, query: str) -> list[int]:
    """Line numbers ``ssh-keygen -F`` reports for a host (exit 1 means none)."""
    proc = subprocess.run(["ssh-keygen", "-F", query, "-f", str(path)], capture_output=True,
                          check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return [int(n) for n in re.findall(r"found: line (\d+)", proc.stdout.decode())]


@pytest.fixture(scope="module")
def pattern_file(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, PublicKey]) -> Path:
    path = tmp_path_factory.mktemp("kh") / "known_hosts"
    text = "\n".join(PATTERN_LINES).format(**{k: v.openssh() for k, v in keys.items()})
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("query", QUERIES)
def test_lookup_matches_ssh_keygen(pattern_file: Path, query: str) -> None:
    ours = [e.line_number for e in KnownHosts.from_file(pattern_file).lookup(*split_query(query))]
    assert ours == ssh_keygen_find(pattern_file, query)


def test_oracle_is_not_trivial(pattern_file: Path) -> None:
    """Guard against the comparison passing because everything is empty."""
    found = {q: ssh_keygen_find(pattern_file, q) for q in QUERIES}
    assert sum(1 for v in found.values() if v) >= 15
    assert found["bad.wild.org"] == [] and found["a.wild.org"] == [4]
    assert found["multi.example"] == [14, 15, 16]


@pytest.fixture(scope="module")
def hashed_file(pattern_file: Path) -> Path:
    hashed = pattern_file.with_name("known_hosts_hashed")
    hashed.write_bytes(pattern_file.read_bytes())
    run("ssh-keygen", "-q", "-H", "-f", str(hashed))
    return hashed


def test_ssh_keygen_really_hashed(hashed_file: Path) -> None:
    text = hashed_file.read_text()
    assert text.count("|1|") >= 10
    assert "example.com" not in text and "multi.example" not in text


@pytest.mark.parametrize("query", QUERIES)
def test_hashed_lookup_matches_ssh_keygen(hashed_file: Path, query: str) -> None:
    ours = [e.line_number for e in KnownHosts.from_file(hashed_file).lookup(*split_query(query))]
    assert ours == ssh_keygen_find(hashed_file, query)


def test_hashed_entries_accept_keys(hashed_file: Path, keys: dict[str, PublicKey]) -> None:
    known = KnownHosts.from_file(hashed_file)
    entries = known.lookup("192.0.2.1")
    assert entries and all(e.hashed for e in entries)
    known.check("example.com", 22, keys["ed"])
    known.check("192.0.2.1", 22, keys["ed"])
    known.check("port.example", 2222, keys["ed"])
    known.check("::1", 2200, keys["ed"])
    known.check("2001:db8::5", 22022, keys["rsa"])
    for key in ("ed", "ec", "rsa"):
        known.check("multi.example", 22, keys[key])
    with pytest.raises(HostKeyMismatchError):
        known.check("example.com", 22, keys["ed2"])
    with pytest.raises(UnknownHostKeyError):
        known.check("port.example", 22, keys["ed"])


def test_hash_hostname_matches_ssh_keygen(hashed_file: Path) -> None:
    """Recompute ssh-keygen's hashes from their salts: a known-answer check."""
    checked = 0
    for text in hashed_file.read_text().splitlines():
        if not text.startswith("|1|"):
            continue
        hosts = text.split()[0]
        salt = base64.b64decode(hosts.split("|")[2])
        candidates = [normalize(*split_query(q)) for q in QUERIES]
        if any(hash_hostname(c, salt) == hosts for c in candidates):
            checked += 1
    assert checked >= 10
    assert hash_hostname("example.com", bytes(20)) == hash_hostname("example.com", bytes(20))
    first, second = hash_hostname("example.com"), hash_hostname("example.com")
    assert first != second and first.startswith("|1|")
    assert len(base64.b64decode(first.split("|")[2])) == 20


# --------------------------------------------------------------------------
# verdicts
# --------------------------------------------------------------------------


def test_accept_plain(keys: dict[str, PublicKey]) -> None:
    known = db(f"server.example,10.1.2.3 {keys['ed'].openssh()} root@server\n")
    known.check("server.example", 22, keys["ed"])
    known.check("10.1.2.3", 22, keys["ed"])
    known.check("SERVER.Example", 22, keys["ed"])  # host names are case-insensitive
    (entry,) = known.lookup("server.example")
    assert entry.comment == "root@server"
    assert entry.marker is None and not entry.hashed
    assert entry.location == "kh:1"


def test_rsa_entry_accepts_any_rsa_signature_algorithm(keys: dict[str, PublicKey]) -> None:
    """The entry is the ssh-rsa key; rsa-sha2-* only changes the signature, not the blob."""
    known = db(f"h {keys['rsa'].openssh()}\n")
    known.check("h", 22, keys["rsa"])
    assert known.host_key_algorithms("h") == ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]


def test_mismatch_message(keys: dict[str, PublicKey]) -> None:
    known = db(f"# header\nh.example {keys['ed'].openssh()}\nh.example {keys['ec'].openssh()}\n",
               source="/home/u/.ssh/known_hosts")
    with pytest.raises(HostKeyMismatchError) as info:
        known.check("h.example", 22, keys["ed2"])
    message = str(info.value)
    assert "h.example" in message
    assert keys["ed2"].fingerprint() in message
    assert "/home/u/.ssh/known_hosts:2" in message and "/home/u/.ssh/known_hosts:3" in message
    assert keys["ed"].fingerprint() in message
    assert isinstance(info.value, HostKeyError)


def test_mismatch_other_key_type_hint(keys: dict[str, PublicKey]) -> None:
    known = db(f"h {keys['rsa'].openssh()}\n")
    with pytest.raises(HostKeyMismatchError, match="No ssh-ed25519 key is known"):
        known.check("h", 22, keys["ed"])


def test_unknown_message_has_line_to_add(keys: dict[str, PublicKey]) -> None:
    known = KnownHosts.from_lines([f"other {keys['ed'].openssh()}"], "/tmp/kh_file")
    with pytest.raises(UnknownHostKeyError) as info:
        known.check("New.Example", 2022, keys["ec"])
    message = str(info.value)
    assert "/tmp/kh_file" in message
    assert keys["ec"].fingerprint() in message
    suggested = message.splitlines()[-1]
    assert suggested == f"[new.example]:2022 {keys['ec'].openssh()}"
    # The suggested line really makes the host known.
    KnownHosts.from_lines([suggested]).check("new.example", 2022, keys["ec"])
    with pytest.raises(UnknownHostKeyError):
        KnownHosts().check("x", 22, keys["ed"])


def test_revoked(keys: dict[str, PublicKey]) -> None:
    text = (f"h {keys['ed'].openssh()}\n"
            f"@revoked * {keys['ed'].openssh()}\n"
            f"h {keys['ec'].openssh()}\n")
    known = db(text)
    with pytest.raises(HostKeyError, match="revoked") as info:
        known.check("h", 22, keys["ed"])
    assert not isinstance(info.value, (HostKeyMismatchError, UnknownHostKeyError))
    assert "kh:2" in str(info.value)
    known.check("h", 22, keys["ec"])  # other keys of the host still work
    # A revoked key is refused for every host, even one its line does not name.
    scoped = db(f"@revoked only.this {keys['ed'].openssh()}\nh {keys['ed'].openssh()}\n")
    with pytest.raises(HostKeyError, match="revoked"):
        scoped.check("h", 22, keys["ed"])
    assert [e.marker for e in known.lookup("h")] == [None, MARKER_REVOKED, None]


def test_port_handling(keys: dict[str, PublicKey]) -> None:
    known = db(f"plain {keys['ed'].openssh()}\n[ported]:2222 {keys['ec'].openssh()}\n")
    known.check("plain", 22, keys["ed"])
    with pytest.raises(UnknownHostKeyError):
        known.check("plain", 2222, keys["ed"])  # unbracketed entries mean port 22 only
    known.check("ported", 2222, keys["ec"])
    with pytest.raises(UnknownHostKeyError):
        known.check("ported", 22, keys["ec"])
    with pytest.raises(UnknownHostKeyError):
        known.check("ported", 2223, keys["ec"])


def test_wildcards_and_negation(keys: dict[str, PublicKey]) -> None:
    known = db(f"*.corp.example,!db?.corp.example {keys['ed'].openssh()}\n"
               f"db?.corp.example {keys['ec'].openssh()}\n")
    known.check("web.corp.example", 22, keys["ed"])
    known.check("a.b.corp.example", 22, keys["ed"])
    known.check("db1.corp.example", 22, keys["ec"])
    with pytest.raises(HostKeyMismatchError):
        known.check("db1.corp.example", 22, keys["ed"])  # negated out of line 1
    known.check("db12.corp.example", 22, keys["ed"])  # ? is exactly one character
    with pytest.raises(UnknownHostKeyError):
        known.check("corp.example", 22, keys["ed"])
    # A line with only a negation never matches anything.
    with pytest.raises(UnknownHostKeyError):
        db(f"!foo {keys['ed'].openssh()}\n").check("bar", 22, keys["ed"])
    # Regex metacharacters in patterns are literal.
    dotted = db(f"a.b {keys['ed'].openssh()}\n")
    with pytest.raises(UnknownHostKeyError):
        dotted.check("axb", 22, keys["ed"])


def test_ipv6(keys: dict[str, PublicKey]) -> None:
    known = db(f"::1,fe80::1 {keys['ed'].openssh()}\n[2001:db8::1]:2200 {keys['ec'].openssh()}\n")
    known.check("::1", 22, keys["ed"])
    known.check("[::1]", 22, keys["ed"])
    known.check("FE80::1", 22, keys["ed"])
    known.check("2001:db8::1", 2200, keys["ec"])
    with pytest.raises(UnknownHostKeyError):
        known.check("::1", 2200, keys["ed"])
    with pytest.raises(UnknownHostKeyError) as info:
        known.check("2001:db8::2", 22, keys["ed"])
    assert str(info.value).splitlines()[-1] == f"2001:db8::2 {keys['ed'].openssh()}"


def test_multiple_keys_per_host_and_algorithms(keys: dict[str, PublicKey]) -> None:
    known = db(f"m {keys['ec'].openssh()}\nm {keys['ed'].openssh()}\n"
               f"@cert-authority m {keys['rsa'].openssh()}\n")
    known.check("m", 22, keys["ec"])
    known.check("m", 22, keys["ed"])
    # The @cert-authority line puts the host certificate algorithms first (as OpenSSH does).
    assert known.host_key_algorithms("m") == [*algorithms.CERT_HOST_KEY,
                                              "ecdsa-sha2-nistp256", "ssh-ed25519"]
    assert known.host_key_algorithms("unknown") == []
    with pytest.raises(HostKeyMismatchError):
        known.check("m", 22, keys["rsa"])  # a CA key is not a host key


def test_cert_authority_is_parsed_but_not_trusted(keys: dict[str, PublicKey]) -> None:
    known = db(f"@cert-authority *.example {keys['ed'].openssh()}\n")
    (entry,) = known.lookup("a.example")
    assert entry.marker == MARKER_CERT_AUTHORITY
    with pytest.raises(UnknownHostKeyError, match="cert-authority"):
        known.check("a.example", 22, keys["ed"])


def test_malformed_lines_are_skipped(keys: dict[str, PublicKey],
                                     caplog: pytest.LogCaptureFixture) -> None:
    ed = keys["ed"].openssh()
    ed_type, ed_b64 = ed.split()
    lines = [
        "onlyhost",                                   # 1 too few fields
        f"h {ed_type}",                               # 2 no key data
        f"h {ed_type} !!!notbase64",                  # 3
        f"h ssh-rsa {ed_b64}",                        # 4 type disagrees with blob
        f"@bogus h {ed}",                             # 5 unknown marker
        f"|2|abc|def {ed}",                           # 6 unknown hash version
        f"|1|AAAA|short {ed}",                        # 7 hash of the wrong length
        f"h ssh-dss {base64.b64encode(b'x' * 20).decode()}",  # 8 junk dss
        f"h,,g {ed}",                                 # 9 empty pattern
        "h 1024 35 1234567",                          # 10 SSH1 RSA key
        "\tgood\t" + ed.replace(" ", "\t") + "\tcomment with  spaces ",  # 11 valid, tabs
        f"@revoked {ed}",                             # 12 marker but no hosts
        "@revoked",                                   # 13
        f"h {ed_type} {ed_b64[:-6]}",                 # 14 truncated key
    ]
    with caplog.at_level(logging.DEBUG, logger="sshlib.knownhosts"):
        known = KnownHosts.from_lines(lines, "/etc/kh")
    assert [(e.line_number, e.hosts) for e in known.entries] == [(11, "good")]
    assert known.entries[0].comment == "comment with  spaces"
    logged = caplog.text
    for number in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14):
        assert f"/etc/kh:{number}:" in logged, number
    known.check("good", 22, keys["ed"])


def test_line_and_normalize(keys: dict[str, PublicKey]) -> None:
    ed = keys["ed"].openssh()
    assert normalize("Example.COM") == "example.com"
    assert normalize("example.com", 22) == "example.com"
    assert normalize("example.com", 2222) == "[example.com]:2222"
    assert normalize("::1") == "::1"  # OpenSSH writes IPv6 on port 22 without brackets
    assert normalize("[::1]") == "::1"
    assert normalize("::1", 830) == "[::1]:830"
    with pytest.raises(ValueError):
        normalize("h", 0)
    assert line(["example.com"], keys["ed"]) == f"example.com {ed}"
    assert line(["example.com:22", "10.0.0.1:2222"], keys["ed"]) == (
        f"example.com,[10.0.0.1]:2222 {ed}")
    assert line(["[::1]:2200", "::1", "[fe80::2]"], keys["ed"]) == f"[::1]:2200,::1,fe80::2 {ed}"
    hashed = hash_hostname("[h]:2200")
    assert line([hashed], keys["ed"]) == f"{hashed} {ed}"
    with pytest.raises(ValueError):
        line([], keys["ed"])
    with pytest.raises(TypeError):
        line("example.com", keys["ed"])


def test_hash_hostname_entries_work(keys: dict[str, PublicKey]) -> None:
    known = db(f"{hash_hostname(normalize('secret.example', 2200))} {keys['ed'].openssh()}\n"
               f"{hash_hostname('secret.example')} {keys['ec'].openssh()}\n")
    known.check("secret.example", 2200, keys["ed"])
    known.check("Secret.Example", 22, keys["ec"])
    with pytest.raises(HostKeyMismatchError):
        known.check("secret.example", 22, keys["ed"])
    with pytest.raises(UnknownHostKeyError):
        known.check("secret.example", 2201, keys["ed"])


# --------------------------------------------------------------------------
# callback()
# --------------------------------------------------------------------------


def test_callback_reads_files_once(tmp_path: Path, keys: dict[str, PublicKey],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    user = tmp_path / ".ssh" / "known_hosts"
    user.write_text(f"a {keys['ed'].openssh()}\n")
    system = tmp_path / "ssh_known_hosts"
    system.write_text(f"b {keys['ec'].openssh()}\n")
    check = callback("~/.ssh/known_hosts", system, tmp_path / "missing")
    check("a", 22, keys["ed"])
    check("b", 22, keys["ec"])
    with pytest.raises(HostKeyMismatchError):
        check("a", 22, keys["ec"])
    with pytest.raises(UnknownHostKeyError) as info:
        check("c", 22, keys["ed"])
    assert str(user) in str(info.value)  # suggests the first file
    user.write_text("")  # read at callback() time, not per call
    check("a", 22, keys["ed"])


def test_callback_missing_files_are_empty(tmp_path: Path, keys: dict[str, PublicKey]) -> None:
    check = callback(tmp_path / "nope")
    with pytest.raises(UnknownHostKeyError):
        check("a", 22, keys["ed"])
    with pytest.raises(ValueError):
        callback()


# --------------------------------------------------------------------------
# real ssh-keyscan output
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[Path]]]:
    """A throwaway sshd with three host keys, only there to be scanned."""
    base = tmp_path_factory.mktemp("sshd")
    host_keys = []
    for kind, bits in (("ed25519", None), ("ecdsa", "384"), ("rsa", "2048")):
        path = base / f"host_{kind}"
        args = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)]
        if bits:
            args += ["-b", bits]
        run(*args)
        host_keys.append(path)
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nPidFile none\nUsePAM no\nStrictModes no\n"
        + "".join(f"HostKey {p}\n" for p in host_keys))
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.05)
        yield port, host_keys
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize("hashed", [False, True])
def test_ssh_keyscan_output(sshd: tuple[int, list[Path]], tmp_path: Path, hashed: bool) -> None:
    port, host_keys = sshd
    args = ["ssh-keyscan", "-p", str(port), "-T", "5"]
    if hashed:
        args.append("-H")
    out = run(*args, "127.0.0.1")
    assert out.count("\n") >= 3
    path = tmp_path / "scanned"
    path.write_text(f"# 127.0.0.1:{port} SSH-2.0-OpenSSH comment line\n" + out)
    known = KnownHosts.from_file(path)
    assert len(known.entries) == 3
    assert all(e.hashed == hashed for e in known.entries)
    check = callback(path)
    for host_key in host_keys:
        key = load_public_key(f"{host_key}.pub")
        check("127.0.0.1", port, key)
        with pytest.raises(UnknownHostKeyError):
            check("127.0.0.1", 22, key)
        with pytest.raises(UnknownHostKeyError):
            check("127.0.0.2", port, key)
    with pytest.raises(HostKeyMismatchError):
        check("127.0.0.1", port, generate_private_key().public_key)


# --------------------------------------------------------------------------
# what the errors carry, and known key types first
# --------------------------------------------------------------------------


def test_errors_carry_host_offered_and_known_keys(keys: dict[str, PublicKey]) -> None:
    known = db(f"h {keys['ed'].openssh()}\nh {keys['ec'].openssh()}\n")
    with pytest.raises(HostKeyMismatchError) as mismatch:
        known.check("h", 22, keys["ed2"])
    assert (mismatch.value.host, mismatch.value.port) == ("h", 22)
    assert mismatch.value.key == keys["ed2"]
    assert set(mismatch.value.known) == {keys["ed"], keys["ec"]}
    with pytest.raises(UnknownHostKeyError) as unknown:
        known.check("other", 2222, keys["rsa"])
    assert (unknown.value.host, unknown.value.port, unknown.value.key) == (
        "other", 2222, keys["rsa"])
    assert unknown.value.known == ()


def test_fixed_host_key_mismatch_is_typed(keys: dict[str, PublicKey]) -> None:
    from sshlib.config import fixed_host_key
    check = fixed_host_key(keys["ed"])
    check("h", 22, keys["ed"])
    with pytest.raises(HostKeyMismatchError) as info:
        check("h", 22, keys["ec"])
    assert info.value.key == keys["ec"] and info.value.known == (keys["ed"],)


def test_for_host_puts_known_key_types_first(tmp_path: Path,
                                             keys: dict[str, PublicKey]) -> None:
    from sshlib import algorithms as algs
    from sshlib.config import ClientConfig
    path = tmp_path / "known_hosts"
    path.write_text(f"[h]:2222 {keys['ec'].openssh()}\nh {keys['rsa'].openssh()}\n")
    config = ClientConfig(user="u", host_key_callback=callback(path))
    default = list(algs.DEFAULT_HOST_KEY)
    assert list(config.host_key_algorithms or ()) == default

    ec = config.for_host("h", 2222)
    assert (ec.host_key_algorithms or ("",))[0] == "ecdsa-sha2-nistp256"
    assert sorted(ec.host_key_algorithms or ()) == sorted(default)  # same set, new order
    rsa = list(config.for_host("h", 22).host_key_algorithms or ())
    assert rsa[:2] == ["rsa-sha2-512", "rsa-sha2-256"]
    assert "ssh-rsa" not in rsa  # known_hosts never re-enables a weak algorithm
    assert config.for_host("unknown", 22) is config
    assert list(config.host_key_algorithms or ()) == default  # the original is untouched

    chosen = ClientConfig(user="u", host_key_callback=callback(path),
                          host_key_algorithms=["ssh-ed25519", "ecdsa-sha2-nistp256"])
    assert chosen.for_host("h", 2222) is chosen  # an explicit order is the user's choice
