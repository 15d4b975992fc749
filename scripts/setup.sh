#!/usr/bin/env bash
# Install basisbot into ./.venv with Python 3.12 (the version pinned in .python-version) using uv.
# Override the interpreter with BASISBOT_PYTHON=/path/to/python3.12.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${BASISBOT_PYTHON:-}"
if [ -z "$py" ] && command -v pyenv >/dev/null 2>&1; then
  py="$(pyenv which python 2>/dev/null || true)"          # honours .python-version
fi
if [ -z "$py" ]; then
  for cand in python3.12 python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      py="$(command -v "$cand")"; break
    fi
  done
fi
if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
  echo "setup: Python 3.12 not found (pyenv with .python-version, python3.12 on PATH, or BASISBOT_PYTHON)" >&2
  exit 2
fi

if ! "$py" -m uv --version >/dev/null 2>&1; then
  "$py" -m pip install -q --disable-pip-version-check --root-user-action=ignore uv
fi
"$py" -m uv venv -q --allow-existing --python "$py" .venv
# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on these machines) Python never caches
# it, and every process (each live node, each sweep worker, each test subprocess) would compile ccxt, nautilus and
# pandas from source again: 15 s to import the live node instead of 2.5 s.
"$py" -m uv pip install -q --compile-bytecode --python .venv/bin/python -e ".[test]"
.venv/bin/python -m compileall -q src strategies >/dev/null  # the project's own (editable) source
echo "setup: installed into .venv ($(.venv/bin/python --version))"
