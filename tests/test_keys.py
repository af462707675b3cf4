"""Tests for sshlib.keys.

Keys come from the real tools (ssh-keygen, openssl) at test time, so loading,
fingerprints and public blobs are checked against OpenSSH's own answers, and
signatures are cross-checked with ``ssh-keygen -Y`` (PROTOCOL.sshsig) and
``openssl dgst`` in both directions.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from sshlib.errors import KeyLoadError, PassphraseRequiredError
from sshlib.keys import (
    ECDSAPublicKey,
    Ed25519PublicKey,
    PrivateKey,
    PublicKey,
    RSAPublicKey,
    Signer,
    from_crypto_key,
    generate_private_key,
    key_type_for_algorithm,
    load_private_key,
    load_public_key,
    parse_openssh_public_key,
    parse_private_key,
    parse_public_key,
    public_key_from_crypto_key,
)
from sshlib.wire import Reader, Writer, string

PASS = "correct horse"

# (name, ssh-keygen -t, -b, key type, bits)
SPECS = [
    ("ed25519", "ed25519", None, "ssh-ed25519", 256),
    ("ecdsa256", "ecdsa", 256, "ecdsa-sha2-nistp256", 256),
    ("ecdsa384", "ecdsa", 384, "ecdsa-sha2-nistp384", 384),
    ("ecdsa521", "ecdsa", 521, "ecdsa-sha2-nistp521", 521),
    ("rsa", "rsa", 2048, "ssh-rsa", 2048),
]
SPEC = {s[0]: s for s in SPECS}


def run(*args: str, input: bytes | None = None) -> str:
    """Run a tool, failing the test with its stderr if it fails."""
    proc = subprocess.run(args, input=input, capture_output=True, check=False)
    assert proc.returncode == 0, f"{args} failed: {proc.stderr.decode(errors='replace')}"
    return proc.stdout.decode()


def keygen_fingerprint(path: Path) -> tuple[int, str]:
    """(bits, SHA256:...) as ``ssh-keygen -l`` reports them."""
    bits, fp, *_ = run("ssh-keygen", "-l", "-f", str(path)).split()
    return int(bits), fp


@dataclass
class KeyFiles:
    name: str
    key_type: str
    bits: int
    pub: Path
    files: dict[str, Path]  # format name -> private key file (same key in each)


def convert(orig: Path, fmt: str, mode: str | None, passphrase: str) -> Path:
    """Copy `orig` and let ``ssh-keygen -p`` rewrite it in another format / passphrase."""
    target = orig.with_name(f"{orig.name}.{fmt}")
    shutil.copy(orig, target)
    args = ["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(target)]
    if mode:
        args += ["-m", mode]
    run(*args)
    return target


@pytest.fixture(scope="session")
def keyfiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyFiles]:
    """One key per type from ssh-keygen, rewritten by ssh-keygen itself into every format."""
    base = tmp_path_factory.mktemp("keys")
    result = {}
    for name, tool_type, bits, key_type, size in SPECS:
        orig = base / name
        args = ["ssh-keygen", "-q", "-t", tool_type, "-N", "", "-C", f"{name} comment",
                "-f", str(orig)]
        if bits:
            args += ["-b", str(bits)]
        run(*args)
        files = {"openssh": orig}
        # ssh-keygen's default encryption: aes256-ctr, bcrypt with 16 rounds.
        files["openssh-enc"] = convert(orig, "openssh-enc", None, PASS)
        if tool_type != "ed25519":  # ssh-keygen writes ed25519 only as openssh-key-v1
            files["pem"] = convert(orig, "pem", "PEM", "")
            files["pem-enc"] = convert(orig, "pem-enc", "PEM", PASS)
            files["pkcs8"] = convert(orig, "pkcs8", "PKCS8", "")
            files["pkcs8-enc"] = convert(orig, "pkcs8-enc", "PKCS8", PASS)
        result[name] = KeyFiles(name, key_type, size, Path(f"{orig}.pub"), files)
    return result


def all_files() -> list[tuple[str, str]]:
    out = []
    for name, tool_type, *_ in SPECS:
        formats = ["openssh", "openssh-enc"]
        if tool_type != "ed25519":
            formats += ["pem", "pem-enc", "pkcs8", "pkcs8-enc"]
        out += [(name, fmt) for fmt in formats]
    return out


@pytest.fixture(scope="session")
def private_keys(keyfiles: dict[str, KeyFiles]) -> dict[str, PrivateKey]:
    return {name: load_private_key(kf.files["openssh"]) for name, kf in keyfiles.items()}


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), all_files())
def test_load_every_format(keyfiles: dict[str, KeyFiles], name: str, fmt: str) -> None:
    kf = keyfiles[name]
    path = kf.files[fmt]
    passphrase = PASS if fmt.endswith("-enc") else None
    key = load_private_key(path, passphrase)
    pub = load_public_key(kf.pub)
    assert key.public_key == pub
    assert key.public_key.blob == pub.blob
    assert key.public_key.key_type == kf.key_type
    assert key.public_key.key_size == kf.bits
    assert (key.public_key.key_size, key.public_key.fingerprint()) == keygen_fingerprint(kf.pub)
    # The .pub file line (minus comment) is exactly what openssh() produces.
    assert kf.pub.read_text().split()[:2] == key.public_key.openssh().split()
    if fmt.startswith("openssh"):
        assert key.comment == f"{name} comment"  # PEM formats have no comment
    if passphrase:
        with pytest.raises(PassphraseRequiredError, match=re.escape(str(path))):
            load_private_key(path)
        with pytest.raises(KeyLoadError, match="passphrase") as info:
            load_private_key(path, "wrong passphrase")
        assert not isinstance(info.value, PassphraseRequiredError)
        assert str(path) in str(info.value)
    else:
        # A passphrase offered for a plain key is ignored.
        assert load_private_key(path, "unused").public_key == pub
    # bytes passphrase and parse_private_key on the raw data agree.
    raw = parse_private_key(path.read_bytes(), passphrase.encode() if passphrase else None)
    assert raw.public_key == pub


def test_headers_of_generated_files(keyfiles: dict[str, KeyFiles]) -> None:
    """Make sure the fixture really produced the formats the tests claim to cover."""
    files = keyfiles["rsa"].files
    assert b"BEGIN OPENSSH PRIVATE KEY" in files["openssh"].read_bytes()
    assert b"BEGIN RSA PRIVATE KEY" in files["pem"].read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in files["pem-enc"].read_bytes()
    assert b"BEGIN PRIVATE KEY" in files["pkcs8"].read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in files["pkcs8-enc"].read_bytes()
    assert b"BEGIN EC PRIVATE KEY" in keyfiles["ecdsa384"].files["pem"].read_bytes()
    enc = keyfiles["ed25519"].files["openssh-enc"].read_bytes()
    container = base64.b64decode(b"".join(enc.splitlines()[1:-1]))
    assert b"aes256-ctr" in container[:40] and b"bcrypt" in container[:60]


def test_tilde_is_expanded(keyfiles: dict[str, KeyFiles], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    kf = keyfiles["ed25519"]
    shutil.copy(kf.files["openssh"], tmp_path / "id")
    shutil.copy(kf.pub, tmp_path / "id.pub")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_private_key("~/id").public_key == load_public_key("~/id.pub")


OPENSSH_CIPHERS = [
    "aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes192-cbc", "aes256-cbc",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
    "3des-cbc",
]


def test_cipher_list_matches_openssh() -> None:
    """Every cipher this ssh-keygen can protect a key with is covered below."""
    assert set(run("ssh", "-Q", "cipher").split()) == set(OPENSSH_CIPHERS)


@pytest.mark.parametrize("cipher", OPENSSH_CIPHERS)
def test_openssh_key_ciphers(tmp_path: Path, cipher: str) -> None:
    """ssh-keygen -Z writes it, we read it; we write it, ssh-keygen reads it."""
    path = tmp_path / "k"
    run("ssh-keygen", "-q", "-t", "ed25519", "-a", "2", "-Z", cipher, "-N", PASS,
        "-C", "via ssh-keygen", "-f", str(path))
    key = load_private_key(path, PASS)
    assert key.public_key == load_public_key(f"{path}.pub")
    assert key.comment == "via ssh-keygen"
    with pytest.raises(KeyLoadError, match="wrong passphrase"):
        load_private_key(path, "not it")
    # Damage the last byte of the container (the tag for AEAD ciphers, else padding).
    text = path.read_bytes().splitlines()
    body = bytearray(base64.b64decode(b"".join(text[1:-1])))
    body[-1] ^= 1
    with pytest.raises(KeyLoadError):
        parse_private_key(openssh_pem(bytes(body)), PASS)

    for name in ("ecdsa384", "rsa"):
        tool_type, bits = SPEC[name][1], SPEC[name][2]
        mine = generate_private_key(tool_type, bits, comment=f"sshlib {cipher}")
        out = tmp_path / f"mine-{name}"
        out.write_bytes(mine.to_openssh_private(PASS.encode(), cipher=cipher, rounds=2))
        out.chmod(0o600)
        line = run("ssh-keygen", "-y", "-P", PASS, "-f", str(out)).strip()
        assert line == f"{mine.public_key.openssh()} sshlib {cipher}"
        again = load_private_key(out, PASS)
        assert again.public_key == mine.public_key
        assert again.comment == mine.comment


@pytest.mark.parametrize("name", [s[0] for s in SPECS])
def test_to_openssh_private_read_by_ssh_keygen(tmp_path: Path, name: str) -> None:
    key = generate_private_key(SPEC[name][3], comment="a comment with spaces")
    for passphrase in (None, PASS.encode()):
        path = tmp_path / "out"
        path.write_bytes(key.to_openssh_private(passphrase))
        path.chmod(0o600)
        args = ["ssh-keygen", "-y", "-f", str(path)]
        if passphrase:
            args[2:2] = ["-P", PASS]
        assert run(*args).strip() == f"{key.public_key.openssh()} a comment with spaces"
        loaded = load_private_key(path, passphrase)
        assert loaded.public_key == key.public_key
        assert loaded.comment == key.comment
        # The loaded key signs with the same private key.
        sig = loaded.sign(b"x")
        assert key.public_key.verify(b"x", sig, key.public_key.signature_algorithms[0])
        path.unlink()


def openssl_ed25519_pub(path: Path, passphrase: str | None = None) -> bytes:
    """Raw 32-byte Ed25519 public key according to openssl."""
    args = ["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"]
    if passphrase:
        args += ["-passin", f"pass:{passphrase}"]
    der = subprocess.run(args, capture_output=True, check=True).stdout
    return der[-32:]


def test_ed25519_pkcs8_from_openssl(tmp_path: Path) -> None:
    plain = tmp_path / "ed.pem"
    enc = tmp_path / "ed-enc.pem"
    run("openssl", "genpkey", "-algorithm", "ed25519", "-out", str(plain))
    run("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(plain),
        "-passout", f"pass:{PASS}", "-out", str(enc))
    expected = string("ssh-ed25519") + string(openssl_ed25519_pub(plain))
    assert load_private_key(plain).public_key.blob == expected
    assert load_private_key(enc, PASS).public_key.blob == expected
    with pytest.raises(PassphraseRequiredError):
        load_private_key(enc)
    with pytest.raises(KeyLoadError, match="passphrase"):
        load_private_key(enc, "nope")
    der = tmp_path / "ed.der"
    run("openssl", "pkey", "-in", str(plain), "-outform", "DER", "-out", str(der))
    assert load_private_key(der).public_key.blob == expected


@pytest.mark.parametrize("pkcs8_args", [
    ["-v2", "aes-256-cbc"],
    ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"],
    ["-v2", "des3"],
    ["-v1", "PBE-SHA1-3DES"],
    ["-scrypt"],
])
def test_encrypted_pkcs8_from_openssl(keyfiles: dict[str, KeyFiles], tmp_path: Path,
                                      pkcs8_args: list[str]) -> None:
    kf = keyfiles["ecdsa256"]
    out = tmp_path / "k.p8"
    run("openssl", "pkcs8", "-topk8", *pkcs8_args, "-in", str(kf.files["pem"]),
        "-passout", f"pass:{PASS}", "-out", str(out))
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in out.read_bytes()
    assert load_private_key(out, PASS).public_key == load_public_key(kf.pub)
    with pytest.raises(PassphraseRequiredError):
        load_private_key(out)
    with pytest.raises(KeyLoadError):
        load_private_key(out, "bad")


def test_legacy_encrypted_ec_pem_from_openssl(keyfiles: dict[str, KeyFiles],
                                              tmp_path: Path) -> None:
    kf = keyfiles["ecdsa521"]
    out = tmp_path / "ec.pem"
    run("openssl", "ec", "-in", str(kf.files["pem"]), "-aes256", "-passout", f"pass:{PASS}",
        "-out", str(out))
    text = out.read_bytes()
    assert b"BEGIN EC PRIVATE KEY" in text and b"DEK-Info: AES-256-CBC" in text
    assert load_private_key(out, PASS).public_key == load_public_key(kf.pub)
    with pytest.raises(PassphraseRequiredError):
        load_private_key(out)


def test_dsa_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dsa"
    run("ssh-keygen", "-q", "-t", "dsa", "-N", "", "-f", str(path))
    with pytest.raises(KeyLoadError, match="DSA") as info:
        load_private_key(path)
    assert str(path) in str(info.value)
    with pytest.raises(KeyLoadError, match="DSA"):
        load_public_key(f"{path}.pub")
    run("ssh-keygen", "-q", "-p", "-P", "", "-N", "", "-m", "PEM", "-f", str(path))
    assert b"BEGIN DSA PRIVATE KEY" in path.read_bytes()
    with pytest.raises(KeyLoadError, match="DSA"):
        load_private_key(path)
    with pytest.raises(KeyLoadError, match="DSA"):
        from_crypto_key(dsa.generate_private_key(2048))


def test_small_rsa_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rsa768.pem"
    run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:768",
        "-out", str(path))
    with pytest.raises(KeyLoadError, match="too small"):
        load_private_key(path)
    # Its public half is refused too (OpenSSH does the same).
    numbers = serialization.load_pem_private_key(path.read_bytes(), None).public_key()
    assert isinstance(numbers, rsa.RSAPublicKey)
    n = numbers.public_numbers()
    blob = Writer().string("ssh-rsa").mpint(n.e).mpint(n.n).getvalue()
    with pytest.raises(KeyLoadError, match="too small"):
        parse_public_key(blob)
    with pytest.raises(KeyLoadError, match="too small"):
        public_key_from_crypto_key(numbers)


def test_other_curves_are_refused() -> None:
    with pytest.raises(KeyLoadError, match="curve"):
        from_crypto_key(ec.generate_private_key(ec.SECP256K1()))
    pem = ec.generate_private_key(ec.SECP256K1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    with pytest.raises(KeyLoadError, match="curve"):
        parse_private_key(pem)


def openssh_container(public_blob: bytes, private: bytes) -> bytes:
    body = (b"openssh-key-v1\x00" + Writer().string("none").string("none").string(b"")
            .uint32(1).string(public_blob).string(private).getvalue())
    return (b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + base64.encodebytes(body)
            + b"-----END OPENSSH PRIVATE KEY-----\n")


def test_security_key_private_key_is_refused() -> None:
    blob = (Writer().string("sk-ssh-ed25519@openssh.com").string(bytes(32))
            .string("ssh:").getvalue())
    private = (b"\x01\x02\x03\x04" * 2 + Writer().string("sk-ssh-ed25519@openssh.com")
               .string(bytes(32)).string("ssh:").byte(1).string(b"handle").string(b"")
               .string(b"").getvalue())
    with pytest.raises(KeyLoadError, match="security-key"):
        parse_private_key(openssh_container(blob, private))
    # The public half parses (it is usable through an agent, see test_sk.py).
    assert parse_public_key(blob).key_type == "sk-ssh-ed25519@openssh.com"


def test_corrupt_private_keys(keyfiles: dict[str, KeyFiles]) -> None:
    good = keyfiles["ed25519"].files["openssh"].read_bytes()
    lines = good.splitlines()
    body = base64.b64decode(b"".join(lines[1:-1]))
    cases = {
        "empty": b"",
        "garbage": b"hello world\n",
        "no end line": b"\n".join(lines[:-1]),
        "truncated": openssh_pem(body[:len(body) // 2]),
        "bad magic": openssh_pem(b"openssh-key-v2" + body[14:]),
        "public key": keyfiles["ed25519"].pub.read_bytes(),
        "pem without key": b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "bad pkcs8": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "putty": b"PuTTY-User-Key-File-3: ssh-ed25519\n",
    }
    for label, data in cases.items():
        with pytest.raises(KeyLoadError):
            parse_private_key(data)
        with pytest.raises(KeyLoadError):  # not just PassphraseRequiredError paths
            parse_private_key(data, "pw")
        del label
    # Flip each byte of the private section in turn: always KeyLoadError, never a crash.
    reader = Reader(body, len(b"openssh-key-v1\x00"))
    for _ in range(3):  # cipher, kdf, kdf options
        reader.string()
    assert reader.uint32() == 1
    reader.string()  # public key
    start = len(body) - reader.remaining + 4  # first byte of the private section
    for pos in range(start, len(body)):
        mutated = bytearray(body)
        mutated[pos] ^= 0x55
        try:
            key = parse_private_key(openssh_pem(bytes(mutated)))
        except KeyLoadError:
            continue
        # Only the comment and padding bytes may change without breaking the key.
        assert key.public_key == load_public_key(keyfiles["ed25519"].pub)


def openssh_pem(body: bytes) -> bytes:
    return (b"-----BEGIN OPENSSH PRIVATE KEY-----\n" + base64.encodebytes(body)
            + b"-----END OPENSSH PRIVATE KEY-----\n")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_openssh_container_never_crashes(junk: bytes) -> None:
    with pytest.raises(KeyLoadError):
        parse_private_key(openssh_pem(b"openssh-key-v1\x00" + junk), "pw")


def test_missing_file() -> None:
    with pytest.raises(KeyLoadError, match="/nonexistent/key"):
        load_private_key("/nonexistent/key")
    with pytest.raises(KeyLoadError, match="Is a directory"):
        load_private_key("/")
    with pytest.raises(KeyLoadError, match=r"/nonexistent/key\.pub"):
        load_public_key("/nonexistent/key.pub")


# --------------------------------------------------------------------------
# public keys
# --------------------------------------------------------------------------


def test_public_key_classes(private_keys: dict[str, PrivateKey]) -> None:
    assert isinstance(private_keys["ed25519"].public_key, Ed25519PublicKey)
    assert isinstance(private_keys["ecdsa384"].public_key, ECDSAPublicKey)
    assert isinstance(private_keys["rsa"].public_key, RSAPublicKey)
    assert private_keys["rsa"].public_key.signature_algorithms == (
        "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
    for name in ("ed25519", "ecdsa256", "ecdsa384", "ecdsa521"):
        pub = private_keys[name].public_key
        assert pub.signature_algorithms == (pub.key_type,)


def test_public_key_identity(keyfiles: dict[str, KeyFiles]) -> None:
    for kf in keyfiles.values():
        a = load_public_key(kf.pub)
        text = kf.pub.read_text()
        b = parse_openssh_public_key(text)
        c = parse_openssh_public_key(text.encode())
        d = parse_public_key(a.blob)
        e = public_key_from_crypto_key(a.crypto_key)
        assert a == b == c == d == e
        assert len({a, b, c, d, e}) == 1
        assert e.blob == a.blob
        assert a.fingerprint() in repr(a) and a.key_type in repr(a)
    keys = [load_public_key(kf.pub) for kf in keyfiles.values()]
    assert len(set(keys)) == len(keys)
    assert keys[0] != keys[1]
    assert keys[0] != "not a key"


def test_rfc4716_public_key(keyfiles: dict[str, KeyFiles], tmp_path: Path) -> None:
    for kf in keyfiles.values():
        exported = tmp_path / "k.rfc"
        exported.write_text(run("ssh-keygen", "-e", "-f", str(kf.pub)))
        assert "BEGIN SSH2 PUBLIC KEY" in exported.read_text()
        assert load_public_key(exported) == load_public_key(kf.pub)


def test_parse_openssh_public_key_errors(keyfiles: dict[str, KeyFiles]) -> None:
    ed_type, ed_b64 = keyfiles["ed25519"].pub.read_text().split()[:2]
    rsa_b64 = keyfiles["rsa"].pub.read_text().split()[1]
    assert parse_openssh_public_key(f"  {ed_type} {ed_b64}\n").key_type == ed_type
    bad = [
        "",
        ed_type,
        f"{ed_type} not!base64",
        f"ssh-rsa {ed_b64}",  # type on the line disagrees with the blob
        f"{ed_type} {rsa_b64}",
        f"{ed_type} {ed_b64[:-8]}",
        f'from="x" {ed_type} {ed_b64}',  # authorized_keys options are not accepted here
    ]
    for text in bad:
        with pytest.raises(KeyLoadError):
            parse_openssh_public_key(text)
    with pytest.raises(KeyLoadError):
        parse_openssh_public_key(b"\xff\xfe")


def test_malformed_public_blobs(private_keys: dict[str, PrivateKey]) -> None:
    for key in private_keys.values():
        blob = key.public_key.blob
        for cut in range(len(blob)):
            with pytest.raises(KeyLoadError):
                parse_public_key(blob[:cut])
        with pytest.raises(KeyLoadError):
            parse_public_key(blob + b"\x00")
    p256 = private_keys["ecdsa256"].public_key.crypto_key
    assert isinstance(p256, ec.EllipticCurvePublicKey)
    point = p256.public_bytes(serialization.Encoding.X962,
                              serialization.PublicFormat.UncompressedPoint)
    compressed = p256.public_bytes(serialization.Encoding.X962,
                                   serialization.PublicFormat.CompressedPoint)
    cases = [
        Writer().string("ssh-ed25519").string(bytes(31)).getvalue(),
        Writer().string("ecdsa-sha2-nistp256").string("nistp384").string(point).getvalue(),
        Writer().string("ecdsa-sha2-nistp256").string("nistp256").string(compressed).getvalue(),
        Writer().string("ecdsa-sha2-nistp256").string("nistp256")
        .string(point[:-1] + bytes([point[-1] ^ 1])).getvalue(),  # not on the curve
        Writer().string("ssh-rsa").mpint(-65537).mpint(2**2047 + 1).getvalue(),
        Writer().string("ssh-rsa").mpint(65537).mpint(2**20000 + 1).getvalue(),
        Writer().string("ssh-rsa").mpint(4).mpint(2**2047 + 1).getvalue(),  # even exponent
        Writer().string("ssh-dss").mpint(1).mpint(1).mpint(1).mpint(1).getvalue(),
        Writer().string("ssh-ed25519-cert-v01@openssh.com").string(b"").getvalue(),
        Writer().string(b"\xff\xfe").getvalue(),
        b"",
    ]
    for blob in cases:
        with pytest.raises(KeyLoadError):
            parse_public_key(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(
    [b"ssh-ed25519", b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp521", b"ssh-rsa", b"x"]))
def test_fuzz_public_blob(junk: bytes, key_type: bytes) -> None:
    for blob in (junk, string(key_type) + junk):
        try:
            parse_public_key(blob)
        except KeyLoadError:
            pass


def test_key_type_for_algorithm() -> None:
    assert key_type_for_algorithm("rsa-sha2-256") == "ssh-rsa"
    assert key_type_for_algorithm("rsa-sha2-512") == "ssh-rsa"
    assert key_type_for_algorithm("ssh-rsa") == "ssh-rsa"
    assert key_type_for_algorithm("ssh-ed25519") == "ssh-ed25519"
    assert key_type_for_algorithm("ecdsa-sha2-nistp384") == "ecdsa-sha2-nistp384"


# --------------------------------------------------------------------------
# signing and verifying
# --------------------------------------------------------------------------


def sig_cases() -> list[tuple[str, str]]:
    out = []
    for name, _t, _b, key_type, _bits in SPECS:
        algs = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if key_type == "ssh-rsa" else [key_type]
        out += [(name, alg) for alg in algs]
    return out


def split_sig(blob: bytes) -> tuple[bytes, bytes]:
    reader = Reader(blob)
    name, sig = reader.string(), reader.string()
    reader.check_end()
    return name, sig


@pytest.mark.parametrize(("name", "alg"), sig_cases())
def test_sign_verify_round_trip(private_keys: dict[str, PrivateKey], name: str,
                                alg: str) -> None:
    key = private_keys[name]
    pub = key.public_key
    data = b"session id and userauth request " + name.encode()
    sig = key.sign(data, alg)
    assert split_sig(sig)[0] == alg.encode()
    assert pub.verify(data, sig, alg)
    assert not pub.verify(data + b"!", sig, alg)
    assert not pub.verify(b"", sig, alg)
    # The name inside the blob must be the algorithm asked about...
    for other in ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-ed25519",
                  "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "bogus"):
        if other != alg:
            assert not pub.verify(data, sig, other)
    # ...and relabelling the blob does not help either.
    _, inner = split_sig(sig)
    for other in pub.signature_algorithms:
        if other != alg:
            assert not pub.verify(data, string(other) + string(inner), other)
    if alg == "rsa-sha2-512":
        # A SHA-512 signature labelled rsa-sha2-256 is not accepted as either.
        relabelled = string("rsa-sha2-256") + string(inner)
        assert not pub.verify(data, relabelled, "rsa-sha2-512")
        assert not pub.verify(data, relabelled, "rsa-sha2-256")
    # Truncations, extensions and garbage are all just False.
    for cut in range(len(sig)):
        assert not pub.verify(data, sig[:cut], alg)
    assert not pub.verify(data, sig + b"\x00", alg)
    assert not pub.verify(data, string(alg) + string(inner + b"\x00"), alg)
    assert not pub.verify(data, os.urandom(len(sig)), alg)
    flipped = bytearray(sig)
    flipped[-1] ^= 1
    assert not pub.verify(data, bytes(flipped), alg)
    # Another key of the same type does not verify it.
    other_key = generate_private_key(pub.key_type, pub.key_size if name != "ed25519" else None)
    assert not other_key.public_key.verify(data, sig, alg)


def test_default_algorithms(private_keys: dict[str, PrivateKey]) -> None:
    for name, key in private_keys.items():
        expected = "rsa-sha2-512" if name == "rsa" else key.public_key.key_type
        sig = key.sign(b"data")
        assert split_sig(sig)[0] == expected.encode()
        assert key.public_key.verify(b"data", sig, expected)
        assert isinstance(key, Signer)
    with pytest.raises(ValueError):
        private_keys["ed25519"].sign(b"data", "ssh-rsa")
    with pytest.raises(ValueError):
        private_keys["rsa"].sign(b"data", "ssh-ed25519")
    with pytest.raises(ValueError):
        private_keys["ecdsa256"].sign(b"data", "ecdsa-sha2-nistp384")


def test_ecdsa_signature_integers(private_keys: dict[str, PrivateKey]) -> None:
    key = private_keys["ecdsa256"]
    pub = key.public_key
    alg = pub.key_type
    sig = key.sign(b"m", alg)
    reader = Reader(split_sig(sig)[1])
    r, s = reader.mpint(), reader.mpint()
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

    def build(r: int, s: int) -> bytes:
        return string(alg) + string(Writer().mpint(r).mpint(s).getvalue())

    assert pub.verify(b"m", build(r, s), alg)
    assert not pub.verify(b"m", build(-r, s), alg)
    assert not pub.verify(b"m", build(r, -s), alg)
    assert not pub.verify(b"m", build(0, s), alg)
    assert not pub.verify(b"m", build(r, 0), alg)
    assert not pub.verify(b"m", build(r + order, s), alg)
    # ECDSA malleability: (r, n - s) is also valid maths, and OpenSSH accepts it too.
    assert pub.verify(b"m", build(r, order - s), alg)


def test_rsa_short_signature_is_left_padded(private_keys: dict[str, PrivateKey]) -> None:
    """RFC 8332 section 3: accept a signature that lost its leading zero byte."""
    key = private_keys["rsa"]
    for i in range(5000):
        data = f"message {i}".encode()
        sig = split_sig(key.sign(data, "rsa-sha2-256"))[1]
        if sig[0] == 0:
            break
    else:
        raise AssertionError("no signature with a leading zero byte in 5000 tries")
    assert len(sig) == 256
    short = string("rsa-sha2-256") + string(sig.lstrip(b"\x00"))
    assert key.public_key.verify(data, short, "rsa-sha2-256")
    longer = string("rsa-sha2-256") + string(b"\x00" + sig)
    assert not key.public_key.verify(data, longer, "rsa-sha2-256")


# --- independent checks: ssh-keygen -Y (PROTOCOL.sshsig) and openssl ------------------


def sshsig_signed_data(namespace: str, hash_alg: str, message: bytes) -> bytes:
    """The blob an SSHSIG signature actually signs (PROTOCOL.sshsig)."""
    digest = hashlib.new(hash_alg, message).digest()
    return (b"SSHSIG" + string(namespace) + string(b"") + string(hash_alg)
            + string(digest))


def parse_sshsig(armored: str) -> tuple[bytes, str, str, bytes]:
    lines = armored.strip().splitlines()
    assert lines[0] == "-----BEGIN SSH SIGNATURE-----"
    assert lines[-1] == "-----END SSH SIGNATURE-----"
    raw = base64.b64decode("".join(lines[1:-1]))
    assert raw[:6] == b"SSHSIG"
    reader = Reader(raw, 6)
    assert reader.uint32() == 1
    pub = reader.string()
    namespace = reader.text()
    reader.string()  # reserved
    hash_alg = reader.text()
    sig = reader.string()
    reader.check_end()
    return pub, namespace, hash_alg, sig


def make_sshsig(key: PrivateKey, namespace: str, message: bytes, hash_alg: str = "sha512") -> str:
    sig = key.sign(sshsig_signed_data(namespace, hash_alg, message))
    raw = (b"SSHSIG" + Writer().uint32(1).string(key.public_key.blob).string(namespace)
           .string(b"").string(hash_alg).string(sig).getvalue())
    b64 = base64.b64encode(raw).decode()
    body = "\n".join(b64[i:i + 70] for i in range(0, len(b64), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{body}\n-----END SSH SIGNATURE-----\n"


@pytest.mark.parametrize("name", [s[0] for s in SPECS])
def test_ssh_keygen_signatures_verify(keyfiles: dict[str, KeyFiles],
                                      private_keys: dict[str, PrivateKey], tmp_path: Path,
                                      name: str) -> None:
    """ssh-keygen -Y sign -> sshlib verify; deterministic schemes must match byte for byte."""
    message = tmp_path / "msg"
    message.write_bytes(b"independent evidence for " + name.encode())
    run("ssh-keygen", "-q", "-Y", "sign", "-f", str(keyfiles[name].files["openssh"]),
        "-n", "sshlib-test", str(message))
    pub_blob, namespace, hash_alg, sig = parse_sshsig(Path(f"{message}.sig").read_text())
    pub = parse_public_key(pub_blob)
    assert pub == private_keys[name].public_key
    alg = split_sig(sig)[0].decode()
    assert alg == ("rsa-sha2-512" if name == "rsa" else pub.key_type)
    signed = sshsig_signed_data(namespace, hash_alg, message.read_bytes())
    assert pub.verify(signed, sig, alg)
    assert not pub.verify(signed + b"x", sig, alg)
    if name in ("ed25519", "rsa"):  # Ed25519 and PKCS#1 v1.5 are deterministic
        assert private_keys[name].sign(signed, alg) == sig


@pytest.mark.parametrize(("name", "hash_alg"), [(s[0], "sha512") for s in SPECS]
                         + [("rsa", "sha256"), ("ecdsa256", "sha256")])
def test_sshlib_signatures_verify_with_ssh_keygen(private_keys: dict[str, PrivateKey],
                                                  tmp_path: Path, name: str,
                                                  hash_alg: str) -> None:
    """sshlib sign -> ssh-keygen -Y verify (and a tampered message is refused)."""
    key = private_keys[name]
    message = b"signed by sshlib " + name.encode()
    sigfile = tmp_path / "sig"
    sigfile.write_text(make_sshsig(key, "file", message, hash_alg))
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"tester@example {key.public_key.openssh()}\n")
    cmd = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "tester@example",
           "-n", "file", "-s", str(sigfile)]
    ok = subprocess.run(cmd, input=message, capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert b"Good" in ok.stdout
    bad = subprocess.run(cmd, input=message + b"?", capture_output=True, check=False)
    assert bad.returncode != 0


@pytest.mark.parametrize(("alg", "digest"), [("rsa-sha2-512", "-sha512"),
                                             ("rsa-sha2-256", "-sha256"),
                                             ("ssh-rsa", "-sha1")])
def test_rsa_signatures_match_openssl(keyfiles: dict[str, KeyFiles],
                                      private_keys: dict[str, PrivateKey], tmp_path: Path,
                                      alg: str, digest: str) -> None:
    """PKCS#1 v1.5 is deterministic: openssl dgst must produce the same bytes per hash."""
    data = tmp_path / "data"
    data.write_bytes(b"exchange hash stand-in")
    out = tmp_path / "sig"
    run("openssl", "dgst", digest, "-sign", str(keyfiles["rsa"].files["pem"]), "-out", str(out),
        str(data))
    ours = private_keys["rsa"].sign(data.read_bytes(), alg)
    assert split_sig(ours) == (alg.encode(), out.read_bytes())
    assert private_keys["rsa"].public_key.verify(data.read_bytes(),
                                                 string(alg) + string(out.read_bytes()), alg)


# --------------------------------------------------------------------------
# generating and wrapping
# --------------------------------------------------------------------------


def test_generate_private_key() -> None:
    cases: list[tuple[str, int | None, str, int]] = [
        ("ssh-ed25519", None, "ssh-ed25519", 256),
        ("ed25519", None, "ssh-ed25519", 256),
        ("ecdsa", None, "ecdsa-sha2-nistp256", 256),
        ("ecdsa", 384, "ecdsa-sha2-nistp384", 384),
        ("ecdsa-sha2-nistp521", None, "ecdsa-sha2-nistp521", 521),
        ("ssh-rsa", 1024, "ssh-rsa", 1024),
        ("rsa", None, "ssh-rsa", 3072),
    ]
    for requested, req_bits, key_type, bits in cases:
        key = generate_private_key(requested, req_bits, comment="c")
        assert key.public_key.key_type == key_type
        assert key.public_key.key_size == bits
        assert key.comment == "c"
        assert key.public_key.verify(b"d", key.sign(b"d"), key.public_key.signature_algorithms[0])
    assert generate_private_key().public_key.key_type == "ssh-ed25519"
    for bad in (("ssh-dss", None), ("ssh-rsa", 512), ("ssh-ed25519", 384),
                ("ecdsa-sha2-nistp256", 384), ("ecdsa", 192)):
        with pytest.raises(ValueError):
            generate_private_key(*bad)


def test_from_crypto_key() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    key = from_crypto_key(ed, "wrapped")
    assert key.crypto_key is ed
    assert key.comment == "wrapped"
    raw = ed.public_key().public_bytes(serialization.Encoding.Raw,
                                       serialization.PublicFormat.Raw)
    assert key.public_key.blob == string("ssh-ed25519") + string(raw)
    assert "wrapped" in repr(key) and key.public_key.fingerprint() in repr(key)
    rsa_key = rsa.generate_private_key(65537, 1024)
    assert from_crypto_key(rsa_key).public_key.key_size == 1024
    with pytest.raises(KeyLoadError):
        from_crypto_key(object())


def test_public_key_is_abstract() -> None:
    with pytest.raises(TypeError):
        PublicKey(b"")  # type: ignore[abstract]
