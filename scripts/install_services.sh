#!/usr/bin/env bash
# Install the real backends the service tests start (Prometheus + promtool, pgbouncer, PostgreSQL 15) when missing.
# Idempotent: installs nothing when every binary is present. Debian/Ubuntu (apt). The tests run their own private
# instances on free 127.0.0.1 ports, so the distribution's own services are stopped and disabled when we install them.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || [[ " ${need[*]-} " == *" prometheus "* ]] || need+=(prometheus)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
[ -x "/usr/lib/postgresql/${PG_MAJOR}/bin/initdb" ] || need+=("postgresql-${PG_MAJOR}")

if [ ${#need[@]} -eq 0 ]; then
  echo "install_services: prometheus, promtool, pgbouncer and postgresql-${PG_MAJOR} already present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_services: need root or sudo to install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install_services: installing ${need[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"

# Package postinst scripts may start system-wide daemons; the tests never use them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  for unit in prometheus pgbouncer postgresql; do
    $SUDO systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
id postgres >/dev/null 2>&1 || echo "install_services: warning: no 'postgres' user; PostgreSQL tests run as root will skip" >&2
echo "install_services: ok"
