#!/usr/bin/env bash
# Regenerates crates/models/src/schema/*.rs from the migrations with `diesel print-schema`,
# and crates/models/src/schema/behaviour.sql (the functions and triggers they leave),
# against a scratch database that is dropped afterwards. Needs diesel_cli (postgres only):
#   cargo install diesel_cli --no-default-features --features postgres
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/db-behaviour.sh
ensure_postgres
scratch="webserver_schema_$$"
psql_admin -qc "CREATE DATABASE $scratch"
trap 'psql_admin -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)"' EXIT
export DATABASE_URL="$(database_url "$scratch")"
diesel migration run >/dev/null
diesel print-schema >/dev/null
rustfmt --edition 2024 crates/models/src/schema/*.rs
db_behaviour "$DATABASE_URL" > "$DB_BEHAVIOUR_FILE"
echo "regenerated crates/models/src/schema/"
