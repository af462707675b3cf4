"""Known-answer vectors: files made once by puttygen 0.78 and ssh-keygen 9.2 (kept here so
the parsers are checked even where the tools are not installed; the passphrase is "kat pass")."""

from __future__ import annotations

import pytest

import sshlib
from sshlib import keys

PASSPHRASE = "kat pass"
PUBLIC = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGSkikMFkvYkN9vYmkKX1G8Rilq7RGX82IA1S3Qy0lCa kat key'
CA_PUBLIC = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDF6/s0KY4BmSUne6nZ/tSwIbQ0U4pB63NrmbThHyQYa ca'

PPK_V3_ARGON2ID = (
    'PuTTY-User-Key-File-3: ssh-ed25519\n'
    'Encryption: aes256-cbc\n'
    'Comment: kat key\n'
    'Public-Lines: 2\n'
    'AAAAC3NzaC1lZDI1NTE5AAAAIGSkikMFkvYkN9vYmkKX1G8Rilq7RGX82IA1S3Qy\n'
    '0lCa\n'
    'Key-Derivation: Argon2id\n'
    'Argon2-Memory: 64\n'
    'Argon2-Passes: 1\n'
    'Argon2-Parallelism: 1\n'
    'Argon2-Salt: e268c37e33379f84ba2b56b7a53afbb3\n'
    'Private-Lines: 1\n'
    '16nhIex2HZJs8q901My+W2ap0DYwpYNfifJsC6ME2fJXVnzAbbdEoQDGF4bKmT4G\n'
    'Private-MAC: 7f3b96976c4f1b7784452c3361af23219574e49853b1b1d4458016bb7cd3c37a\n'
)
PPK_V3_ARGON2I = (
    'PuTTY-User-Key-File-3: ssh-ed25519\n'
    'Encryption: aes256-cbc\n'
    'Comment: kat key\n'
    'Public-Lines: 2\n'
    'AAAAC3NzaC1lZDI1NTE5AAAAIGSkikMFkvYkN9vYmkKX1G8Rilq7RGX82IA1S3Qy\n'
    '0lCa\n'
    'Key-Derivation: Argon2i\n'
    'Argon2-Memory: 64\n'
    'Argon2-Passes: 1\n'
    'Argon2-Parallelism: 1\n'
    'Argon2-Salt: 3897bcf9c2bd53472252893c2bdc9d9b\n'
    'Private-Lines: 1\n'
    'gQ9G3IPx5rBQJLKkGwrmQ0zXMwf5GqgIGsH5i62SZ+oRXypVFvYpdd5WCvJ8Z5CD\n'
    'Private-MAC: 4f7c556e838dae6038db2a04d8e3c748e9725b6632ed8c47f21ec051560cf655\n'
)
PPK_V2 = (
    'PuTTY-User-Key-File-2: ssh-ed25519\n'
    'Encryption: aes256-cbc\n'
    'Comment: kat key\n'
    'Public-Lines: 2\n'
    'AAAAC3NzaC1lZDI1NTE5AAAAIGSkikMFkvYkN9vYmkKX1G8Rilq7RGX82IA1S3Qy\n'
    '0lCa\n'
    'Private-Lines: 1\n'
    'KKQU3eURrEO2+Gq5dMAUEIZQyEDulp7suo0+A702TPA1Cbr3hF/QtBaONKG8gH+8\n'
    'Private-MAC: 576b07cd6924ad24eef51048e9f5b39f1f53ce05\n'
)
CERT = (
    'ssh-ed25519-cert-v01@openssh.com '
    'AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIOW86nbx++AN3ZGvubfWzDIy21Vu'
    'YUFqcUM+wPBvLH/IAAAAIGSkikMFkvYkN9vYmkKX1G8Rilq7RGX82IA1S3Qy0lCaAAAAAAAAAE0AAAAB'
    'AAAABmthdC1pZAAAABAAAAAFYWxpY2UAAAADYm9iAAAAAHDb2IAAAAAAcN0qAAAAAB8AAAANZm9yY2Ut'
    'Y29tbWFuZAAAAAoAAAAGdXB0aW1lAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Bl'
    'cm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApw'
    'ZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAA'
    'ACAxev7NCmOAZklJ3up2f7UsCG0NFOKQetza5m04R8kGGgAAAFMAAAALc3NoLWVkMjU1MTkAAABAcpP9'
    'NvUaVbC24VFl9Yo8EDctc3CdbvO51GilFurRdLwvtlfJhqFX3gV/XRzkbd1K0H10dVHuYYdk90+9Gb7b'
    'Dg=='
)


@pytest.mark.parametrize("text", [PPK_V3_ARGON2ID, PPK_V3_ARGON2I, PPK_V2],
                         ids=["v3-argon2id", "v3-argon2i", "v2"])
def test_ppk_vectors(text: str) -> None:
    key = sshlib.parse_private_key(text.encode(), PASSPHRASE)
    assert key.public_key == sshlib.parse_openssh_public_key(PUBLIC)
    assert key.comment == "kat key"
    # Ed25519 signatures are deterministic: the same key signs the same bytes the same way.
    reference = sshlib.parse_private_key(PPK_V2.encode(), PASSPHRASE)
    assert key.sign(b"kat") == reference.sign(b"kat")


def test_certificate_vector() -> None:
    cert = keys.parse_certificate(CERT)
    assert cert.key_type == "ssh-ed25519-cert-v01@openssh.com"
    assert (cert.cert_type, cert.key_id, cert.serial) == ("user", "kat-id", 77)
    assert cert.principals == ("alice", "bob")
    assert (cert.valid_after, cert.valid_before) == (1893456000, 1893542400)
    assert cert.critical_options == {"force-command": "uptime"}
    assert sorted(cert.extensions) == ["permit-X11-forwarding", "permit-agent-forwarding",
                                       "permit-port-forwarding", "permit-pty", "permit-user-rc"]
    assert cert.public_key == sshlib.parse_openssh_public_key(PUBLIC)
    assert cert.signature_key == sshlib.parse_openssh_public_key(CA_PUBLIC)
    assert cert.signature_valid()
    cert.check(now=1893460000, cert_type="user", principal="bob")
