#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against its own OpenAPI document: a local server
# (its own database, the local environment, a development admin token, and a registered
# host whose token the host routes get) gets generated requests for every route, and any
# 5xx answer, crash or answer that breaks the document fails the run.
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
if ! "$TOOLS_VENV/bin/python" -c 'import schemathesis, argon2' >/dev/null 2>&1; then
  log "installing schemathesis and argon2-cffi into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*' 'argon2-cffi>=21'
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

# AUTOSCALE=false: the fleet must not drain the fuzz host (nothing serves its drain
# endpoint, so it would be terminated and its token would stop working).
export DATABASE_URL="$(database_url "$db")" ENVIRONMENT=local CLOUD_PROVIDER=local \
  LOCAL_DATA_DIR="$data" BIND_ADDR="127.0.0.1:$port" HOST_SERVICE_PORT="$host_port" \
  RATE_LIMIT_PER_MINUTE=0 LOG_FORMAT=text AUTOSCALE=false
"$webserver" migrate >/dev/null
# A launched instance waiting for its host, as the fleet would record it.
bootstrap_secret="fuzz-bootstrap-$$-$RANDOM"
bootstrap_hash="$("$TOOLS_VENV/bin/python" -c 'import sys, argon2; print(argon2.PasswordHasher().hash(sys.argv[1]))' "$bootstrap_secret")"
psql "$DATABASE_URL" -qc "
  INSERT INTO hardware.region_to_ami (region_name, client_commit_hash, ami_id, ami_active)
  VALUES ('us-east-1', 'local-dev', 'ami-local-dev', true);
  INSERT INTO sales.email_templates (id, title, url, body)
  VALUES ('WELCOME', 'Welcome', '', 'Hello {{ name }}');
  INSERT INTO hardware.instance_info (instance_name, cloud_provider_id,
      creation_time_utc_unix_ms, aws_ami_id, location, status, commit_hash,
      aws_instance_type, bootstrap_secret_hash)
  VALUES ('fuzz-host', '', (extract(epoch FROM now()) * 1000)::bigint, 'ami-local-dev',
      'us-east-1', 'PRE_CONNECTION', 'local-dev', 'g4dn.xlarge', '$bootstrap_hash')"
token="$("$webserver" dev-token --user fuzz --admin)"
"$webserver" serve >"$log_file" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done

# The host registers, as an agent would, for the token the host routes want.
host_token="$(curl -sf -X POST "http://127.0.0.1:$port/host_service/register" \
  -H 'Content-Type: application/json' \
  -d "{\"instance_name\": \"fuzz-host\", \"bootstrap_secret\": \"$bootstrap_secret\",
       \"ip\": \"127.0.0.1\", \"mandelbox_capacity\": 50, \"memory_remaining_kb\": 1000000,
       \"nanocpus_remaining\": 1000000000, \"gpu_vram_remaining_kb\": 1000000}" |
  "$TOOLS_VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["auth_token"])')"

# A mandelbox on the fuzz host, so that its routes are reached past the 404.
mandelbox_id="$(cat /proc/sys/kernel/random/uuid)"
psql "$DATABASE_URL" -qc "
  INSERT INTO hardware.mandelbox_info (mandelbox_id, user_id, instance_name, status,
      creation_time_utc_unix_ms)
  VALUES ('$mandelbox_id', 'fuzz', 'fuzz-host', 'ALLOCATED',
      (extract(epoch FROM now()) * 1000)::bigint)"

# 503 is part of the contract (no capacity, a user already active, payments not
# configured here); any other 5xx fails the run. The admin token goes everywhere but to
# the host routes, which get the host's.
cat >"$data/schemathesis.toml" <<TOML
headers = { Authorization = "Bearer $token" }

[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-path-regex = "^/host_service/heartbeat"
headers = { Authorization = "Bearer $host_token" }

[[operations]]
include-path-regex = "^/host_service/mandelbox/"
headers = { Authorization = "Bearer $host_token" }
parameters = { id = "$mandelbox_id" }
TOML

log "schemathesis: $max_examples examples per operation"
status=0
"$TOOLS_VENV/bin/schemathesis" --config-file "$data/schemathesis.toml" run \
  "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$max_examples" \
  --workers 2 || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  cat "$log_file"; echo "fuzz: the server died" >&2; exit 1
fi
# The host routes must have been reached with a working credential, not only refused.
host_answers="$(curl -sf "http://127.0.0.1:$port/metrics" |
  grep '^webserver_http_requests_total{.*route="/host_service/' || true)"
echo "host route answers:"; echo "$host_answers" | sed 's/^/  /'
for route in heartbeat 'mandelbox/{id}/status' 'mandelbox/{id}'; do
  if ! echo "$host_answers" | grep -qF "route=\"/host_service/$route\",status=\"200\""; then
    echo "fuzz: /host_service/$route never succeeded: the host token or mandelbox was not used" >&2
    status=1
  fi
done
if grep -q 'status=500\|panicked' "$log_file"; then
  grep 'status=500\|panicked' "$log_file" | head -20
  echo "fuzz: the server logged server errors" >&2
  exit 1
fi
exit "$status"
