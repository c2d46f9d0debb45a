#!/usr/bin/env bash
# Static checks CI runs beside the tests: lint (ruff), types (mypy over the
# shipped packages; tests and benchmarks are not type-checked), the import
# layers (import-linter contracts in pyproject.toml, scripts/lint_imports.py)
# and the Prometheus alerting rules in deploy/ (promtool, from Debian's
# prometheus package: `bash scripts/bootstrap.sh --dev` installs it). A method removed
# in a refactor while a call to it stayed once passed the suite and two CI runs
# (the path needed a rebalance to run); mypy reports such a slip at once.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/mypy && -x .venv/bin/lint-imports ]] || bash scripts/bootstrap.sh --dev
.venv/bin/ruff check .
.venv/bin/mypy kmevents processors replay
.venv/bin/python scripts/lint_imports.py
if ! command -v promtool >/dev/null; then
  echo "check.sh: promtool not found: the alerting rules in deploy/prometheus were not checked" >&2
  echo "  hint: bash scripts/bootstrap.sh --dev (installs Debian's prometheus package), or put promtool on PATH" >&2
  exit 2
fi
promtool check rules deploy/prometheus/kmevents-rules.yaml
(cd deploy/prometheus && promtool test rules kmevents-rules.test.yaml)
