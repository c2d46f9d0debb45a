#!/usr/bin/env bash
# The integration suite on testcontainers with a real Docker engine (issue 9).
#
# Installs Debian's docker.io and debootstrap when absent, starts a private Docker engine
# (no bridge, no iptables; its own socket, exec-root and pidfile; images kept in
# ${KMEVENTS_DOCKER_CACHE:-/var/cache/kmevents-docker} so later runs on the same machine
# skip the builds), gets the images (scripts/build_images.sh: official ones where a
# registry answers, locally built kmevents-local/* ones where none does), runs
#   KMEVENTS_TEST_STACK=testcontainers .venv/bin/python -m pytest tests/integration "$@"
# and stops the engine it started, by PID, whatever happens.
# Exit code: pytest's (0 = all passed); "no tests collected" (5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)
say() { echo "ci_testcontainers: $*" >&2; }

# ---- tools --------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing ${missing[*]}: run as root or apt-get install -y ${missing[*]}"
    exit 2
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing docker.io starts nothing here (no init, or policy-rc.d); we start our own.
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -x .venv/bin/python ]] || bash scripts/bootstrap.sh --dev

# ---- a private engine -----------------------------------------------------------------
cache=${KMEVENTS_DOCKER_CACHE:-/var/cache/kmevents-docker}
mkdir -p "$cache"
run=$(mktemp -d /tmp/kmd.XXXXXX) # short: it holds the engine's sockets
data_root=$cache/data
exec 8>"$cache/lock"
if ! flock -n 8; then
  # Another run on this machine holds the cache: build into a throw-away data root.
  data_root=$run/data
  say "$cache is in use by another run: using a fresh data root (images are built again)"
fi
export DOCKER_HOST=unix://$run/docker.sock
dockerd_pid=

stop_engine() {
  rc=$?
  set +e
  if [[ -n $dockerd_pid ]]; then
    declare -F remove_test_containers >/dev/null && remove_test_containers
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 60); do
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$dockerd_pid" 2>/dev/null; then
      say "dockerd ($dockerd_pid) did not stop: killing it"
      kill -KILL "$dockerd_pid" 2>/dev/null
      # its containerd, by the PID file it keeps in our exec-root
      cpid=$(cat "$run/exec/containerd/containerd.pid" 2>/dev/null)
      [[ -n $cpid ]] && kill -KILL "$cpid" 2>/dev/null
    fi
    wait "$dockerd_pid" 2>/dev/null
    say "engine stopped"
  fi
  # dockerd leaves its network namespace mounted in the exec-root
  findmnt -rn -o TARGET | grep "^$run/" | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$run"
  say "finished in $(( $(date +%s) - t_start ))s (exit $rc)"
  exit $rc
}
trap stop_engine EXIT
trap 'exit 130' INT TERM

say "starting dockerd (data root $data_root)"
t0=$(date +%s)
dockerd --bridge=none --iptables=false --ip6tables=false \
  --host "$DOCKER_HOST" --data-root "$data_root" --exec-root "$run/exec" \
  --pidfile "$run/docker.pid" >"$run/dockerd.log" 2>&1 8>&- &
dockerd_pid=$!
until docker version >/dev/null 2>&1; do
  if ! kill -0 "$dockerd_pid" 2>/dev/null || (( $(date +%s) - t0 > 60 )); then
    say "dockerd did not come up; its log:"
    tail -30 "$run/dockerd.log" >&2
    exit 1
  fi
  sleep 0.5
done
say "engine up in $(( $(date +%s) - t0 ))s"
remove_test_containers() { # testcontainers' reaper is off: what an interrupted session left
  local ids
  ids=$(docker ps -aq --filter label=kmevents.test-stack 2>/dev/null) || true
  if [[ -n $ids ]]; then
    say "removing $(wc -w <<<"$ids") test container(s)"
    docker rm -f $ids >/dev/null 2>&1 || true
  fi
}
remove_test_containers

# ---- images -------------------------------------------------------------------------------
t0=$(date +%s)
images=$(bash scripts/build_images.sh)
while IFS='=' read -r k v; do
  case $k in KMEVENTS_IMAGES|KMEVENTS_KAFKA_IMAGE|KMEVENTS_ETCD_IMAGE) export "$k=$v" ;; esac
done <<<"$images"
say "images ($KMEVENTS_IMAGES: $KMEVENTS_KAFKA_IMAGE, $KMEVENTS_ETCD_IMAGE) ready in $(( $(date +%s) - t0 ))s"

# ---- kmevents' own image (issue 8: Dockerfile with the base as a build argument) ------------
t0=$(date +%s)
if [[ $KMEVENTS_IMAGES == local ]]; then base=kmevents-local/debian:bookworm; else base=python:3.11-slim-bookworm; fi
export KMEVENTS_KMEVENTS_IMAGE=kmevents-local/kmevents:0.1.0
# pip inside the build must trust what pip on this host trusts (a TLS-intercepting proxy's CA)
host_ca=${PIP_CERT:-$(.venv/bin/python -m pip config get global.cert 2>/dev/null || true)}
rm -f .build-ca.pem
[[ -n $host_ca && -s $host_ca ]] && cp "$host_ca" .build-ca.pem
docker build -q --network host --pull=false --build-arg "BASE=$base" \
  -t "$KMEVENTS_KMEVENTS_IMAGE" . >/dev/null
rm -f .build-ca.pem
say "image $KMEVENTS_KMEVENTS_IMAGE (base $base) ready in $(( $(date +%s) - t0 ))s"

# ---- the suite ----------------------------------------------------------------------------
t0=$(date +%s)
set +e
KMEVENTS_TEST_STACK=testcontainers TESTCONTAINERS_RYUK_DISABLED=true KMEVENTS_KMEVENTS_IMAGE="$KMEVENTS_KMEVENTS_IMAGE" \
  .venv/bin/python -m pytest tests/integration "$@"
rc=$?
set -e
say "suite on testcontainers finished in $(( $(date +%s) - t0 ))s (pytest exit $rc)"
if [[ $rc -eq 5 ]]; then
  say "pytest collected no tests: that is a failure here"
  exit 1
fi
exit $rc
