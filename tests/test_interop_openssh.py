"""End-to-end interoperability with a real OpenSSH sshd (Debian's 9.2) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from frontends import frontend_fixture  # noqa: F401  (the `frontend` fixture)
from helpers import assert_negotiated, cat_round_trip, config, connect, need_password, user_key
from servers import USER_KEY_NAMES

import sshlib
from sshlib import algorithms as algs

# --- helpers over the test-server fixture ---------------------------------------------------

CIPHER_MACS = [(c, None) for c in sorted(algs.AEAD_CIPHERS)] + [
    (c, mac) for c in (algs.CIPHER_AES128_CTR, algs.CIPHER_AES192_CTR, algs.CIPHER_AES256_CTR)
    for mac in algs.SUPPORTED_MACS]
# sshd 9.2 predates mlkem768x25519-sha256 (known-answer tests in test_kex.py; negotiated with
# real OpenSSH 10.0 and >= 10.3 in test_interop_openssh_versions.py).
OPENSSH_KEX = [k for k in algs.SUPPORTED_KEX if k != algs.KEX_MLKEM768X25519_SHA256]
HOST_KEYS = list(algs.SUPPORTED_HOST_KEY)


# --- algorithms ---------------------------------------------------------------

def _matrix() -> list[Any]:
    """sync: the full product; aio: a subset naming every kex, cipher, mac and host key once."""
    def param(fe: str, kex: str, host_key: str, cipher: str, mac: str | None) -> Any:
        return pytest.param(fe, kex, host_key, cipher, mac,
                            id=f"{fe}-{cipher}+{mac}-{kex}-{host_key}" if mac
                            else f"{fe}-{cipher}-{kex}-{host_key}")
    full = [param("sync", kex, hk, c, m) for c, m in CIPHER_MACS for kex in OPENSSH_KEX
            for hk in HOST_KEYS]
    rows = max(len(OPENSSH_KEX), len(HOST_KEYS), len(CIPHER_MACS))
    subset = [param("aio", OPENSSH_KEX[i % len(OPENSSH_KEX)], HOST_KEYS[i % len(HOST_KEYS)],
                    *CIPHER_MACS[i % len(CIPHER_MACS)]) for i in range(rows)]
    return full + subset


@pytest.mark.parametrize(("frontend", "kex", "host_key", "cipher", "mac"), _matrix(),
                         indirect=["frontend"])
def test_every_algorithm_combination_handshakes(frontend: Any, openssh_server: Any, kex: str,
                                                host_key: str, cipher: str,
                                                mac: str | None) -> None:
    """The full kex x cipher x mac x host key product: handshake, auth, encrypted round trip."""
    with connect(openssh_server, frontend, kex_algorithms=[kex], host_key_algorithms=[host_key],
                 ciphers=[cipher], macs=[mac] if mac else None) as client:
        assert_negotiated(client, kex, host_key, cipher, mac)
        client.send_keepalive(timeout=10)  # server must decrypt ours and we must decrypt its reply


@pytest.mark.parametrize("host_key", HOST_KEYS)
@pytest.mark.parametrize("kex", OPENSSH_KEX)
def test_exec_with_each_kex_and_host_key(frontend: Any, openssh_server: Any, kex: str,
                                         host_key: str) -> None:
    with connect(openssh_server, frontend,
                 kex_algorithms=[kex], host_key_algorithms=[host_key]) as client:
        with client.new_session() as session:
            assert session.output("echo hello; exit 0", timeout=30) == b"hello\n"


@pytest.mark.parametrize(("cipher", "mac"), CIPHER_MACS,
                         ids=[f"{c}+{m}" if m else c for c, m in CIPHER_MACS])
def test_32_mib_round_trip_per_cipher(frontend: Any, openssh_server: Any, cipher: str,
                                      mac: str | None) -> None:
    with connect(openssh_server, frontend, ciphers=[cipher], macs=[mac] if mac else None) as client:
        cat_round_trip(client, 32 << 20)


# --- authentication ---------------------------------------------------------------

@pytest.mark.parametrize("key_name", USER_KEY_NAMES)
def test_publickey_auth_every_type_and_format(frontend: Any, openssh_server: Any,
                                              key_name: str) -> None:
    key = user_key(openssh_server, key_name)
    with connect(openssh_server, frontend, auth=[sshlib.PublicKeys(key)]) as client:
        with client.new_session() as session:
            assert session.output("echo ok") == b"ok\n"


def test_rsa_key_signs_with_sha2_not_sha1(frontend: Any, openssh_factory: Callable[...,
                                          Any]) -> None:
    server = openssh_factory({"PubkeyAcceptedAlgorithms": "rsa-sha2-512"})
    with connect(server, frontend,
                 auth=[sshlib.PublicKeys(user_key(server, "rsa-openssh"))]) as client:
        assert client.kex_count == 1


def test_password_auth(frontend: Any, openssh_server: Any) -> None:
    password = need_password(openssh_server)
    with connect(openssh_server, frontend, auth=[sshlib.Password(password)]) as client:
        with client.new_session() as session:
            assert session.output("whoami").strip() == openssh_server.user.encode()


def test_wrong_password_is_auth_error(frontend: Any, openssh_server: Any) -> None:
    need_password(openssh_server)
    with pytest.raises(sshlib.AuthError) as info:
        connect(openssh_server, frontend, auth=[sshlib.Password("definitely wrong")])
    assert "password" in info.value.tried


def test_keyboard_interactive_auth(frontend: Any, openssh_server: Any) -> None:
    password = need_password(openssh_server)
    seen: list[list[str]] = []

    def answer(name: str, instruction: str, prompts: list[sshlib.Prompt]) -> list[str]:
        seen.append(list(prompts))
        return [password for _ in prompts]

    with connect(openssh_server, frontend, auth=[sshlib.KeyboardInteractive(answer)]) as client:
        assert client.kex_count == 1
    assert any("assword" in prompt for prompts in seen for prompt in prompts)


def test_methods_tried_in_order_after_a_failure(frontend: Any, openssh_server: Any) -> None:
    password = need_password(openssh_server)
    wrong_key = sshlib.keys.generate_private_key("ssh-ed25519")
    auth = [sshlib.PublicKeys(wrong_key), sshlib.Password(password)]
    with connect(openssh_server, frontend, auth=auth) as client:
        assert client.kex_count == 1


def test_partial_success_publickey_then_password(frontend: Any, openssh_factory: Callable[...,
                                                 Any]) -> None:
    server = openssh_factory({"AuthenticationMethods": "publickey,password"})
    password = need_password(server)
    # Password listed first: it is only allowed after the key, and must still be used then.
    auth = [sshlib.Password(password), sshlib.PublicKeys(user_key(server))]
    with connect(server, frontend, auth=auth) as client:
        with client.new_session() as session:
            assert session.output("echo both") == b"both\n"
    with pytest.raises(sshlib.AuthError):
        connect(server, frontend, auth=[sshlib.PublicKeys(user_key(server))])


def test_banner_is_delivered(frontend: Any, openssh_factory: Callable[..., Any],
                             tmp_path: Path) -> None:
    banner = tmp_path / "banner"
    banner.write_text("Authorised use only\n")
    server = openssh_factory({"Banner": str(banner)})
    seen: list[str] = []
    with connect(server, frontend, banner_callback=seen.append):
        pass
    assert seen == ["Authorised use only\n"]


# --- host keys ---------------------------------------------------------------

def test_unknown_host_key_fails_closed(frontend: Any, openssh_server: Any, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(sshlib.UnknownHostKeyError):
        connect(openssh_server, frontend, host_key_callback=sshlib.knownhosts.callback(empty))


def test_mismatched_host_key_fails_closed(frontend: Any, openssh_server: Any,
                                          tmp_path: Path) -> None:
    other = sshlib.keys.generate_private_key("ssh-ed25519").public_key
    wrong = tmp_path / "known_hosts"
    wrong.write_text(sshlib.knownhosts.line([f"{openssh_server.host}"], other).replace(
        openssh_server.host, f"[{openssh_server.host}]:{openssh_server.port}") + "\n")
    with pytest.raises(sshlib.HostKeyMismatchError):
        connect(openssh_server, frontend, host_key_callback=sshlib.knownhosts.callback(wrong),
                host_key_algorithms=[algs.HOSTKEY_ED25519])


@pytest.mark.parametrize("known_type", ["ecdsa", "rsa"])
def test_known_key_type_is_asked_for_first(frontend: Any, openssh_server: Any, tmp_path: Path,
                                           known_type: str) -> None:
    """known_hosts holds only a non-default key type: the default config must still connect.

    The server would pick ed25519 (our first preference) and the host would
    look unknown; OpenSSH avoids that by asking for the known types first,
    and so must we.
    """
    lines = [line for line in openssh_server.known_hosts_lines()
             if line.split()[1].startswith("ecdsa-sha2-nistp256" if known_type == "ecdsa"
                                            else "ssh-rsa")]
    assert len(lines) == 1, openssh_server.known_hosts_lines()
    only = tmp_path / "known_hosts"
    only.write_text(lines[0] + "\n")
    with connect(openssh_server, frontend,
                 host_key_callback=sshlib.knownhosts.callback(only)) as client:
        assert client.host_key.openssh().split()[:2] == lines[0].split()[1:3]
        client.new_session().run("true")


def test_hashed_known_hosts_entry_accepted(frontend: Any, openssh_server: Any,
                                           tmp_path: Path) -> None:
    with connect(openssh_server, frontend) as client:
        key = client.host_key
    hashed = tmp_path / "known_hosts"
    host = sshlib.knownhosts.normalize(openssh_server.host, openssh_server.port)
    hashed.write_text(f"{sshlib.knownhosts.hash_hostname(host)} {key.openssh()}\n")
    with connect(openssh_server, frontend, host_key_callback=sshlib.knownhosts.callback(hashed),
                 host_key_algorithms=[key.signature_algorithms[0]]) as client:
        assert client.host_key == key


def test_fixed_and_insecure_callbacks(frontend: Any, openssh_server: Any) -> None:
    with connect(openssh_server, frontend) as client:
        key = client.host_key
    with connect(openssh_server, frontend, host_key_callback=sshlib.fixed_host_key(key),
                 host_key_algorithms=[key.signature_algorithms[0]]):
        pass
    other = sshlib.keys.generate_private_key("ssh-ed25519").public_key
    with pytest.raises(sshlib.HostKeyError):
        connect(openssh_server, frontend, host_key_callback=sshlib.fixed_host_key(other))
    with connect(openssh_server, frontend, host_key_callback=sshlib.insecure_ignore_host_key()):
        pass


def test_default_config_refuses_without_host_key_callback(frontend: Any,
                                                          openssh_server: Any) -> None:
    cfg = sshlib.ClientConfig(user=openssh_server.user,
                              auth=[sshlib.PublicKeys(user_key(openssh_server))])
    with pytest.raises(sshlib.HostKeyError, match="host_key_callback"):
        frontend.dial(f"{openssh_server.host}:{openssh_server.port}", cfg)


# --- sessions ---------------------------------------------------------------

@pytest.fixture
def client(frontend: Any, openssh_server: Any) -> Any:
    with connect(openssh_server, frontend) as c:
        yield c


def test_exit_status_and_stderr(client: Any) -> None:
    with client.new_session() as session, pytest.raises(sshlib.ExitError) as info:
        session.output("echo oops >&2; exit 3")
    assert info.value.exit_status == 3
    assert info.value.signal is None
    assert info.value.stderr == b"oops\n"


def test_exit_signal(client: Any) -> None:
    with client.new_session() as session, pytest.raises(sshlib.ExitError) as info:
        session.run("kill -KILL $$")
    assert info.value.signal == "KILL"


def test_signal_request_terminates_command(client: Any) -> None:
    session = client.new_session()
    session.start("echo started; exec sleep 60")
    assert session.stdout.read(100, timeout=10) == b"started\n"
    session.signal("TERM")
    with pytest.raises(sshlib.ExitError) as info:
        session.wait(timeout=20)
    assert info.value.signal == "TERM"


def test_combined_output_and_run(client: Any) -> None:
    with client.new_session() as session:
        combined = session.combined_output("echo out; echo err >&2")
    assert sorted(combined.splitlines()) == [b"err", b"out"]
    with client.new_session() as session:
        session.run("true")
        assert session.exit_status == 0


def test_start_read_wait_with_separate_streams(client: Any) -> None:
    session = client.new_session()
    session.start("printf abc; printf xyz >&2")
    assert session.stdout.read() == b"abc"
    assert session.stderr.read() == b"xyz"
    session.wait(timeout=10)
    assert session.stdout.read(10) == b""  # EOF stays EOF


def test_large_stderr_does_not_stall_output(client: Any) -> None:
    """Both streams share the window; output() must drain stderr while reading stdout."""
    with client.new_session() as session:
        out = session.output("head -c 8000000 /dev/zero >&2; echo done", timeout=60)
    assert out == b"done\n"


def test_env(client: Any) -> None:
    with client.new_session() as session:
        session.setenv("SSHLIB_TEST", "hello env")
        assert session.output("echo $SSHLIB_TEST") == b"hello env\n"
    with client.new_session() as session, pytest.raises(sshlib.RequestDeniedError):
        session.setenv("NOT_ACCEPTED_BY_SSHD", "x")


def test_pty_shell_window_change_and_modes(client: Any) -> None:
    session = client.new_session()
    session.request_pty("xterm-256color", 24, 80, modes={"ECHO": 0})
    session.shell()
    session.window_change(40, 120)
    session.stdin.write(b"echo TERM=$TERM; stty size; exit 0\n")
    output = session.stdout.read(timeout=20)
    session.wait(timeout=10)
    assert b"TERM=xterm-256color" in output
    assert b"40 120" in output


def test_stdin_eof_ends_cat(client: Any) -> None:
    session = client.new_session()
    session.start("cat; echo after-eof")
    session.stdin.write(b"line\n")
    session.stdin.close()
    assert session.stdout.read(timeout=10) == b"line\nafter-eof\n"
    session.wait(timeout=10)


def test_sftp_subsystem_answers_init(client: Any) -> None:
    session = client.new_session()
    session.request_subsystem("sftp")
    session.stdin.write(struct.pack(">IBI", 5, 1, 3))  # SSH_FXP_INIT, version 3
    header = b""
    while len(header) < 5:
        header += session.stdout.read(5 - len(header), timeout=10)
    _, kind = struct.unpack(">IB", header)
    assert kind == 2  # SSH_FXP_VERSION
    session.close()


def test_200_concurrent_sessions_on_one_connection(client: Any) -> None:
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def one(index: int) -> None:
        try:
            with client.new_session(timeout=60) as session:
                results[index] = session.output(f"echo {index}", timeout=60)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    assert results == {i: f"{i}\n".encode() for i in range(200)}


def test_timeouts_raise_timeout(client: Any) -> None:
    session = client.new_session()
    session.start("sleep 5")
    with pytest.raises(sshlib.Timeout):
        session.stdout.read(10, timeout=0.2)
    with pytest.raises(sshlib.Timeout):
        session.wait(timeout=0.2)
    session.close()


def test_closed_client_raises_cleanly(frontend: Any, openssh_server: Any) -> None:
    client = connect(openssh_server, frontend)
    client.close()
    client.close()
    with pytest.raises(sshlib.ConnectionLost):
        client.new_session()
    assert client.wait(timeout=5) is None


def test_client_over_existing_socket(frontend: Any, openssh_server: Any) -> None:
    import socket

    sock = socket.create_connection((openssh_server.host, openssh_server.port), timeout=10)
    with sock, frontend.client(sock, config(openssh_server),
                               addr=(openssh_server.host, openssh_server.port)) as client:
        with client.new_session() as session:
            assert session.output("echo raw") == b"raw\n"


# --- rekeying ---------------------------------------------------------------

SIZE_2G = 2 << 30
SHA_OF_STREAM = "bash -c 'head -c {n} /dev/urandom | tee >(sha256sum | cut -c1-64 >&2)'"


def _download_and_hash(client: Any, size: int) -> tuple[str, str]:
    session = client.new_session()
    session.start(SHA_OF_STREAM.format(n=size))
    digest = hashlib.sha256()
    total = 0
    while True:
        chunk = session.stdout.read(1 << 20, timeout=120)
        if not chunk:
            break
        total += len(chunk)
        digest.update(chunk)
    remote = session.stderr.read(timeout=60).decode().strip()
    session.wait(timeout=60)
    assert total == size
    return digest.hexdigest(), remote


def test_client_initiated_rekey_mid_2gib_transfer(frontend: Any, openssh_server: Any) -> None:
    with connect(openssh_server, frontend, rekey_bytes=512 << 20) as client:
        local, remote = _download_and_hash(client, SIZE_2G)
        assert local == remote
        assert client.kex_count >= 4, client.kex_count


def test_server_initiated_rekey_mid_transfer(frontend: Any, openssh_factory: Callable[...,
                                             Any]) -> None:
    server = openssh_factory({"RekeyLimit": "64M"})
    with connect(server, frontend) as client:
        local, remote = _download_and_hash(client, 256 << 20)
        assert local == remote
        assert client.kex_count >= 3, client.kex_count


def test_explicit_rekey_while_uploading(frontend: Any, openssh_server: Any) -> None:
    data = os.urandom(1 << 20) * 16
    with connect(openssh_server, frontend) as client:
        session = client.new_session()
        session.start("sha256sum | cut -c1-64")
        half = len(data) // 2
        session.stdin.write(data[:half], timeout=60)
        client.rekey()
        session.stdin.write(data[half:], timeout=60)
        session.stdin.close()
        digest = session.stdout.read(timeout=60).strip().decode()
        assert digest == hashlib.sha256(data).hexdigest()
        session.wait(timeout=10)
        assert client.kex_count == 2
