"""Differential test: seeded random ssh_config files, sshlib.resolve() against ``ssh -G``.

A small grammar produces files with Host and Match blocks over a handful of
host names, Includes (some inside blocks), repeated keywords in different
blocks, quoting and ``key=value`` forms.  For each file and host both sides
must agree: the same value for every key as_ssh_g() returns (algorithm
lists aside, see test_sshconfig_oracle.py), or both must reject the file.
The seed is fixed so a failure reproduces; the cases are cheap (one ssh -G
each).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sshg import PrivateHome

from sshlib.sshconfig import ConfigError, resolve

HOSTS = ["web1", "web2", "db.example.com", "Gateway", "10.0.0.7"]
USERS = ["alice", "bob", "deploy"]
ALG_KEYS = ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms")


# keyword -> values; "{n}" becomes a random number
VALUES: dict[str, list[str]] = {
    "User": USERS,
    "Port": ["{n}", "22", "2222"],
    "HostName": ["%h.internal", "real-%h", "UPPER.%h", "192.168.1.{n}"],
    "IdentityFile": ["~/.ssh/id_%h", "~/.ssh/id_ed25519", "%d/keys/%r", '"/tmp/sp ace/%u"'],
    "CertificateFile": ["~/.ssh/cert-1", "~/.ssh/cert-2"],
    "SendEnv": ["LANG", "LC_*", "-LC_*", "X_*", "TZ"],
    "SetEnv": ["K1=v1", "K2=v{n}", "K1=other K3=x"],
    "LocalForward": ["{n} localhost:{n}", "127.0.0.1:{n} [::1]:22"],
    "RemoteForward": ["{n}", "{n} localhost:22"],
    "DynamicForward": ["1080", "localhost:1081", "[::1]:1082"],
    "ProxyJump": ["jump", "u@jump:2222", "a,b,c", "none"],
    "ProxyCommand": ["nc %h %p", "none", "ssh -W [%h]:%p j"],
    "StrictHostKeyChecking": ["yes", "no", "ask", "accept-new", "off"],
    "UserKnownHostsFile": ["~/.ssh/kh_%h", "none", "~/a ~/b", "~/.ssh/known_hosts"],
    "IdentityAgent": ["none", "SSH_AUTH_SOCK", "~/agent-%r", "${MYVAR}/s"],
    "ForwardAgent": ["yes", "no", "~/fwd.sock"],
    "ServerAliveInterval": ["0", "15", "1m", "2h"],
    "ServerAliveCountMax": ["0", "3", "9"],
    "ConnectTimeout": ["none", "5", "1m"],
    "RekeyLimit": ["1G", "default", "64M 1h", "2G none"],
    "RequestTTY": ["yes", "no", "force", "auto"],
    "Compression": ["yes", "no"],
    "PubkeyAuthentication": ["yes", "no", "unbound", "host-bound"],
    "PasswordAuthentication": ["yes", "no"],
    "PreferredAuthentications": ["publickey", "password,publickey"],
    "HostKeyAlias": ["alias-%h", "Mixed"],
    "RemoteCommand": ["uptime", "echo %h %r", "none"],
    "AddressFamily": ["any", "inet", "inet6"],
    "BatchMode": ["yes", "no"],
    "HashKnownHosts": ["yes", "no"],
    "IdentitiesOnly": ["yes", "no"],
    "ClearAllForwardings": ["yes", "no"],
    "ControlPath": ["~/.ssh/cm-%C", "~/.ssh/cm-%r@%h:%p"],
}


def _value(rng: random.Random) -> str:
    keyword = rng.choice(list(VALUES))
    rest = rng.choice(VALUES[keyword])
    while "{n}" in rest:
        rest = rest.replace("{n}", str(rng.randint(1024, 9000)), 1)
    form = rng.randrange(4)
    if form == 1:
        return f"{keyword.lower()}={rest}"
    if form == 2:
        return f"{keyword.upper()} = {rest}"
    return f"{keyword} {rest}"


def _pattern(rng: random.Random) -> str:
    pattern = rng.choice(["web*", "web?", "*.example.com", "Gateway", "10.0.0.*", "*", "db*",
                          "nomatch"])
    return ("!" if rng.random() < 0.15 else "") + pattern


def _header(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return "Host " + " ".join(_pattern(rng) for _ in range(rng.randint(1, 3)))
    criteria = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(["host", "originalhost", "user", "localuser", "exec", "final",
                           "canonical"])
        neg = "!" if rng.random() < 0.2 else ""
        if kind == "user":
            criteria.append(f"{neg}user {','.join(rng.sample(USERS, 2))}")
        elif kind == "localuser":
            criteria.append(f"{neg}localuser root,nobody")
        elif kind == "exec":
            criteria.append(f'{neg}exec "{rng.choice(["true", "false", "test %h = web1"])}"')
        elif kind in ("final", "canonical"):
            criteria.append(neg + kind)
        else:
            criteria.append(f"{neg}{kind} {_pattern(rng).lstrip('!')},{_pattern(rng)}")
    return "Match " + " ".join(criteria)


def _file(rng: random.Random, includes: list[str]) -> str:
    lines = [_value(rng) for _ in range(rng.randint(0, 2))]
    for _ in range(rng.randint(1, 5)):
        lines.append(_header(rng))
        for _ in range(rng.randint(1, 4)):
            lines.append("  " + _value(rng))
        if includes and rng.random() < 0.3:
            lines.append("  Include " + includes.pop())
    return "\n".join(lines) + "\n"


SEEDS = list(range(200))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_config_matches_ssh_g(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    home = PrivateHome(tmp_path, {"MYVAR": "envdir", "LANG": "C", "TZ": "UTC"})
    includes = [f"inc{n}.conf" for n in range(rng.randint(0, 2))]
    for name in includes:
        home.write(name, _file(rng, []))
    main = home.write("config", _file(rng, list(includes)))
    for host in rng.sample(HOSTS, 2):
        user = rng.choice([None, "bob"])
        args = ["-l", user] if user else []
        status, ssh, stderr = home.ssh_g(main, host, *args)
        try:
            hc = resolve(host, user=user, config_files=[main], local=home.local())
        except ConfigError as exc:
            assert status != 0, f"sshlib rejected what ssh accepts: {exc}"
            continue
        assert status == 0, f"ssh rejected what sshlib accepts: {stderr}\n{main.read_text()}"
        differences = {}
        for key, value in hc.as_ssh_g().items():
            values = value if isinstance(value, list) else [value]
            if key not in ALG_KEYS and ssh.get(key) != values:
                differences[key] = (ssh.get(key), values)
        assert not differences, (host, differences, main.read_text())
