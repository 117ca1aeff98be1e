#!/usr/bin/env bash
# The README's second command (and CI's): set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/datasets.sh  # Fashion-MNIST from Debian, for the reproduction tests
bash scripts/browser.sh   # headless Chromium from Debian, for the MLflow UI test
exec .venv/bin/python -m pytest -q "$@"
