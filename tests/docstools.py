"""Loads the docs build's helper scripts (scripts/*.py are not a package) for the docs tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str) -> ModuleType:
    """scripts/NAME.py as module NAME (once; later calls return the same module)."""
    if name in sys.modules:
        return sys.modules[name]
    for needed in ("griffe", "mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(needed.split(".")[0]) is None:
            raise RuntimeError(f"the docs tests need the docs extra ({needed} is missing): "
                               "pip install -e '.[test,docs]' (scripts/test.sh does)")
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
