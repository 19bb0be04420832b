#!/usr/bin/env bash
# Run ruff and the whole test suite, browser tests included (extra arguments go to pytest).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo_root/scripts/setup_env.sh" --with-browser
cd "$repo_root"
# Lint and format are part of the suite: a style error fails the run like a failing test.
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
exec .venv/bin/python -m pytest "$@"
