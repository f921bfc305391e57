#!/usr/bin/env bash
# Set up (if needed) and run Faultline on http://localhost:8501 with sources.yaml (default: the demo incident).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run app.py --server.headless=true --server.port="${PORT:-8501}" \
  --browser.gatherUsageStats=false "$@"
