#!/usr/bin/env bash
# The chaos run: the release webserver, on a PostgreSQL of its own per scenario, through
# a database restart mid-load, a SIGKILLed replica, every server stopped for three
# heartbeat timeouts, the identity provider away for a minute, and 10,000 hostile
# requests. Prints one table row per scenario; exits 1 if any failed.
#
#   scripts/chaos.sh                       every scenario, full length (about 5 minutes)
#   scripts/chaos.sh --short               the short version the test command runs
#   scripts/chaos.sh --scenario restart    one of: restart, replica, outage, identity, hostile
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
