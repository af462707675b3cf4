"""The documentation site: built in strict mode, served on 127.0.0.1, read by headless Chromium.

Needs the `docs` extra (mkdocs, mkdocs-material, mkdocstrings), Graphviz's `dot` and Debian's
`chromium`; scripts/test.sh installs all three. About 15 s: two builds and one browser.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from browser import Browser
from docstools import load_script

from sshlib.agent import channelmap

ROOT = Path(__file__).resolve().parent.parent

# The name the search box must find. Switch to "forward_local" once issue 10 (port forwarding)
# is merged and Client.forward_local has a docstring.
SEARCH_NAME = "forward_local"
SEARCH_ANCHOR = "#sshlib.sync.forward.ClientForwarding.forward_local"


def build_site(out: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-f", str(config), "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = build_site(out)
    assert done.returncode == 0, f"the docs build failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(timeout=30) as b:
        yield b


def _poll(js_condition: str, timeout_ms: int = 15000) -> str:
    """JS: a promise for the value of `js_condition` once truthy (or null after the time)."""
    return (f"new Promise(done => {{ const t0 = Date.now(); const f = () => {{ "
            f"const v = ({js_condition}); if (v || Date.now() - t0 > {timeout_ms}) done(v || null);"
            f" else setTimeout(f, 50); }}; f(); }})")


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with open(docs / "usage.md", "a") as fh:
        fh.write("\nSee [the missing page](missing.md).\n")
    # The project's settings (strict, validation, theme, extensions), without the API pages:
    # this checks the link validation, not the reference, and takes a second, not ten.
    settings = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert settings["strict"] is True
    settings.update(docs_dir=str(docs), plugins=["search"])
    del settings["hooks"]
    # Without the hook, pages missing from nav (it appends them) would warn as well.
    settings["validation"]["omitted_files"] = "info"
    settings["nav"] = [e for e in settings["nav"] if "api/" not in str(e)]
    (docs / "index.md").write_text((docs / "index.md").read_text().replace(
        "[API reference](api/index.md)", "API reference"))
    agent_md = (docs / "agent.md").read_text()
    (docs / "agent.md").write_text(re.sub(r"!\[[^]]*\]\(agent-channels.svg\)", "", agent_md))
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(settings))
    done = build_site(tmp_path / "out", config)
    assert done.returncode != 0
    warnings = [ln for ln in (done.stdout + done.stderr).splitlines() if "WARNING" in ln]
    assert len(warnings) == 1 and "missing.md" in warnings[0], warnings


def test_landing_page(browser: Browser, base_url: str) -> None:
    browser.open(base_url)
    page = browser.evaluate("""({title: document.title,
        h1: document.querySelector('article h1').textContent,
        nav: [...document.querySelectorAll('nav.md-nav--primary a')].map(a => a.textContent.trim()),
        code: document.querySelectorAll('article pre code').length})""")
    assert page["title"].startswith("sshlib"), page
    assert page["h1"].strip().startswith("sshlib")
    for entry in ("Using sshlib", "SSH agents", "API reference", "sshlib.agent"):
        assert entry in page["nav"], page["nav"]
    assert page["code"] >= 1
    assert browser.console_errors() == []


def test_agent_page_shows_the_channel_map(browser: Browser, base_url: str, site: Path) -> None:
    svg = (site / "agent-channels.svg").read_text()
    m = re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    assert m, svg[:300]
    want_w, want_h = round(int(m[1]) * 4 / 3), round(int(m[2]) * 4 / 3)  # pt -> CSS px
    assert want_w > 600 and want_h > 400
    browser.open(base_url + "agent/")
    img = browser.evaluate(_poll("""(() => {
        const i = document.querySelector('img[src$="agent-channels.svg"]');
        return i && i.complete && i.naturalWidth ? {w: i.naturalWidth, h: i.naturalHeight,
            shown: i.getBoundingClientRect().width} : null; })()"""))
    assert img, "the channel map image did not load"
    assert abs(img["w"] - want_w) <= 1 and abs(img["h"] - want_h) <= 1, (img, want_w, want_h)
    assert img["shown"] > 300, img
    rows = browser.evaluate("""[...document.querySelectorAll('table')].filter(t =>
        t.querySelector('th') && t.querySelector('th').textContent === 'You are in')
        .map(t => t.querySelectorAll('tbody tr').length)""")
    assert rows == [len(channelmap.SETUPS)], rows


def test_api_reference_page_for_dial(browser: Browser, base_url: str) -> None:
    apinames = load_script("apinames")
    index = apinames.build_index()
    [dial] = [n for n in index.pages["sshlib"] if n.path == "sshlib.dial"]
    first_line = dial.obj.docstring.value.splitlines()[0]
    browser.open(base_url + "api/sshlib/#sshlib.dial")
    found = browser.evaluate("""(() => {
        const h = document.getElementById('sshlib.dial');
        if (!h) return null;
        const doc = h.closest('.doc-object') || h.parentElement;
        return {heading: h.textContent, text: doc.textContent}; })()""")
    assert found, "no element with id sshlib.dial on api/sshlib/"
    assert "dial" in found["heading"]
    assert "network" in found["text"] and "config" in found["text"]  # the signature
    assert first_line.split('"')[0].strip() in found["text"]


def test_search_box_finds_a_public_name(browser: Browser, base_url: str) -> None:
    browser.open(base_url + f"?q={SEARCH_NAME}")
    hrefs = browser.evaluate(_poll("""(() => { const a = [...document.querySelectorAll(
        '.md-search-result__item a')].map(a => a.href); return a.length ? a : null; })()"""))
    assert hrefs, f"the search box returned nothing for {SEARCH_NAME}"
    assert any(h.endswith(SEARCH_ANCHOR) for h in hrefs), hrefs


def test_search_index_holds_every_documented_public_name(site: Path) -> None:
    apinames = load_script("apinames")
    docs = json.loads((site / "search" / "search_index.json").read_text())["docs"]
    anchors = {d["location"].rsplit("#", 1)[-1] for d in docs if "#" in d["location"]}
    names = [n.path for n in apinames.build_index().all_names()]
    missing = [n for n in names if n not in anchors]
    assert not missing, f"not in the search index: {missing[:20]}"
    # The issue's example: once port forwarding exists, its name is searchable.
    for name in names:
        if name.endswith(".forward_local"):
            assert name in anchors
