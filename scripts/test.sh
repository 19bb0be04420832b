#!/usr/bin/env bash
# Run the whole test suite, browser tests included (extra arguments go to pytest).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo_root/scripts/setup_env.sh" --with-browser
cd "$repo_root"
exec .venv/bin/python -m pytest "$@"
