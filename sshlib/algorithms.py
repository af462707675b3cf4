"""Algorithm names, preference lists and negotiation (RFC 4253 section 7.1).

Implementations live in `kex`, `cipher` and `keys`; this module only says
which names exist, which are on by default (strongest first), and which are
weak and must be asked for by name.  Weak names start with ``INSECURE_``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import KexError

# --- key exchange -----------------------------------------------------------
KEX_MLKEM768X25519_SHA256 = "mlkem768x25519-sha256"
KEX_CURVE25519_SHA256 = "curve25519-sha256"
KEX_CURVE25519_SHA256_LIBSSH = "curve25519-sha256@libssh.org"
KEX_ECDH_NISTP256 = "ecdh-sha2-nistp256"
KEX_ECDH_NISTP384 = "ecdh-sha2-nistp384"
KEX_ECDH_NISTP521 = "ecdh-sha2-nistp521"
KEX_DH_GEX_SHA256 = "diffie-hellman-group-exchange-sha256"
KEX_DH_GROUP16_SHA512 = "diffie-hellman-group16-sha512"
KEX_DH_GROUP18_SHA512 = "diffie-hellman-group18-sha512"
KEX_DH_GROUP14_SHA256 = "diffie-hellman-group14-sha256"
INSECURE_KEX_DH_GROUP14_SHA1 = "diffie-hellman-group14-sha1"

# Pseudo-algorithms we append to our kex list (never chosen).
KEX_EXT_INFO_C = "ext-info-c"
KEX_STRICT_CLIENT = "kex-strict-c-v00@openssh.com"
KEX_STRICT_SERVER = "kex-strict-s-v00@openssh.com"

# --- host key / signature algorithms ----------------------------------------
HOSTKEY_ED25519 = "ssh-ed25519"
HOSTKEY_ECDSA_NISTP256 = "ecdsa-sha2-nistp256"
HOSTKEY_ECDSA_NISTP384 = "ecdsa-sha2-nistp384"
HOSTKEY_ECDSA_NISTP521 = "ecdsa-sha2-nistp521"
HOSTKEY_RSA_SHA2_512 = "rsa-sha2-512"
HOSTKEY_RSA_SHA2_256 = "rsa-sha2-256"
INSECURE_HOSTKEY_SSH_RSA = "ssh-rsa"  # RSA with SHA-1 signatures

# OpenSSH host certificates (PROTOCOL.certkeys): offered first, automatically, for
# hosts a known_hosts @cert-authority line names; or ask for them by name.
HOSTKEY_ED25519_CERT = "ssh-ed25519-cert-v01@openssh.com"
HOSTKEY_ECDSA_NISTP256_CERT = "ecdsa-sha2-nistp256-cert-v01@openssh.com"
HOSTKEY_ECDSA_NISTP384_CERT = "ecdsa-sha2-nistp384-cert-v01@openssh.com"
HOSTKEY_ECDSA_NISTP521_CERT = "ecdsa-sha2-nistp521-cert-v01@openssh.com"
HOSTKEY_RSA_SHA2_512_CERT = "rsa-sha2-512-cert-v01@openssh.com"
HOSTKEY_RSA_SHA2_256_CERT = "rsa-sha2-256-cert-v01@openssh.com"
INSECURE_HOSTKEY_SSH_RSA_CERT = "ssh-rsa-cert-v01@openssh.com"  # SHA-1 signatures

# --- ciphers ----------------------------------------------------------------
CIPHER_CHACHA20_POLY1305 = "chacha20-poly1305@openssh.com"
CIPHER_AES128_GCM = "aes128-gcm@openssh.com"
CIPHER_AES256_GCM = "aes256-gcm@openssh.com"
CIPHER_AES128_CTR = "aes128-ctr"
CIPHER_AES192_CTR = "aes192-ctr"
CIPHER_AES256_CTR = "aes256-ctr"

# --- MACs -------------------------------------------------------------------
MAC_HMAC_SHA2_256_ETM = "hmac-sha2-256-etm@openssh.com"
MAC_HMAC_SHA2_512_ETM = "hmac-sha2-512-etm@openssh.com"
MAC_HMAC_SHA2_256 = "hmac-sha2-256"
MAC_HMAC_SHA2_512 = "hmac-sha2-512"

COMPRESSION_NONE = "none"
COMPRESSION_ZLIB_OPENSSH = "zlib@openssh.com"  # zlib, started after authentication
COMPRESSION_ZLIB = "zlib"

DEFAULT_KEX: tuple[str, ...] = (
    KEX_MLKEM768X25519_SHA256,
    KEX_CURVE25519_SHA256,
    KEX_CURVE25519_SHA256_LIBSSH,
    KEX_ECDH_NISTP256,
    KEX_ECDH_NISTP384,
    KEX_ECDH_NISTP521,
    KEX_DH_GEX_SHA256,
    KEX_DH_GROUP16_SHA512,
    KEX_DH_GROUP18_SHA512,
    KEX_DH_GROUP14_SHA256,
)
SUPPORTED_KEX: tuple[str, ...] = (*DEFAULT_KEX, INSECURE_KEX_DH_GROUP14_SHA1)

DEFAULT_HOST_KEY: tuple[str, ...] = (
    HOSTKEY_ED25519,
    HOSTKEY_ECDSA_NISTP256,
    HOSTKEY_ECDSA_NISTP384,
    HOSTKEY_ECDSA_NISTP521,
    HOSTKEY_RSA_SHA2_512,
    HOSTKEY_RSA_SHA2_256,
)
SUPPORTED_HOST_KEY: tuple[str, ...] = (*DEFAULT_HOST_KEY, INSECURE_HOSTKEY_SSH_RSA)

#: Host certificate algorithms, in OpenSSH's order; not in DEFAULT_HOST_KEY (a server
#: would then send a certificate no known_hosts line can vouch for), but put first
#: by ClientConfig.for_host() when known_hosts has a @cert-authority line for the host.
CERT_HOST_KEY: tuple[str, ...] = (
    HOSTKEY_ED25519_CERT,
    HOSTKEY_ECDSA_NISTP256_CERT,
    HOSTKEY_ECDSA_NISTP384_CERT,
    HOSTKEY_ECDSA_NISTP521_CERT,
    HOSTKEY_RSA_SHA2_512_CERT,
    HOSTKEY_RSA_SHA2_256_CERT,
)
SUPPORTED_CERT_HOST_KEY: tuple[str, ...] = (*CERT_HOST_KEY, INSECURE_HOSTKEY_SSH_RSA_CERT)

DEFAULT_CIPHERS: tuple[str, ...] = (
    CIPHER_AES128_GCM,
    CIPHER_AES256_GCM,
    CIPHER_CHACHA20_POLY1305,
    CIPHER_AES128_CTR,
    CIPHER_AES192_CTR,
    CIPHER_AES256_CTR,
)
SUPPORTED_CIPHERS: tuple[str, ...] = DEFAULT_CIPHERS

DEFAULT_MACS: tuple[str, ...] = (
    MAC_HMAC_SHA2_256_ETM,
    MAC_HMAC_SHA2_512_ETM,
    MAC_HMAC_SHA2_256,
    MAC_HMAC_SHA2_512,
)
SUPPORTED_MACS: tuple[str, ...] = DEFAULT_MACS

AEAD_CIPHERS = frozenset({CIPHER_CHACHA20_POLY1305, CIPHER_AES128_GCM, CIPHER_AES256_GCM})


def check_names(kind: str, names: Sequence[str] | None, default: tuple[str, ...],
                supported: tuple[str, ...]) -> tuple[str, ...]:
    """Validate a user's preference list; None means the defaults."""
    if names is None:
        return default
    if isinstance(names, str):
        raise TypeError(f"{kind} must be a list of algorithm names, not a string")
    chosen = tuple(names)
    if not chosen:
        raise ValueError(f"{kind}: the list of algorithms is empty")
    unknown = [n for n in chosen if n not in supported]
    if unknown:
        raise ValueError(f"{kind}: unsupported algorithm(s) {', '.join(unknown)}; "
                         f"supported: {', '.join(supported)}")
    return chosen


def choose(kind: str, client: Sequence[str], server: Sequence[str]) -> str:
    """RFC 4253 7.1: the first client algorithm that the server also supports."""
    server_set = set(server)
    for name in client:
        if name in server_set:
            return name
    raise KexError(f"no common {kind} algorithm: we offer {', '.join(client)}; "
                   f"server offers {', '.join(server) or '(nothing)'}")


@dataclass(frozen=True)
class Algorithms:
    """The algorithms negotiated for a connection (the latest key exchange)."""

    kex: str
    host_key: str
    cipher_client_to_server: str
    cipher_server_to_client: str
    mac_client_to_server: str
    mac_server_to_client: str
    compression_client_to_server: str = COMPRESSION_NONE
    compression_server_to_client: str = COMPRESSION_NONE
