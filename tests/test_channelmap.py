"""The agent channel map: one table drives the picture and docs/agent.md's setup table."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from docstools import load_script

from sshlib.agent import channelmap as cm

ROOT = Path(__file__).resolve().parent.parent


docs = load_script("channelmap_docs")

ISSUE_CLIENTS = {"Win32-OpenSSH", "PuTTY", "Git for Windows", "Cygwin", "WSL1", "WSL2",
                 "Linux / macOS", "sshlib"}
ISSUE_AGENTS = {"Win32-OpenSSH agent", "Pageant", "KeeAgent", "gpg-agent", "1Password",
                "Bitwarden", "MSYS2 / Cygwin\nssh-agent", "ssh-agent\ninside WSL"}


def test_docs_table_is_the_generated_one() -> None:
    assert docs.table_problem() is None, docs.table_problem()
    text = (ROOT / "docs" / "agent.md").read_text()
    assert docs.table_in_docs(text).count("\n") == len(cm.SETUPS) + 2


def test_every_client_family_and_agent_is_on_the_map() -> None:
    for name in ISSUE_CLIENTS:
        assert any(c.label.startswith(name) for c in cm.CLIENTS), name
    for name in ISSUE_AGENTS:
        assert any(a.label.startswith(name) for a in cm.AGENTS), name


def test_the_table_is_consistent() -> None:
    ids = {c.id for c in cm.CLIENTS}
    for c in cm.CLIENTS:
        assert set(c.speaks) <= set(cm.CHANNELS), c
    for a in cm.AGENTS:
        assert set(a.listens) <= set(cm.CHANNELS), a
    for s in cm.SETUPS:
        assert set(s.clients) <= ids, s
        if s.listen:
            assert all(s.listen in next(c for c in cm.CLIENTS if c.id == i).speaks
                       for i in s.clients), f"{s.you_are_in}: its clients cannot open {s.listen}"
            assert s.to == "any" or s.to in cm.CHANNELS, s
            # the command listens on what the row says
            if "sshlib agent bridge" in s.run:
                assert (f"--listen {cm.CHANNELS[s.listen].endpoint.split(':')[0]}"
                        in s.run), s.run
        if s.command:
            assert (s.drawn_to or s.to) in cm.CHANNELS, s


@pytest.mark.parametrize("client", [c for c in cm.CLIENTS if c.id != "sshlib"],
                         ids=lambda c: c.id)
def test_every_pair_is_direct_or_has_a_bridge_command(client: cm.ClientFamily) -> None:
    lacking = []
    for agent in cm.AGENTS:
        if not any(cm.CHANNELS[ch].side in client.sides for ch in agent.listens):
            continue  # the agent never runs where this client could want it
        if not cm.direct_channels(client.id, agent.id) and \
                not cm.bridging_setups(client.id, agent.id):
            lacking.append(agent.id)
    assert not lacking, f"{client.id} reaches {lacking} neither directly nor through a SETUPS row"


def test_known_answers() -> None:
    assert cm.direct_channels("putty", "pageant") == ["pageant-pipe", "pageant-window"]
    assert cm.direct_channels("putty", "1password") == []
    [row] = cm.bridging_setups("putty", "1password")
    assert "--listen pageant-window --to pipe:openssh-ssh-agent" in row.run
    assert cm.direct_channels("wsl2", "pageant") == []
    assert any("exec:python.exe -m sshlib agent relay" in s.run
               for s in cm.bridging_setups("wsl2", "pageant"))
    assert cm.direct_channels("wsl1", "keeagent") == ["winunix"]


def test_the_picture_renders_with_every_node() -> None:
    svg = docs.render_svg(cm.to_dot()).decode()
    m = re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    assert m and int(m[1]) > 400 and int(m[2]) > 300, svg[:300]
    titles = {html.unescape(t) for t in re.findall(r"<title>([^<]*)</title>", svg)}
    for c in cm.CLIENTS:
        assert f"client:{c.id}" in titles
    for a in cm.AGENTS:
        assert f"agent:{a.id}" in titles
    bridges = [s for s in cm.SETUPS if s.command]
    assert sum(1 for t in titles if t.startswith("bridge:") and "->" not in t) == len(bridges)
