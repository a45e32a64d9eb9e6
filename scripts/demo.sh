#!/usr/bin/env bash
# Sets up Atalaya and runs the demo: a lab of real peers on loopback, its
# reference hash set imported, watched, and what was found shown.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m atalaya.demo "$@"
