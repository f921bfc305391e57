#!/usr/bin/env bash
# Set up everything the tests need (venv, test tools, Chromium, Prometheus, PostgreSQL, pgbouncer), check lint
# and types, and run the whole suite. The services are started by the test fixtures themselves on free
# 127.0.0.1 ports. Exit status: pytest's, or 1 when ruff or mypy failed (pytest still runs, so one run shows all).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
mkdir -p test-artifacts
set +e
checks=0
echo "test: ruff check ."
.venv/bin/ruff check . || checks=1
echo "test: mypy"
.venv/bin/mypy || checks=1
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 0 ] && [ $checks -ne 0 ]; then
  echo "test: pytest passed, but ruff or mypy failed (see above)" >&2
  rc=1
fi
exit $rc
