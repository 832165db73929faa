#!/usr/bin/env bash
# `make install`: the virtualenv with the operator (editable) and its test tools.
#
#   VENV=.venv bash hack/venv.sh
#
# A fresh checkout's .venv is a link to a virtualenv kept outside it, in
# $MODELDEPLOY_CACHE/venv/KEY (default ~/.cache/modeldeploy): KEY hashes pyproject.toml, the
# Python version and the checkout's own path (the editable install points at it). A clean
# clone at the same place, as CI makes for every run, reuses it: the install costs ~3 min on
# a fresh machine and nothing after. A .venv that is a directory of its own (or any other
# VENV) is installed in place, again only when pyproject.toml changed since.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"

key() {
  { sha256sum pyproject.toml | cut -d' ' -f1
    "$PYTHON" -c 'import sys; print(sys.version)'
    pwd -P
  } | sha256sum | cut -c1-16
}

# install DIR: create the venv at DIR and install into it unless its stamp says it is current.
install() {
  local dir=$1 want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.installed" 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  echo "venv: installing the operator and its test tools into $dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q -e '.[test]'
  echo "$want" > "$dir/.installed"
}

if [[ "$VENV" == .venv && ( ! -e .venv || -L .venv ) ]]; then
  target="$CACHE/venv/$(key)"
  mkdir -p "$CACHE/venv"
  (
    flock 9
    install "$target"
  ) 9>"$target.lock"
  if [[ "$(readlink .venv 2>/dev/null)" != "$target" ]]; then
    ln -sfn "$target" .venv
    echo "venv: .venv -> $target"
  fi
else
  install "$VENV"
fi
