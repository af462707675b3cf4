"""MkDocs hook: the API reference pages, generated from the package's public names.

Every public module with names of its own gets a page `api/<module>.md` that renders those
names with mkdocstrings (in `__all__` order), and lists the names it re-exports with links to
the page that shows them. A module added by a later change appears once it exports names. The
build fails (mkdocs --strict or not) when a public name has no docstring and is not on the
ratchet list scripts/undocumented.txt; see scripts/apinames.py. Pages in docs/ that the
nav in mkdocs.yml does not list are added to it (see docs/documentation.md).

It also draws the agent channel map (agent-channels.svg, from sshlib/agent/channelmap.py,
with Graphviz's dot) and fails the build when docs/agent.md's setup table is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import apinames
import channelmap_docs

_pages: dict[str, str] = {}


def _page(module: str, names: list[apinames.PublicName], also: list[tuple[str, str]],
          summary: str) -> str:
    lines = [f"# `{module}`", ""]
    if summary:
        lines += [summary, ""]
    lines += [f"::: {module}", "    options:", "      show_root_heading: false",
              "      show_root_toc_entry: false"]
    if names:
        lines.append("      members:")
        lines += [f"        - {n.path.rsplit('.', 1)[1]}" for n in names]
    else:
        lines.append("      members: false")
    if also:
        lines += ["", "## Also importable from here", ""]
        lines += [f"- `{module}.{short}`: [`{path}`][{path}]" for short, path in also]
    return "\n".join(lines) + "\n"


def on_config(config: MkDocsConfig, **kwargs: Any) -> MkDocsConfig:
    pkg = apinames.load_package()
    index = apinames.build_index(pkg)
    problems = apinames.check(index)
    stale = channelmap_docs.table_problem()
    if stale:
        raise PluginError(stale)
    if problems:
        raise PluginError("undocumented public names (scripts/apinames.py):\n  "
                          + "\n  ".join(problems))
    shown = {n.obj.path: n.path for n in index.all_names()}
    _pages.clear()
    for mod in apinames.public_modules(pkg):
        also = []
        for name in apinames._exports(mod):
            member = mod.members.get(name)
            target = apinames._target(member) if member is not None else None
            if target is None or target.is_module:
                continue
            where = shown.get(target.path)
            if where and where != f"{mod.path}.{name}":
                also.append((name, where))
        names = index.pages.get(mod.path, [])
        if not names and not also:
            continue
        _pages[mod.path] = _page(mod.path, names, also, "")
    overview = ["# API reference", "",
                "Generated from the docstrings. Each object is shown once, under its shortest",
                "public import path; the other modules that re-export it link there.", ""]
    overview += [f"- [`{m}`]({m}.md)" for m in _pages]
    _pages["index"] = "\n".join(overview) + "\n"
    # Grouped by subpackage: sshlib and its plain modules first, then sshlib.agent.*, ...
    groups: dict[str, list[Any]] = {}
    for m in _pages:
        if m == "index":
            continue
        parts = m.split(".")
        is_package = any(p.startswith(m + ".") for p in _pages)
        group = m if len(parts) == 2 and is_package else ".".join(parts[:2])
        if len(parts) <= 2 and not is_package:
            group = "sshlib"
        groups.setdefault(group, []).append({m: f"api/{m}.md"})
    nav = config.nav or []
    nav += _unlisted_pages(Path(config.docs_dir), nav)
    nav.append({"API reference": ["api/index.md"]
                + [{g: entries} for g, entries in groups.items()]})
    config.nav = nav
    return config


def _nav_paths(entry: Any) -> Iterator[str]:
    if isinstance(entry, str):
        yield entry
    elif isinstance(entry, dict):
        for value in entry.values():
            yield from _nav_paths(value)
    elif isinstance(entry, list):
        for value in entry:
            yield from _nav_paths(value)


def _unlisted_pages(docs_dir: Path, nav: list[Any]) -> list[dict[str, str]]:
    """Pages in docs/ that the nav in mkdocs.yml does not name, titled by their first heading.

    Other changes add pages (a new feature's guide) without touching mkdocs.yml; they show
    up at the end of the navigation instead of failing the strict build as omitted files.
    """
    listed = set(_nav_paths(nav))
    extra = []
    for md in sorted(docs_dir.rglob("*.md")):
        rel = md.relative_to(docs_dir).as_posix()
        if rel in listed:
            continue
        title = md.stem
        for line in md.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                title = line[2:].strip().strip("`")
                break
        extra.append({title: rel})
    return extra


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    for name, text in _pages.items():
        files.append(File.generated(config, f"api/{name}.md", content=text))
    try:
        svg = channelmap_docs.render_svg(channelmap_docs.channelmap.to_dot())
    except RuntimeError as exc:
        raise PluginError(f"the agent channel map: {exc}") from None
    files.append(File.generated(config, "agent-channels.svg", content=svg))
    return files
