#!/usr/bin/env bash
# Set up everything the tests need (venv, test tools, Chromium, Prometheus, PostgreSQL, pgbouncer) and run
# the whole suite. The services are started by the test fixtures themselves on free 127.0.0.1 ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
mkdir -p test-artifacts
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
exit $rc
