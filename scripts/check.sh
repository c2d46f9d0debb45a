#!/usr/bin/env bash
# Static checks CI runs beside the tests: lint (ruff) and types (mypy over the
# shipped packages; tests and benchmarks are not type-checked). A method removed
# in a refactor while a call to it stayed once passed the suite and two CI runs
# (the path needed a rebalance to run); mypy reports such a slip at once.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/mypy ]] || bash scripts/bootstrap.sh --dev
.venv/bin/ruff check .
.venv/bin/mypy kmevents processors replay
