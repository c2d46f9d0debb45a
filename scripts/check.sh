#!/usr/bin/env bash
# Static checks CI runs beside the tests: lint (ruff), types (mypy over the
# shipped packages; tests and benchmarks are not type-checked) and the import
# layers (import-linter contracts in pyproject.toml, scripts/lint_imports.py). A method removed
# in a refactor while a call to it stayed once passed the suite and two CI runs
# (the path needed a rebalance to run); mypy reports such a slip at once.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/mypy && -x .venv/bin/lint-imports ]] || bash scripts/bootstrap.sh --dev
.venv/bin/ruff check .
.venv/bin/mypy kmevents processors replay
.venv/bin/python scripts/lint_imports.py
