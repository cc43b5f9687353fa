#!/usr/bin/env bash
# Runs the README's first command (scripts/run.sh) on a free port with a database of
# its own, then the curls it prints: the development region comes back, and the assign
# answers 503, then 202 once the local provider's instance has registered.
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

host_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -u DATABASE_URL BIND_ADDR="127.0.0.1:$port" DB_NAME="$db" HOST_SERVICE_PORT="$host_port" \
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
# The second curl: 503 while the region has no instance, then (once the simulated
# instance that refusal launched has registered) 202 with its IP.
assign="$(grep -E '^ +curl ' "$out" | sed -n 2p)"
first="$(bash -c "$assign -w ' %{http_code}'")"
case "$first" in
  *' 503') ;;
  *) cat "$out"; echo "quickstart: the first assign answered: $first" >&2; exit 1 ;;
esac
for _ in $(seq 1 60); do
  second="$(bash -c "$assign -w ' %{http_code}'")"
  case "$second" in *' 202') break ;; esac
  sleep 0.5
done
case "$second" in
  *'"ip":"127.'*' 202') ;;
  *) cat "$out"; echo "quickstart: assign never answered 202: $second" >&2; exit 1 ;;
esac

kill -TERM "$pid"
wait "$pid" && status=0 || status=$?
pid=
if [ "$status" != 0 ]; then cat "$out"; echo "quickstart: serve exited $status" >&2; exit 1; fi
echo "quickstart: /regions answered $answer; assign answered 503, then 202 on a simulated instance; SIGTERM exited 0"
