"""Throwaway real SSH servers on 127.0.0.1, for tests and examples.

Why this lives in the package: the README example, sshlib's own test suite and
users testing their own code all need the same thing, "a private sshd with
fresh keys that I can point a client at", and getting it right (free port,
waiting for the banner, keys in every format, an account with a known
password, PAM for keyboard-interactive, cleanup) is fiddly.

Everything here drives the real tools: OpenSSH's ``sshd``/``ssh-keygen``,
Dropbear's ``dropbear``/``dropbearkey`` and the ``openssl`` command.  Nothing
here uses sshlib itself, so these servers are independent evidence.  Servers
only ever listen on 127.0.0.1.  Linux only (Debian 12 is what CI runs).

Running as root (as CI does) gives the full feature set: a dedicated system
account ``sshlibtest`` with a known random password is created once and used
as the login user, so password and keyboard-interactive (PAM) logins work.
As a normal user, OpenSSH servers log in as yourself with public keys only
(``password`` is None) and Dropbear servers cannot be started.
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

# The servers are POSIX programs run as POSIX users; the assert also tells
# `mypy --platform win32` to skip the rest of this module.
assert sys.platform != "win32", "sshlib.testing runs sshd/dropbear and is POSIX-only"

__all__ = [
    "APT_INSTALL_COMMAND",
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

log = logging.getLogger("sshlib.testing")

LOCALHOST = "127.0.0.1"

#: The system account created (as root) for logins to test servers.
TEST_ACCOUNT = "sshlibtest"

#: Passphrase of every encrypted user key file generated for a server.
USER_KEY_PASSPHRASE = "correct horse"

#: Key types generated for servers and users: name -> ssh-keygen arguments.
#: RSA keys are 3072 bits (ssh-keygen's default).
_KEYGEN_ARGS: dict[str, tuple[str, ...]] = {
    "ed25519": ("-t", "ed25519"),
    "ecdsa-256": ("-t", "ecdsa", "-b", "256"),
    "ecdsa-384": ("-t", "ecdsa", "-b", "384"),
    "ecdsa-521": ("-t", "ecdsa", "-b", "521"),
    "rsa": ("-t", "rsa", "-b", "3072"),
}
HOST_KEY_TYPES: tuple[str, ...] = tuple(_KEYGEN_ARGS)
USER_KEY_TYPES: tuple[str, ...] = tuple(_KEYGEN_ARGS)

#: Private key file formats generated for user keys:
#: openssh = openssh-key-v1; pem = PKCS#1 (RSA) / SEC1 (ECDSA), the encrypted
#: variant is OpenSSL's legacy "Proc-Type: 4,ENCRYPTED" (AES-128-CBC);
#: pkcs8 = "BEGIN PRIVATE KEY"; pkcs8-encrypted = PBES2/PBKDF2/AES-256-CBC.
USER_KEY_FORMATS: tuple[str, ...] = (
    "openssh", "openssh-encrypted", "pem", "pem-encrypted", "pkcs8", "pkcs8-encrypted",
)

#: Every ``user_key_paths`` name, f"{type}-{format}".  Ed25519 has no PEM
#: (PKCS#1/SEC1-style) form, so "ed25519-pem*" do not exist.  OpenSSH 9.2
#: cannot convert Ed25519 keys to PKCS#8, so the ed25519 PKCS#8 files hold a
#: second Ed25519 key made by ``openssl genpkey`` (see ``user_public_keys``).
USER_KEY_NAMES: tuple[str, ...] = tuple(
    f"{t}-{f}" for t in USER_KEY_TYPES for f in USER_KEY_FORMATS
    if not (t == "ed25519" and f.startswith("pem"))
)

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

#: Debian packages providing the tools, by tool (absolute path or PATH name).
_TOOLS: dict[str, str] = {
    "/usr/sbin/sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "sftp": "openssh-client",
    "/usr/sbin/dropbear": "dropbear-bin",
    "dropbearkey": "dropbear-bin",
    "dropbearconvert": "dropbear-bin",
    "dbclient": "dropbear-bin",
    "openssl": "openssl",
}
_PACKAGES: tuple[str, ...] = ("openssh-server", "openssh-client", "dropbear-bin", "openssl")

#: The command that installs everything these servers need (Debian/Ubuntu).
APT_INSTALL_COMMAND = (
    "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
    "--no-install-recommends " + " ".join(_PACKAGES)
)

_SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec itself without an absolute path
_DROPBEAR = "/usr/sbin/dropbear"
_STATE_DIR = Path("/var/lib/sshlib-testing")  # root-only: the test account's password
_TAG = "sshlib-testing:"  # comment marking our lines in the test account's authorized_keys
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

_live_servers: set[TestServer] = set()
_live_lock = threading.Lock()


# --------------------------------------------------------------------------
# tools and the test account
# --------------------------------------------------------------------------

def _tool_path(tool: str) -> str | None:
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _missing_tools(tools: Sequence[str] = tuple(_TOOLS)) -> dict[str, str]:
    return {tool: _TOOLS[tool] for tool in tools if _tool_path(tool) is None}


def _require_tools(*tools: str) -> None:
    """Fail early, naming the apt command, when a server's tools are missing."""
    missing = _missing_tools(tools)
    if missing:
        raise RuntimeError(f"sshlib.testing needs {', '.join(sorted(missing))}. Install them "
                           f"as root with:\n    {APT_INSTALL_COMMAND}")


def ensure_tools(install: bool = True) -> None:
    """Make sure sshd, dropbear, ssh-keygen, openssl and the clients exist.

    When something is missing and we are root on a machine with apt-get (and
    `install` is true), install the Debian packages; otherwise raise
    RuntimeError naming the exact command to run.  Service start-up is
    blocked during the install (policy-rc.d) so that installing
    openssh-server never starts a system sshd listening on port 22.
    """
    missing = _missing_tools()
    if not missing:
        return
    what = ", ".join(sorted(missing))
    apt = shutil.which("apt-get")
    if not (install and os.geteuid() == 0 and apt):
        raise RuntimeError(
            f"sshlib.testing needs {what}. Install them as root with:\n    {APT_INSTALL_COMMAND}")
    packages = sorted(set(missing.values()))
    log.info("installing %s", " ".join(packages))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# sshlib.testing: no service starts during install\n"
                          "exit 101\n")
        policy.chmod(0o755)
        made_policy = True
    try:
        for cmd in ([apt, "update"],
                    [apt, "install", "-y", "--no-install-recommends", *packages]):
            done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                                   f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    still = _missing_tools()
    if still:
        raise RuntimeError(f"still missing after apt-get install: {', '.join(sorted(still))}")


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


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _run(args: Sequence[str], *, input_text: str | None = None,
         env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run a tool; raise RuntimeError with its output if it fails."""
    log.debug("running %s", " ".join(args))
    done = subprocess.run(list(args), input=input_text, capture_output=True, text=True,
                          env=None if env is None else dict(env), cwd=cwd, check=False,
                          stdin=None if input_text is not None else subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed with status {done.returncode}:\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


def _free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the caller retries on collision)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        port: int = s.getsockname()[1]
        return port


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _public_line(path: Path) -> str:
    """'type base64' from an OpenSSH .pub file (the comment dropped)."""
    fields = path.read_text().split()
    return f"{fields[0]} {fields[1]}"


def _ed25519_pkcs8_public_line(private_pem: Path) -> str:
    der = subprocess.run(["openssl", "pkey", "-in", str(private_pem), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True, stdin=subprocess.DEVNULL).stdout
    if len(der) != 44 or not der.startswith(_ED25519_SPKI_PREFIX):
        raise RuntimeError(f"unexpected Ed25519 SubjectPublicKeyInfo from openssl: {der.hex()}")
    blob = _ssh_string(b"ssh-ed25519") + _ssh_string(der[12:])
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def _parallel(jobs: Sequence[Callable[[], None]]) -> None:
    """Run independent key-generation chains at once (RSA-3072 dominates start-up)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for fut in [pool.submit(job) for job in jobs]:
            fut.result()


def _make_user_keys(keydir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Generate every USER_KEY_NAMES file; return (paths, public key lines)."""
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    publics: dict[str, str] = {}
    env = dict(os.environ, SSHLIB_TESTING_PASSPHRASE=USER_KEY_PASSPHRASE)
    pp = USER_KEY_PASSPHRASE

    def convert(src: Path, name: str, *keygen_opts: str) -> None:
        dst = keydir / name
        shutil.copyfile(src, dst)
        dst.chmod(0o600)
        _run(["ssh-keygen", "-q", "-p", "-P", "", *keygen_opts, "-f", str(dst)])
        paths[name] = dst

    def pkcs8_encrypt(src: Path, name: str) -> None:
        dst = keydir / name
        _run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(src),
              "-out", str(dst), "-passout", "env:SSHLIB_TESTING_PASSPHRASE"], env=env)
        dst.chmod(0o600)
        paths[name] = dst

    def chain(ktype: str) -> Callable[[], None]:
        def job() -> None:
            base = keydir / f"{ktype}-openssh"
            _run(["ssh-keygen", "-q", *_KEYGEN_ARGS[ktype], "-N", "", "-C",
                  f"sshlib-testing {ktype}", "-f", str(base)])
            paths[base.name] = base
            line = _public_line(base.with_name(base.name + ".pub"))
            publics[base.name] = line
            convert(base, f"{ktype}-openssh-encrypted", "-N", pp)
            publics[f"{ktype}-openssh-encrypted"] = line
            if ktype == "ed25519":
                # ssh-keygen 9.2 has no PKCS#8 for Ed25519: a separate key from openssl.
                plain = keydir / "ed25519-pkcs8"
                _run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(plain)])
                plain.chmod(0o600)
                paths[plain.name] = plain
                other = _ed25519_pkcs8_public_line(plain)
                publics[plain.name] = other
                pkcs8_encrypt(plain, "ed25519-pkcs8-encrypted")
                publics["ed25519-pkcs8-encrypted"] = other
                return
            for name, opts in ((f"{ktype}-pem", ("-N", "", "-m", "PEM")),
                               (f"{ktype}-pem-encrypted", ("-N", pp, "-m", "PEM")),
                               (f"{ktype}-pkcs8", ("-N", "", "-m", "PKCS8"))):
                convert(base, name, *opts)
                publics[name] = line
            pkcs8_encrypt(keydir / f"{ktype}-pkcs8", f"{ktype}-pkcs8-encrypted")
            publics[f"{ktype}-pkcs8-encrypted"] = line
        return job

    _parallel([chain(t) for t in USER_KEY_TYPES])
    assert set(paths) == set(USER_KEY_NAMES), sorted(set(USER_KEY_NAMES) ^ set(paths))
    return ({n: paths[n] for n in USER_KEY_NAMES}, {n: publics[n] for n in USER_KEY_NAMES})


def _make_host_keys(kind: str, keydir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Host keys with the server's own tool: ssh-keygen (OpenSSH) or dropbearkey."""
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if kind == "openssh":
        paths = {t: keydir / f"ssh_host_{t}_key" for t in HOST_KEY_TYPES}

        def job(t: str) -> Callable[[], None]:
            return lambda: _ignore(_run(["ssh-keygen", "-q", *_KEYGEN_ARGS[t], "-N", "", "-C",
                                         f"sshlib-testing host {t}", "-f", str(paths[t])]))

        _parallel([job(t) for t in HOST_KEY_TYPES])
        return paths, {t: _public_line(p.with_name(p.name + ".pub")) for t, p in paths.items()}
    paths = {t: keydir / f"dropbear_{t}_host_key" for t in DROPBEAR_HOST_KEY_TYPES}

    def db_job(t: str) -> Callable[[], None]:
        return lambda: _ignore(_run(["dropbearkey", *_DROPBEARKEY_ARGS[t], "-f", str(paths[t])]))

    _parallel([db_job(t) for t in DROPBEAR_HOST_KEY_TYPES])
    return paths, {t: _dropbear_public_line(p) for t, p in paths.items()}


def _ignore(_: object) -> None:
    return None


_KeyPaths = dict[str, Path]
_PublicKeys = dict[str, str]
_keys_mutex = threading.Lock()
_cache_dir: Path | None = None
_cached_user_keys: tuple[_KeyPaths, _PublicKeys] | None = None
_cached_host_keys: dict[str, tuple[_KeyPaths, _PublicKeys]] = {}


def _keys_for(kind: str, fresh_dir: Path | None
              ) -> tuple[_KeyPaths, _PublicKeys, _KeyPaths, _PublicKeys]:
    """(host paths, host public keys, user key paths, user public keys) for a server.

    Key generation (RSA-3072 above all) costs 1-2 s, so by default one set of
    host keys per server kind and one set of user keys is made per process
    and shared by its servers; `fresh_dir` asks for new ones (e.g. to test a
    changed host key).
    """
    global _cache_dir, _cached_user_keys
    if fresh_dir is not None:
        made: dict[str, tuple[_KeyPaths, _PublicKeys]] = {}
        _parallel([lambda: made.__setitem__("host", _make_host_keys(kind, fresh_dir / "host")),
                   lambda: made.__setitem__("user", _make_user_keys(fresh_dir / "user"))])
        return (*made["host"], *made["user"])
    with _keys_mutex:
        if _cache_dir is None:
            _cache_dir = _owned_tempdir("sshlib-testing-keys-")
        cache = _cache_dir
        jobs: list[Callable[[], None]] = []
        if kind not in _cached_host_keys:
            jobs.append(lambda: _cached_host_keys.__setitem__(
                kind, _make_host_keys(kind, cache / f"host-{kind}")))
        if _cached_user_keys is None:
            def user_job() -> None:
                global _cached_user_keys
                _cached_user_keys = _make_user_keys(cache / "user")
            jobs.append(user_job)
        _parallel(jobs)
        assert _cached_user_keys is not None
        return (*_cached_host_keys[kind], *_cached_user_keys)


def _unique_public_lines(publics: Mapping[str, str]) -> list[str]:
    return list(dict.fromkeys(publics.values()))


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies (Linux).

    Stops servers from outliving a test run that was killed (atexit does not run then).
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _traversable_by(path: Path, uid: int, gid: int) -> bool:
    """Can the account with uid/gid reach files in `path`?  (sshd reads as the user.)"""
    if uid == 0:
        return True
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid == uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------
# KEXINIT probe
# --------------------------------------------------------------------------

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
# servers
# --------------------------------------------------------------------------

class TestServer:
    """A running throwaway SSH server; stop it with stop() or a with-block."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, *, kind: str, workdir: Path, owns_workdir: bool, user: str,
                 password: str | None, host_key_paths: dict[str, Path],
                 host_public_keys: dict[str, str], user_key_paths: dict[str, Path],
                 user_public_keys: dict[str, str], log_path: Path) -> None:
        self.host = LOCALHOST
        self.port = 0
        self.kind = kind
        self.workdir = workdir
        self.user = user
        self.password = password
        self.host_key_paths = host_key_paths
        self.host_public_keys = host_public_keys
        self.user_key_paths = user_key_paths
        self.user_public_keys = user_public_keys
        self.user_key_passphrase = USER_KEY_PASSPHRASE
        self.known_hosts_path = workdir / "known_hosts"
        self.log_path = log_path
        self.banner = ""
        self.process: subprocess.Popen[bytes] | None = None
        #: Seconds from the start_* call until the banner arrived (key generation included).
        self.startup_seconds = 0.0
        self._owns_workdir = owns_workdir
        self._cleanups: list[Callable[[], None]] = []
        self._stopped = False

    @property
    def address(self) -> str:
        """'127.0.0.1:PORT', the form sshlib.dial takes."""
        return f"{self.host}:{self.port}"

    def known_hosts_lines(self) -> list[str]:
        """OpenSSH known_hosts lines for every host key ([127.0.0.1]:port form)."""
        return [f"[{self.host}]:{self.port} {line}" for line in self.host_public_keys.values()]

    def require_password(self) -> str:
        """The login password, or a loud error explaining why there is none."""
        if self.password is None:
            raise RuntimeError(
                f"no password for {self.user!r} on this {self.kind} test server: password and "
                f"keyboard-interactive tests need root (they log in as the {TEST_ACCOUNT!r} "
                "account, created on demand); run the tests as root, e.g. bash scripts/test.sh")
        return self.password

    def log_text(self, start: int = 0) -> str:
        """The server's log so far (sshd runs at LogLevel DEBUG1), from byte `start` on."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(start)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        """Bytes logged so far: pass to log_text() later to see only what came after."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Terminate the server, undo account changes, remove our workdir.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:
                log.exception("cleanup of %s server failed", self.kind)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with _live_lock:
            _live_servers.discard(self)

    def __enter__(self) -> TestServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<TestServer {self.kind} {self.address} user={self.user} {state}>"

    # -- start-up ------------------------------------------------------------

    def _launch(self, make_args: Callable[[int], list[str]], timeout: float,
                ready_line: str | None) -> None:
        """Start on a free port, retrying on collisions; wait for the SSH banner."""
        deadline = time.monotonic() + timeout
        last_error = ""
        for _attempt in range(5):
            port = _free_port()
            self.port = port
            with open(self.log_path, "ab") as log_fh:
                log_fh.write(f"=== sshlib.testing: starting on port {port}\n".encode())
                log_fh.flush()
                args = make_args(port)
                log.debug("starting %s", " ".join(args))
                # The parent-death signal follows the *thread* that forked, so only
                # the main thread may use it.
                in_main = threading.current_thread() is threading.main_thread()
                self.process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=log_fh,
                    cwd=self.workdir, preexec_fn=_die_with_parent if in_main else None,
                    close_fds=True)
            with _live_lock:
                _live_servers.add(self)
            error = self._wait_ready(port, deadline, ready_line)
            if error is None:
                return
            last_error = error
            if "Address already in use" not in self.log_text() or time.monotonic() > deadline:
                break
            log.info("port %d was taken; retrying", port)
        text = self.log_text()
        self.stop()
        raise RuntimeError(f"{self.kind} test server did not start: {last_error}\n"
                           f"--- server log ({self.log_path}) ---\n{text[-6000:]}")

    def _wait_ready(self, port: int, deadline: float, ready_line: str | None) -> str | None:
        proc = self.process
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                return f"server exited with status {code}"
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                return "timed out waiting for the SSH banner"
            if ready_line is None or ready_line in self.log_text():
                try:
                    with socket.create_connection((LOCALHOST, port), timeout=1) as sock:
                        banner = sock.makefile("rb").readline(256)
                except OSError:
                    banner = b""
                if banner.startswith(b"SSH-2.0-") and proc.poll() is None:
                    self.banner = banner.decode("ascii", "replace").rstrip("\r\n")
                    return None
            time.sleep(0.02)

    def _write_known_hosts(self) -> None:
        self.known_hosts_path.write_text("".join(line + "\n" for line in self.known_hosts_lines()))
        self.known_hosts_path.chmod(0o644)


def _login_account(user: str | None, password: str | None) -> tuple[str, str | None]:
    """Pick the login user: the test account as root, else the current user."""
    if os.geteuid() == 0:
        if user is None or user == TEST_ACCOUNT:
            account, account_password = ensure_test_account()
            return account, password if password is not None else account_password
        return user, password
    me = pwd.getpwuid(os.geteuid()).pw_name
    if user is not None and user != me:
        raise RuntimeError(f"as a normal user a test server can only log in as {me!r}, "
                           f"not {user!r}: run as root")
    return me, password


_OWNER_FILE = ".sshlib-testing-owner"
_TEMP_PREFIXES = ("sshlib-openssh-", "sshlib-dropbear-", "sshlib-testing-keys-")
_swept = False


def _owned_tempdir(prefix: str) -> Path:
    """A new temp dir tagged with our pid, so a later run can remove it if we are killed."""
    global _swept
    if not _swept:
        _swept = True
        _sweep_stale_tempdirs()
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    return path


def _sweep_stale_tempdirs() -> None:
    """Remove temp dirs left by test processes that were killed (atexit never ran)."""
    for path in Path(tempfile.gettempdir()).iterdir():
        if not path.name.startswith(_TEMP_PREFIXES):
            continue
        try:
            if path.stat().st_uid != os.geteuid():
                continue
            pid = int((path / _OWNER_FILE).read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            log.debug("removing %s, left by dead process %d", path, pid)
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue  # not ours, being created right now, or its owner is alive


def _make_workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    if workdir is None:
        path = _owned_tempdir(prefix)
        owns = True
    else:
        path = Path(workdir).resolve()
        path.mkdir(parents=True, exist_ok=True)
        owns = False
    path.chmod(0o755)  # the login user must reach authorized_keys; private files stay 0600
    return path, owns


_OPENSSH_BASE_CONFIG: dict[str, str] = {
    # Algorithms: sshd's defaults plus the insecure ones sshlib implements.
    "KexAlgorithms": "+diffie-hellman-group14-sha1",
    "HostKeyAlgorithms": "+ssh-rsa",
    "PubkeyAcceptedAlgorithms": "+ssh-rsa",
    "CASignatureAlgorithms": "+ssh-rsa",
    "PubkeyAuthentication": "yes",
    "PasswordAuthentication": "yes",
    "KbdInteractiveAuthentication": "yes",
    "PermitEmptyPasswords": "no",
    "StrictModes": "no",
    "LogLevel": "DEBUG1",
    "MaxStartups": "1000",
    "MaxSessions": "1000",
    "Subsystem": "sftp internal-sftp",
    "AcceptEnv": "LANG LC_* SSHLIB_*",
    "AllowTcpForwarding": "yes",
    "AllowStreamLocalForwarding": "yes",
    "AllowAgentForwarding": "yes",
    "X11Forwarding": "no",
    "PrintMotd": "no",
    "PrintLastLog": "no",
    "UseDNS": "no",
}


def _render_sshd_config(base: Mapping[str, str], extra: Mapping[str, str]) -> str:
    """sshd keeps the first value of most options, so overrides replace ours."""
    merged: dict[str, tuple[str, str]] = {k.lower(): (k, v) for k, v in base.items()}
    match_blocks: list[str] = []
    for key, value in extra.items():
        if key.strip().lower() == "match":
            match_blocks.append(f"Match {value}")
        else:
            merged[key.lower()] = (key, value)
    lines = ["# written by sshlib.testing; only ever used for a throwaway server"]
    for key, value in merged.values():
        lines.extend(f"{key} {v}" for v in value.split("\n"))
    lines.extend(match_blocks)  # Match must come last
    return "\n".join(lines) + "\n"


def start_openssh(*, workdir: Path | None = None, extra_config: Mapping[str, str] | None = None,
                  user: str | None = None, password: str | None = None,
                  timeout: float = 10, fresh_keys: bool = False,
                  sshd: str | None = None) -> TestServer:
    """Start a private OpenSSH sshd on 127.0.0.1 with generated host and user keys.

    The server uses only our config file (never /etc/ssh/sshd_config): host
    keys ed25519, ecdsa-256/384/521 and rsa (3072 bits); every user key in
    USER_KEY_NAMES is authorized via an AuthorizedKeysFile in `workdir`.
    Keys are made once per process and shared by its servers (RSA key
    generation is slow); `fresh_keys=True` makes new ones for this server.
    As root the login user defaults to the ``sshlibtest`` account (password
    and PAM keyboard-interactive work); otherwise it is the current user,
    public keys only.  `extra_config` adds or replaces sshd_config options
    (e.g. {"AuthenticationMethods": "publickey,password"}); newlines in a
    value repeat the option, and a "Match" key is appended last.  `password`
    is the password of `user` if you know it (for the test account it is
    managed for you).  `workdir` (default: a new temp dir, removed by stop())
    must be reachable by the login user.  `sshd` is the absolute path of
    another sshd binary to run (default /usr/sbin/sshd), for example a newer
    OpenSSH in a private directory; pass the options it needs beyond ours
    (such as SshdSessionPath) in `extra_config`.
    """
    started = time.monotonic()
    if sshd is not None and not os.path.isabs(sshd):
        raise ValueError(f"sshd must be an absolute path (sshd re-executes itself), not {sshd!r}")
    if sshd is not None and not os.access(sshd, os.X_OK):
        raise RuntimeError(f"{sshd} is not an executable sshd")
    _require_tools(*([_SSHD] if sshd is None else []), "ssh-keygen", "openssl")
    login_user, login_password = _login_account(user, password)
    account = pwd.getpwnam(login_user)
    work, owns = _make_workdir(workdir, "sshlib-openssh-")
    return _launched(started, work, owns, lambda: _start_openssh(
        work, owns, dict(extra_config or {}), account, login_password, timeout, fresh_keys,
        sshd or _SSHD))


def _launched(started: float, work: Path, owns: bool,
              start: Callable[[], TestServer]) -> TestServer:
    """Run a server starter; on failure remove the workdir we made; log the start-up time."""
    try:
        server = start()
    except BaseException:
        if owns:
            shutil.rmtree(work, ignore_errors=True)
        raise
    server.startup_seconds = time.monotonic() - started
    log.info("%s server ready on %s in %.2fs", server.kind, server.address,
             server.startup_seconds)
    return server


def _start_openssh(work: Path, owns: bool, extra: dict[str, str], account: pwd.struct_passwd,
                   login_password: str | None, timeout: float, fresh_keys: bool,
                   sshd: str) -> TestServer:
    if not _traversable_by(work, account.pw_uid, account.pw_gid):
        raise RuntimeError(f"{work} is not reachable by {account.pw_name!r}, so sshd could not "
                           "read authorized_keys there; use a world-traversable directory")
    is_root = os.geteuid() == 0
    if is_root:
        # sshd's privilege-separation directory (normally made by systemd/init).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for nologin in (Path("/run/nologin"), Path("/etc/nologin")):
            if nologin.exists() and account.pw_uid != 0:
                raise RuntimeError(f"{nologin} exists, so PAM (pam_nologin) refuses every "
                                   f"non-root login; remove it (often a leftover of boot)")
    host_paths, host_publics, user_paths, user_publics = _keys_for(
        "openssh", work / "keys" if fresh_keys else None)

    authorized = work / "authorized_keys"
    authorized.write_text("".join(f"{line} sshlib-testing\n"
                                  for line in _unique_public_lines(user_publics)))
    authorized.chmod(0o644)

    server = TestServer(kind="openssh", workdir=work, owns_workdir=owns, user=account.pw_name,
                        password=login_password, host_key_paths=host_paths,
                        host_public_keys=host_publics, user_key_paths=user_paths,
                        user_public_keys=user_publics, log_path=work / "sshd.log")
    config_path = work / "sshd_config"

    def make_args(port: int) -> list[str]:
        base: dict[str, str] = {
            "ListenAddress": f"{LOCALHOST}:{port}",
            "HostKey": "\n".join(str(p) for p in host_paths.values()),
            "AuthorizedKeysFile": str(authorized),
            "PidFile": str(work / "sshd.pid"),
            "UsePAM": "yes" if is_root else "no",
            "PermitRootLogin": "yes" if is_root else "no",
            **_OPENSSH_BASE_CONFIG,
        }
        config_path.write_text(_render_sshd_config(base, extra))
        return [sshd, "-D", "-e", "-f", str(config_path)]

    server._launch(make_args, timeout, ready_line="Server listening on")
    server._write_known_hosts()
    return server


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
    per-run public keys are added there (tagged) and removed by stop(); for
    any other `user` no keys are installed (password login only, pass
    `password`).  `extra_args` are appended to the dropbear command line.
    `fresh_keys` as for start_openssh.
    """
    if os.geteuid() != 0:
        raise RuntimeError("start_dropbear needs root: Dropbear reads the login user's "
                           f"~/.ssh/authorized_keys, so tests use the {TEST_ACCOUNT!r} account, "
                           "which only root can create")
    started = time.monotonic()
    _require_tools(_DROPBEAR, "dropbearkey", "ssh-keygen", "openssl")
    login_user, login_password = _login_account(user, password)
    account = pwd.getpwnam(login_user)
    work, owns = _make_workdir(workdir, "sshlib-dropbear-")
    return _launched(started, work, owns, lambda: _start_dropbear(
        work, owns, list(extra_args), account, login_password, timeout, fresh_keys))


def _start_dropbear(work: Path, owns: bool, extra_args: list[str], account: pwd.struct_passwd,
                    login_password: str | None, timeout: float, fresh_keys: bool) -> TestServer:
    host_paths, host_publics, user_paths, user_publics = _keys_for(
        "dropbear", work / "keys" if fresh_keys else None)
    server = TestServer(kind="dropbear", workdir=work, owns_workdir=owns, user=account.pw_name,
                        password=login_password, host_key_paths=host_paths,
                        host_public_keys=host_publics, user_key_paths={}, user_public_keys={},
                        log_path=work / "dropbear.log")
    if account.pw_name == TEST_ACCOUNT:
        tag = _TAG + urllib.parse.quote(str(work))
        _edit_home_authorized_keys(account, _unique_public_lines(user_publics), tag)
        server._cleanups.append(lambda: _edit_home_authorized_keys(account, [], tag))
        server.user_key_paths = user_paths
        server.user_public_keys = user_publics

    def make_args(port: int) -> list[str]:
        args = [_DROPBEAR, "-F", "-E", "-p", f"{LOCALHOST}:{port}",
                "-P", str(work / "dropbear.pid")]
        for p in host_paths.values():
            args += ["-r", str(p)]
        return args + extra_args

    server._launch(make_args, timeout, ready_line=None)
    server._write_known_hosts()
    return server


def _stop_all() -> None:
    """At exit: stop servers still running, then drop the per-process key cache."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        server.stop()
    if _cache_dir is not None:
        shutil.rmtree(_cache_dir, ignore_errors=True)


atexit.register(_stop_all)
