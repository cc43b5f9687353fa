#!/usr/bin/env bash
# The deployment check: builds the runtime image from docker/Dockerfile with podman,
# runs it against this machine's PostgreSQL (migrate, then serve in the `local`
# environment with the local cloud provider, the quick start's curls, SIGTERM), runs
# the Kubernetes Deployment with `podman kube play`, and prints the image's size and the
# seconds from `podman run` to /readyz 200.
#
#   scripts/container.sh            everything
#   scripts/container.sh --keep     leave the image (localhost/webserver:check) behind
#
# Offline (no image registry): the Dockerfile's bases are Debian root file systems made
# with mmdebstrap (minbase, merged /usr without the usrmerge package, no documentation,
# and apt keeping no caches, as Debian's own slim image) and imported under the very
# names it uses (`debian:bookworm-slim`;
# `rust:1.95-bookworm`, a stand-in without a Rust toolchain), built with --pull=never,
# and the builder stage takes the release binary built here (WEBSERVER_BINARY), built
# without the `aws` feature (see docs/operations.md). Installs podman, runc and
# mmdebstrap with apt-get when missing. Runs containers with runc and the file and
# process limits this machine allows (crun cannot set them here, nor run under its
# hybrid cgroups), through a containers.conf of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/postgres.sh
keep=false
[ "${1:-}" = "--keep" ] && keep=true

for tool in podman runc mmdebstrap catatonit; do
  command -v "$tool" >/dev/null || apt_install podman runc mmdebstrap uidmap netavark catatonit
done
ensure_postgres
ensure_build_deps

work="$(mktemp -d /var/tmp/webserver-container.XXXXXX)"
image=localhost/webserver:check
db="webserver_container_$$"
container="webserver-check-$$"
cleanup() {
  podman rm -f "$container" >/dev/null 2>&1 || true
  podman kube down "$work/kube.yaml" >/dev/null 2>&1 || true
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

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 1. The bases, under the Dockerfile's names, unless already there.
base() { # name, extra packages (none for the runtime's: as Debian's slim image)
  if ! podman image exists "docker.io/library/$1"; then
    log "making $1 with mmdebstrap"
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr ${2:+--include="$2"} --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      --customize-hook='printf "%s\n" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" "Acquire::Languages \"none\";" > "$1"/etc/apt/apt.conf.d/docker-clean' \
      bookworm "$work/base.tar"
    podman import --change 'CMD ["bash"]' "$work/base.tar" "docker.io/library/$1" >/dev/null
    rm -f "$work/base.tar"
  fi
}
base debian:bookworm-slim
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

# 3. The Kubernetes manifests: the Deployment as written, one replica, this image, and
# settings for this machine in place of the ConfigMap's and Secret's (the production
# ones need AWS, Stripe and an identity provider). kube play has no Jobs: migrations
# ran above, as the migrate Job's container does (`webserver migrate`).
kport="$(free_port)"
khost_port="$(free_port)"
python3 - "$work/kube.yaml" "$image" "$url" "$kport" "$khost_port" <<'PY'
import sys
out, image, url, port, host_port = sys.argv[1:]
deployment = open("deploy/kubernetes/deployment.yaml").read()
deployment = deployment.replace("replicas: 3", "replicas: 1")
deployment = deployment.replace("image: webserver", f"image: {image}")
# Host networking (the pod reaches this machine's PostgreSQL on 127.0.0.1): the port is
# the host's, so the named container port goes and the probes name its number.
deployment = deployment.replace(
    "          ports:\n            - name: http\n              containerPort: 7730\n", "")
deployment = deployment.replace("port: http", f"port: {port}")
# podman 4.3 looks a Secret named by envFrom up in its own secret store and could not
# read one made from the Secret (`secret webserver-secrets is not valid JSON: illegal
# base64 data at input byte 0`): the database URL rides in the ConfigMap here.
deployment = deployment.replace(
    "            - secretRef:\n                name: webserver-secrets\n", "")
assert "secretRef" not in deployment
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
  DATABASE_URL: "{url}"
---
"""
open(out, "w").write(settings + deployment)
PY
log "podman kube play (the Deployment, on 127.0.0.1:$kport)"
podman kube play --network host "$work/kube.yaml" >/dev/null
probe() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$kport$1"; }
k_ready=""
for _ in $(seq 1 300); do
  [ "$(probe /readyz)" = 200 ] && { k_ready=yes; break; }
  sleep 0.1
done
[ -n "$k_ready" ] || { podman pod logs "$(podman pod ps -q | head -1)" >&2 || true; echo "container: the pod never got ready" >&2; exit 1; }
live="$(probe /healthz)"
[ "$live" = 200 ] || { echo "container: the liveness probe (/healthz) answered $live" >&2; exit 1; }
pod_token="$(podman exec "$(podman ps -q --filter "ancestor=$image" | head -1)" \
  webserver dev-token --user pod-user --admin)"
pod_assign() {
  curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $pod_token" \
    -H 'Content-Type: application/json' \
    -d '{"region": "us-east-1", "username": "pod-user", "dpi": 96, "client_commit_hash": "local_dev", "wait_secs": 30}' \
    "http://127.0.0.1:$kport/mandelbox/assign"
}
pod_answer="$(pod_assign)"
[ "$pod_answer" = 202 ] || { echo "container: the pod's assign answered $pod_answer" >&2; exit 1; }
podman kube down "$work/kube.yaml" >/dev/null

echo "container: image $image, $size_mb MB, built in $build_secs s; /readyz 200 $ready s after podman run; /regions, then assign 503 and 202; SIGTERM exited 0 in $stop_secs s; kube play: /readyz and /healthz 200, a 202 from the pod"
