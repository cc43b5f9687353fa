#!/usr/bin/env bash
# Runs the webserver on this machine with everything it needs: PostgreSQL (started or
# installed if missing), a database, migrations, a development region, the local
# environment and cloud provider. Prints a development token and a curl to try.
#
#   scripts/run.sh
#
# Honoured: DATABASE_URL (used as is when it answers), BIND_ADDR (127.0.0.1:7730),
# DB_NAME (webserver_dev), LOCAL_DATA_DIR (.local), and any setting of docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh

ensure_build_deps
if [ -n "${DATABASE_URL:-}" ] && pg_answers "$DATABASE_URL"; then
  log "using the database at DATABASE_URL"
else
  ensure_postgres
  DB_NAME="${DB_NAME:-webserver_dev}"
  if [ "$(psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
    log "creating database $DB_NAME"
    psql_admin -qc "CREATE DATABASE $DB_NAME"
  fi
  DATABASE_URL="$(database_url "$DB_NAME")"
fi
export DATABASE_URL
export ENVIRONMENT=local
export CLOUD_PROVIDER=local
export BIND_ADDR="${BIND_ADDR:-127.0.0.1:7730}"
export LOCAL_DATA_DIR="${LOCAL_DATA_DIR:-$PWD/.local}"

log "building the webserver"
cargo build --quiet --bin webserver
webserver="${CARGO_TARGET_DIR:-target}/debug/webserver"

"$webserver" migrate
# A development region whose active image serves the commit hash "local_dev" asks for.
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "
  INSERT INTO hardware.region_to_ami
      (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
  VALUES ('us-east-1', 'local-dev', 'ami-local-dev', true, true)
  ON CONFLICT DO NOTHING"

token="$("$webserver" dev-token --user dev-user --admin)"
cat <<MSG

  webserver: http://$BIND_ADDR  (environment local, cloud provider local)
  development token for dev-user (admin, valid 24 h):

    $token

  try:
    curl -s -H "Authorization: Bearer $token" http://$BIND_ADDR/regions
    curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"region": "us-east-1", "username": "dev-user", "dpi": 96, "client_commit_hash": "local_dev"}' http://$BIND_ADDR/mandelbox/assign

  The first assign answers 503: the region has no instance yet. That refusal makes the
  local cloud provider launch a simulated instance, whose host registers within a
  second or two; run the same curl again and it answers 202 with the instance's IP
  (or add "wait_secs": 60 to the body, and the first one waits for it).

  the fleet, live (the token stays in the fragment, never sent to the server):
    http://$BIND_ADDR/dashboard#token=$token

  Ctrl-C stops it.

MSG
exec "$webserver" serve
