#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against its own OpenAPI document: a local server
# (its own database, the local environment, a development admin token) gets generated
# requests for every route, and any 5xx answer, crash or answer that breaks the document
# fails the run.
#
#   scripts/fuzz-api.sh [--max-examples N]     (default 50 per operation)
#
# Honoured: TOOLS_VENV, CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/python-tools.sh

max_examples=50
if [ "${1:-}" = "--max-examples" ]; then max_examples="$2"; fi

ensure_build_deps
ensure_postgres
ensure_python_tools
if ! "$TOOLS_VENV/bin/python" -c 'import schemathesis' >/dev/null 2>&1; then
  log "installing schemathesis into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*'
fi

log "building the webserver"
cargo build --quiet --bin webserver
webserver="${CARGO_TARGET_DIR:-target}/debug/webserver"

db="webserver_fuzz_$$"
data="$(mktemp -d)"
log_file="$(mktemp)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
host_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  psql_admin -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$data" "$log_file"
}
trap cleanup EXIT
psql_admin -qc "CREATE DATABASE $db"

export DATABASE_URL="$(database_url "$db")" ENVIRONMENT=local CLOUD_PROVIDER=local \
  LOCAL_DATA_DIR="$data" BIND_ADDR="127.0.0.1:$port" HOST_SERVICE_PORT="$host_port" \
  RATE_LIMIT_PER_MINUTE=0 LOG_FORMAT=text
"$webserver" migrate >/dev/null
psql "$DATABASE_URL" -qc "
  INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
  VALUES ('us-east-1', 'local-dev', 'ami-local-dev', true);
  INSERT INTO sales.email_templates (id, title, url, body)
  VALUES ('WELCOME', 'Welcome', '', 'Hello {{ name }}')"
token="$("$webserver" dev-token --user fuzz --admin)"
"$webserver" serve >"$log_file" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

# 503 is part of the contract (no capacity, a user already active, payments not
# configured here); any other 5xx fails the run.
cat >"$data/schemathesis.toml" <<'TOML'
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]
TOML

log "schemathesis: $max_examples examples per operation"
status=0
"$TOOLS_VENV/bin/schemathesis" --config-file "$data/schemathesis.toml" run \
  "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --max-examples "$max_examples" \
  --workers 2 || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  cat "$log_file"; echo "fuzz: the server died" >&2; exit 1
fi
if grep -q 'status=500\|panicked' "$log_file"; then
  grep 'status=500\|panicked' "$log_file" | head -20
  echo "fuzz: the server logged server errors" >&2
  exit 1
fi
exit "$status"
