"""A private OpenSSH server on 127.0.0.1 for the current user, to test SSH client code.

``start_openssh()`` runs the system's ``/usr/sbin/sshd`` (or another sshd you
name) as **you**, with its own config file (never /etc/ssh/sshd_config), on a
port chosen at run time on 127.0.0.1, with freshly generated host keys and
user keys, and writes a known_hosts file that matches the host keys:

    from sshlib import testing
    with testing.start_openssh() as server:
        cfg = sshlib.ClientConfig(
            user=server.user,
            auth=[sshlib.PublicKeys(sshlib.load_private_key(
                server.user_key_paths["ed25519-openssh"], passphrase=None))],
            host_key_callback=sshlib.knownhosts.callback(server.known_hosts_path))
        with sshlib.dial("tcp", server.address, cfg) as client: ...

It needs no root and changes nothing outside its temporary directory: no
accounts, no passwords, no packages, no ~/.ssh.  Logins are public-key only,
as the current user (an unprivileged sshd can only log in the user it runs
as).  It needs OpenSSH's ``sshd`` and ``ssh-keygen`` and the ``openssl``
command (on Debian: ``openssh-server``, ``openssh-client``, ``openssl``) and
raises RuntimeError naming whatever is missing; it never installs anything.
Run as root it works too (sshd then wants its privilege-separation
directory /run/sshd to exist), and can log in another, existing account
(`user=`); creating such accounts is up to you.

Nothing here uses sshlib itself, so the server is independent evidence.
POSIX only (tested on Linux, Debian 12).
"""
from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import pwd
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

# The servers are POSIX programs run as POSIX users; the assert also tells
# `mypy --platform win32` to skip the rest of this module.
assert sys.platform != "win32", "sshlib.testing runs sshd and is POSIX-only"


__all__ = [
    "HOST_KEY_TYPES",
    "LOCALHOST",
    "USER_KEY_FORMATS",
    "USER_KEY_NAMES",
    "USER_KEY_PASSPHRASE",
    "USER_KEY_TYPES",
    "TestServer",
    "start_openssh",
    "tool_path",
    "user_keys",
]

log = logging.getLogger("sshlib.testing")

LOCALHOST = "127.0.0.1"

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

_SSHD = "/usr/sbin/sshd"  # sshd refuses to re-exec itself without an absolute path
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")

_live_servers: set[TestServer] = set()
_live_lock = threading.Lock()

# --------------------------------------------------------------------------
# tools
# --------------------------------------------------------------------------

def tool_path(tool: str) -> str | None:
    """The executable `tool` (an absolute path, or a name looked up in PATH and the sbin dirs)."""
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _require_tools(*tools: str) -> None:
    """Fail early, naming what is missing; installing it is the caller's business."""
    missing = [tool for tool in tools if tool_path(tool) is None]
    if missing:
        raise RuntimeError(f"sshlib.testing.start_openssh needs {', '.join(missing)}, not found "
                           "(on Debian: the openssh-server, openssh-client and openssl packages)")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _run(args: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
    """Run a tool; raise RuntimeError with its output if it fails."""
    log.debug("running %s", " ".join(args))
    done = subprocess.run(list(args), capture_output=True, text=True, check=False,
                          env=None if env is None else dict(env), stdin=subprocess.DEVNULL)
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


def _make_host_keys(keydir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """OpenSSH host keys (HOST_KEY_TYPES) made with ssh-keygen."""
    keydir.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = {t: keydir / f"ssh_host_{t}_key" for t in HOST_KEY_TYPES}

    def job(t: str) -> Callable[[], None]:
        return lambda: _ignore(_run(["ssh-keygen", "-q", *_KEYGEN_ARGS[t], "-N", "", "-C",
                                     f"sshlib-testing host {t}", "-f", str(paths[t])]))

    _parallel([job(t) for t in HOST_KEY_TYPES])
    return paths, {t: _public_line(p.with_name(p.name + ".pub")) for t, p in paths.items()}


def _ignore(_: object) -> None:
    return None


_KeyPaths = dict[str, Path]
_PublicKeys = dict[str, str]
_keys_mutex = threading.Lock()
_cache_dir: Path | None = None
_cached: dict[str, tuple[_KeyPaths, _PublicKeys]] = {}


def _cached_keys(name: str, make: Callable[[Path], tuple[_KeyPaths, _PublicKeys]],
                 fresh_dir: Path | None) -> tuple[_KeyPaths, _PublicKeys]:
    """make(dir) once per process (cached under `name`), or into `fresh_dir` if given."""
    global _cache_dir
    if fresh_dir is not None:
        return make(fresh_dir / name)
    with _keys_mutex:
        if name not in _cached:
            if _cache_dir is None:
                _cache_dir = _owned_tempdir("sshlib-testing-keys-")
            _cached[name] = make(_cache_dir / name)
        return _cached[name]


def user_keys(fresh_dir: Path | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """The user key files every start_openssh server authorizes: (paths, public key lines).

    Both dicts are keyed by USER_KEY_NAMES; public lines are "type base64".
    Generating them costs 1-2 s (RSA-3072), so by default they are made
    once per process, in a temp dir removed at exit; `fresh_dir` makes a new
    set there instead.  Thread-safe.  Raises RuntimeError if ssh-keygen or
    openssl fails (with its output) or is missing.
    """
    _require_tools("ssh-keygen", "openssl")
    return _cached_keys("user", _make_user_keys, fresh_dir)


def _keys_for(fresh_dir: Path | None) -> tuple[_KeyPaths, _PublicKeys, _KeyPaths, _PublicKeys]:
    """(host paths, host public keys, user key paths, user public keys) for a server."""
    made: dict[str, tuple[_KeyPaths, _PublicKeys]] = {}
    _parallel([lambda: made.__setitem__("host", _cached_keys("host-openssh", _make_host_keys,
                                                              fresh_dir)),
               lambda: made.__setitem__("user", user_keys(fresh_dir))])
    return (*made["host"], *made["user"])


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
                f"no password for {self.user!r} on this {self.kind} test server: it logs in "
                "with keys only unless started with password= (as root, for an account "
                "whose password you set)")
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
        """True while the server process runs (False before start and after stop or a crash)."""
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

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Have stop() call `cleanup()` after the server process ended (last added, first run)."""
        self._cleanups.append(cleanup)

    # -- start-up ------------------------------------------------------------

    def launch(self, make_args: Callable[[int], list[str]], *, timeout: float,
               ready_line: str | None) -> None:
        """Run the server program on a free 127.0.0.1 port and wait for its SSH banner.

        For harnesses that run another server program with this class (as
        start_openssh runs sshd).  `make_args(port)` returns the command line
        for that port; its output goes to `log_path`.  A port taken meanwhile
        ("Address already in use" in the log) is retried with another.  When
        `ready_line` is given it must appear in the log before the banner is
        read.  Writes `known_hosts_path` once the server is up.  Raises
        RuntimeError with the server log (and stops the server) if it exits or
        `timeout` seconds pass first.
        """
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
                self._write_known_hosts()
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


def _login_account(user: str | None) -> pwd.struct_passwd:
    """The login user: the current user, or (root only) another existing account."""
    me = pwd.getpwuid(os.geteuid())
    if user is None or user == me.pw_name:
        return me
    if os.geteuid() != 0:
        raise RuntimeError(f"a test server run as {me.pw_name!r} can only log in as "
                           f"{me.pw_name!r}, not {user!r} (only root's sshd can switch users)")
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise RuntimeError(f"no account {user!r}: start_openssh never creates accounts; "
                           "create it first") from None


_OWNER_FILE = ".sshlib-testing-owner"
_TEMP_PREFIXES = ("sshlib-openssh-", "sshlib-testing-keys-")
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
    """Start a private OpenSSH sshd on 127.0.0.1, as you, with generated host and user keys.

    No root needed and nothing installed or changed outside `workdir`: sshd
    runs as the current user with only our config file (never
    /etc/ssh/sshd_config), on a port chosen at run time (retried if taken),
    and this returns once it sent its SSH banner.  Host keys: ed25519,
    ecdsa-256/384/521 and rsa (3072 bits); `known_hosts_path` lists them
    all as ``[127.0.0.1]:port``, for sshlib.knownhosts.callback.  Every
    user key in USER_KEY_NAMES (see user_keys) is authorized through an
    AuthorizedKeysFile in `workdir`.  Keys are made once per process and
    shared by its servers (RSA key generation takes 1-2 s);
    `fresh_keys=True` makes new ones for this server.

    The login user is you, by public key (``password`` stays None).  Root
    may name another existing `user` (and give its `password`, if you set
    one, for password logins); accounts are never created here.  sshd run
    as root needs its privilege-separation directory /run/sshd.
    `extra_config` adds or replaces sshd_config options (e.g.
    {"AuthenticationMethods": "publickey,password"} or {"UsePAM": "yes"});
    newlines in a value repeat the option, and a "Match" key is appended
    last.  `workdir` (default: a new temp dir, removed by stop()) must be
    reachable by the login user.  `sshd` is the absolute path of another
    sshd binary (default /usr/sbin/sshd), e.g. a newer OpenSSH in a
    private directory; pass the options it needs beyond ours (such as
    SshdSessionPath) in `extra_config`.  Raises RuntimeError (with the
    server log when sshd itself failed) if a tool is missing or the server
    is not up within `timeout` seconds.  Stop it with stop() or a with-block;
    servers still running at interpreter exit are stopped then.
    """
    started = time.monotonic()
    if sshd is not None and not os.path.isabs(sshd):
        raise ValueError(f"sshd must be an absolute path (sshd re-executes itself), not {sshd!r}")
    if sshd is not None and not os.access(sshd, os.X_OK):
        raise RuntimeError(f"{sshd} is not an executable sshd")
    _require_tools(*([_SSHD] if sshd is None else []), "ssh-keygen", "openssl")
    account = _login_account(user)
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        raise RuntimeError("sshd run as root needs its privilege-separation directory: "
                           "mkdir -m 755 /run/sshd (or run as a normal user)")
    work, owns = _make_workdir(workdir, "sshlib-openssh-")
    return _launched(started, work, owns, lambda: _start_openssh(
        work, owns, dict(extra_config or {}), account, password, timeout, fresh_keys,
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
    host_paths, host_publics, user_paths, user_publics = _keys_for(
        work / "keys" if fresh_keys else None)

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
            "UsePAM": "no",
            "PermitRootLogin": "prohibit-password" if account.pw_uid == 0 else "no",
            **_OPENSSH_BASE_CONFIG,
        }
        config_path.write_text(_render_sshd_config(base, extra))
        return [sshd, "-D", "-e", "-f", str(config_path)]

    server.launch(make_args, timeout=timeout, ready_line="Server listening on")
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
