#!/usr/bin/env bash
# The fleet simulator (crates/bench, `fleet-sim`), in release mode on the project's
# PostgreSQL: replays a trace of users against the real server, with the local cloud's
# simulated hosts, once per scaling policy (or --runs times), and prints what users
# got and what the fleet cost.
#
#   scripts/simulate.sh --trace FILE [--speed 240] [--policy fixed|adaptive|both]
#                       [--boot-secs 90] [--capacity 8] [--client-wait-secs 120]
#                       [--desired-free 10] [--placement packed|lifetime]
#                       [--safety-sigmas 2]
#                       [--history FILE] [--runs 1] [--json]
#
# Shipped traces: crates/bench/traces/diurnal.csv (24 hours, about six minutes per policy
# at --speed 240), crates/bench/traces/burst.csv (2 hours) and
# crates/bench/traces/returning.csv (a day of returning users; their past sessions are
# crates/bench/traces/returning-history.csv, for --history). Make others with
#   cargo run --release -p bench --bin trace-gen -- diurnal --seed 7 > /tmp/day.csv
#   cargo run --release -p bench --bin trace-gen -- returning --seed 7 \
#       --history-out /tmp/history.csv > /tmp/days.csv
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
ensure_postgres
export TEST_DATABASE_URL="$PG_ADMIN_URL?sslmode=disable"
cargo run --quiet --release -p bench --bin fleet-sim -- "$@"
