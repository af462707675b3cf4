"""The public names of sshlib, where the API reference shows each, and the docstring ratchet.

Read by the MkDocs hook (scripts/docs_hooks.py) to generate one reference page per public
module, and by tests/test_docs_site.py. Run it by hand:

    python scripts/apinames.py            # check: exit 1 on a new undocumented name
    python scripts/apinames.py --list     # every public name, with the page it is on
    python scripts/apinames.py --shrink   # drop the names that now have a docstring
    python scripts/apinames.py --write    # rewrite scripts/undocumented.txt (after a merge)

What counts as public:
- a module is public when no part of its dotted path starts with "_" (sshlib.__main__ is not);
- its names are its `__all__`, or, without one, the names it defines that do not start with "_";
- a name re-exported from another module is one object: the reference shows it once, under
  its shortest public path (`sshlib.dial`, not `sshlib.sync.client.dial`);
- functions and classes need a docstring; constants and type aliases are shown with their value
  and described by their module's docstring (they cannot carry one at run time);
- a public class's public methods and properties count too; one that overrides a documented
  method of an sshlib base class inherits that docstring (as `inspect.getdoc` does).

The ratchet: scripts/undocumented.txt lists the public names that still lack a docstring. The
check fails for an undocumented name missing from it, and for a listed name that now has a
docstring or no longer exists, so the list can only shrink.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
RATCHET = ROOT / "scripts" / "undocumented.txt"
PACKAGE = "sshlib"


@dataclass
class PublicName:
    path: str  # the shortest public dotted path
    obj: griffe.Object
    documented: bool
    needs_doc: bool = True  # constants and type aliases: their module's docstring covers them
    members: list[PublicName] = field(default_factory=list)


@dataclass
class ApiIndex:
    # module path -> the names its reference page shows (in __all__ order)
    pages: dict[str, list[PublicName]]

    def all_names(self) -> Iterator[PublicName]:
        for names in self.pages.values():
            for n in names:
                yield n
                yield from n.members

    def undocumented(self) -> list[str]:
        return sorted(n.path for n in self.all_names() if n.needs_doc and not n.documented)


def load_package() -> griffe.Module:
    pkg = griffe.load(PACKAGE, search_paths=[str(ROOT)], resolve_aliases=True,
                      resolve_external=False)
    assert isinstance(pkg, griffe.Module)
    return pkg


def _is_public_module(mod: griffe.Module) -> bool:
    return not any(part.startswith("_") for part in mod.path.split("."))


def public_modules(pkg: griffe.Module) -> list[griffe.Module]:
    out: list[griffe.Module] = []

    def walk(mod: griffe.Module) -> None:
        if not _is_public_module(mod):
            return
        out.append(mod)
        for name in sorted(mod.modules):
            sub = mod.modules[name]
            if isinstance(sub, griffe.Module):
                walk(sub)

    walk(pkg)
    return out


def _exports(mod: griffe.Module) -> list[str]:
    if mod.exports is not None:
        return [e if isinstance(e, str) else e.name for e in mod.exports]
    return [n for n, m in mod.members.items() if not n.startswith("_") and not m.is_alias]


def _target(obj: griffe.Object | griffe.Alias) -> griffe.Object | None:
    try:
        while isinstance(obj, griffe.Alias):
            obj = obj.final_target
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if not obj.path.startswith(PACKAGE + ".") and obj.path != PACKAGE:
        return None  # re-exported from outside sshlib (typing, stdlib...)
    return obj


def _inherited_doc(cls: griffe.Class, name: str) -> bool:
    try:
        bases = cls.mro()
    except Exception:  # unresolvable base: no inherited docstring
        return False
    for base in bases:
        m = base.members.get(name)
        if m is not None and not m.is_alias and m.docstring and m.docstring.value.strip():
            return True
    return False


def _documented(obj: griffe.Object) -> bool:
    return bool(obj.docstring and obj.docstring.value.strip())


def _class_members(path: str, cls: griffe.Class) -> list[PublicName]:
    out = []
    for name, m in cls.members.items():
        if name.startswith("_") or m.is_alias:
            continue
        if not (m.is_function or "property" in m.labels):
            continue  # fields and constants are described by the class docstring
        doc = _documented(m) or _inherited_doc(cls, name)
        out.append(PublicName(f"{path}.{name}", m, doc))
    return out


def build_index(pkg: griffe.Module | None = None) -> ApiIndex:
    pkg = pkg or load_package()
    mods = public_modules(pkg)
    # every (public path, module path, target) reachable from a public module
    seen: dict[str, tuple[str, str, griffe.Object]] = {}  # target path -> best (path, mod)
    order: list[tuple[str, str]] = []
    for mod in mods:
        for name in _exports(mod):
            member = mod.members.get(name)
            if member is None:
                continue
            obj = _target(member)
            if obj is None or obj.is_module:
                continue
            path = f"{mod.path}.{name}"
            order.append((mod.path, path))
            best = seen.get(obj.path)
            if best is None or (path.count("."), path) < (best[0].count("."), best[0]):
                seen[obj.path] = (path, mod.path, obj)
    chosen = {path: obj for path, _mod, obj in seen.values()}
    pages: dict[str, list[PublicName]] = {}
    for mod_path, path in order:
        obj = chosen.pop(path, None)
        if obj is None:
            continue
        pn = PublicName(path, obj, _documented(obj), needs_doc=not obj.is_attribute)
        if isinstance(obj, griffe.Class):
            pn.members = _class_members(path, obj)
        pages.setdefault(mod_path, []).append(pn)
    return ApiIndex(pages)


def read_ratchet(path: Path = RATCHET) -> set[str]:
    if not path.exists():
        return set()
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return {ln for ln in lines if ln and not ln.startswith("#")}


RATCHET_HEADER = """\
# Public names of sshlib that still lack a docstring (see scripts/apinames.py).
# This list may only shrink: the docs build and tests/test_docs_site.py fail for an
# undocumented public name not listed here, and for a listed name that now has a
# docstring or no longer exists (delete its line).
"""


def check(index: ApiIndex, ratchet: set[str] | None = None) -> list[str]:
    """Problems as sentences; empty when the ratchet holds."""
    ratchet = read_ratchet() if ratchet is None else ratchet
    missing = set(index.undocumented())
    every = {n.path for n in index.all_names()}
    problems = [f"{p}: public name without a docstring (write one)" for p in
                sorted(missing - ratchet)]
    for p in sorted(ratchet - missing):
        why = "now has a docstring" if p in every else "is no longer a public name"
        problems.append(f"{p}: {why}; delete its line from scripts/undocumented.txt")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every public name and its page")
    ap.add_argument("--write", action="store_true",
                    help="rewrite scripts/undocumented.txt from the code (after merging)")
    ap.add_argument("--shrink", action="store_true",
                    help="delete the names that now have a docstring or are gone from the list")
    args = ap.parse_args(argv)
    index = build_index()
    if args.list:
        for page, names in index.pages.items():
            for n in names:
                ok = n.documented or not n.needs_doc
                print(f"{page}\t{n.path}\t{'ok' if ok else 'MISSING'}")
                for m in n.members:
                    print(f"{page}\t{m.path}\t{'ok' if m.documented else 'MISSING'}")
        return 0
    if args.write or args.shrink:
        names = set(index.undocumented())
        if args.shrink:
            names &= read_ratchet()
        RATCHET.write_text(RATCHET_HEADER + "".join(p + "\n" for p in sorted(names)))
        print(f"{RATCHET.relative_to(ROOT)}: {len(names)} names")
        return 0
    problems = check(index)
    for p in problems:
        print(p, file=sys.stderr)
    total = sum(1 for n in index.all_names() if n.needs_doc)
    print(f"{total} public names, {len(index.undocumented())} without a docstring, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
