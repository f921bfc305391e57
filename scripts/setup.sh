#!/usr/bin/env bash
# Set up Faultline on a fresh Debian machine: system packages (when asked), a venv, pinned requirements.
#   scripts/setup.sh          product only (enough to run the app on the demo incident)
#   scripts/setup.sh --dev    plus test tools, Chromium, Prometheus, PostgreSQL, pgbouncer, nginx, openssl, Node.js
#                             (npm ci in tests/oidc: the OpenID provider the sign-in tests sign in against)
#   scripts/setup.sh --nginx  product plus nginx (what scripts/serve.sh --replicas N needs)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

if [ "${1:-}" = "--dev" ]; then
  need=()
  for pkg_bin in chromium:/usr/bin/chromium prometheus:/usr/bin/prometheus pgbouncer:/usr/sbin/pgbouncer \
                 postgresql:/usr/lib/postgresql nginx:/usr/sbin/nginx openssl:/usr/bin/openssl; do
    [ -e "${pkg_bin#*:}" ] || need+=("${pkg_bin%%:*}")
  done
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
elif [ "${1:-}" = "--nginx" ]; then
  need=()
  [ -e /usr/sbin/nginx ] || need+=(nginx)
fi
if [ "${1:-}" = "--dev" ] || [ "${1:-}" = "--nginx" ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${need[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
    # Debian starts its own nginx/postgresql/pgbouncer services; serve.sh and the tests run private instances.
    if [[ " ${need[*]} " == *" nginx "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
if [ "${1:-}" = "--dev" ]; then
  # the pinned oidc-provider, exactly as package-lock.json says (node_modules/ is git-ignored)
  (cd tests/oidc && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi
echo "setup: ok ($req)"
