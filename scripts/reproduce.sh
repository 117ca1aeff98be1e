#!/usr/bin/env bash
# Reproduce the seed papers' claims: every search_spaces/reproduce/<dataset>/*.yaml as an ordinary sweep on the
# embedded default (local Ray, ./mlflow.db, ./raysweep_runs), then `raysweep claims` writes bench/results/claims.json
# and the README table. About 30-60 minutes per YAML on 2 CPU cores. Resumable: run it again after an interruption
# and each YAML continues its latest sweep (finished trials and evaluations are not repeated).
#   bash scripts/reproduce.sh                                  # everything
#   bash scripts/reproduce.sh search_spaces/reproduce/mnist/fp_better.yaml   # one claim
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/datasets.sh
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(search_spaces/reproduce/mnist/*.yaml search_spaces/reproduce/fashion_mnist/*.yaml)
fi
for f in "${files[@]}"; do
  echo "reproduce: $f"
  .venv/bin/raysweep sweep "$f" --resume
done
.venv/bin/raysweep claims
