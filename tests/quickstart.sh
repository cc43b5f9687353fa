#!/usr/bin/env bash
# Runs the README's first command (scripts/run.sh) on a free port with a database of
# its own, then the curl it prints, and expects the development region back.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
ensure_postgres

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
db="webserver_quickstart_$$"
out="$(mktemp)"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql_admin -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -f "$out"
}
trap cleanup EXIT

env -u DATABASE_URL BIND_ADDR="127.0.0.1:$port" DB_NAME="$db" \
  LOCAL_DATA_DIR="$(mktemp -d)" bash scripts/run.sh >"$out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$out"; echo "quickstart: scripts/run.sh exited" >&2; exit 1; }
  sleep 0.5
done
try="$(grep -E '^ +curl ' "$out" | head -n 1)"
[ -n "$try" ] || { cat "$out"; echo "quickstart: no curl printed" >&2; exit 1; }
answer="$(bash -c "$try")"
if [ "$answer" != '["us-east-1"]' ]; then
  cat "$out"
  echo "quickstart: the printed curl answered: $answer" >&2
  exit 1
fi
kill -TERM "$pid"
wait "$pid" && status=0 || status=$?
pid=
if [ "$status" != 0 ]; then cat "$out"; echo "quickstart: serve exited $status" >&2; exit 1; fi
echo "quickstart: the printed curl answered $answer; SIGTERM exited 0"
