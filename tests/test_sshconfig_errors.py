"""Bad ssh_config input: typed ConfigErrors naming file and line, where ssh -G fails too.

Also the parts of resolution a config file alone does not show: the Match
exec runner (injected), typed HostConfig attributes and the lenient cases
(a missing Include is ignored, as ssh ignores it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sshg import PrivateHome

import sshlib
from sshlib.sshconfig import ConfigError, resolve

BAD = [
    ("unterminated-quote", 'Host *\n  User "alice\n', 2, "invalid quotes"),
    ("unterminated-single", "Host *\n\n  IdentityFile 'x y\n", 3, "invalid quotes"),
    ("unknown-keyword", "Host *\n  User a\n  Frobnicate yes\n", 3,
     "Bad configuration option: frobnicate"),
    ("unknown-in-inactive-block", "Host nomatch\n  Frobnicate yes\n", 2, "frobnicate"),
    ("bad-flag", "Host *\n  Compression maybe\n", 2, 'unsupported option "maybe"'),
    ("bad-port", "Port 70000\n", 1, "Bad port"),
    ("missing-argument", "Host *\n  User\n", 2, "no argument after keyword"),
    ("extra-arguments", "Port 22 23\n", 1, "extra arguments"),
    ("bad-cipher", "Ciphers aes128-ctr,rot13\n", 1, "ciphers"),
    ("bad-match-attribute", "Match colour blue\n", 1, "Unsupported Match attribute"),
    ("match-without-criteria", "Match host\n", 1, "Missing Match criteria"),
    ("match-all-combined", "Match all host x\n", 1, "cannot be combined"),
    ("bad-forward", "LocalForward 8080\n", 1, "Missing target"),
    ("bad-time", "ConnectTimeout soon\n", 1, "invalid time value"),
    ("bad-setenv", "SetEnv NOVALUE\n", 1, "Invalid SetEnv"),
    ("none-not-alone", "UserKnownHostsFile none /x\n", 1, "must appear alone"),
    ("bad-proxyjump", "ProxyJump user@:22\n", 1, "Invalid ProxyJump"),
]


@pytest.mark.parametrize("name,text,line,message", BAD, ids=[b[0] for b in BAD])
def test_bad_line_names_file_and_line(name: str, text: str, line: int, message: str,
                                      tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", text)
    status, _, stderr = home.ssh_g(config, "host")
    assert status != 0, f"ssh accepted it: {stderr}"  # the oracle rejects it too
    with pytest.raises(ConfigError) as info:
        resolve("host", config_files=[config], local=home.local())
    assert info.value.filename == str(config)
    assert info.value.line == line
    assert message.lower() in str(info.value).lower()
    assert f"{config} line {line}" in str(info.value)


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  Include loop.conf\n")
    home.write("loop.conf", "User x\nInclude loop.conf\n")
    status, _, stderr = home.ssh_g(config, "host")
    assert status != 0 and "recursive" in stderr
    with pytest.raises(ConfigError) as info:
        resolve("host", config_files=[config], local=home.local())
    assert "Include loop.conf" in str(info.value) and "recursive" in str(info.value)
    assert info.value.line == 2


def test_missing_include_is_ignored_missing_file_is_not(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Include nothere.conf /also/not/*.conf\nUser after\n")
    assert resolve("h", config_files=[config], local=home.local()).user == "after"
    with pytest.raises(ConfigError, match="Can't open"):
        resolve("h", config_files=[tmp_path / "absent"], local=home.local())


def test_match_exec_runner_is_injected_with_tokens(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host alias\n  HostName real\n  Port 2200\n"
                                  "Match exec \"check %h %p %r %n %%\"\n  User matched\n"
                                  "Match host nomatch exec never-run\n  Port 1\n")
    seen: list[str] = []

    def runner(command: str) -> int:
        seen.append(command)
        return 0

    hc = resolve("alias", user="bob", config_files=[config], local=home.local(),
                 exec_runner=runner)
    assert seen == ["check real 2200 bob alias %"]
    assert hc.user == "bob"  # an explicit user wins over the matched block
    hc = resolve("alias", config_files=[config], local=home.local(),
                 exec_runner=lambda cmd: 1)
    assert hc.user == home.user


def test_match_exec_failing_is_an_error(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "\nMatch exec \"kill -9 $$\"\n  User x\n")
    status, _, stderr = home.ssh_g(config, "host")
    assert status != 0 and "match exec" in stderr
    with pytest.raises(ConfigError, match="match exec") as info:
        resolve("host", config_files=[config], local=home.local())
    assert info.value.line == 2
    with pytest.raises(ConfigError, match="line 2: match exec"):
        resolve("host", config_files=[config], local=home.local(),
                exec_runner=lambda cmd: None)


def test_unknown_token_and_missing_variable(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  UserKnownHostsFile ~/.ssh/%Z\n")
    with pytest.raises(ConfigError, match="unknown key %Z"):
        resolve("h", config_files=[config], local=home.local())
    config = home.write("config", "Host *\n  IdentityAgent ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        resolve("h", config_files=[config], local=home.local())


def test_bad_option_argument_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="option Port='zero'"):
        resolve("h", config_files=[], options={"Port": "zero"})
    with pytest.raises(ConfigError, match="not supported as a command-line option"):
        resolve("h", config_files=[], options={"Host": "x"})


def test_typed_attributes(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path, {"AGENTS": "/run/a"})
    config = home.write("config", "Host w\n  HostName web.example.com\n  User deploy\n"
                                  "  IdentityFile ~/.ssh/id_w\n  IdentityAgent ${AGENTS}/s\n"
                                  "  ProxyJump j1,j2\n  LocalForward 8080 db:5432\n"
                                  "  DynamicForward 1080\n  ServerAliveInterval 15\n"
                                  "  SetEnv A=1\n  SendEnv LANG\n  Ciphers +aes128-cbc\n"
                                  "  StrictHostKeyChecking accept-new\n")
    hc = resolve("w", config_files=[config], local=home.local())
    assert (hc.hostname, hc.port, hc.user) == ("web.example.com", 22, "deploy")
    assert hc.identity_files == [f"{home.home}/.ssh/id_w"] and hc.identity_files_given
    assert hc.identity_agent == "/run/a/s"
    assert hc.proxy_jump == "j1,j2"
    assert hc.local_forwards[0].connect_host == "db" and hc.local_forwards[0].connect_port == 5432
    assert hc.dynamic_forwards[0].listen_port == 1080
    assert hc.server_alive_interval == 15 and hc.set_env == {"A": "1"}
    assert hc.ciphers == list(sshlib.algorithms.DEFAULT_CIPHERS)  # CBC: OpenSSH's, not sshlib's
    assert hc.strict_host_key_checking == "accept-new"
    cfg, addr = hc.client_config()
    assert addr == "web.example.com:22" and cfg.user == "deploy"
    assert cfg.keepalive_interval == 15.0 and cfg.keepalive_count_max == 3


def test_default_files_are_user_then_system(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    home.write("config", "Host *\n  User from-user-config\n")
    local = home.local()
    hc = resolve("h", local=local)
    assert hc.user == "from-user-config"
    assert resolve("h", config_files=[], local=local).user == home.user
    files = sshlib.sshconfig.default_config_files(local)
    assert [f.path for f in files] == [f"{home.home}/.ssh/config", "/etc/ssh/ssh_config"]
    (home.home / ".ssh" / "config").chmod(0o666)
    with pytest.raises(ConfigError, match="Bad owner or permissions"):
        resolve("h", local=local)


def test_compression_yes_is_accepted_and_logged(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  Compression yes\n  StrictHostKeyChecking no\n")
    hc = resolve("h", config_files=[config], local=home.local())
    assert hc.compression and hc.as_ssh_g()["compression"] == "yes"
    with caplog.at_level("INFO", logger="sshlib.sshconfig"):
        cfg, _ = hc.client_config()
    assert "Compression yes" in caplog.text
    # once ClientConfig has the compression option (another issue), it is switched on
    assert getattr(cfg, "compression", True) is True


def test_unused_keyword_logged_once_at_debug(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  ControlMaster auto\nHost h\n  ControlMaster no\n")
    with caplog.at_level("DEBUG", logger="sshlib.sshconfig"):
        resolve("h", config_files=[config], local=home.local())
    assert caplog.text.count("controlmaster is accepted but sshlib does not act on it") == 1


@pytest.mark.parametrize("value,expected", [
    (None, "/env/sock"), ("SSH_AUTH_SOCK", "/env/sock"), ("none", None), ("NONE", None),
    ("$OTHER", "tcp:127.0.0.1:7"), ("$UNSET", None), ("/explicit/sock", "/explicit/sock"),
    ("pipe:openssh-ssh-agent", "pipe:openssh-ssh-agent"),
])
def test_identity_agent_endpoints(value: str | None, expected: str | None) -> None:
    from sshlib.sshconfig.apply import agent_endpoint

    env = {"SSH_AUTH_SOCK": "/env/sock", "OTHER": "tcp:127.0.0.1:7"}
    assert agent_endpoint(value, env) == expected


def test_forward_requests_and_jump_hops(tmp_path: Path) -> None:
    from sshlib.sshconfig.forwards import JumpHop, forward_requests, jump_hops

    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  LocalForward 8080 db:5432\n"
                                  "  LocalForward *:8443 [::1]:443\n"
                                  "  LocalForward /tmp/l.sock /tmp/r.sock\n"
                                  "  DynamicForward 1080\n  RemoteForward 9000 localhost:22\n"
                                  "  RemoteForward 1081\n"
                                  "  ProxyJump a@j1:2201,j2,[::1]:22\n")
    hc = resolve("h", config_files=[config], local=home.local())
    got = [(r.kind, r.listen, r.target) for r in forward_requests(
        hc.local_forwards, hc.remote_forwards, hc.dynamic_forwards)]
    assert got == [("local", "8080", "db:5432"), ("local", "*:8443", "[::1]:443"),
                   ("local", "unix:/tmp/l.sock", "unix:/tmp/r.sock"),
                   ("dynamic", "1080", None), ("remote", "9000", "localhost:22"),
                   ("remote", "1081", None)]
    assert hc.proxy_jump is not None
    assert jump_hops(hc.proxy_jump) == [JumpHop("a", "j1", 2201), JumpHop(None, "j2", None),
                                        JumpHop(None, "::1", 22)]


def test_algorithm_options_reach_the_client_config(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host *\n  Ciphers aes256-gcm@openssh.com,aes128-cbc\n"
                                  "  MACs -*-etm@openssh.com\n  KexAlgorithms ^curve25519-sha256\n"
                                  "  HostKeyAlgorithms rsa-sha2-512\n  RekeyLimit 2G 1h\n"
                                  "  StrictHostKeyChecking no\n  ConnectTimeout 7\n")
    cfg, _ = resolve("h", config_files=[config], local=home.local()).client_config()
    assert list(cfg.ciphers or ()) == ["aes256-gcm@openssh.com"]  # CBC: not sshlib's
    assert list(cfg.macs or ()) == ["hmac-sha2-256", "hmac-sha2-512"]
    assert (cfg.kex_algorithms or ("",))[0] == "curve25519-sha256"
    assert list(cfg.host_key_algorithms or ()) == ["rsa-sha2-512"]
    assert (cfg.rekey_bytes, cfg.rekey_interval, cfg.timeout) == (2 << 30, 3600.0, 7.0)
    config = home.write("config", "Host *\n  Ciphers aes128-cbc,3des-cbc\n")
    with pytest.raises(ConfigError, match="sshlib supports none"):
        resolve("h", config_files=[config], local=home.local())
    config = home.write("config", "Host *\n  RekeyLimit 64K\n")
    with pytest.raises(ConfigError, match="1 MiB"):
        resolve("h", config_files=[config], local=home.local()).client_config()


def test_proxy_command_tokens(tmp_path: Path) -> None:
    home = PrivateHome(tmp_path)
    config = home.write("config", "Host a\n  HostName real\n  Port 2200\n  User u\n"
                                  "  ProxyCommand nc -x %k %h:%p # %r %n %%\n"
                                  "Host b\n  ProxyCommand nc %j\n")
    hc = resolve("a", config_files=[config], local=home.local())
    assert hc.proxy_command_line() == "nc -x a real:2200 # u a %"
    with pytest.raises(ConfigError, match="unknown key %j"):
        resolve("b", config_files=[config], local=home.local()).proxy_command_line()


def test_resolve_jump_like_ssh_dash_j(tmp_path: Path) -> None:
    from sshlib.sshconfig import resolve_jump

    home = PrivateHome(tmp_path)
    config = home.write("config", "Host target\n  HostName 10.0.0.5\n  ProxyJump ops@j1,j2:2202\n"
                                  "Host j1\n  HostName jump1.example.com\n  User nobody\n"
                                  "  IdentityFile ~/.ssh/id_j1\n"
                                  "Host j2\n  HostName jump2.example.com\n  User j2user\n"
                                  "Host loopa\n  ProxyJump loopb\n"
                                  "Host loopb\n  ProxyJump loopa\n"
                                  "Host self.example.com\n  ProxyJump self.example.com\n")
    hc = resolve("target", config_files=[config], local=home.local())
    j2 = resolve_jump(hc)
    assert j2 is not None
    assert (j2.hostname, j2.port, j2.user, j2.proxy_jump) == ("jump2.example.com", 2202,
                                                              "j2user", "ops@j1")
    j1 = resolve_jump(j2)
    assert j1 is not None and resolve_jump(j1) is None
    assert (j1.hostname, j1.user) == ("jump1.example.com", "ops")  # ops@ wins over User
    assert j1.identity_files == [f"{home.home}/.ssh/id_j1"]
    with pytest.raises(ConfigError, match="jumphost loop"):
        resolve_jump(resolve("self.example.com", config_files=[config], local=home.local()))
    hop: sshlib.sshconfig.HostConfig | None = resolve("loopa", config_files=[config],
                                                      local=home.local())
    with pytest.raises(ConfigError, match="more than 8 jump hosts"):
        while hop is not None:
            hop = resolve_jump(hop)
