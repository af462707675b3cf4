"""Which OpenSSH to test against: the system's 9.2, 10.0 and the newest (>= 10.3).

``openssh("9.2")`` is Debian 12's own OpenSSH (/usr/sbin/sshd, /usr/bin/ssh...);
``openssh("10.0")`` and ``openssh("newest")`` live in private directories under
``~/.cache/sshlib-openssh`` that ``scripts/openssh-peers.sh`` fills (10.0 from
bookworm-backports' binary packages, the newest from Debian sid's source
package, built ``--without-pam``).  scripts/test.sh runs that script before
pytest; when a test asks for a version that is not there yet, this module runs
the script itself (it takes about a minute from an empty cache) and fails
loudly if that does not work.  Nothing here replaces the system's OpenSSH.

    from peers import openssh
    peer = openssh("10.0")
    peer.ssh, peer.ssh_agent, peer.ssh_add, peer.ssh_keygen, peer.sshd   # absolute paths
    server = openssh_factory(version="10.0")         # conftest's factory
    server = testing.start_openssh(sshd=peer.sshd, extra_config=peer.sshd_config)
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

VERSIONS = ("9.2", "10.0", "newest")
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "openssh-peers.sh"


def cache_dir() -> Path:
    """Where scripts/openssh-peers.sh keeps the private OpenSSH builds."""
    env = os.environ.get("SSHLIB_OPENSSH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sshlib-openssh"


@dataclass(frozen=True)
class OpenSSH:
    """One OpenSSH installation: absolute paths of its programs."""

    name: str            # what was asked for: "9.2", "10.0" or "newest"
    version: str         # what `ssh -V` says, e.g. "10.3p1"
    sshd: str
    ssh: str
    ssh_agent: str
    ssh_add: str
    ssh_keygen: str
    #: sshd_config options this sshd needs beyond sshlib.testing's (for the Debian
    #: 10.0 binaries: where sshd-session/sshd-auth are, as they are not in /usr/lib/openssh).
    sshd_config: dict[str, str] = field(default_factory=dict)
    #: The source tree, for versions built here (read it to see what that version does).
    source: Path | None = None

    @property
    def version_tuple(self) -> tuple[int, int]:
        """(major, minor), e.g. (10, 3)."""
        major, minor = re.match(r"(\d+)\.(\d+)", self.version).groups()  # type: ignore[union-attr]
        return int(major), int(minor)

    def env(self) -> dict[str, str]:
        """os.environ with this installation's bin/ first on PATH (for tools run by name)."""
        env = dict(os.environ)
        env["PATH"] = f"{Path(self.ssh).parent}{os.pathsep}{env.get('PATH', '')}"
        return env


_lock = threading.Lock()
_cache: dict[str, OpenSSH] = {}


def _ssh_version(ssh: str) -> str:
    out = subprocess.run([ssh, "-V"], capture_output=True, text=True, timeout=30)
    found = re.match(r"OpenSSH_(\d+\.\d+p?\d*)", out.stderr or out.stdout)
    if not found:
        raise RuntimeError(f"{ssh} -V said {out.stderr!r}; is it OpenSSH?")
    return found.group(1)


def _provision() -> None:
    """Run scripts/openssh-peers.sh (it locks, so parallel callers wait for one build)."""
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{SCRIPT} failed (exit {proc.returncode}); these tests need it:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _private(name: str) -> OpenSSH:
    base = cache_dir() / ("10.0p1" if name == "10.0" else "newest")
    if not (base / "version").is_file():
        _provision()
    if not (base / "version").is_file():
        raise RuntimeError(f"{SCRIPT} ran but {base}/version is missing")
    base = base.resolve()
    bin_ = base / "bin"
    libexec = base / "libexec"
    # OpenSSH >= 9.8 delays a source address that made connections "without attempting
    # authentication" or failed to log in; tests do both on purpose, from 127.0.0.1.
    extra: dict[str, str] = {"PerSourcePenalties": "no"}
    # OpenSSH 10.0 took the finite-field Diffie-Hellman exchanges out of sshd's default
    # KexAlgorithms; sshlib implements them, so the test server offers them again.
    extra["KexAlgorithms"] = ("+diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"
                              "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,"
                              "diffie-hellman-group14-sha1")
    source: Path | None = None
    if name == "10.0":
        # Debian's binaries look for these in /usr/lib/openssh, where 9.2 has none.
        extra["SshdSessionPath"] = str((libexec / "sshd-session").resolve())
        extra["SshdAuthPath"] = str((libexec / "sshd-auth").resolve())
    else:
        src = cache_dir() / "src" / base.name
        source = src if src.is_dir() else None
    ssh = str(bin_ / "ssh")
    return OpenSSH(name=name, version=_ssh_version(ssh), sshd=str(base / "sbin" / "sshd"),
                   ssh=ssh, ssh_agent=str(bin_ / "ssh-agent"), ssh_add=str(bin_ / "ssh-add"),
                   ssh_keygen=str(bin_ / "ssh-keygen"), sshd_config=extra, source=source)


def openssh(name: str = "9.2") -> OpenSSH:
    """The OpenSSH called `name` ("9.2", "10.0" or "newest"), provisioning it if needed.

    Raises RuntimeError (never skips) when it cannot be provided.
    """
    if name not in VERSIONS:
        raise ValueError(f"unknown OpenSSH {name!r}; choose one of {VERSIONS}")
    with _lock:
        if name not in _cache:
            if name == "9.2":
                peer = OpenSSH(name=name, version=_ssh_version("/usr/bin/ssh"),
                               sshd="/usr/sbin/sshd", ssh="/usr/bin/ssh",
                               ssh_agent="/usr/bin/ssh-agent", ssh_add="/usr/bin/ssh-add",
                               ssh_keygen="/usr/bin/ssh-keygen")
            else:
                peer = _private(name)
            _cache[name] = peer
        return _cache[name]
