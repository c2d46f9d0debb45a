#!/usr/bin/env bash
# README's test command: set up what the tests need on a fresh machine, then run
# the whole suite (unit, property and integration tests on a real Kafka + etcd).
# Extra arguments go to pytest. KMEVENTS_TEST_STACK=native|external|testcontainers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $rc
