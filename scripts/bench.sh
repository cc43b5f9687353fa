#!/usr/bin/env bash
# The assignment benchmark (crates/bench): fleets of 100, 10 000 and 100 000 instances,
# 32 concurrent clients, 10 s each, then pgbench with the same transaction. Extra
# arguments go to the benchmark: scripts/bench.sh --instances 1000 --seconds 5
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
ensure_postgres
export TEST_DATABASE_URL="$PG_ADMIN_URL"
command -v pgbench >/dev/null || apt_install postgresql-contrib
cargo run --quiet --release -p bench --bin assign-bench -- "$@"
