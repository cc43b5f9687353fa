#!/usr/bin/env bash
# The chaos run: the release webserver, on a PostgreSQL of its own per scenario.
#
# The fault matrix (scenario `faults`): a TCP proxy of the chaos crate between the
# server and PostgreSQL, and each fault below under 8, 32 and 128 concurrent clients
# (assigns mixed with heartbeats and GET /regions), 20 runs of each: PostgreSQL
# restarted (-m fast, -m immediate), stopped 10 s then started, every server connection
# killed with pg_terminate_backend, connections cut by the proxy (RST), blackholed for
# 10 s, 300 ms of added latency for 20 s, max_connections taken by another client for
# 10 s, refused connections for 10 s, and a failover to a streaming standby (made with
# pg_basebackup on another port) promoted while the primary stops. One table row per
# fault and load: recovery, pools, answers, lost 202s, invariants, /readyz.
#
# Then a SIGKILLed replica, every server stopped for three heartbeat timeouts, the
# identity provider away for a minute, 10,000 hostile requests, and a flood of 10,000
# forged heartbeats a second from 2,000 connections while real hosts heartbeat and
# clients assign. Exits 1 if any run failed.
#
#   scripts/chaos.sh                         everything, full length (hours: the matrix
#                                            alone is 10 faults x 3 loads x 20 runs)
#   scripts/chaos.sh --short                 the short version the test command runs
#   scripts/chaos.sh --scenario faults       one of: faults, replica, outage, identity, hostile, flood
#   scripts/chaos.sh --scenario flood --runs 20
#                                            the flood, 20 times
#   scripts/chaos.sh --scenario faults --fault blackhole --fault cut --runs 5 --clients 128
#                                            some faults, runs and loads of the matrix
# Faults: restart-fast, restart-immediate, stop-start, terminate, cut, blackhole,
# latency, max-connections, refused, failover.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
ensure_build_deps
# The scenarios start PostgreSQL servers of their own from the installed programs.
[ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || apt_install postgresql
target="${CARGO_TARGET_DIR:-target}"
log "building the release webserver (without the AWS provider) and the chaos runner"
cargo build --quiet --release -p webserver --no-default-features --bin webserver
cargo build --quiet --release -p chaos --bin chaos
exec "$target/release/chaos" --binary "$target/release/webserver" "$@"
