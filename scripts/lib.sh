# Shared by scripts/test.sh and scripts/example.sh (sourced, not run).

run() { printf '+ %s\n' "$*"; "$@"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  # Never let a package start a system service (openssh-server would start an
  # sshd on port 22): policy-rc.d says "no" for the length of the install.
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  run apt-get update -q || rc=$?
  if [ "$rc" = 0 ]; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
      || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

# install_missing WHAT PACKAGE... : apt-get install the packages (as root), or say how.
install_missing() {
  local what="$1"; shift
  [ "$#" -gt 0 ] || return 0
  if is_root && command -v apt-get >/dev/null; then
    apt_install "$@" || die "apt-get install $* failed"
  else
    die "$what needs $*; install as root with:
    apt-get update && apt-get install -y --no-install-recommends $*"
  fi
}

# venv_install SPEC STAMP : make .venv if needed and pip install -e SPEC into it,
# again only when pyproject.toml changed (the install is editable, so code
# changes need nothing).
venv_install() {
  local spec="$1" stamp=".venv/$2" want
  command -v python3 >/dev/null || { is_root && apt_install python3 python3-venv; } \
    || die "python3 is missing: apt-get install -y python3 python3-venv"
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
    rm -rf .venv
    if ! run python3 -m venv .venv; then
      rm -rf .venv
      { is_root && apt_install python3-venv && run python3 -m venv .venv; } \
        || die "could not create .venv: apt-get install -y python3-venv"
    fi
  fi
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    run .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec" \
      || die "pip install -e '$spec' failed"
    echo "$want" > "$stamp"
  else
    echo "sshlib already installed in .venv (pyproject.toml unchanged)"
  fi
}

# find_python VERSION : the path of a python VERSION (e.g. 3.10): pyenv's, else on PATH.
find_python() {
  local want="$1" candidate
  for candidate in $(ls -d "$HOME"/.pyenv/versions/"$want".*/bin/python3 2>/dev/null | sort -V -r) \
                   "$(command -v "python$want" || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
       "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# venv_at DIR PYTHON SPEC : like venv_install, for another interpreter in DIR.
venv_at() {
  local dir="$1" python="$2" spec="$3" want
  if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$dir"
    run "$python" -m venv "$dir" || return 1
  fi
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $("$python" -V 2>&1)"
  if [ "$(cat "$dir/.sshlib-installed" 2>/dev/null)" != "$want" ]; then
    run "$dir/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" || return 1
    echo "$want" > "$dir/.sshlib-installed"
  fi
}
