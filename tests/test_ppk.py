"""PuTTY .ppk files: puttygen (putty-tools) writes v2 and v3 files for each key type and KDF,
sshlib loads each and authenticates with it; to_ppk output is read back by puttygen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from servers import USER_KEY_TYPES

import sshlib
from sshlib.errors import KeyLoadError, PassphraseRequiredError

PASS = "pütty pass"
# name -> --ppk-param value (small Argon2 costs keep the tests fast; the defaults are
# exercised by the files puttygen writes without parameters).
VARIANTS = {
    "v3-argon2id": ("version=3,kdf=argon2id,memory=1024,passes=2", True),
    "v3-argon2i": ("version=3,kdf=argon2i,memory=1024,passes=2,parallelism=2", True),
    "v3-argon2d": ("version=3,kdf=argon2d,memory=2048,passes=1", True),
    "v3-default": ("version=3", True),
    "v3-plain": ("version=3", False),
    "v2": ("version=2", True),
    "v2-plain": ("version=2", False),
}


def puttygen(*args: str) -> str:
    proc = subprocess.run(["puttygen", *args], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"puttygen {args} failed: {proc.stderr}"
    return proc.stdout


class PPKFiles:
    def __init__(self, base: Path, server: Any) -> None:
        self.base = base
        self.passfile = base / "pass"
        self.passfile.write_text(PASS)
        self.empty = base / "empty"
        self.empty.write_text("")
        self.files: dict[tuple[str, str], Path] = {}
        self.publics: dict[str, str] = {}
        for key_type in USER_KEY_TYPES:
            # puttygen imports the test server's (authorized) OpenSSH key...
            source = server.user_key_paths[f"{key_type}-openssh"]
            self.publics[key_type] = puttygen(str(source), "-O", "public-openssh").split()[1]
            for variant, (param, encrypted) in VARIANTS.items():
                out = base / f"{key_type}-{variant}.ppk"
                puttygen(str(source), "-O", "private", "-o", str(out), "-C", f"c {variant}",
                         "--new-passphrase", str(self.passfile if encrypted else self.empty),
                         "--ppk-param", param)
                self.files[key_type, variant] = out


@pytest.fixture(scope="module")
def ppk(tmp_path_factory: pytest.TempPathFactory, openssh_server: Any) -> PPKFiles:
    return PPKFiles(tmp_path_factory.mktemp("ppk"), openssh_server)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("key_type", USER_KEY_TYPES)
def test_puttygen_files_load(ppk: PPKFiles, key_type: str, variant: str) -> None:
    path = ppk.files[key_type, variant]
    header = path.read_text().splitlines()
    assert header[0].startswith(f"PuTTY-User-Key-File-{variant[1]}:")
    if variant.startswith("v3-argon2"):
        assert f"Key-Derivation: Argon2{variant[9:]}" in header
    encrypted = VARIANTS[variant][1]
    key = sshlib.load_private_key(path, passphrase=PASS if encrypted else None)
    assert key.public_key.openssh().split()[1] == ppk.publics[key_type]
    assert key.comment == f"c {variant}"
    assert key.public_key.verify(b"m", key.sign(b"m"), key.public_key.signature_algorithms[0])
    if encrypted:
        with pytest.raises(PassphraseRequiredError):
            sshlib.load_private_key(path)
        with pytest.raises(KeyLoadError, match="wrong passphrase"):
            sshlib.load_private_key(path, passphrase="not it")


@pytest.mark.parametrize("key_type", USER_KEY_TYPES)
def test_ppk_keys_authenticate(frontend: Any, openssh_server: Any, ppk: PPKFiles,
                               key_type: str) -> None:
    signers = [sshlib.load_private_key(ppk.files[key_type, v],
                                       passphrase=PASS if VARIANTS[v][1] else None)
               for v in ("v3-default", "v2")]
    for signer in signers:
        cfg = sshlib.ClientConfig(
            user=openssh_server.user, auth=[sshlib.PublicKeys(signer)],
            host_key_callback=sshlib.knownhosts.callback(openssh_server.known_hosts_path),
            timeout=30)
        with frontend.dial(openssh_server.address, cfg) as client:
            with client.new_session() as session:
                assert bytes(session.output("whoami")).strip() == openssh_server.user.encode()


@pytest.mark.parametrize(("version", "passphrase"), [(3, PASS), (3, None), (2, PASS), (2, None)])
@pytest.mark.parametrize("key_type", USER_KEY_TYPES)
def test_to_ppk_read_back_by_puttygen(ppk: PPKFiles, tmp_path: Path, key_type: str,
                                      version: int, passphrase: str | None) -> None:
    key = sshlib.load_private_key(ppk.files[key_type, "v3-plain"])
    key.comment = "written by sshlib"
    out = tmp_path / "ours.ppk"
    out.write_bytes(key.to_ppk(passphrase=passphrase, version=version))
    assert out.read_text().startswith(f"PuTTY-User-Key-File-{version}: {key.public_key.key_type}")
    old = ["--old-passphrase", str(ppk.passfile if passphrase else ppk.empty)]
    public = puttygen(str(out), *old, "-O", "public-openssh").split()
    assert public[1] == ppk.publics[key_type]
    assert " ".join(public[2:]) == "written by sshlib"
    # puttygen decrypts the private part too (its MAC check covers everything).
    openssh = tmp_path / "ours-openssh"
    puttygen(str(out), *old, "-O", "private-openssh-new", "-o", str(openssh),
             "--new-passphrase", str(ppk.empty))
    assert sshlib.load_private_key(openssh).public_key == key.public_key
    assert sshlib.load_private_key(out, passphrase=passphrase).public_key == key.public_key


def test_argon2i_without_the_extra_names_it(ppk: PPKFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "argon2", None)
    monkeypatch.setitem(sys.modules, "argon2.low_level", None)
    with pytest.raises(KeyLoadError, match=r"sshlib\[ppk\]"):
        sshlib.load_private_key(ppk.files["ed25519", "v3-argon2i"], passphrase=PASS)
    # Argon2id needs nothing beyond cryptography.
    sshlib.load_private_key(ppk.files["ed25519", "v3-argon2id"], passphrase=PASS)


def test_tampered_and_truncated_files(ppk: PPKFiles) -> None:
    for variant in ("v3-plain", "v2-plain", "v3-argon2id", "v2"):
        text = ppk.files["ecdsa-256", variant].read_text()
        passphrase = PASS if VARIANTS[variant][1] else None
        lines = text.splitlines()
        comment = lines.index(next(line for line in lines if line.startswith("Comment:")))
        lines[comment] = "Comment: changed"
        with pytest.raises(KeyLoadError, match=r"MAC|passphrase"):
            sshlib.parse_private_key("\n".join(lines).encode(), passphrase)
        for cut in (10, len(text) // 2, len(text) - 20):
            with pytest.raises(KeyLoadError):
                sshlib.parse_private_key(text[:cut].encode(), passphrase)
    huge = ppk.files["ed25519", "v3-argon2id"].read_text().replace(
        "Argon2-Memory: 1024", "Argon2-Memory: 99999999999")
    with pytest.raises(KeyLoadError, match="Argon2-Memory"):
        sshlib.parse_private_key(huge.encode(), PASS)
    with pytest.raises(KeyLoadError, match="version"):
        sshlib.parse_private_key(b"PuTTY-User-Key-File-1: ssh-rsa\n", None)
