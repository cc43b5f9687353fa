# shellcheck shell=bash
# Makes sure a PostgreSQL server is there for the scripts, sourced by them.
#
#   ensure_build_deps   libpq-dev (diesel links libpq) and the psql client
#   ensure_postgres     sets PG_ADMIN_URL: a URL, on database "postgres", for a role that
#                       may create databases. Uses $PG_ADMIN_URL if it answers; else a
#                       server on 127.0.0.1:$PG_PORT (5432), starting the installed cluster
#                       or installing PostgreSQL with apt-get when there is none.
#   psql_admin ARGS     psql on $PG_ADMIN_URL, stopping at the first error
#   database_url NAME   $PG_ADMIN_URL with its database replaced by NAME

PG_ROLE="${PG_ROLE:-webserver}"
PG_PASSWORD="${PG_PASSWORD:-webserver}"
PG_PORT="${PG_PORT:-5432}"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

apt_install() {
  log "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y --no-install-recommends "$@" >/dev/null
  fi
}

ensure_build_deps() {
  local missing=()
  dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

pg_answers() { psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1; }

start_local_cluster() {
  if [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    apt_install postgresql
  fi
  local version
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if [ ! -d "/etc/postgresql/$version/main" ]; then
    log "creating PostgreSQL $version cluster"
    pg_createcluster "$version" main >/dev/null
  fi
  PG_PORT="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"
  log "starting PostgreSQL $version on port $PG_PORT"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0
    sleep 0.5
  done
  echo "PostgreSQL did not start; see /var/log/postgresql/" >&2
  return 1
}

# Creates (or repairs) our role as the postgres superuser: over the local socket with
# peer authentication, else over TCP when the server trusts local connections.
ensure_role() {
  local url="postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
  if pg_answers "$url" && [ "$(psql "$url" -Atqc "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")" = t ]; then
    PG_ADMIN_URL="$url"
    return 0
  fi
  log "creating PostgreSQL role $PG_ROLE"
  local sql="DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
      CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    ELSE
      ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
    END IF;
  END \$\$;"
  if ! (cd / && runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qc "$sql") >/dev/null 2>&1; then
    psql "postgres://postgres@127.0.0.1:$PG_PORT/postgres" -v ON_ERROR_STOP=1 -qc "$sql" >/dev/null
  fi
  pg_answers "$url" || { echo "cannot log in to PostgreSQL as $PG_ROLE on port $PG_PORT" >&2; return 1; }
  PG_ADMIN_URL="$url"
}

ensure_postgres() {
  ensure_build_deps
  if [ -n "${PG_ADMIN_URL:-}" ] && pg_answers "$PG_ADMIN_URL"; then
    return 0
  fi
  if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
    start_local_cluster
  fi
  ensure_role
  export PG_ADMIN_URL
}

psql_admin() { psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 "$@"; }

# Local databases are reached without TLS (nothing to protect on loopback).
database_url() { printf '%s/%s?sslmode=disable' "${PG_ADMIN_URL%/*}" "$1"; }

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A PostgreSQL server of its own, for checks that stop and start the database (never the
# one everything else shares): initdb in DIR (which must not exist), trust authentication
# on 127.0.0.1 only, a free port, the installed PostgreSQL's programs run as its own user
# when we are root.
#   own_postgres DIR               creates and starts it; sets OWN_PG_PORT and OWN_PG_URL
#                                  (a superuser URL on database "postgres")
#   own_postgres_ctl DIR start|stop
own_pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

own_postgres() {
  local dir="$1"
  [ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || apt_install postgresql
  mkdir "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  OWN_PG_PORT="$(free_port)"
  as_postgres "$(own_pg_bin)/initdb" -D "$dir/data" --auth=trust --username=postgres --no-sync >/dev/null
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n" \
    "$OWN_PG_PORT" "$dir" >>"$dir/data/postgresql.conf"
  own_postgres_ctl "$dir" start
  OWN_PG_URL="postgres://postgres@127.0.0.1:$OWN_PG_PORT/postgres"
}

own_postgres_ctl() {
  case "$2" in
    start) as_postgres "$(own_pg_bin)/pg_ctl" -D "$1/data" -l "$1/log" -w -t 30 start >/dev/null ;;
    stop) as_postgres "$(own_pg_bin)/pg_ctl" -D "$1/data" -w -t 30 -m fast stop >/dev/null ;;
  esac
}
