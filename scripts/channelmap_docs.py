"""The agent channel map for the docs: the SVG picture and the setup table in docs/agent.md.

    python scripts/channelmap_docs.py            # check docs/agent.md's table (exit 1 if stale)
    python scripts/channelmap_docs.py --write    # rewrite the table from sshlib/agent/channelmap.py
    python scripts/channelmap_docs.py --svg OUT  # draw the picture with Graphviz's dot

Used by the MkDocs hook (scripts/docs_hooks.py) and tests/test_channelmap.py.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sshlib.agent import channelmap  # noqa: E402

AGENT_MD = ROOT / "docs" / "agent.md"
_BLOCK = re.compile(r"(<!-- channelmap:setups[^\n]*-->\n\n)(.*?)(\n<!-- /channelmap:setups -->)",
                    re.DOTALL)


def table_in_docs(text: str) -> str:
    m = _BLOCK.search(text)
    if m is None:
        raise ValueError("docs/agent.md has no <!-- channelmap:setups --> block")
    return m[2]


def table_problem() -> str | None:
    """None when docs/agent.md shows what channelmap.setup_table() makes, else what to do."""
    if table_in_docs(AGENT_MD.read_text(encoding="utf-8")) != channelmap.setup_table():
        return ("docs/agent.md: the setup table differs from sshlib/agent/channelmap.py SETUPS; "
                "edit SETUPS, then run python scripts/channelmap_docs.py --write")
    return None


def write_docs() -> None:
    text = AGENT_MD.read_text(encoding="utf-8")
    table_in_docs(text)
    text = _BLOCK.sub(lambda m: m[1] + channelmap.setup_table() + m[3], text)
    AGENT_MD.write_text(text, encoding="utf-8")


def render_svg(dot_source: str, timeout: float = 60.0) -> bytes:
    """Runs Graphviz's `dot -Tsvg`; RuntimeError saying what to install when it is missing."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("Graphviz's dot is missing: apt-get install graphviz")
    proc = subprocess.run([dot, "-Tsvg"], input=dot_source.encode(), capture_output=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--svg", metavar="OUT")
    args = ap.parse_args(argv)
    if args.svg:
        Path(args.svg).write_bytes(render_svg(channelmap.to_dot()))
        return 0
    if args.write:
        write_docs()
        return 0
    problem = table_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
