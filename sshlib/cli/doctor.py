"""``sshlib agent doctor``: find every agent reachable from here and say how to use it.

Everything the doctor looks at comes from a `MachineState` (environment, home
directory, platform, /proc/version, runtime and temp directories), so tests
can arrange a whole machine; `MachineState.current()` reads the real one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob
import json
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..agent import AgentClient, AgentKey, connect
from ..agent.assuan import is_assuan_data
from ..agent.cygwin import CYGWIN_MAGIC
from ..agent.discover import OPENSSH_PIPE, discovery_order
from ..agent.paths import AgentDirSocket, agent_home_sockets, agent_homes, user_home
from ..errors import AgentError

__all__ = ["MachineState", "Finding", "Report", "WslInfo", "diagnose", "render_table",
           "render_json", "candidates"]

#: Never probe more than this many paths (a /tmp full of ssh-* directories).
_MAX_CANDIDATES = 64
_MAX_FILE = 4096


@dataclass(frozen=True)
class MachineState:
    """What the doctor may look at; every field can be arranged by a test."""

    environ: Mapping[str, str]
    home: Path
    platform: str
    uid: int | None
    proc_version: str
    runtime_dir: Path | None
    temp_dirs: tuple[Path, ...]
    #: The passwd entry's home (OpenSSH's ~ where $HOME is not used); None: same as `home`.
    passwd_home: Path | None = None
    #: For OpenSSH's hostname hash in ~/.ssh/agent/ socket names; None: this host's name.
    hostname: str | None = None

    @classmethod
    def current(cls) -> MachineState:
        """This process's real environment, home, platform, uid and temporary folders."""
        environ = dict(os.environ)
        getuid = getattr(os, "getuid", None)
        uid = getuid() if getuid is not None else None
        try:
            with open("/proc/version", encoding="utf-8", errors="replace") as fh:
                proc_version = fh.read(4096)
        except OSError:
            proc_version = ""
        runtime = environ.get("XDG_RUNTIME_DIR") or (f"/run/user/{uid}" if uid is not None
                                                     else "")
        temps = [Path(tempfile.gettempdir())]
        if sys.platform != "win32" and Path("/tmp") not in temps:
            temps.append(Path("/tmp"))
        return cls(environ, Path.home(), sys.platform, uid, proc_version,
                   Path(runtime) if runtime else None, tuple(temps),
                   Path(user_home()), socket.gethostname())

    def agent_dir_sockets(self) -> list[AgentDirSocket]:
        """OpenSSH >= 10.1's ~/.ssh/agent/ sockets, best first, as connect() ranks them."""
        if self.platform == "win32":
            return []
        passwd = str(self.passwd_home) if self.passwd_home is not None else str(self.home)
        homes = agent_homes({"HOME": str(self.home)}, passwd)
        return agent_home_sockets(homes, self.hostname, self.uid)


@dataclass(frozen=True)
class WslInfo:
    """WSL detection: version 0 means not WSL."""

    version: int
    distro: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    endpoint: str
    found_via: str
    path: str | None = None


@dataclass
class Finding:
    """One place an agent could be, and what probing it showed."""

    endpoint: str
    found_via: str
    kind: str
    reachable: bool
    reason: str = ""
    keys: list[dict[str, object]] = field(default_factory=list)
    use: list[str] = field(default_factory=list)
    #: Windows pipes: the server processes seen behind the name, and the one that answered.
    listeners: list[str] = field(default_factory=list)
    answered_by: str = ""


@dataclass
class Report:
    """Everything the doctor found: one `Finding` per endpoint looked at, and notes.

    `render_table()` and `render_json()` print it; the exit status follows `any_usable`.
    """

    platform: str
    wsl: WslInfo
    findings: list[Finding]
    notes: list[str]
    #: The endpoint sshlib.agent.connect() with no argument would use, and why.
    picked: str | None = None
    picked_why: str = ""

    @property
    def any_usable(self) -> bool:
        """Whether any endpoint answered as an agent (the command then exits 0)."""
        return any(f.reachable for f in self.findings)


def detect_wsl(state: MachineState) -> WslInfo:
    evidence: list[str] = []
    lower = state.proc_version.lower()
    if "microsoft" in lower:
        evidence.append("/proc/version mentions Microsoft")
    for var in ("WSL_DISTRO_NAME", "WSL_INTEROP"):
        if state.environ.get(var):
            evidence.append(f"{var} is set")
    if not evidence:
        return WslInfo(0, "", ())
    # WSL2 kernels are "...-microsoft-standard-WSL2"; WSL1 reports "...-Microsoft".
    two = "microsoft-standard" in lower or "wsl2" in lower or (
        "microsoft" not in lower and bool(state.environ.get("WSL_INTEROP")))
    return WslInfo(2 if two else 1, state.environ.get("WSL_DISTRO_NAME", ""), tuple(evidence))


def _glob(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def candidates(state: MachineState) -> list[Candidate]:
    """Every place to probe, most specific first, without duplicates."""
    found: list[Candidate] = []
    env = state.environ
    home = str(state.home)

    def add(endpoint: str, via: str, path: str | None = None) -> None:
        found.append(Candidate(endpoint, via, path))

    sock = env.get("SSH_AUTH_SOCK", "")
    if sock:
        add(sock, "SSH_AUTH_SOCK", None if sock.startswith(("\\\\", "//")) else sock)
    if state.platform == "win32":
        add("pageant-pipe", "Windows: PuTTY Pageant pipe")
        add(f"pipe:{OPENSSH_PIPE}", "Windows: OpenSSH agent pipe")
        add("pageant-window", "Windows: Pageant window")
    gnupg_homes = [env["GNUPGHOME"]] if env.get("GNUPGHOME") else []
    gnupg_homes.append(os.path.join(home, ".gnupg"))
    if state.platform == "win32":
        for var in ("APPDATA", "LOCALAPPDATA"):
            if env.get(var):
                gnupg_homes.append(os.path.join(env[var], "gnupg"))
    for directory in gnupg_homes:
        path = os.path.join(directory, "S.gpg-agent.ssh")
        add(path, "GnuPG home", path)
    if state.runtime_dir is not None:
        runtime = str(state.runtime_dir)
        for path in [os.path.join(runtime, "gnupg", "S.gpg-agent.ssh"),
                     *_glob(os.path.join(runtime, "gnupg", "d.*", "S.gpg-agent.ssh"))]:
            add(path, "GnuPG runtime dir", path)
        for name, via in (("ssh-agent.socket", "systemd ssh-agent"),
                          ("openssh_agent", "OpenSSH agent"),
                          ("keyring/ssh", "GNOME Keyring"), ("gcr/ssh", "GNOME gcr")):
            add(os.path.join(runtime, name), via, os.path.join(runtime, name))
    for endpoint, via in discovery_order({}, state.platform, state.agent_dir_sockets()):
        add(endpoint, via, endpoint.removeprefix("unix:"))
    ssh_dir = os.path.join(home, ".ssh")
    for path in (_glob(os.path.join(ssh_dir, "agent.*"))
                 + _glob(os.path.join(ssh_dir, "agent", "*"))
                 + _glob(os.path.join(ssh_dir, "*.sock"))):
        add(path, "~/.ssh", path)
    for path, via in ((os.path.join(home, ".1password", "agent.sock"), "1Password"),
                      (os.path.join(home, ".bitwarden-ssh-agent.sock"), "Bitwarden")):
        add(path, via, path)
    for temp in state.temp_dirs:
        for path in _glob(os.path.join(str(temp), "ssh-*", "agent.*")):
            try:
                owner = os.lstat(path).st_uid
            except OSError:
                continue
            if state.uid is None or owner == state.uid:
                add(path, "ssh-agent temp dir", path)

    unique: list[Candidate] = []
    seen: set[str] = set()
    for candidate in found:
        key = os.path.realpath(candidate.path) if candidate.path else candidate.endpoint
        if key in seen:
            continue
        seen.add(key)
        unique.append(candidate)
    return unique[:_MAX_CANDIDATES]


def _sniff(candidate: Candidate) -> tuple[str, str, str | None]:
    """(endpoint, kind, why-not-or-None) for a path-based candidate, before connecting."""
    path = candidate.path
    assert path is not None
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return candidate.endpoint, "missing", "does not exist"
    except OSError as exc:
        return candidate.endpoint, "unreadable", f"cannot stat: {exc.strerror or exc}"
    if stat.S_ISSOCK(info.st_mode):
        return f"unix:{path}", "unix socket", None
    if stat.S_ISREG(info.st_mode):
        try:
            with open(path, "rb") as fh:
                data = fh.read(_MAX_FILE)
        except OSError as exc:
            return candidate.endpoint, "file", f"cannot read: {exc.strerror or exc}"
        if data.startswith(CYGWIN_MAGIC):
            return f"cygwin:{path}", "Cygwin/MSYS2 socket file", None
        if is_assuan_data(data):
            return f"assuan:{path}", "libassuan socket file", None
        if sys.platform == "win32":
            return f"unix:{path}", "Windows AF_UNIX socket?", None
        return candidate.endpoint, "file", "a regular file, not a socket or socket file"
    return candidate.endpoint, "other", "not a socket or socket file"


def _bridge_hint(endpoint: str, state: MachineState) -> str:
    if state.platform == "win32":
        return (f"sshlib agent bridge --listen pipe:{OPENSSH_PIPE} --to {endpoint}   "
                f"(then Windows OpenSSH finds it)")
    sock = os.path.join(str(state.home), ".ssh", "sshlib-agent.sock")
    return (f"sshlib agent bridge --listen unix:{sock} --to {endpoint}   "
            f"(then IdentityAgent \"{sock}\")")


def _usage(endpoint: str, kind: str, state: MachineState) -> list[str]:
    """The lines that make OpenSSH (or the matching shell) use this agent."""
    address = endpoint.split(":", 1)[1] if ":" in endpoint and not endpoint.startswith(
        ("pageant",)) else endpoint
    if kind == "unix socket" and state.platform != "win32":
        return [f'IdentityAgent "{address}"', f'export SSH_AUTH_SOCK="{address}"']
    if kind == "named pipe":
        return [f'IdentityAgent "//./pipe/{address}"',
                f'$env:SSH_AUTH_SOCK = "\\\\.\\pipe\\{address}"']
    if kind == "Cygwin/MSYS2 socket file":
        return [f'export SSH_AUTH_SOCK="{address}"   (in the Cygwin/MSYS2/Git Bash shell '
                f'that owns it)', _bridge_hint(endpoint, state)]
    return [_bridge_hint(endpoint, state)]


def _probe(candidate: Candidate, state: MachineState, timeout: float) -> Finding:
    if candidate.path is not None:
        endpoint, kind, why_not = _sniff(candidate)
    else:
        endpoint, why_not = candidate.endpoint, None
        kind = ("named pipe" if endpoint.startswith(("pipe:", "\\\\", "//"))
                else "Pageant" if endpoint.startswith("pageant") else "endpoint")
        if endpoint.startswith(("\\\\", "//")):
            endpoint = "pipe:" + endpoint.replace("\\", "/").split("/")[-1]
    finding = Finding(endpoint, candidate.found_via, kind, False)
    if why_not is not None:
        finding.reason = why_not
        return finding
    try:
        if kind == "named pipe" and sys.platform == "win32":
            listed = _probe_pipe(endpoint, timeout, finding)
        else:
            with connect(endpoint, timeout=timeout) as agent:
                listed = agent.list_keys()
    except AgentError as exc:
        finding.reason = exc.reason
        return finding
    from .agent import describe_key

    finding.reachable = True
    for key in listed:
        bits, label = describe_key(key.blob)
        finding.keys.append({"bits": bits, "fingerprint": key.fingerprint(),
                             "comment": key.comment, "type": label})
    finding.use = _usage(endpoint, kind, state)
    return finding


def _probe_pipe(endpoint: str, timeout: float, finding: Finding) -> list[AgentKey]:
    """List keys through a pipe, noting which processes serve its name and which answered."""
    from ..agent.winpipe import pipe_listeners

    seen, transport = pipe_listeners(endpoint.removeprefix("pipe:"), timeout, endpoint)
    finding.listeners = [seen.describe(pid) for pid in seen.distinct]
    finding.answered_by = seen.describe(seen.pids[0])
    with AgentClient(transport, timeout=timeout) as agent:
        return agent.list_keys()


def _pipe_warnings(findings: list[Finding]) -> list[str]:
    """Several programs serving one pipe name (Win32-OpenSSH, 1Password, Bitwarden and
    gpg-agent all use openssh-ssh-agent): which one a client reaches is luck."""
    return [f"warning: {len(f.listeners)} programs listen on pipe {f.endpoint}: "
            f"{', '.join(f.listeners)}; each client gets whichever has a free instance "
            f"(this check was answered by {f.answered_by}). Stop all but one, or give the "
            f"others another pipe name."
            for f in findings if len(f.listeners) > 1]


def diagnose(state: MachineState, timeout: float = 3.0) -> Report:
    """Probe every candidate (in parallel, each bounded by `timeout`) and collect advice."""
    wsl = detect_wsl(state)
    notes: list[str] = []
    if state.platform != "win32":
        notes.append("Windows named pipes and the Pageant window: not checked (not Windows)")
    if wsl.version:
        notes.append(f"WSL{wsl.version} detected ({', '.join(wsl.evidence)})")
        if wsl.version == 2:
            notes.append(
                "WSL2 cannot reach Windows pipes or sockets directly; relay through the "
                "Windows Python: sshlib agent bridge --listen unix:$HOME/.ssh/agent.sock --to "
                "'exec:python.exe -m sshlib agent relay --to pageant' (or --to "
                f"pipe:{OPENSSH_PIPE})")
        else:
            notes.append("WSL1 can connect to Windows AF_UNIX sockets on /mnt/c paths: "
                         "sshlib agent bridge --listen unix:C:\\...\\agent.sock on the Windows "
                         "side, then SSH_AUTH_SOCK=/mnt/c/.../agent.sock here")
    if not state.environ.get("SSH_AUTH_SOCK"):
        notes.append("SSH_AUTH_SOCK is not set")
    found = candidates(state)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        findings = list(pool.map(lambda c: _probe(c, state, timeout), found))
    notes += _pipe_warnings(findings)
    picked, why = _picked(state, found, findings)
    # Places that simply do not exist are noise unless the user pointed at them.
    findings = [f for f in findings if f.kind != "missing" or f.found_via == "SSH_AUTH_SOCK"]
    return Report(state.platform, wsl, findings, notes, picked, why)


def _picked(state: MachineState, found: list[Candidate],
            findings: list[Finding]) -> tuple[str | None, str]:
    """Which finding connect() without an endpoint would use (the first reachable one in
    discovery order), and a sentence saying why it, and not the ones before it."""
    by_key = {_key(c.path or c.endpoint): f for c, f in zip(found, findings, strict=True)}
    skipped: list[str] = []
    for endpoint, via in discovery_order(state.environ, state.platform,
                                         state.agent_dir_sockets()):
        finding = by_key.get(_key(endpoint.removeprefix("unix:")))
        if finding is None:
            continue
        if not finding.reachable:
            skipped.append(f"{endpoint} ({via}): {finding.reason}")
            continue
        why = "SSH_AUTH_SOCK names it" if via == "SSH_AUTH_SOCK" else (
            f"the first live one in discovery order: {via}")
        if skipped:
            why += "; skipped " + "; ".join(skipped)
        return finding.endpoint, why
    if skipped:
        return None, "nothing in discovery order answered: " + "; ".join(skipped)
    return None, "nothing in discovery order (SSH_AUTH_SOCK unset, no ~/.ssh/agent/ sockets)"


def _key(endpoint: str) -> str:
    """A path's real path (never for pipes: resolving one would use up an instance)."""
    if endpoint.startswith(("\\", "//")) or not os.path.isabs(endpoint):
        return endpoint
    try:
        return os.path.realpath(endpoint)
    except OSError:
        return endpoint


def render_table(report: Report) -> str:
    """The report as the aligned text table `sshlib agent doctor` prints."""
    lines: list[str] = []
    if not report.findings:
        lines.append("No agent endpoints found.")
    else:
        width = max(len(f.endpoint) for f in report.findings)
        via_width = max(len(f.found_via) for f in report.findings)
        lines.append(f"{'ENDPOINT':<{width}}  {'FOUND VIA':<{via_width}}  STATUS")
        for f in report.findings:
            if f.reachable:
                count = len(f.keys)
                status = f"ok, {count} key{'s' if count != 1 else ''} ({f.kind})"
            else:
                status = f"not usable: {f.reason} ({f.kind})"
            lines.append(f"{f.endpoint:<{width}}  {f.found_via:<{via_width}}  {status}")
            for key in f.keys:
                lines.append(f"    {key['bits']} {key['fingerprint']} {key['comment']} "
                             f"({key['type']})")
            for line in f.use:
                lines.append(f"    use: {line}")
            if f.answered_by:
                lines.append(f"    answered by: {f.answered_by}")
    if report.picked is not None:
        lines.append(f"sshlib.agent.connect() picks {report.picked}: {report.picked_why}")
    else:
        lines.append(f"sshlib.agent.connect() finds no agent: {report.picked_why}")
    for note in report.notes:
        lines.append(note if note.startswith("warning: ") else f"note: {note}")
    usable = sum(1 for f in report.findings if f.reachable)
    lines.append(f"{usable} usable agent{'s' if usable != 1 else ''} found.")
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    """The report as JSON (`--json`): one object per agent, with `key_count` added."""
    data = {
        "platform": report.platform,
        "wsl": dataclasses.asdict(report.wsl),
        "agents": [dataclasses.asdict(f) | {"key_count": len(f.keys)} for f in report.findings],
        "notes": report.notes,
        "any_usable": report.any_usable,
        "picked": report.picked,
        "picked_why": report.picked_why,
    }
    return json.dumps(data, indent=2) + "\n"
