#!/usr/bin/env bash
# Serve the web UI on http://127.0.0.1:9874 (extra arguments go to webui.py, e.g. --lang zh_CN).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
exec .venv/bin/python webui.py "$@"
