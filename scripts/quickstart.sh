#!/usr/bin/env bash
# The README's first command: set up, then run the quickstart sweep on the embedded default
# (local Ray, MLflow sqlite store ./mlflow.db, run state in ./raysweep_runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/raysweep sweep search_spaces/quickstart.yaml "$@"
