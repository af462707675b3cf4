"""Oracle test: sshlib.sshconfig.resolve() against the real ``ssh -G`` (OpenSSH 9.2).

For every case (configuration files x host x command-line options) and
every key sshlib's as_ssh_g() returns, the value must equal what ``ssh -G``
prints for the same files and a private HOME (tests/sshg.py).  Algorithm
lists are sshlib's own (its defaults, its names), so for them the test
checks the modifier logic instead: alglists.assemble() applied to OpenSSH's
defaults and names must give exactly what ssh printed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sshg import PrivateHome

from sshlib.sshconfig import alglists, resolve

ALG_KEYS = ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms")
ENV = {"MYVAR": "from-env", "AGENTDIR": "/run/agents", "SSH_AUTH_SOCK": "/tmp/agent.sock"}


@dataclass
class Case:
    name: str
    files: dict[str, str]  # "config" is the -F file; other names live in ~/.ssh or are absolute
    host: str
    user: str | None = None
    port: int | None = None
    options: dict[str, str] = field(default_factory=dict)


BIG = """\
# A realistic user configuration
Host bastion
  HostName bastion.example.com
  User ops
  Port 2200
  IdentityFile ~/.ssh/id_bastion

Host web?? !web99
  HostName %h.internal.example.com
  ProxyJump ops@bastion:2200
  User deploy

Host *.internal.example.com
  StrictHostKeyChecking accept-new

Match host *.internal.example.com user deploy
  ForwardAgent yes
  SendEnv DEPLOY_*

Host *
  ServerAliveInterval 30
  ServerAliveCountMax 4
  IdentityFile ~/.ssh/id_ed25519
  AddKeysToAgent yes
  SendEnv LANG LC_*
"""

CASES = [
    Case("basic-alias", {"config": "Host foo\n HostName bar.example.com\n User bob\n Port 2022\n"},
         "foo"),
    Case("no-match-defaults", {"config": "Host foo\n HostName bar\n"}, "other"),
    Case("patterns-list", {"config": "Host a b c*\n User listed\n"}, "cat"),
    Case("negation-excludes", {"config": "Host *.ex.com !bad.ex.com\n User ok\n"}, "bad.ex.com"),
    Case("negation-other", {"config": "Host *.ex.com !bad.ex.com\n User ok\n"}, "good.ex.com"),
    Case("question-mark", {"config": "Host h?st\n Port 99\n"}, "host"),
    Case("comma-is-literal", {"config": "Host a,b\n User comma\nHost b\n User plain\n"}, "b"),
    Case("first-wins", {"config": "Host foo\n User first\nHost *\n User second\n Port 7\n"},
         "foo"),
    Case("key-equals-forms", {"config": "HOST=foo\n  user = eq\n\tPORT\t=\t33\nhostNAME=x.y\n"},
         "foo"),
    Case("quoting", {"config": 'Host foo\n IdentityFile "/tmp/with space/key"\n'
                               " IdentityFile '/tmp/single quoted'\n"
                               ' IdentityFile /tmp/esc\\"aped\n'
                               ' RemoteCommand echo "a  b" \'c\'\n'}, "foo"),
    Case("comments-and-blank", {"config": "# top\n\n   # indented\nHost foo # trailing\n"
                                          " User c # after value\n\n"}, "foo"),
    Case("crlf-and-tabs", {"config": "Host foo\r\n\tUser\ttabbed\r\n\tPort 44 \r\n"}, "foo"),
    Case("identity-accumulate", {"config": "Host foo\n IdentityFile ~/.ssh/a\n"
                                           " IdentityFile ~/.ssh/%h-%r-%p\n"
                                           "Host *\n IdentityFile ~/.ssh/a\n"
                                           " IdentityFile %d/b_%u_%%\n"}, "foo"),
    Case("certificate-accumulate", {"config": "Host *\n CertificateFile ~/.ssh/c1\n"
                                              " CertificateFile ~/.ssh/c2\n"
                                              " CertificateFile ~/.ssh/c1\n"}, "x"),
    Case("sendenv-accumulate-remove", {"config": "Host *\n SendEnv LANG LC_* XMODIFIERS\n"
                                                 " SendEnv -LC_*\n SendEnv FOO\n"}, "x"),
    Case("setenv-first-line-wins", {"config": "Host foo\n SetEnv A=1 B=\"two words\" A=3\n"
                                              "Host *\n SetEnv C=3\n"}, "foo"),
    Case("forwards", {"config": "Host *\n LocalForward 8080 localhost:80\n"
                                " LocalForward 127.0.0.1:8443 [::1]:443\n"
                                " LocalForward /tmp/local.sock /tmp/remote.sock\n"
                                " RemoteForward 9000 localhost:22\n RemoteForward 1081\n"
                                " DynamicForward 1080\n DynamicForward localhost:1082\n"
                                " LocalForward 8080 localhost:80\n"}, "x"),
    Case("clear-forwardings", {"config": "Host *\n LocalForward 8080 localhost:80\n"
                                         " ClearAllForwardings yes\n"}, "x"),
    Case("known-hosts-files", {"config": "Host foo\n UserKnownHostsFile ~/.ssh/kh %d/kh2_%h "
                                         "/tmp/${MYVAR}/kh3\n GlobalKnownHostsFile /etc/g1 "
                                         "/etc/g2\n"}, "foo"),
    Case("known-hosts-none", {"config": "Host *\n UserKnownHostsFile none\n"
                                        " GlobalKnownHostsFile none\n"}, "x"),
    Case("known-hosts-single-default", {"config": "Host *\n UserKnownHostsFile "
                                                  "~/.ssh/known_hosts\n"}, "x"),
    Case("identityagent-env", {"config": "Host a\n IdentityAgent ${AGENTDIR}/%h.sock\n"
                                         "Host b\n IdentityAgent SSH_AUTH_SOCK\n"
                                         "Host c\n IdentityAgent none\n"
                                         "Host d\n IdentityAgent $MYVAR\n"
                                         "Host e\n IdentityAgent ~/agent.sock\n"}, "a"),
    Case("identityagent-legacy-var", {"config": "Host *\n IdentityAgent $MYVAR\n"}, "d"),
    Case("forwardagent-path", {"config": "Host *\n ForwardAgent ~/fwd-%r.sock\n"}, "x"),
    Case("forwardagent-no", {"config": "Host *\n ForwardAgent no\n ForwardAgent yes\n"}, "x"),
    Case("remotecommand-tokens", {"config": "Host *\n RemoteCommand echo %h %p %r %n %%\n"},
         "box", user="rc", port=2345),
    Case("proxyjump-chain", {"config": "Host foo\n ProxyJump a@j1:2201,j2,10.1.2.3:2203\n"},
         "foo"),
    Case("proxyjump-ipv6", {"config": "Host foo\n ProxyJump u@[::1]:22\n"}, "foo"),
    Case("proxyjump-none", {"config": "Host foo\n ProxyJump none\nHost *\n ProxyJump j9\n"},
         "foo"),
    Case("proxycommand-first", {"config": "Host *\n ProxyCommand nc -X 5 %h %p\n"
                                          " ProxyJump ignored\n"}, "x"),
    Case("proxycommand-none", {"config": "Host *\n ProxyCommand none\n"}, "x"),
    Case("include-relative", {"config": "Include inc.conf\nHost *\n User fallback\n",
                              "inc.conf": "Host foo\n User included\n"}, "foo"),
    Case("include-glob-sorted", {"config": "Include conf.d/*.conf\n",
                                 "conf.d/20-b.conf": "Host *\n User from-b\n Port 20\n",
                                 "conf.d/10-a.conf": "Host *\n User from-a\n",
                                 "conf.d/skip.txt": "Host *\n Port 99\n"}, "x"),
    Case("include-nested", {"config": "Include one\n", "one": "Include two\nPort 11\n",
                            "two": "Host *\n User deep\n"}, "x"),
    Case("include-in-host-block", {"config": "Host foo\n Include sub\nHost *\n User outer\n",
                                   "sub": "User inner\nHost *\n Port 1234\n"}, "foo"),
    Case("include-in-inactive-block", {"config": "Host nomatch\n Include sub\nHost *\n"
                                                 " User outer\n",
                                       "sub": "User inner\nHost *\n Port 1234\n"}, "foo"),
    Case("include-match-does-not-clobber", {"config": "Host foo\n Include sub\n Port 5\n",
                                            "sub": "Match host nothing\n User never\n"},
         "foo"),
    Case("include-absolute-and-missing", {"config": "Include /tmp/sshlib-nonexistent-*.conf "
                                                    "missing.conf\nHost *\n User after\n"}, "x"),
    Case("match-all", {"config": "Match all\n User everyone\n"}, "x"),
    Case("match-host-vs-originalhost", {"config": "Host alias\n HostName real.example.com\n"
                                                  "Match host real.example.com\n User byhost\n"
                                                  "Match originalhost alias\n Port 2\n"},
         "alias"),
    Case("match-user-explicit", {"config": "Match user alice\n Port 3\n"
                                           "Match !user alice\n Port 4\n"}, "x", user="alice"),
    Case("match-localuser", {"config": "Match localuser nobody-here\n Port 8\n"
                                       "Match !localuser nobody-here\n Port 9\n"}, "x"),
    Case("match-exec", {"config": "Match exec \"test %h = box\"\n User execd\n"
                                  "Match exec false\n Port 1\n"
                                  "Match host nope exec \"exit 1\"\n Port 2\n"}, "box"),
    Case("match-final-second-pass", {"config": "Host alias\n HostName target.example.com\n"
                                               "Host target.example.com\n User in-final\n"
                                               "Match final\n Port 2222\n"
                                               "Match !final\n Compression yes\n"}, "alias"),
    Case("match-canonical", {"config": "Match canonical\n User canon\n"
                                       "Match !canonical\n Port 1\n"
                                       "Host *\n CanonicalizeHostname yes\n"}, "x"),
    Case("hostname-tokens-and-case", {"config": "Host *\n HostName %h.Example.COM\n"}, "Box"),
    Case("hostname-ip", {"config": "Host ip\n HostName 10.0.0.1\n"}, "ip"),
    Case("host-case-sensitive", {"config": "Host foo\n User lower\n"}, "FOO"),
    Case("explicit-user-port-win", {"config": "Host foo\n User cfg\n Port 1\n"}, "foo",
         user="cli", port=2),
    Case("ssh-uri", {"config": "Host foo\n User cfg\n Port 1\n"}, "ssh://uri@foo:2345"),
    Case("user-at-host", {"config": "Host foo\n User cfg\n"}, "at@foo"),
    Case("command-line-options", {"config": "Host foo\n StrictHostKeyChecking yes\n"
                                            " User cfg\n"}, "foo",
         options={"StrictHostKeyChecking": "accept-new", "User": "opt"}),
    Case("ignore-unknown", {"config": "IgnoreUnknown Frobnicate*,Other\nHost *\n"
                                      " FrobnicateLevel 5\n Other x\n User ok\n"}, "x"),
    Case("strict-variants", {"config": "Host a\n StrictHostKeyChecking off\nHost b\n"
                                       " StrictHostKeyChecking ask\nHost *\n HashKnownHosts yes\n"
                                       " StrictHostKeyChecking accept-new\n"}, "a"),
    Case("algorithms-explicit", {"config": "Host *\n Ciphers aes256-ctr,aes128-gcm@openssh.com\n"
                                           " MACs hmac-sha2-512,hmac-sha2-256-etm@openssh.com\n"
                                           " KexAlgorithms curve25519-sha256\n"
                                           " HostKeyAlgorithms ssh-ed25519,rsa-sha2-256\n"
                                           " PubkeyAcceptedAlgorithms ssh-ed25519\n"}, "x"),
    Case("algorithms-modifiers", {"config": "Host *\n Ciphers -aes*-ctr\n MACs +hmac-sha1\n"
                                            " KexAlgorithms ^diffie-hellman-group14-sha1\n"
                                            " HostKeyAlgorithms -*nistp*\n"
                                            " PubkeyAcceptedAlgorithms +ssh-rsa\n"}, "x"),
    Case("algorithms-wildcard", {"config": "Host *\n HostKeyAlgorithms ssh-ed25519*,rsa-*\n"
                                           " PubkeyAcceptedAlgorithms ^ecdsa-sha2-nistp384\n"},
         "x"),
    Case("rekeylimit", {"config": "Host a\n RekeyLimit 1G 1h\nHost b\n RekeyLimit default none"
                                  "\nHost *\n RekeyLimit 500M\n"}, "a"),
    Case("rekeylimit-default", {"config": "Host *\n RekeyLimit 2M 90\n"}, "b"),
    Case("times", {"config": "Host *\n ConnectTimeout 1m30s\n ServerAliveInterval 2m\n"
                             " ServerAliveCountMax 5\n ForwardX11Timeout 1h\n"}, "x"),
    Case("connecttimeout-none", {"config": "Host *\n ConnectTimeout none\n ConnectTimeout 7\n"},
         "x"),
    Case("numbers-and-families", {"config": "Host *\n ConnectionAttempts 3\n"
                                            " NumberOfPasswordPrompts 1\n AddressFamily inet\n"
                                            " BindAddress 127.0.0.1\n"}, "x"),
    Case("auth-options", {"config": "Host *\n PreferredAuthentications publickey,password\n"
                                    " PubkeyAuthentication host-bound\n"
                                    " ChallengeResponseAuthentication no\n"
                                    " PasswordAuthentication no\n IdentitiesOnly yes\n"}, "x"),
    Case("session-options", {"config": "Host *\n RequestTTY force\n Compression yes\n"
                                       " BatchMode yes\n ExitOnForwardFailure yes\n"
                                       " HostKeyAlias MyAlias\n"}, "x"),
    Case("deprecated-and-gssapi", {"config": "Host *\n Protocol 2\n UseRoaming no\n"
                                             " GSSAPIAuthentication yes\n ControlMaster auto\n"
                                             " ControlPath ~/.ssh/cm-%C\n Tunnel yes\n"}, "x"),
    Case("host-reactivation", {"config": "Host a\n Port 1\nHost b\n Port 2\nHost x\n User x1\n"
                                         "Host a x\n Port 3\n"}, "x"),
    Case("final-pass-rematches-host", {"config": "Host foo\n HostName Foo.EXAMPLE\n"
                                                 "Match final host foo.example\n User fin\n"
                                                 "Host foo.example\n Port 9\n"}, "foo"),
    Case("originalhost-case", {"config": "Match originalhost foo\n User o\n"}, "FOO"),
    Case("equals-in-value", {"config": "Host=foo\nPort=22\nUser=a=b\n"}, "foo"),
    Case("include-tilde", {"config": "Host foo\n Include ~/.ssh/inc\n", "inc": "User t\n"},
         "foo"),
    Case("include-in-match", {"config": "Match host foo\n Include inc\n",
                              "inc": "Host *\n Port 5\nMatch all\n User x\n"}, "foo"),
    Case("proxy-comments", {"config": "Host foo\n ProxyJump jump # comment\n"}, "foo"),
    Case("proxycommand-comment-kept", {"config": "Host foo\n ProxyCommand nc %h %p # c\n"},
         "foo"),
    Case("forward-bind-and-paths", {"config": "Host foo\n LocalForward localhost:80 r:8080\n"
                                              " RemoteForward localhost:9 /tmp/sock\n"}, "foo"),
    Case("match-canonical-all", {"config": "Match canonical all\n Port 7\n"
                                           "Match final all\n User fa\n"}, "foo"),
    Case("forwardagent-env", {"config": "Host *\n ForwardAgent $SSH_AUTH_SOCK\n"}, "foo"),
    Case("sendenv-remove-all", {"config": "Host *\n SendEnv LANG\n SendEnv -*\n"
                                          " SendEnv X\n"}, "foo"),
    Case("hostkeyalias-tokens-kept", {"config": "Host foo\n HostKeyAlias A%hB\n"}, "foo"),
    Case("realistic-web", {"config": BIG}, "web01"),
    Case("realistic-excluded", {"config": BIG}, "web99"),
    Case("realistic-bastion", {"config": BIG}, "bastion"),
]


@pytest.fixture(scope="module")
def openssh_algorithms() -> dict[str, tuple[list[str], list[str]]]:
    """OpenSSH's own (defaults, available names) per algorithm keyword, from ssh -G / ssh -Q."""
    empty = subprocess.run(["ssh", "-F", "/dev/null", "-G", "x"], capture_output=True, text=True,
                           check=True, stdin=subprocess.DEVNULL).stdout
    defaults = dict(line.split(" ", 1) for line in empty.splitlines())
    queries = {"ciphers": "cipher", "macs": "mac", "kexalgorithms": "kex",
               "hostkeyalgorithms": "key-sig", "pubkeyacceptedalgorithms": "key-sig"}
    result = {}
    for key, query in queries.items():
        names = subprocess.run(["ssh", "-Q", query], capture_output=True, text=True,
                               check=True).stdout.split()
        result[key] = (defaults[key].split(","), names)
    return result


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolve_equals_ssh_g(case: Case, tmp_path: Path,
                              openssh_algorithms: dict[str, tuple[list[str], list[str]]]) -> None:
    home = PrivateHome(tmp_path, ENV)
    main = None
    for name, text in case.files.items():
        path = home.write(name, text)
        if name == "config":
            main = path
    assert main is not None
    args: list[str] = []
    if case.user:
        args += ["-l", case.user]
    if case.port:
        args += ["-p", str(case.port)]
    for key, value in case.options.items():
        args += ["-o", f"{key}={value}"]
    status, ssh, stderr = home.ssh_g(main, case.host, *args)
    assert status == 0, stderr
    hc = resolve(case.host, user=case.user, port=case.port, config_files=[main],
                 options=case.options, local=home.local())
    mine = hc.as_ssh_g()
    assert len(mine) >= 60
    differences = {}
    for key, value in mine.items():
        values = value if isinstance(value, list) else [value]
        if key in ALG_KEYS:
            continue
        if ssh.get(key) != values:
            differences[key] = (ssh.get(key), values)
    for key in ("identityfile", "certificatefile", "sendenv", "setenv", "localforward",
                "remoteforward", "dynamicforward", "proxyjump", "proxycommand"):
        if key in ssh and key not in mine:
            differences[key] = (ssh[key], None)
    assert not differences, differences
    for key in ALG_KEYS:
        defaults, names = openssh_algorithms[key]
        spec = hc.options.values.get(key)
        assert alglists.assemble(spec, defaults, names) == ssh[key][0].split(","), key
        if spec and spec[0] not in "+-^" and "*" not in spec:
            assert mine[key] == ssh[key][0], key
