#!/usr/bin/env bash
# Images for the testcontainers test stack (KMEVENTS_TEST_STACK=testcontainers).
#
#   KMEVENTS_IMAGES=official  the images compose.yaml names (apache/kafka, quay.io/coreos/etcd),
#                             pulled when absent
#   KMEVENTS_IMAGES=local     images built here under local names, never an official one:
#                             kmevents-local/kafka:<kafka version> and kmevents-local/etcd:3.4
#   KMEVENTS_IMAGES=auto      (default) official when the engine has them or one `docker pull`
#                             of each succeeds (20 s timeout), local otherwise
#
# Local images: a Debian bookworm base made with `debootstrap --variant=minbase` (from the
# Debian mirror apt is configured with, or KMEVENTS_DEBIAN_MIRROR) and `docker import`;
# on top, Java 17 + the Kafka jars `kmevents stack up` resolves with Maven (the jar cache,
# ~/.kmevents/kafka-jars/<version>/), and Debian's etcd-server 3.4. Each image carries the
# label kmevents.input-hash (its Dockerfile + inputs + base); a build is skipped when the
# engine already has the image with the same hash.
#
# Talks to the engine in DOCKER_HOST. The last lines of stdout are
#   KMEVENTS_IMAGES=official|local
#   KMEVENTS_KAFKA_IMAGE=...
#   KMEVENTS_ETCD_IMAGE=...
# (tests/stack_containers.py and scripts/ci_testcontainers.sh read them).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export DOCKER_BUILDKIT=0 # the classic builder: same behaviour on engine 20.10 and later
PY=${PYTHON:-$root/.venv/bin/python}
[[ -x $PY ]] || PY=python3

log() { echo "build_images: $*" >&2; }

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' kmevents/stack/pom.xml)
official_kafka=$(sed -n 's/^ *image: *\(.*kafka.*\)$/\1/p' compose.yaml | head -1)
official_etcd=$(sed -n 's/^ *image: *\(.*etcd.*\)$/\1/p' compose.yaml | head -1)
local_base=kmevents-local/debian:bookworm
local_kafka=kmevents-local/kafka:$kafka_version
local_etcd=kmevents-local/etcd:3.4

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || {
  log "no Docker engine answers at ${DOCKER_HOST:-the default socket}; start one (scripts/ci_testcontainers.sh does) and set DOCKER_HOST"
  exit 2
}

# One build at a time per machine (two test sessions may start together).
exec 9>"${TMPDIR:-/tmp}/kmevents-build-images.lock"
flock -w 1800 9

have() { docker image inspect "$1" >/dev/null 2>&1; }
label_of() { docker image inspect -f '{{index .Config.Labels "kmevents.input-hash"}}' "$1" 2>/dev/null || true; }

finish() {
  echo "KMEVENTS_IMAGES=$1"
  echo "KMEVENTS_KAFKA_IMAGE=$2"
  echo "KMEVENTS_ETCD_IMAGE=$3"
  exit 0
}

mode=${KMEVENTS_IMAGES:-auto}
case $mode in
  official|local|auto) ;;
  *) log "KMEVENTS_IMAGES=$mode: use official, local or auto"; exit 2 ;;
esac

if [[ $mode != local ]]; then
  if have "$official_kafka" && have "$official_etcd"; then
    finish official "$official_kafka" "$official_etcd"
  fi
  pulled=yes
  for img in "$official_kafka" "$official_etcd"; do
    have "$img" && continue
    log "pulling $img (20 s timeout)"
    if ! timeout 20 docker pull -q "$img" >&2; then
      pulled=no
      break
    fi
  done
  if [[ $pulled == yes ]]; then
    finish official "$official_kafka" "$official_etcd"
  fi
  if [[ $mode == official ]]; then
    log "KMEVENTS_IMAGES=official but $official_kafka / $official_etcd cannot be pulled"
    exit 2
  fi
  log "no registry reachable: using local images"
fi

# ---- local images ---------------------------------------------------------------------
# The apt mirror: KMEVENTS_DEBIAN_MIRROR, else the first bookworm source apt is configured
# with (one-line .list or deb822 .sources), else deb.debian.org.
apt_uri() { # $1 = suite
  {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk -v s="$1" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1)==s) print $i }'
    for f in /etc/apt/sources.list.d/*.sources; do
      [[ -f $f ]] || continue
      awk -v s="$1" 'BEGIN{RS=""} { u=""; ok=0; n=split($0, L, "\n");
        for (j=1;j<=n;j++) { if (L[j] ~ /^URIs:/) { split(L[j], a, " "); u=a[2] }
          if (L[j] ~ /^Suites:/) { m=split(L[j], b, " "); for (k=2;k<=m;k++) if (b[k]==s) ok=1 } }
        if (ok && u != "") print u }' "$f"
    done
  } | head -1
}
mirror=${KMEVENTS_DEBIAN_MIRROR:-$(apt_uri bookworm)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${KMEVENTS_DEBIAN_SECURITY_MIRROR:-$(apt_uri bookworm-security)}

build_base() { # $1 = input hash
  command -v debootstrap >/dev/null || {
    log "debootstrap is missing: apt-get install -y debootstrap"
    exit 2
  }
  local rootfs
  rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/kmevents-rootfs.XXXXXX")
  log "debootstrap --variant=minbase bookworm from $mirror"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
    tail -30 "$rootfs.log" >&2
    rm -rf "$rootfs" "$rootfs.log"
    exit 1
  fi
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [[ -n $security ]] && echo "deb $security bookworm-security main"
  } >"$rootfs/etc/apt/sources.list"
  # No service starts at package install inside an image.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV DEBIAN_FRONTEND=noninteractive' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL kmevents.input-hash=$1" \
    - "$local_base" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

sha() { sha256sum | cut -c1-16; }

t0=$(date +%s)
base_key=$( { declare -f build_base; echo "$mirror|$security"; } | sha)
if [[ $(label_of "$local_base") == "$base_key" ]]; then
  log "$local_base is up to date"
else
  log "building $local_base"
  build_base "$base_key"
fi

jar_dir=$("$PY" -c 'from kmevents.settings import load; from kmevents.stack import jars; print(jars.resolve(load().stack.jar_cache))')
jars_key=$(cd "$jar_dir" && ls *.jar | LC_ALL=C sort | xargs sha256sum | sha)
kafka_key=$( { cat docker/kafka/Dockerfile docker/kafka/kafka-run docker/kafka/log4j.properties; echo "$jars_key|$base_key"; } | sha)
etcd_key=$( { cat docker/etcd/Dockerfile; echo "$base_key"; } | sha)

build() { # $1 = image, $2 = key, $3 = context
  log "building $1"
  docker build --network host --pull=false --build-arg "BASE=$local_base" \
    --label "kmevents.input-hash=$2" -t "$1" "$3" >&2
}

if [[ $(label_of "$local_kafka") == "$kafka_key" ]]; then
  log "$local_kafka is up to date"
else
  ctx=$(mktemp -d "${TMPDIR:-/var/tmp}/kmevents-kafka-ctx.XXXXXX")
  trap 'rm -rf "$ctx"' EXIT
  cp docker/kafka/Dockerfile docker/kafka/kafka-run docker/kafka/log4j.properties "$ctx/"
  mkdir "$ctx/libs"
  cp "$jar_dir"/*.jar "$ctx/libs/"
  build "$local_kafka" "$kafka_key" "$ctx"
  rm -rf "$ctx"
fi

if [[ $(label_of "$local_etcd") == "$etcd_key" ]]; then
  log "$local_etcd is up to date"
else
  build "$local_etcd" "$etcd_key" docker/etcd
fi

# Older builds of the same tags, now untagged.
docker image prune -f --filter label=kmevents.input-hash >/dev/null || true
log "local images ready in $(( $(date +%s) - t0 ))s"
finish local "$local_kafka" "$local_etcd"
