#!/usr/bin/env bash
# Builds the documentation site from docs/ into site/ (git-ignored), in strict mode:
# a broken link or anchor, a missing reference or a new undocumented public name fails.
# bash scripts/docs.sh [mkdocs build arguments...]; open site/index.html afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
venv_install '.[test,docs]' .sshlib-installed
command -v dot >/dev/null || install_missing "the docs (agent channel map)" graphviz
export NO_MKDOCS_2_WARNING=1
exec .venv/bin/mkdocs build --strict "$@"
