"""`sshlib agent doctor --format dot|svg`: the doctor's findings as a picture.

One node for this machine (platform, WSL), one per endpoint the doctor looked at (green:
an agent answered, with its key count; grey: why not), and under each usable one the
line to use it. `render_dot()` is plain string building; `render_svg()` runs Graphviz's
`dot` (apt-get install graphviz), which is the only outside program the CLI needs for it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from .doctor import Finding, Report, render_json, render_table

__all__ = ["FORMATS", "render_dot", "render_svg", "render_report"]

_MAX_KEYS_SHOWN = 5


def _q(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l")
    return f'"{escaped}\\l"'


def _status(f: Finding) -> str:
    if f.reachable:
        count = len(f.keys)
        return f"ok, {count} key{'s' if count != 1 else ''} ({f.kind})"
    return f"not usable: {f.reason} ({f.kind})"


def render_dot(report: Report) -> str:
    """Graphviz source of the report; every string from the machine is quoted for dot."""
    machine = f"this machine: {report.platform}"
    if report.wsl.version:
        machine += f", WSL{report.wsl.version} {report.wsl.distro}".rstrip()
    usable = sum(1 for f in report.findings if f.reachable)
    machine += f"\n{usable} usable agent{'s' if usable != 1 else ''} found"
    out = ["digraph agent_doctor {",
           '  graph [rankdir=LR, fontname="Helvetica", bgcolor="transparent"];',
           '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled"];',
           '  edge [color="#666666", arrowsize=0.6, fontname="Helvetica", fontsize=9];',
           f'  machine [label={_q(machine)}, fillcolor="#dbe9ff"];']
    for i, f in enumerate(report.findings):
        lines = [f.endpoint, f"found via {f.found_via}", _status(f)]
        for key in f.keys[:_MAX_KEYS_SHOWN]:
            lines.append(f"  {key['type']} {key['fingerprint']} {key['comment']}")
        if len(f.keys) > _MAX_KEYS_SHOWN:
            lines.append(f"  ... {len(f.keys) - _MAX_KEYS_SHOWN} more")
        color = "#dff5df" if f.reachable else "#eeeeee"
        font = "#000000" if f.reachable else "#666666"
        out.append(f'  ep{i} [label={_q(chr(10).join(lines))}, fillcolor="{color}", '
                   f'fontcolor="{font}"];')
        style = "solid" if f.reachable else "dashed"
        out.append(f'  machine -> ep{i} [style={style}, label={_q("probed")}];')
        if f.use:
            out.append(f'  use{i} [label={_q(chr(10).join(f.use))}, shape=note, '
                       'fillcolor="#fff3c4", fontname="Courier"];')
            out.append(f'  ep{i} -> use{i} [label={_q("use")}];')
    if report.notes:
        out.append(f'  notes [label={_q(chr(10).join(report.notes))}, shape=note, '
                   'fillcolor="#ffffff"];')
        out.append("  machine -> notes [style=dotted, arrowhead=none];")
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(report: Report, timeout: float = 60.0) -> str:
    """The picture as SVG, drawn by Graphviz's `dot`.

    Raises `UsageError` (exit status 2, one line) when `dot` is not installed or fails,
    and `subprocess.TimeoutExpired` never: a `dot` that runs past `timeout` is killed
    and reported the same way.
    """
    from .agent import UsageError

    dot = shutil.which("dot")
    if dot is None:
        raise UsageError("--format svg needs Graphviz's dot (apt-get install graphviz); "
                         "--format dot prints its input")
    try:
        proc = subprocess.run([dot, "-Tsvg"], input=render_dot(report).encode(),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UsageError(f"dot did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        raise UsageError(f"dot failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8")


FORMATS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "json": render_json,
    "dot": render_dot,
    "svg": render_svg,
}


def render_report(report: Report, fmt: str) -> str:
    """The report in one of `FORMATS` (the `--format` choices)."""
    return FORMATS[fmt](report)
