#!/usr/bin/env bash
# Sets up and runs every check: lint, types, import layers, and the test suite
# on SQLite and on a real PostgreSQL server that the tests start themselves.
#
# The tests run on several pytest-xdist workers (ATALAYA_TEST_WORKERS, default
# 4, "0" for one process): most of the long tests wait on PostgreSQL, real
# peers or Chromium rather than compute, so even two cores keep four busy.
# Arguments go to pytest after these options, e.g. `scripts/test.sh tests/leads`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check src tests bench; ruff format --check src tests bench
echo "== mypy"; mypy
echo "== import layers"; lint-imports
echo "== pytest"
# Tests go out one or two at a time, in the order collected: the workers take the
# long ones (marked lab, web or slow; see tests/conftest.py) first and share them out.
pytest -n "${ATALAYA_TEST_WORKERS:-4}" --dist load --maxschedchunk 1 --durations=25 "$@"
