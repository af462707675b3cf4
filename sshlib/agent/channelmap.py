"""Which SSH client reaches which agent, over which channel, and the bridge for the rest.

One table of facts (the sources are in docs/agent.md): the channels agents listen on, the
client families and the channels each can use, the agents and the channels each serves,
and the `sshlib agent bridge` / `relay` command for each setup where client and agent share
no channel. The docs site draws the picture from it (`to_dot()`, rendered by Graphviz) and
the "Which command do I run for my setup?" table in docs/agent.md is `setup_table()`
(tests/test_channelmap.py fails when the two differ). Adding a channel, client, agent or
bridge here updates both. Plain data and string building: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Channel",
    "ClientFamily",
    "Agent",
    "Setup",
    "CHANNELS",
    "CLIENTS",
    "AGENTS",
    "SETUPS",
    "direct_channels",
    "bridging_setups",
    "setup_table",
    "to_dot",
]


@dataclass(frozen=True)
class Channel:
    """One way of reaching an agent; `endpoint` is sshlib's endpoint string for it.

    `side` is where the channel lives: "windows" (a Windows process can open it),
    "wsl" (inside a WSL distribution) or "posix" (Linux, macOS).
    """

    id: str
    label: str
    endpoint: str
    side: str


@dataclass(frozen=True)
class ClientFamily:
    """SSH clients that share an agent client: the channels they can open themselves.

    `sides` are where the agents this family may want live (a WSL shell also wants
    the agent on its Windows host).
    """

    id: str
    label: str
    speaks: tuple[str, ...]
    sides: tuple[str, ...]


@dataclass(frozen=True)
class Agent:
    """An agent program and the channels it serves (each may need enabling in its settings)."""

    id: str
    label: str
    listens: tuple[str, ...]


@dataclass(frozen=True)
class Setup:
    """One row of "which command do I run": a bridge from `listen` (a channel the clients speak)
    to `to` (a channel the agent serves; "any" for every channel on the agent's side).

    `command` is the bridge as the picture shows it; rows without one (alternative
    spellings of a drawn bridge, advice) are left out of the picture.
    """

    you_are_in: str
    your_agent_is: str
    run: str
    then: str
    clients: tuple[str, ...] = ()
    listen: str = ""
    to: str = ""
    command: str = ""
    drawn_to: str = ""  # the channel the picture's bridge points at, when `to` is "any"


def _channels(*rows: Channel) -> dict[str, Channel]:
    return {c.id: c for c in rows}


CHANNELS: dict[str, Channel] = _channels(
    Channel("openssh-pipe", "named pipe\n\\\\.\\pipe\\openssh-ssh-agent",
            "pipe:openssh-ssh-agent", "windows"),
    Channel("pageant-pipe", "Pageant's named pipe\n\\\\.\\pipe\\pageant.USER.HASH",
            "pageant-pipe", "windows"),
    Channel("pageant-window", "Pageant window\n(WM_COPYDATA)", "pageant-window", "windows"),
    Channel("cygwin", "Cygwin / MSYS2\nsocket file", "cygwin:PATH", "windows"),
    Channel("assuan", "libassuan\nsocket file", "assuan:PATH", "windows"),
    Channel("winunix", "Windows AF_UNIX\nsocket (C:\\...)", "unix:C:/PATH", "windows"),
    Channel("wsl-unix", "Unix socket\ninside WSL", "unix:PATH", "wsl"),
    Channel("unix", "Unix socket\n(Linux, macOS)", "unix:PATH", "posix"),
)

CLIENTS: tuple[ClientFamily, ...] = (
    ClientFamily("win32-openssh", "Win32-OpenSSH\n(ssh.exe, VS Code, git)",
                 ("openssh-pipe", "pageant-pipe"), ("windows",)),
    ClientFamily("putty", "PuTTY / WinSCP /\nFileZilla", ("pageant-pipe", "pageant-window"),
                 ("windows",)),
    ClientFamily("msys2", "Git for Windows /\nMSYS2 (Git Bash)", ("cygwin",), ("windows",)),
    ClientFamily("cygwin", "Cygwin", ("cygwin",), ("windows",)),
    ClientFamily("wsl1", "WSL1", ("wsl-unix", "winunix"), ("wsl", "windows")),
    ClientFamily("wsl2", "WSL2", ("wsl-unix",), ("wsl", "windows")),
    ClientFamily("posix", "Linux / macOS", ("unix",), ("posix",)),
    ClientFamily("sshlib", "sshlib\n(any platform)", tuple(CHANNELS), ("windows", "wsl", "posix")),
)

AGENTS: tuple[Agent, ...] = (
    Agent("win32-openssh-agent", "Win32-OpenSSH agent\n(service)", ("openssh-pipe",)),
    Agent("pageant", "Pageant (PuTTY)", ("pageant-pipe", "pageant-window", "winunix", "unix")),
    Agent("keeagent", "KeeAgent (KeePass)",
          ("openssh-pipe", "pageant-window", "cygwin", "winunix")),
    Agent("gpg-agent", "gpg-agent / Gpg4win",
          ("assuan", "cygwin", "openssh-pipe", "pageant-window", "unix")),
    Agent("1password", "1Password", ("openssh-pipe", "unix")),
    Agent("bitwarden", "Bitwarden", ("openssh-pipe", "unix")),
    Agent("msys-agent", "MSYS2 / Cygwin\nssh-agent", ("cygwin",)),
    Agent("wsl-agent", "ssh-agent\ninside WSL", ("wsl-unix",)),
)

_PIPE_NOTE = ('stop the "OpenSSH Authentication Agent" service first: the bridge refuses a '
              "pipe name another process serves")

SETUPS: tuple[Setup, ...] = (
    Setup("Linux / macOS", "any agent, from another channel (tcp, Cygwin file, exec relay...)",
          "`sshlib agent bridge --listen unix:~/.ssh/agent.sock --to ENDPOINT`",
          "`IdentityAgent ~/.ssh/agent.sock` or `export SSH_AUTH_SOCK=~/.ssh/agent.sock`",
          ("posix",), "unix", "any"),
    Setup("Windows, Win32-OpenSSH (`ssh.exe`)", "Pageant (PuTTY >= 0.75)",
          'nothing: `IdentityAgent "//./pipe/pageant.USER.HASH"` (what `pageant '
          "--openssh-config` writes); or `sshlib agent bridge --listen pipe:openssh-ssh-agent "
          f"--to pageant` ({_PIPE_NOTE})",
          "`ssh` finds the OpenSSH pipe by default",
          ("win32-openssh",), "openssh-pipe", "pageant-pipe",
          "sshlib agent bridge\n--listen pipe:openssh-ssh-agent\n--to pageant"),
    Setup("Windows, Win32-OpenSSH", "Gpg4win / gpg-agent (`S.gpg-agent.ssh`)",
          "`sshlib agent bridge --listen pipe:openssh-ssh-agent --to "
          "assuan:%APPDATA%\\gnupg\\S.gpg-agent.ssh` (or `--to cygwin:...` when the file "
          "starts with `!<socket >`; `doctor` says which)",
          "default `ssh`", ("win32-openssh",), "openssh-pipe", "assuan",
          "sshlib agent bridge\n--listen pipe:openssh-ssh-agent\n--to assuan:...S.gpg-agent.ssh"),
    Setup("Windows, Win32-OpenSSH", "any other Windows agent (a Cygwin/MSYS2 `ssh-agent`...)",
          f"`sshlib agent bridge --listen pipe:openssh-ssh-agent --to ENDPOINT` ({_PIPE_NOTE})",
          "default `ssh`", ("win32-openssh",), "openssh-pipe", "any"),
    Setup("Windows, PuTTY / WinSCP / FileZilla",
          "Win32-OpenSSH agent, 1Password, Bitwarden (the OpenSSH pipe)",
          "`sshlib agent bridge --listen pageant-window --to pipe:openssh-ssh-agent` (refuses "
          'to start if Pageant or another "Pageant" window is running); any other agent: '
          "`--to ENDPOINT`",
          'PuTTY finds "Pageant"', ("putty",), "pageant-window", "any",
          "sshlib agent bridge\n--listen pageant-window\n--to pipe:openssh-ssh-agent",
          "openssh-pipe"),
    Setup("Git for Windows (Git Bash) / MSYS2 / Cygwin", "Pageant or the OpenSSH pipe",
          "`sshlib agent bridge --listen cygwin:/tmp/sshlib-agent.sock --to pageant` (Windows "
          "Python; give the Windows path of the file); `--to pipe:openssh-ssh-agent` or any "
          "`ENDPOINT` the same way",
          "in the MSYS/Cygwin shell: `export SSH_AUTH_SOCK=/tmp/sshlib-agent.sock`",
          ("msys2", "cygwin"), "cygwin", "any",
          "sshlib agent bridge\n--listen cygwin:/tmp/sshlib-agent.sock\n--to pageant",
          "pageant-pipe"),
    Setup("WSL1", "an agent on Windows",
          "on Windows: `sshlib agent bridge --listen unix:C:\\Users\\me\\.ssh\\agent.sock --to "
          "pageant` (Windows 10 1803+ AF_UNIX; keep the file in a folder only you can read: "
          "Windows AF_UNIX has no mode bits, the folder's ACL applies)",
          "in WSL1: `export SSH_AUTH_SOCK=/mnt/c/Users/me/.ssh/agent.sock`",
          ("wsl1",), "winunix", "any",
          "sshlib agent bridge (on Windows)\n--listen unix:C:\\Users\\me\\.ssh\\agent.sock\n"
          "--to pageant", "pageant-pipe"),
    Setup("WSL2", "an agent on Windows",
          "in WSL2: `sshlib agent bridge --listen unix:$HOME/.ssh/agent.sock --to 'exec:python.exe "
          "-m sshlib agent relay --to pageant'` (or `--to pipe:openssh-ssh-agent`)",
          "`export SSH_AUTH_SOCK=$HOME/.ssh/agent.sock`", ("wsl2",), "wsl-unix", "any",
          "sshlib agent bridge (in WSL2)\n--listen unix:$HOME/.ssh/agent.sock\n"
          "--to 'exec:python.exe -m sshlib\nagent relay --to pageant'", "pageant-pipe"),
    Setup("WSL2, with socat instead", "an agent on Windows",
          '`socat UNIX-LISTEN:$HOME/.ssh/agent.sock,fork EXEC:"python.exe -m sshlib agent relay '
          '--to pageant"`', "same", ("wsl2",), "wsl-unix", "any"),
    Setup("anywhere", "\"I don't know where my agent is\"", "`sshlib agent doctor`",
          "it prints the `IdentityAgent` / `export` line for each agent it reached"),
)


def _client(client_id: str) -> ClientFamily:
    return next(c for c in CLIENTS if c.id == client_id)


def _agent(agent_id: str) -> Agent:
    return next(a for a in AGENTS if a.id == agent_id)


def direct_channels(client_id: str, agent_id: str) -> list[str]:
    """The channels over which the client reaches the agent with no bridge (maybe none)."""
    agent = _agent(agent_id)
    return [c for c in _client(client_id).speaks if c in agent.listens]


def bridging_setups(client_id: str, agent_id: str) -> list[Setup]:
    """The `SETUPS` rows whose bridge connects this client family to this agent."""
    client, agent = _client(client_id), _agent(agent_id)
    out = []
    for s in SETUPS:
        if client.id not in s.clients or s.listen not in client.speaks:
            continue
        if s.to == "any":
            side = "posix" if CHANNELS[s.listen].side == "posix" else "windows"
            ok = any(CHANNELS[c].side == side for c in agent.listens)
        else:
            ok = s.to in agent.listens
        if ok:
            out.append(s)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def setup_table() -> str:
    """The Markdown table "which command do I run for my setup" in docs/agent.md."""
    lines = ["| You are in | Your agent is | Run | Then |", "|---|---|---|---|"]
    for s in SETUPS:
        lines.append("| " + " | ".join(_cell(x) for x in
                                         (s.you_are_in, s.your_agent_is, s.run, s.then)) + " |")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot() -> str:
    """Graphviz source of the channel map: clients, channels, agents, and the bridges.

    Solid edges: a client opens a channel / an agent serves it. Dashed: an
    `sshlib agent bridge` listening on one channel and forwarding to another.
    """
    out = ["digraph agent_channels {",
           '  graph [rankdir=LR, nodesep=0.25, ranksep=1.1, fontname="Helvetica", '
           'bgcolor="transparent"];',
           '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", shape=box];',
           '  edge [color="#666666", arrowsize=0.6, fontname="Helvetica", fontsize=10];']
    out.append('  subgraph cluster_clients { label="SSH clients"; style=dashed; color="#999999";')
    for c in CLIENTS:
        out.append(f'    "client:{c.id}" [label={_q(c.label)}, fillcolor="#dbe9ff"];')
    out.append("  }")
    out.append('  subgraph cluster_agents { label="Agents"; style=dashed; color="#999999";')
    for a in AGENTS:
        out.append(f'    "agent:{a.id}" [label={_q(a.label)}, fillcolor="#dff5df"];')
    out.append("  }")
    for ch in CHANNELS.values():
        out.append(f'  "channel:{ch.id}" [label={_q(ch.label)}, shape=ellipse, '
                   'fillcolor="#fff3c4"];')
    for c in CLIENTS:
        if c.id == "sshlib":
            continue  # sshlib opens every channel: one edge to each would hide the rest
        for ch_id in c.speaks:
            out.append(f'  "client:{c.id}" -> "channel:{ch_id}";')
    out.append('  "client:sshlib" -> "channel:unix" [label="every channel", style=bold];')
    for a in AGENTS:
        for ch_id in a.listens:
            out.append(f'  "channel:{ch_id}" -> "agent:{a.id}" [dir=back];')
    for i, s in enumerate(x for x in SETUPS if x.command):
        node = f"bridge:{i}"
        out.append(f'  "{node}" [label={_q(s.command)}, shape=note, fillcolor="#f3e0ff", '
                   'fontname="Courier", fontsize=9];')
        out.append(f'  "channel:{s.listen}" -> "{node}" [style=dashed, color="#8a4fbf", '
                   'arrowhead=none];')
        out.append(f'  "{node}" -> "channel:{s.drawn_to or s.to}" [style=dashed, '
                   'color="#8a4fbf", constraint=false];')
    out.append("}")
    return "\n".join(out) + "\n"
