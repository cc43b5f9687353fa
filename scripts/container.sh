#!/usr/bin/env bash
# The deployment check, with podman:
# 1. builds the runtime image from docker/Dockerfile and checks it (user webserver, no
#    HEALTHCHECK, under 120 MB);
# 2. runs it against this machine's PostgreSQL: migrate, then serve in the `local`
#    environment with the local cloud provider, the quick start's curls (503, then 202),
#    SIGTERM and exit 0;
# 3. runs the Kubernetes manifests with `podman kube play` (the migrate Job's pod, then
#    the Deployment, with its ConfigMap and Secret) against a PostgreSQL of its own,
#    which it stops and starts: /readyz 503 and back to 200, /healthz 200 throughout, a
#    202 before and after;
# 4. runs the compose file with podman-compose: PostgreSQL, the server built by compose,
#    the development region, and Prometheus scraping it (every query of the Grafana
#    dashboard must be one Prometheus accepts); Grafana is not run (see below);
# and prints the image's size and the seconds from `podman run` to /readyz 200.
#
#   scripts/container.sh            everything (about a minute and a half once the
#                                   release build and the base images are there)
#   scripts/container.sh --keep     leave the image (localhost/webserver:check) behind
#
# Offline (no image registry), the images the files name are Debian root file systems
# made with mmdebstrap (minbase, merged /usr without the usrmerge package, no
# documentation, apt keeping no caches, as Debian's own slim image), imported under the
# very names used, once: `debian:bookworm-slim`; `rust:1.95-bookworm`, a stand-in
# without a Rust toolchain, since the builder stage takes the release binary built here
# (WEBSERVER_BINARY; built without the `aws` feature, see docs/operations.md);
# `postgres:15` and `prom/prometheus:v2.53.0`, stand-ins from Debian's postgresql-15 and
# prometheus (2.42). Grafana is not in Debian, so its image cannot be made. Builds use
# --pull=never and --isolation chroot. Installs podman, runc, mmdebstrap, netavark,
# aardvark-dns, iptables and catatonit with apt-get, and podman-compose from PyPI, when
# missing. Runs containers with runc and the file and process limits this machine
# allows (crun cannot set them here, nor run under its hybrid cgroups), through a
# containers.conf of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
. scripts/lib/python-tools.sh
keep=false
[ "${1:-}" = "--keep" ] && keep=true

# netavark's bridge networks (the compose file's) need iptables and aardvark-dns.
missing=()
for package in podman runc mmdebstrap uidmap netavark aardvark-dns iptables catatonit; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
ensure_postgres
ensure_build_deps
ensure_python_tools

work="$(mktemp -d /var/tmp/webserver-container.XXXXXX)"
image=localhost/webserver:check
db="webserver_container_$$"
container="webserver-check-$$"
project="webserver-compose-check-$$"
pgdir="$(mktemp -u /var/tmp/webserver-container-pg.XXXXXX)"
cleanup() {
  podman rm -f "$container" >/dev/null 2>&1 || true
  podman kube down "$work/kube.yaml" >/dev/null 2>&1 || true
  podman kube down "$work/migrate.yaml" >/dev/null 2>&1 || true
  podman secret rm webserver-secrets >/dev/null 2>&1 || true
  [ -n "${compose_started:-}" ] && compose_down
  podman rmi -f "localhost/${project}_webserver" >/dev/null 2>&1 || true
  [ -d "$pgdir/data" ] && own_postgres_ctl "$pgdir" stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
  $keep || podman rmi -f "$image" >/dev/null 2>&1 || true
  psql_admin -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
  rm -rf "$work" docker/prebuilt
}
trap cleanup EXIT

# podman's settings for this machine: runc, and limits within the hard ones.
nofile="$(ulimit -Hn)"
[ "$nofile" = unlimited ] && nofile=65536
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"


# 1. The bases, under the Dockerfile's names, unless already there.
# base NAME PACKAGES [mmdebstrap option]... [-- podman import change]...
# (no packages and no changes: as Debian's slim image)
base() {
  local path='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  local name="$1" include="$2" opts=() changes=(--change "ENV $path" --change 'CMD ["bash"]')
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  if [ "${1:-}" = -- ]; then
    shift
    changes=(--change "ENV $path")
    for change in "$@"; do changes+=(--change "$change"); done
  fi
  case "$name" in */*) ;; *) name="library/$name" ;; esac
  if ! podman image exists "docker.io/$name"; then
    log "making docker.io/$name with mmdebstrap"
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr ${include:+--include="$include"} --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      --customize-hook='printf "%s\n" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" "Acquire::Languages \"none\";" > "$1"/etc/apt/apt.conf.d/docker-clean' \
      "${opts[@]}" bookworm "$work/base.tar" >"$work/mmdebstrap.log" 2>&1 ||
      { cat "$work/mmdebstrap.log" >&2; echo "container: mmdebstrap could not make $name" >&2; exit 1; }
    podman import "${changes[@]}" "$work/base.tar" "docker.io/$name" >/dev/null
    rm -f "$work/base.tar"
  fi
}
base debian:bookworm-slim ""
base rust:1.95-bookworm binutils

log "building the release binary (without aws)"
cargo build --quiet --release --locked -p webserver --no-default-features --bin webserver
mkdir -p docker/prebuilt
cp "${CARGO_TARGET_DIR:-target}/release/webserver" docker/prebuilt/webserver

log "building $image from docker/Dockerfile"
started=$SECONDS
podman build --quiet --pull=never --network host --isolation chroot \
  --build-arg WEBSERVER_BINARY=docker/prebuilt/webserver \
  -f docker/Dockerfile -t "$image" . >/dev/null
build_secs=$((SECONDS - started))
size_bytes="$(podman image inspect "$image" --format '{{.Size}}')"
size_mb=$((size_bytes / 1000000))
user="$(podman image inspect "$image" --format '{{.Config.User}}')"
[ "$user" = webserver ] || { echo "container: the image runs as '$user', not webserver" >&2; exit 1; }
if podman image inspect "$image" --format '{{json .Config.Healthcheck}}' | grep -q Test; then
  echo "container: the image has a HEALTHCHECK; probes belong to the orchestrator" >&2
  exit 1
fi
[ "$size_mb" -lt 120 ] || { echo "container: the image is $size_mb MB (over 120)" >&2; exit 1; }

# 2. Against this machine's PostgreSQL.
psql_admin -qc "CREATE DATABASE $db"
url="$(database_url "$db")"
port="$(free_port)"
host_port="$(free_port)"
run_env=(-e ENVIRONMENT=local -e CLOUD_PROVIDER=local -e "DATABASE_URL=$url"
  -e "BIND_ADDR=127.0.0.1:$port" -e "HOST_SERVICE_PORT=$host_port" -e LOG_FORMAT=text)
log "migrate, in the container"
podman run --rm --network host "${run_env[@]}" "$image" migrate
psql "$url" -v ON_ERROR_STOP=1 -qc "
  INSERT INTO hardware.region_to_ami
      (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
  VALUES ('us-east-1', 'local-dev', 'ami-local-dev', true, true)"
log "serve, in the container, on 127.0.0.1:$port"
t0="$(date +%s.%N)"
podman run -d --name "$container" --network host "${run_env[@]}" "$image" serve >/dev/null
ready=""
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    ready="$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")"
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { podman logs "$container" >&2; echo "container: /readyz never answered 200" >&2; exit 1; }
token="$(podman exec "$container" webserver dev-token --user dev-user --admin)"
regions="$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/regions")"
[ "$regions" = '["us-east-1"]' ] || { echo "container: /regions answered $regions" >&2; exit 1; }
assign() {
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    -d '{"region": "us-east-1", "username": "dev-user", "dpi": 96, "client_commit_hash": "local_dev"}' \
    "http://127.0.0.1:$port/mandelbox/assign"
}
first="$(assign)"
[ "$first" = 503 ] || { echo "container: the first assign answered $first, not 503" >&2; exit 1; }
second=""
for _ in $(seq 1 60); do
  second="$(assign)"
  [ "$second" = 202 ] && break
  sleep 0.5
done
[ "$second" = 202 ] || { podman logs "$container" >&2; echo "container: assign never answered 202" >&2; exit 1; }
log "SIGTERM"
t1=$SECONDS
podman stop --time 45 "$container" >/dev/null
stop_secs=$((SECONDS - t1))
code="$(podman inspect "$container" --format '{{.State.ExitCode}}')"
[ "$code" = 0 ] || { podman logs "$container" >&2; echo "container: exited $code on SIGTERM" >&2; exit 1; }
[ "$stop_secs" -lt 45 ] || { echo "container: took $stop_secs s to stop" >&2; exit 1; }
podman rm "$container" >/dev/null

# 3. The Kubernetes manifests: the Secret and the Deployment as written, one replica,
# this image, and settings for this machine in place of the ConfigMap's and the
# Secret's (the production ones need AWS, Stripe and an identity provider), against a
# PostgreSQL of the check's own, which it stops and starts: readiness must turn 503 and
# back to 200 while liveness stays 200. kube play has no Jobs: the migrate Job's pod
# template is played as a Pod first, and must exit 0.
own_postgres "$pgdir"
psql "$OWN_PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE webserver"
kurl="postgres://postgres@127.0.0.1:$OWN_PG_PORT/webserver?sslmode=disable"
kport="$(free_port)"
khost_port="$(free_port)"
"$TOOLS_VENV/bin/python" - "$work/kube.yaml" "$work/migrate.yaml" "$image" "$kurl" "$kport" "$khost_port" <<'PY'
import base64, sys
import yaml
out, migrate_out, image, url, port, host_port = sys.argv[1:]
deployment = open("deploy/kubernetes/deployment.yaml").read()
deployment = deployment.replace("replicas: 3", "replicas: 1")
deployment = deployment.replace("image: webserver", f"image: {image}")
# Host networking (the pod reaches the PostgreSQL on 127.0.0.1): the port is the
# host's, so the named container port goes and the probes name its number.
deployment = deployment.replace(
    "          ports:\n            - name: http\n              containerPort: 7730\n", "")
deployment = deployment.replace("port: http", f"port: {port}")
assert "secretRef:\n                name: webserver-secrets" in deployment
# The Secret: secret.yaml's keys, with this machine's values (the database URL is the
# only secret the local environment needs). podman 4.3's kube play stores a Secret
# document as YAML and then reads it back as JSON (`secret webserver-secrets is not
# valid JSON`), so the check puts the Secret's `data` (base64, as Kubernetes keeps it)
# into podman's secret store itself, where envFrom's secretRef finds it.
import json
secret = open("deploy/kubernetes/secret.yaml").read()
assert "name: webserver-secrets" in secret and "DATABASE_URL:" in secret
data = {"DATABASE_URL": base64.b64encode(url.encode()).decode()}
open(out + ".secret.json", "w").write(json.dumps(data))
settings = f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: webserver-settings
data:
  ENVIRONMENT: local
  CLOUD_PROVIDER: local
  BIND_ADDR: "127.0.0.1:{port}"
  HOST_SERVICE_PORT: "{host_port}"
  LOG_FORMAT: json
  SHUTDOWN_TIMEOUT_SECS: "30"
"""
open(out, "w").write(settings + "---\n" + deployment)
# The migrate Job's pod template as a Pod, with this image.
job = yaml.safe_load(open("deploy/kubernetes/migrate-job.yaml"))
assert job["kind"] == "Job"
template = job["spec"]["template"]
for container in template["spec"]["containers"]:
    assert container["image"] == "webserver"
    container["image"] = image
pod = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
    "spec": template["spec"],
}
open(migrate_out, "w").write(settings + "---\n" + yaml.safe_dump(pod, sort_keys=False))
PY
podman secret rm webserver-secrets >/dev/null 2>&1 || true
podman secret create webserver-secrets "$work/kube.yaml.secret.json" >/dev/null
log "podman kube play (the migrate Job's pod)"
podman kube play --network host "$work/migrate.yaml" >/dev/null
migrate_container="$(podman ps -aq --filter pod=webserver-migrate --filter "ancestor=$image" | head -1)"
migrate_code="$(podman wait "$migrate_container")"
[ "$migrate_code" = 0 ] ||
  { podman logs "$migrate_container" >&2; echo "container: the migrate pod exited $migrate_code" >&2; exit 1; }
podman kube down "$work/migrate.yaml" >/dev/null
psql "$kurl" -v ON_ERROR_STOP=1 -qc "
  INSERT INTO hardware.region_to_ami
      (region_name, client_commit_hash, ami_id, ami_active, region_enabled)
  VALUES ('us-east-1', 'local-dev', 'ami-local-dev', true, true)"
log "podman kube play (the Deployment, its Secret from podman's store, on 127.0.0.1:$kport)"
podman kube play --network host "$work/kube.yaml" >/dev/null
probe() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$kport$1"; }
pod_container() { podman ps -aq --filter "ancestor=$image" | head -1; }
pod_logs() { podman logs "$(pod_container)" >&2 || true; }
# until_probe PATH CODE SECONDS: waits for PATH to answer CODE; prints the seconds taken.
until_probe() {
  local t0
  t0="$(date +%s.%N)"
  for _ in $(seq 1 $(($3 * 10))); do
    if [ "$(probe "$1")" = "$2" ]; then
      python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
      return 0
    fi
    sleep 0.1
  done
  return 1
}
until_probe /readyz 200 30 >/dev/null || { pod_logs; echo "container: the pod never got ready" >&2; exit 1; }
live="$(probe /healthz)"
[ "$live" = 200 ] || { echo "container: the liveness probe (/healthz) answered $live" >&2; exit 1; }
pod_assign() { # user
  local token
  token="$(podman exec "$(pod_container)" webserver dev-token --user "$1" --admin)"
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    -d "{\"region\": \"us-east-1\", \"username\": \"$1\", \"dpi\": 96, \"client_commit_hash\": \"local_dev\", \"wait_secs\": 30}" \
    "http://127.0.0.1:$kport/mandelbox/assign"
}
pod_answer="$(pod_assign pod-user)"
[ "$pod_answer" = 202 ] || { pod_logs; echo "container: the pod's assign answered $pod_answer" >&2; exit 1; }

log "PostgreSQL stopped under the pod"
own_postgres_ctl "$pgdir" stop
down_secs="$(until_probe /readyz 503 30)" ||
  { pod_logs; echo "container: /readyz stayed 200 with PostgreSQL stopped" >&2; exit 1; }
sleep 3
live="$(probe /healthz)"
[ "$live" = 200 ] ||
  { echo "container: /healthz answered $live with PostgreSQL stopped (liveness would restart the pod)" >&2; exit 1; }
still="$(probe /readyz)"
[ "$still" = 503 ] || { echo "container: /readyz answered $still with PostgreSQL still stopped" >&2; exit 1; }
log "PostgreSQL started again"
own_postgres_ctl "$pgdir" start
up_secs="$(until_probe /readyz 200 30)" ||
  { pod_logs; echo "container: /readyz never came back to 200" >&2; exit 1; }
pod_answer="$(pod_assign pod-user-after)"
[ "$pod_answer" = 202 ] ||
  { pod_logs; echo "container: after the outage the pod's assign answered $pod_answer" >&2; exit 1; }
restarts="$(podman inspect "$(pod_container)" --format '{{.RestartCount}}')"
[ "$restarts" = 0 ] || { echo "container: the pod's container restarted $restarts times" >&2; exit 1; }
podman kube down "$work/kube.yaml" >/dev/null

# 4. The compose file, with podman-compose (from PyPI, into the tools folder): PostgreSQL,
# the server built from the Dockerfile by compose, and Prometheus scraping it, on a
# network of their own; Grafana's image cannot be made from Debian's packages, so it is
# not run. The PostgreSQL and Prometheus images are stand-ins made with mmdebstrap under
# the names the compose file uses (Debian's postgresql-15 with an entrypoint honouring
# the official image's POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB; Debian's
# prometheus, 2.42, storing in /prometheus as the official image does).
compose="$TOOLS_VENV/bin/podman-compose"
[ -x "$compose" ] || {
  log "installing podman-compose into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "podman-compose==1.*"
}
for taken in 7730 9090; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$taken") 2>/dev/null; then
    echo "container: port $taken is taken; the compose file publishes it" >&2
    exit 1
  fi
done
cat >"$work/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# A stand-in for the official postgres image's entrypoint: the same settings, the same
# data directory, `postgres` as the command.
set -eu
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  printf '%s\n' "${POSTGRES_PASSWORD:?the postgres image needs POSTGRES_PASSWORD}" >/tmp/pwfile
  initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\"" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
fi
exec "$@" -c listen_addresses='*'
SH
base postgres:15 postgresql-15 \
  --customize-hook="copy-in $work/docker-entrypoint.sh /usr/local/bin" \
  --customize-hook='chmod 0755 "$1"/usr/local/bin/docker-entrypoint.sh' \
  -- 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' 'CMD ["postgres"]' 'STOPSIGNAL SIGINT'
base prom/prometheus:v2.53.0 prometheus \
  --customize-hook='mkdir -p "$1"/prometheus && chown 65534:65534 "$1"/prometheus' \
  --customize-hook='rm -rf "$1"/var/lib/prometheus/metrics2 && ln -s /prometheus "$1"/var/lib/prometheus/metrics2' \
  -- 'USER nobody' 'WORKDIR /prometheus' 'ENTRYPOINT ["/usr/bin/prometheus"]' \
  'CMD ["--config.file=/etc/prometheus/prometheus.yml"]'

compose_cmd=("$compose" --project-name "$project" -f docker/docker-compose.yml)
compose_down() { "${compose_cmd[@]}" down --volumes >/dev/null 2>&1 || true; }
compose_started=yes
log "podman-compose build (the webserver, from the Dockerfile)"
"${compose_cmd[@]}" --podman-build-args="--pull=never --isolation chroot --network host" \
  build --build-arg WEBSERVER_BINARY=docker/prebuilt/webserver webserver >/dev/null
# podman-compose on podman 4.3 ignores `condition: service_healthy` ("podman 4.3.1
# doesn't support healthy"), and podman runs healthchecks from systemd timers, which
# this machine has not: the check starts PostgreSQL first and runs its healthcheck, as
# the timer would, until healthy, then the rest, as docker compose would.
log "podman-compose up postgres, until its healthcheck passes"
"${compose_cmd[@]}" up -d postgres >"$work/compose-up.log" 2>&1 ||
  { cat "$work/compose-up.log" >&2; echo "container: podman-compose up postgres failed" >&2; exit 1; }
pg_container="$(podman ps -q --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=postgres" | head -1)"
healthy=""
for _ in $(seq 1 120); do
  podman healthcheck run "$pg_container" >/dev/null 2>&1 && { healthy=yes; break; }
  sleep 0.5
done
[ -n "$healthy" ] || { podman logs "$pg_container" >&2; echo "container: compose's postgres never got healthy" >&2; exit 1; }
log "podman-compose up webserver, region, prometheus"
"${compose_cmd[@]}" up -d webserver region prometheus >>"$work/compose-up.log" 2>&1 ||
  { cat "$work/compose-up.log" >&2; echo "container: podman-compose up failed" >&2; exit 1; }
compose_ready=""
for _ in $(seq 1 300); do
  curl -sf http://127.0.0.1:7730/readyz >/dev/null 2>&1 && { compose_ready=yes; break; }
  sleep 0.2
done
[ -n "$compose_ready" ] ||
  { "${compose_cmd[@]}" logs webserver >&2 || true; echo "container: compose's webserver never got ready" >&2; exit 1; }
token="$("${compose_cmd[@]}" exec -T webserver webserver dev-token --user compose-user --admin)"
# The compose file's `region` service adds the development region once the server's
# migrations are in.
regions=""
for _ in $(seq 1 60); do
  regions="$(curl -s -H "Authorization: Bearer $token" http://127.0.0.1:7730/regions)"
  [ "$regions" = '["us-east-1"]' ] && break
  sleep 0.5
done
[ "$regions" = '["us-east-1"]' ] || { echo "container: compose's /regions answered $regions" >&2; exit 1; }
compose_assign() {
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' \
    -d '{"region": "us-east-1", "username": "compose-user", "dpi": 96, "client_commit_hash": "local_dev", "wait_secs": 30}' \
    http://127.0.0.1:7730/mandelbox/assign
}
answer="$(compose_assign)"
[ "$answer" = 202 ] || { "${compose_cmd[@]}" logs webserver >&2 || true; echo "container: compose's assign answered $answer" >&2; exit 1; }
# Prometheus scrapes the server (every 15 s), and every query of the Grafana dashboard
# is one Prometheus accepts; the fleet's gauges have series.
scraped=""
for _ in $(seq 1 60); do
  if curl -s http://127.0.0.1:9090/api/v1/targets |
    python3 -c 'import json, sys; t = json.load(sys.stdin)["data"]["activeTargets"]; sys.exit(0 if any(x["labels"]["job"] == "webserver" and x["health"] == "up" for x in t) else 1)' 2>/dev/null; then
    scraped=yes
    break
  fi
  sleep 1
done
[ -n "$scraped" ] || { curl -s http://127.0.0.1:9090/api/v1/targets >&2; echo "container: Prometheus never scraped the webserver" >&2; exit 1; }
queries="$(python3 - <<'PY'
import json, sys, urllib.parse, urllib.request
dashboard = json.load(open("docker/grafana/dashboards/webserver.json"))
exprs = set()
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                exprs.add(value)
            else:
                walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(dashboard)
with_series = 0
for expr in sorted(exprs):
    url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = json.load(urllib.request.urlopen(url))
    except Exception as err:
        sys.exit(f"container: Prometheus refused the dashboard's query {expr!r}: {err}")
    if answer.get("status") != "success":
        sys.exit(f"container: Prometheus refused the dashboard's query {expr!r}: {answer}")
    if answer["data"]["result"]:
        with_series += 1
    elif expr.startswith("max by (region) (webserver_fleet_"):
        # The region has an instance: its capacity, free slots and unmet demand (0).
        sys.exit(f"container: the dashboard's {expr!r} has no series")
print(f"{len(exprs)} dashboard queries accepted, {with_series} with series")
PY
)"
"${compose_cmd[@]}" down --volumes >/dev/null 2>&1
compose_started=""

echo "container: image $image, $size_mb MB, built in $build_secs s; /readyz 200 $ready s after podman run; /regions, then assign 503 and 202; SIGTERM exited 0 in $stop_secs s; kube play: the migrate pod exited 0, /readyz and /healthz 200, a 202 from the pod; PostgreSQL stopped: /readyz 503 after $down_secs s, /healthz 200; started again: /readyz 200 after $up_secs s, a 202; compose: postgres, webserver and prometheus up, /regions, a 202, the webserver scraped, $queries"
