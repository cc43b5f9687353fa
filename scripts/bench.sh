#!/usr/bin/env bash
# The benchmarks (crates/bench), in release mode on the project's PostgreSQL:
#   scripts/bench.sh                      assignment: 100, 10 000 and 100 000 instances,
#                                         32 clients, 10 s each, then pgbench alike
#   scripts/bench.sh --instances 1000     assignment, one fleet size (see --help)
#   scripts/bench.sh heartbeat            host heartbeats one server process sustains
#   scripts/bench.sh regions              GET /healthz, /regions and /fleet (10 000 instances)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
ensure_postgres
export TEST_DATABASE_URL="$PG_ADMIN_URL?sslmode=disable"
command -v pgbench >/dev/null || apt_install postgresql-contrib
bench=assign-bench
case "${1:-}" in
  heartbeat) bench=heartbeat-bench; shift ;;
  regions) bench=get-bench; shift ;;
esac
cargo run --quiet --release -p bench --bin "$bench" -- "$@"
