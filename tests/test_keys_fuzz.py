"""Bad input for certificates and .ppk files: truncated, mutated and oversized data gives a
KeyLoadError (or a valid result), never another exception, a hang or unbounded memory."""

from __future__ import annotations

import hashlib
import hmac
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sshlib
from sshlib import keys
from sshlib.errors import KeyLoadError
from sshlib.keys.formats import ppk as ppk_format
from sshlib.wire import string

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

CA = keys.generate_private_key("ed25519")
USER = keys.generate_private_key("ecdsa", 256, comment="fuzz")
CERT = keys.sign_certificate(CA, USER.public_key, key_id="fuzz", principals=["a", "b"],
                             critical_options={"force-command": "x"}, serial=3)
PPK_PLAIN = {v: USER.to_ppk(None, version=v) for v in (2, 3)}


def mutations() -> st.SearchStrategy[tuple[int, int, bytes]]:
    """(position, bytes to cut, bytes to insert)."""
    return st.tuples(st.integers(0, 4096), st.integers(0, 64), st.binary(max_size=16))


def mutate(data: bytes, change: tuple[int, int, bytes]) -> bytes:
    pos, cut, insert = change
    pos %= len(data) + 1
    return data[:pos] + insert + data[pos + cut:]


@FUZZ
@given(st.lists(mutations(), min_size=1, max_size=4))
def test_mutated_certificate_blobs(changes: list[tuple[int, int, bytes]]) -> None:
    blob = CERT.blob
    for change in changes:
        blob = mutate(blob, change)
    try:
        cert = keys.parse_public_key(blob)
    except KeyLoadError:
        return
    # Whatever parsed must be usable without surprises: checks raise only CertificateError.
    if isinstance(cert, sshlib.Certificate):
        try:
            cert.check(now=0, cert_type="user", principal="a")
        except sshlib.errors.CertificateError:
            pass


@FUZZ
@given(st.binary(max_size=2048))
def test_garbage_certificate_text(data: bytes) -> None:
    for candidate in (data, b"ssh-ed25519-cert-v01@openssh.com " + data,
                      CERT.openssh().encode()[:len(data) % 400]):
        with pytest.raises(KeyLoadError):
            keys.parse_certificate(candidate)


@FUZZ
@given(st.integers(2, 3), st.lists(mutations(), min_size=1, max_size=3))
def test_mutated_ppk_files(version: int, changes: list[tuple[int, int, bytes]]) -> None:
    data = PPK_PLAIN[version]
    for change in changes:
        data = mutate(data, change)
    try:
        key = sshlib.parse_private_key(data)
    except KeyLoadError:
        return
    assert key.public_key == USER.public_key  # only a harmless change (e.g. whitespace)


def _ppk_with_valid_mac(version: int, key_type: str, public: bytes, private: bytes) -> bytes:
    """An unencrypted .ppk whose MAC is right, so parsing reaches the key fields."""
    mac_key = (hashlib.sha1(b"putty-private-key-file-mac-key").digest() if version == 2
               else b"")
    data = (string(key_type) + string("none") + string("c") + string(public) + string(private))
    mac = hmac.new(mac_key, data, hashlib.sha1 if version == 2 else hashlib.sha256).hexdigest()
    lines = [f"PuTTY-User-Key-File-{version}: {key_type}", "Encryption: none", "Comment: c"]
    for name, blob in (("Public-Lines", public), ("Private-Lines", private)):
        text = ppk_format.base64.b64encode(blob).decode()
        chunks = [text[i:i + 64] for i in range(0, len(text), 64)] or [""]
        lines += [f"{name}: {len(chunks)}", *chunks]
    lines.append(f"Private-MAC: {mac}")
    return ("\n".join(lines) + "\n").encode()


KEYS = {name: keys.generate_private_key(name) for name in
        ("ssh-ed25519", "ecdsa-sha2-nistp384")}
KEYS["ssh-rsa"] = keys.generate_private_key("rsa", 1024)


@FUZZ
@given(st.integers(2, 3), st.sampled_from(sorted(KEYS)), st.binary(max_size=600))
def test_ppk_garbage_behind_a_valid_mac(version: int, key_type: str, private: bytes) -> None:
    data = _ppk_with_valid_mac(version, key_type, KEYS[key_type].public_key.blob, private)
    with pytest.raises(KeyLoadError):
        sshlib.parse_private_key(data)


def _private_blob(ppk_text: bytes) -> bytes:
    lines = ppk_text.decode().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Private-Lines:"))
    count = int(lines[start].split(": ")[1])
    return ppk_format.base64.b64decode("".join(lines[start + 1:start + 1 + count]))


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("key_type", sorted(KEYS))
def test_ppk_with_valid_mac_and_right_fields_loads(version: int, key_type: str) -> None:
    """The helper above is right: with the real private fields the file loads."""
    key = KEYS[key_type]
    good = _ppk_with_valid_mac(version, key_type, key.public_key.blob,
                               _private_blob(key.to_ppk(version=version)))
    assert sshlib.parse_private_key(good).public_key == key.public_key


def test_oversized_fields_are_refused_without_allocating() -> None:
    tracemalloc.start()
    try:
        # A string claiming 4 GiB.
        with pytest.raises(KeyLoadError):
            keys.parse_public_key(string("ssh-ed25519-cert-v01@openssh.com") + b"\xff" * 4)
        # 300 principals (OpenSSH allows 256): sign_certificate parses what it made.
        with pytest.raises(KeyLoadError, match="principals"):
            keys.sign_certificate(CA, USER.public_key, principals=[f"p{i}" for i in range(300)])
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()
    for field, value in (("Public-Lines", "99999999"), ("Argon2-Memory", "99999999999"),
                         ("Argon2-Passes", "5000000"), ("Argon2-Parallelism", "100000")):
        text = USER.to_ppk("pw").decode()
        lines = [f"{field}: {value}" if line.startswith(field) else line
                 for line in text.splitlines()]
        tracemalloc.start()
        try:
            with pytest.raises(KeyLoadError, match=field):
                sshlib.parse_private_key("\n".join(lines).encode(), "pw")
            assert tracemalloc.get_traced_memory()[1] < 4 << 20
        finally:
            tracemalloc.stop()


def test_certificate_signed_by_a_certificate_is_refused() -> None:
    body = CERT.blob[:-len(string(CERT.signature))]
    # Replace the CA key blob (the last string before the signature) by a certificate.
    ca_blob = string(CA.public_key.blob)
    assert body.endswith(ca_blob)
    nested = body[:-len(ca_blob)] + string(CERT.blob) + string(CA.sign(b"x"))
    with pytest.raises(KeyLoadError, match="signed by a certificate"):
        keys.parse_public_key(nested)
