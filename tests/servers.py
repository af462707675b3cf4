"""The test suite's SSH servers: sshlib.testing plus what needs root (see docs/testing.md).

sshlib.testing (the library's unprivileged helper) runs sshd as the current
user.  On top of it this harness, used by conftest.py and the tests:

- as root (as CI runs), logs OpenSSH servers in as the dedicated system
  account ``sshlibtest`` with a known random password (created here, on
  demand, once per machine), with PAM on, so password and
  keyboard-interactive logins can be tested;
- starts Dropbear servers (root only: Dropbear reads the login user's
  ~/.ssh/authorized_keys, so our keys go into the test account's);
- records what each server offers (OPENSSH_ALGORITHMS, DROPBEAR_ALGORITHMS)
  and probes a live server's KEXINIT with probe_kexinit, without sshlib;
- checks that the tools exist (ensure_tools); it never installs anything:
  scripts/test.sh does, from its NEED table, the one list of packages.

It re-exports sshlib.testing's names, so ``import servers as testing`` gives
the tests one module.  As a normal user OpenSSH servers log you in with keys
only, and Dropbear servers and password logins fail saying they need root.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import re
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sshlib.testing import (
    HOST_KEY_TYPES,
    LOCALHOST,
    USER_KEY_FORMATS,
    USER_KEY_NAMES,
    USER_KEY_PASSPHRASE,
    USER_KEY_TYPES,
    TestServer,
    tool_path,
    user_keys,
)
from sshlib.testing import start_openssh as start_private_openssh

__all__ = [
    "DROPBEAR_ALGORITHMS",
    "DROPBEAR_HOST_KEY_TYPES",
    "HOST_KEY_TYPES",
    "LOCALHOST",
    "OPENSSH_ALGORITHMS",
    "TEST_ACCOUNT",
    "USER_KEY_FORMATS",
    "USER_KEY_NAMES",
    "USER_KEY_PASSPHRASE",
    "USER_KEY_TYPES",
    "KexInitProbe",
    "TestServer",
    "ensure_test_account",
    "ensure_tools",
    "probe_kexinit",
    "start_dropbear",
    "start_openssh",
]

#: The system account created (as root) for logins to test servers.
TEST_ACCOUNT = "sshlibtest"

#: Dropbear loads at most four host keys ("Too many hostkeys" otherwise).
DROPBEAR_HOST_KEY_TYPES: tuple[str, ...] = ("ed25519", "ecdsa-256", "ecdsa-521", "rsa")

#: What a server from `start_openssh` offers in its KEXINIT (OpenSSH 9.2p1,
#: Debian 12), in the server's order.  Recorded with `probe_kexinit`; the
#: test suite checks it against the live server.  Beyond sshd's defaults we
#: enable diffie-hellman-group14-sha1 and ssh-rsa (SHA-1) so the insecure
#: algorithms sshlib implements can be tested.
OPENSSH_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "kex": (
        "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com",
        "curve25519-sha256", "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256",
        "diffie-hellman-group14-sha1", "kex-strict-s-v00@openssh.com",
    ),
    "host_key": (
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
    ),
    "cipher": (
        "chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr",
        "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    ),
    "mac": (
        "umac-64-etm@openssh.com", "umac-128-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com", "umac-64@openssh.com", "umac-128@openssh.com",
        "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1",
    ),
    "compression": ("none", "zlib@openssh.com"),
}

#: What a server from `start_dropbear` offers (Dropbear 2022.83, Debian 12,
#: with the host keys in DROPBEAR_HOST_KEY_TYPES), recorded with
#: `probe_kexinit` and checked against the live server by the test suite.
#: Note: no AES-GCM, no ETM MACs, no rsa-sha2-512, no DH group exchange.
#: "pubkey" is the server-sig-algs list it sends in EXT_INFO (seen with ssh -vv).
DROPBEAR_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "kex": (
        "curve25519-sha256", "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp521", "ecdh-sha2-nistp384", "ecdh-sha2-nistp256",
        "diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1",
        "kexguess2@matt.ucc.asn.au", "kex-strict-s-v00@openssh.com",
    ),
    "host_key": (
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521", "rsa-sha2-256", "ssh-rsa",
    ),
    "cipher": ("chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"),
    "mac": ("hmac-sha1", "hmac-sha2-256"),
    "compression": ("zlib@openssh.com", "none"),
    "pubkey": (
        "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ecdsa-sha2-nistp256@openssh.com",
        "rsa-sha2-256", "ssh-rsa", "ssh-dss",
    ),
}
_ROOT = Path(__file__).resolve().parent.parent
_TEST_SH = _ROOT / "scripts" / "test.sh"
#: The programs the servers and the server tests drive (packages: scripts/test.sh's NEED).
SERVER_TOOLS: tuple[str, ...] = (
    "/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/sftp",
    "/usr/sbin/dropbear", "/usr/bin/dropbearkey", "/usr/bin/dropbearconvert",
    "/usr/bin/dbclient", "/usr/bin/openssl",
)
_DROPBEAR = "/usr/sbin/dropbear"
_STATE_DIR = Path("/var/lib/sshlib-testing")  # root-only: the test account's password
_TAG = "sshlib-testing:"  # comment marking our lines in the test account's authorized_keys


def debian_packages() -> dict[str, str]:
    """scripts/test.sh's NEED table (file -> Debian package): the one list of packages."""
    return dict(re.findall(r"^\s*\[(/[^\]]+)\]=(\S+)\s*$", _TEST_SH.read_text(), re.M))


def ensure_tools(*tools: str) -> None:
    """Fail saying how to install them when any of `tools` (default SERVER_TOOLS) is missing.

    Installing is scripts/test.sh's job (as root it apt-installs its NEED
    table with service start-up blocked); this only checks.
    """
    missing = [tool for tool in tools or SERVER_TOOLS if tool_path(tool) is None]
    if not missing:
        return
    need = debian_packages()
    packages = sorted({need.get(tool, "?") for tool in missing})
    raise RuntimeError(
        f"the test servers need {', '.join(missing)}: run bash scripts/test.sh as root (it "
        "installs what the tests need), or install them as root with:\n    apt-get update && "
        f"apt-get install -y --no-install-recommends {' '.join(packages)}")


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    """Serialise account set-up and authorized_keys edits between processes.

    Several test runs may share one machine (and one test account) at once.
    """
    _STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(_STATE_DIR / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_account_password: str | None = None
_account_mutex = threading.Lock()


def ensure_test_account() -> tuple[str, str]:
    """Create (once, idempotently) the ``sshlibtest`` account; return (user, password).

    Root only.  The password is random, made once per machine and kept in a
    root-only file (/var/lib/sshlib-testing/password): a fresh password per
    run would break other test runs sharing the machine at the same time.
    It is (re)applied with chpasswd once per process.
    """
    global _account_password
    if os.geteuid() != 0:
        raise RuntimeError(f"creating the {TEST_ACCOUNT!r} account needs root; "
                           "password and keyboard-interactive tests must run as root")
    with _account_mutex:
        if _account_password is not None:
            return TEST_ACCOUNT, _account_password
        with _state_lock():
            try:
                pwd.getpwnam(TEST_ACCOUNT)
            except KeyError:
                _run(["useradd", "--system", "--create-home", "--home-dir",
                      f"/home/{TEST_ACCOUNT}", "--shell", "/bin/bash", "--user-group",
                      "--comment", "sshlib test account", TEST_ACCOUNT])
            pw_file = _STATE_DIR / "password"
            if pw_file.exists():
                password = pw_file.read_text().strip()
            else:
                password = "sshlib-" + secrets.token_urlsafe(18)
                fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(password + "\n")
            _run(["chpasswd"], input_text=f"{TEST_ACCOUNT}:{password}\n")
            account = pwd.getpwnam(TEST_ACCOUNT)
            home = Path(account.pw_dir)
            if not home.is_dir():
                home.mkdir(mode=0o755, parents=True)
                os.chown(home, account.pw_uid, account.pw_gid)
        _account_password = password
        return TEST_ACCOUNT, password


def _run(args: Sequence[str], *, input_text: str | None = None) -> str:
    """Run a tool (useradd, chpasswd, dropbearkey); RuntimeError with its output if it fails."""
    done = subprocess.run(list(args), input=input_text, capture_output=True, text=True,
                          check=False, stdin=None if input_text else subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: status {done.returncode}\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class KexInitProbe:
    """A server's identification line and the name-lists of its first KEXINIT."""

    banner: str
    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    cipher_client_to_server: tuple[str, ...]
    cipher_server_to_client: tuple[str, ...]
    mac_client_to_server: tuple[str, ...]
    mac_server_to_client: tuple[str, ...]
    compression_client_to_server: tuple[str, ...]
    compression_server_to_client: tuple[str, ...]


def probe_kexinit(host: str, port: int, timeout: float = 5.0) -> KexInitProbe:
    """Connect, send an identification line, and parse the server's KEXINIT.

    Deliberately independent of sshlib (struct only) so it can check what a
    server offers without trusting the code under test.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"SSH-2.0-sshlib_testing_probe\r\n")
        fh = sock.makefile("rb")
        banner = b""
        for _ in range(50):  # RFC 4253 4.2: other lines may precede the version
            banner = fh.readline(256)
            if not banner or banner.startswith(b"SSH-"):
                break
        if not banner.startswith(b"SSH-"):
            raise RuntimeError(f"no SSH identification line from {host}:{port}")
        head = fh.read(5)
        if len(head) != 5:
            raise RuntimeError("connection closed before KEXINIT")
        packet_len, pad_len = struct.unpack(">IB", head)
        if not 5 < packet_len < 65536 or pad_len >= packet_len:
            raise RuntimeError(f"implausible packet length {packet_len}")
        body = fh.read(packet_len - 1)
        if len(body) != packet_len - 1:
            raise RuntimeError("connection closed inside KEXINIT")
    payload = body[: len(body) - pad_len]
    if not payload or payload[0] != 20:
        raise RuntimeError(f"first packet is not KEXINIT (type {payload[:1].hex()})")
    lists: list[tuple[str, ...]] = []
    off = 17  # type byte + 16-byte cookie
    for _ in range(10):
        if off + 4 > len(payload):
            raise RuntimeError("truncated KEXINIT")
        (n,) = struct.unpack_from(">I", payload, off)
        off += 4
        if off + n > len(payload):
            raise RuntimeError("truncated KEXINIT")
        text = payload[off: off + n].decode("ascii")
        off += n
        lists.append(tuple(text.split(",")) if text else ())
    return KexInitProbe(banner.decode("ascii", "replace").rstrip("\r\n"), *lists[:8])


# --------------------------------------------------------------------------
# OpenSSH: sshlib.testing.start_openssh, as the test account when root
# --------------------------------------------------------------------------

#: sshd_config the harness adds as root: PAM (keyboard-interactive) and root logins.
_ROOT_SSHD_CONFIG: dict[str, str] = {"UsePAM": "yes", "PermitRootLogin": "yes"}


def _prepare_root_sshd(login_uid: int) -> None:
    """What sshd run as root needs on a bare machine (a container without systemd)."""
    # sshd's privilege-separation directory (normally made by systemd/init).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for nologin in (Path("/run/nologin"), Path("/etc/nologin")):
        if nologin.exists() and login_uid != 0:
            raise RuntimeError(f"{nologin} exists, so PAM (pam_nologin) refuses every "
                               f"non-root login; remove it (often a leftover of boot)")


def start_openssh(*, workdir: Path | None = None, extra_config: Mapping[str, str] | None = None,
                  user: str | None = None, password: str | None = None,
                  timeout: float = 10, fresh_keys: bool = False,
                  sshd: str | None = None) -> TestServer:
    """sshlib.testing.start_openssh; as root, logging in the ``sshlibtest`` account by default.

    As root the login user defaults to the test account (created on demand,
    with its password in ``server.password``) and sshd runs with UsePAM and
    PermitRootLogin on (our `extra_config` goes on top).  As a normal user it
    is sshlib.testing.start_openssh as it is: you, public keys only.
    """
    extra = dict(extra_config or {})
    if os.geteuid() == 0:
        if user is None or user == TEST_ACCOUNT:
            user, account_password = ensure_test_account()
            password = account_password if password is None else password
        _prepare_root_sshd(pwd.getpwnam(user).pw_uid)
        extra = {**_ROOT_SSHD_CONFIG, **extra}
    return start_private_openssh(workdir=workdir, extra_config=extra, user=user,
                                 password=password, timeout=timeout, fresh_keys=fresh_keys,
                                 sshd=sshd)


# --------------------------------------------------------------------------
# Dropbear (root only)
# --------------------------------------------------------------------------

def _dropbear_public_line(key: Path) -> str:
    out = _run(["dropbearkey", "-y", "-f", str(key)])
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2 and (fields[0].startswith("ssh-") or fields[0].startswith("ecdsa-")):
            return f"{fields[0]} {fields[1]}"
    raise RuntimeError(f"no public key in dropbearkey -y output:\n{out}")


_DROPBEARKEY_ARGS: dict[str, tuple[str, ...]] = {
    "ed25519": ("-t", "ed25519"),
    "ecdsa-256": ("-t", "ecdsa", "-s", "256"),
    "ecdsa-384": ("-t", "ecdsa", "-s", "384"),
    "ecdsa-521": ("-t", "ecdsa", "-s", "521"),
    "rsa": ("-t", "rsa", "-s", "3072"),
}

_host_keys_mutex = threading.Lock()
_host_keys: dict[str, tuple[dict[str, Path], dict[str, str]]] = {}


def _make_dropbear_host_keys(keydir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {t: keydir / f"dropbear_{t}_host_key" for t in DROPBEAR_HOST_KEY_TYPES}
    for t in DROPBEAR_HOST_KEY_TYPES:
        _run(["dropbearkey", *_DROPBEARKEY_ARGS[t], "-f", str(paths[t])])
    return paths, {t: _dropbear_public_line(p) for t, p in paths.items()}


def _dropbear_host_keys(fresh_dir: Path | None) -> tuple[dict[str, Path], dict[str, str]]:
    """Dropbear host keys: made once per process (kept in a temp dir), or in `fresh_dir`."""
    if fresh_dir is not None:
        return _make_dropbear_host_keys(fresh_dir)
    with _host_keys_mutex:
        if "cached" not in _host_keys:
            keydir = Path(tempfile.mkdtemp(prefix="sshlib-dropbear-keys-"))
            atexit.register(shutil.rmtree, keydir, ignore_errors=True)
            _host_keys["cached"] = _make_dropbear_host_keys(keydir)
        return _host_keys["cached"]


def _unique_public_lines(publics: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(publics.values()))


def _edit_home_authorized_keys(account: pwd.struct_passwd, add: Sequence[str], tag: str) -> None:
    """Add/remove our lines in ~account/.ssh/authorized_keys (Dropbear only reads that).

    Lines are tagged with our workdir; lines of runs whose workdir is gone
    (killed runs) are pruned; other lines are left alone.  Never used for root.
    """
    if account.pw_uid == 0:
        raise RuntimeError("refusing to edit root's authorized_keys")
    ssh_dir = Path(account.pw_dir) / ".ssh"
    with _state_lock():
        if not ssh_dir.is_dir():
            ssh_dir.mkdir(mode=0o700, parents=True)
        os.chown(ssh_dir, account.pw_uid, account.pw_gid)
        ssh_dir.chmod(0o700)
        path = ssh_dir / "authorized_keys"
        old = path.read_text().splitlines() if path.exists() else []
        kept: list[str] = []
        for line in old:
            fields = line.split()
            marker = fields[-1] if len(fields) >= 3 else ""
            if marker.startswith(_TAG):
                where = urllib.parse.unquote(marker[len(_TAG):])
                if marker == tag or not Path(where).exists():
                    continue
            kept.append(line)
        kept.extend(f"{line} {tag}" for line in add)
        tmp = ssh_dir / f".authorized_keys.{os.getpid()}.tmp"
        tmp.write_text("".join(line + "\n" for line in kept))
        os.chown(tmp, account.pw_uid, account.pw_gid)
        tmp.chmod(0o600)
        os.replace(tmp, path)


def start_dropbear(*, workdir: Path | None = None, extra_args: Sequence[str] = (),
                   user: str | None = None, password: str | None = None,
                   timeout: float = 10, fresh_keys: bool = False) -> TestServer:
    """Start a private Dropbear server on 127.0.0.1 (root only).

    Host keys (DROPBEAR_HOST_KEY_TYPES) come from dropbearkey.  Dropbear only
    reads ~user/.ssh/authorized_keys, so for the ``sshlibtest`` account our
    per-run public keys (sshlib.testing.user_keys) are added there (tagged)
    and removed by stop(); for any other `user` no keys are installed
    (password login only, pass `password`).  `extra_args` are appended to the
    dropbear command line.  `fresh_keys` as for start_openssh.
    """
    if os.geteuid() != 0:
        raise RuntimeError("start_dropbear needs root: Dropbear reads the login user's "
                           f"~/.ssh/authorized_keys, so tests use the {TEST_ACCOUNT!r} account, "
                           "which only root can create")
    started = time.monotonic()
    ensure_tools(_DROPBEAR, "/usr/bin/dropbearkey", "/usr/bin/ssh-keygen", "/usr/bin/openssl")
    if user is None or user == TEST_ACCOUNT:
        user, account_password = ensure_test_account()
        password = account_password if password is None else password
    account = pwd.getpwnam(user)
    owns = workdir is None
    work = Path(tempfile.mkdtemp(prefix="sshlib-dropbear-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)
    server: TestServer | None = None
    try:
        server = _start_dropbear(work, owns, list(extra_args), account, password, timeout,
                                 fresh_keys)
    finally:
        if server is None and owns:
            shutil.rmtree(work, ignore_errors=True)
    server.startup_seconds = time.monotonic() - started
    return server


def _start_dropbear(work: Path, owns: bool, extra_args: list[str], account: pwd.struct_passwd,
                    login_password: str | None, timeout: float, fresh_keys: bool) -> TestServer:
    fresh = work / "keys" if fresh_keys else None
    host_paths, host_publics = _dropbear_host_keys(None if fresh is None else fresh / "host")
    server = TestServer(kind="dropbear", workdir=work, owns_workdir=owns, user=account.pw_name,
                        password=login_password, host_key_paths=host_paths,
                        host_public_keys=host_publics, user_key_paths={}, user_public_keys={},
                        log_path=work / "dropbear.log")
    if account.pw_name == TEST_ACCOUNT:
        user_paths, user_publics = user_keys(fresh)
        tag = _TAG + urllib.parse.quote(str(work))
        _edit_home_authorized_keys(account, _unique_public_lines(user_publics), tag)
        server.add_cleanup(lambda: _edit_home_authorized_keys(account, [], tag))
        server.user_key_paths = user_paths
        server.user_public_keys = user_publics

    def make_args(port: int) -> list[str]:
        args = [_DROPBEAR, "-F", "-E", "-p", f"{LOCALHOST}:{port}",
                "-P", str(work / "dropbear.pid")]
        for p in host_paths.values():
            args += ["-r", str(p)]
        return args + extra_args

    server.launch(make_args, timeout=timeout, ready_line=None)
    return server
