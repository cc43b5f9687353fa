#!/usr/bin/env bash
# The whole test suite, as CI runs it: makes sure PostgreSQL is there (started or
# installed if missing) and the Python test tools (moto, aiosmtpd) and Debian's chromium
# (the dashboard's browser test) are installed, then
# formatting, lints, every test (the AWS ones against moto on 127.0.0.1, the SMTP ones
# against aiosmtpd), and the quick start.
#
#   scripts/test.sh
#
# Honoured: TEST_DATABASE_URL (a server URL for a role that may create databases),
# CARGO_TARGET_DIR, TOOLS_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/python-tools.sh
. scripts/lib/chromium.sh

started=$SECONDS
if [ -n "${TEST_DATABASE_URL:-}" ]; then PG_ADMIN_URL="$TEST_DATABASE_URL"; fi
ensure_postgres
export TEST_DATABASE_URL="$PG_ADMIN_URL"
# No TLS to a local server: see test_support::admin_url.
case "$TEST_DATABASE_URL" in *\?*) ;; *) TEST_DATABASE_URL="$TEST_DATABASE_URL?sslmode=disable" ;; esac
ensure_python_tools
ensure_chromium
# No test may wait on the instance metadata service.
export AWS_EC2_METADATA_DISABLED=true

# Databases left by an interrupted run (templates are rebuilt when needed).
psql_admin -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'webserver\_test\_%' OR datname LIKE 'webserver\_quickstart\_%'" |
  while read -r stale; do
    psql_admin -qc "DROP DATABASE IF EXISTS \"$stale\" WITH (FORCE)" 2>/dev/null ||
      log "left $stale (another role owns it)"
  done

log "cargo fmt --check"
cargo fmt --all -- --check
log "the committed diesel schema matches the migrations"
bash scripts/check-schema.sh
log "the Kubernetes manifests against the Kubernetes schemas"
"$TOOLS_VENV/bin/kubernetes-validate" --strict --quiet \
  $(ls deploy/kubernetes/*.yaml | grep -v /kustomization.yaml)
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
cargo test --workspace --locked
log "quick start (scripts/run.sh)"
bash tests/quickstart.sh
log "all green in $((SECONDS - started)) s"
