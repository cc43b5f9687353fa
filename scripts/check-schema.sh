#!/usr/bin/env bash
# Checks that crates/models/src/schema/*.rs is what `diesel print-schema` makes of the
# migrations, and crates/models/src/schema/behaviour.sql the functions and triggers they
# leave: a scratch database is migrated, the schema printed into a temporary folder
# and compared with the committed files. Installs diesel_cli (PostgreSQL only) into the
# tools folder on first use. Exits 1, showing the difference, when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/db-behaviour.sh
ensure_postgres
tools="${TOOLS_VENV:-/var/tmp/webserver-tools}/diesel"
if [ ! -x "$tools/bin/diesel" ]; then
  log "installing diesel_cli into $tools (once)"
  cargo install --quiet --locked diesel_cli --version '^2.3' \
    --no-default-features --features postgres --root "$tools"
fi
scratch="webserver_schema_check_$$"
out="$(mktemp -d)"
trap 'psql_admin -qc "DROP DATABASE IF EXISTS $scratch WITH (FORCE)" >/dev/null; rm -rf "$out"' EXIT
psql_admin -qc "CREATE DATABASE $scratch"
export DATABASE_URL="$(database_url "$scratch")"
sed -e "s|crates/models/src/schema/|$out/|" diesel.toml > "$out/diesel.toml"
"$tools/bin/diesel" migration run --migration-dir migrations --config-file "$out/diesel.toml" >/dev/null
"$tools/bin/diesel" print-schema --config-file "$out/diesel.toml" >/dev/null
rustfmt --edition 2024 "$out"/*_tables.rs
status=0
for generated in "$out"/*_tables.rs; do
  committed="crates/models/src/schema/$(basename "$generated")"
  if ! diff -u "$committed" "$generated"; then
    echo "$committed differs from what the migrations make: run scripts/print-schema.sh" >&2
    status=1
  fi
done
if ! diff -u "$DB_BEHAVIOUR_FILE" <(db_behaviour "$DATABASE_URL"); then
  echo "$DB_BEHAVIOUR_FILE differs from what the migrations make: run scripts/print-schema.sh" >&2
  status=1
fi
[ "$status" = 0 ] && log "schema.rs and behaviour.sql match the migrations"
exit "$status"
