#!/usr/bin/env bash
# Sets up and runs every check: lint, types, import layers, and the test suite
# on SQLite and on a real PostgreSQL server that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench; ruff format --check src tests bench
echo "== mypy"; mypy
echo "== import layers"; lint-imports
echo "== pytest"; pytest "$@"
