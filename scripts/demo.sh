#!/usr/bin/env bash
# README's first command: set everything up on a fresh machine, then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/kmevents demo "$@"
