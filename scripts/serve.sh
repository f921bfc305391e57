#!/usr/bin/env bash
# Run Faultline as N replicas behind Debian's nginx (sticky sessions, websockets) on one port.
#   scripts/serve.sh --replicas 3 [--port 8080] [--first-replica-port 8501] [--listen 0.0.0.0]
#                    [--tls-cert cert.pem --tls-key key.pem]   (HTTPS on --port, every cookie Secure)
# Every replica gets the same server.cookieSecret (generated once into .streamlit/cookie_secret, git-ignored),
# the same sources.yaml / secrets.toml (same working directory) and the same snapshot store: the directory
# ($FAULTLINE_SNAPSHOT_DIR, fine for replicas on one host) or $FAULTLINE_SNAPSHOT_STORE=postgresql://… (needed
# as soon as replicas run on several hosts). Replicas listen on 127.0.0.1 only; nginx is the way in.
# Ctrl-C (or SIGTERM) stops nginx and every replica. FAULTLINE_SKIP_SETUP=1 skips scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas=2 port=8080 first=8501 listen_addr=127.0.0.1 tls_cert="" tls_key=""
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) replicas=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --first-replica-port) first=$2; shift 2 ;;
    --listen) listen_addr=$2; shift 2 ;;
    --tls-cert) tls_cert=$(realpath "$2"); shift 2 ;;
    --tls-key) tls_key=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "serve: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$replicas" =~ ^[1-9][0-9]*$ ]] || { echo "serve: --replicas must be a positive number" >&2; exit 2; }
if [ -n "$tls_cert$tls_key" ]; then
  [ -r "$tls_cert" ] && [ -r "$tls_key" ] || { echo "serve: --tls-cert and --tls-key need two readable files" >&2; exit 2; }
fi

[ "${FAULTLINE_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh --nginx
NGINX=${NGINX:-/usr/sbin/nginx}
[ -x "$NGINX" ] || { echo "serve: nginx is not installed (scripts/setup.sh --nginx installs it)" >&2; exit 1; }

secret_file=${FAULTLINE_COOKIE_SECRET_FILE:-.streamlit/cookie_secret}
if [ ! -s "$secret_file" ]; then
  mkdir -p "$(dirname "$secret_file")"
  (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' > "$secret_file.tmp")
  mv -n "$secret_file.tmp" "$secret_file"; rm -f "$secret_file.tmp"
fi
# through the environment, not argv, so it does not show in `ps`
STREAMLIT_SERVER_COOKIE_SECRET=$(cat "$secret_file")
export STREAMLIT_SERVER_COOKIE_SECRET

run_dir=${FAULTLINE_RUN_DIR:-$(mktemp -d -t faultline-serve.XXXXXX)}
mkdir -p "$run_dir/tmp/body" "$run_dir/tmp/proxy" "$run_dir/tmp/fastcgi" "$run_dir/tmp/uwsgi" "$run_dir/tmp/scgi"
user_directive=""
if [ "$(id -u)" = 0 ]; then  # nginx's workers drop root; they must still write their temp files
  user_directive="user www-data;"
  chown -R www-data "$run_dir/tmp"
fi

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

servers=""
for ((i = 0; i < replicas; i++)); do
  p=$((first + i))
  .venv/bin/python -m streamlit run app.py --server.headless=true --server.address=127.0.0.1 --server.port="$p" \
    --server.fileWatcherType=none --browser.gatherUsageStats=false --server.enableXsrfProtection=true \
    >"$run_dir/replica-$p.log" 2>&1 &
  pids+=($!)
  echo $! > "$run_dir/replica-$p.pid"
  servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=10s;"$'\n'
done

body_mb=$(.venv/bin/python -c 'from snapshots.archive import ImportLimits; print(ImportLimits().max_file_bytes // 2**20 + 8)' \
          2>/dev/null || echo 256)
listen="$listen_addr:$port" tls="" cookie_secure="" scheme=http
if [ -n "$tls_cert" ]; then
  listen+=" ssl" cookie_secure="; Secure" scheme=https
  tls="        ssl_certificate $tls_cert;"$'\n'"        ssl_certificate_key $tls_key;"$'\n'
  tls+="        ssl_protocols TLSv1.2 TLSv1.3;"$'\n'
  tls+="        proxy_cookie_flags ~ secure;  # Streamlit's cookies too: it sees plain HTTP from nginx"$'\n'
fi
sed -e "s#@USER_DIRECTIVE@#$user_directive#" -e "s#@RUN_DIR@#$run_dir#g" -e "s#@LISTEN@#$listen#" \
    -e "s#@MAX_BODY_MB@#$body_mb#" -e "s#@COOKIE_SECURE@#$cookie_secure#" deploy/nginx.conf.template \
  | awk -v servers="$servers" -v tls="$tls" '{ if ($0 == "@UPSTREAM_SERVERS@") printf "%s", servers;
                                               else if ($0 == "@TLS@") printf "%s", tls; else print }' \
  > "$run_dir/nginx.conf"

for ((i = 0; i < replicas; i++)); do
  p=$((first + i)) deadline=$((SECONDS + 90))
  until [ "$(curl -fsS "http://127.0.0.1:$p/_stcore/health" 2>/dev/null)" = ok ]; do
    if [ $SECONDS -gt $deadline ]; then echo "serve: replica on $p did not start; see $run_dir/replica-$p.log" >&2; exit 1; fi
    sleep 0.3
  done
done
"$NGINX" -t -q -p "$run_dir" -c "$run_dir/nginx.conf"
"$NGINX" -p "$run_dir" -c "$run_dir/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
store="directory ${FAULTLINE_SNAPSHOT_DIR:-./snapshots-data}"
[ -z "${FAULTLINE_SNAPSHOT_STORE:-}" ] || store="FAULTLINE_SNAPSHOT_STORE (not printed: it may hold a password)"
echo "serve: $replicas replica(s) on 127.0.0.1:$first-$((first + replicas - 1)) behind nginx on $scheme://$listen_addr:$port"
echo "serve: snapshot store: $store; logs in $run_dir"
# A replica that dies is routed around by nginx (that is the point); only nginx exiting ends the service.
wait "$nginx_pid" || true
echo "serve: nginx exited; stopping the replicas" >&2
