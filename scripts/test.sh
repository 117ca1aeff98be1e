#!/usr/bin/env bash
# The README's second command (and CI's): set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/datasets.sh  # Fashion-MNIST from Debian, for the reproduction tests
bash scripts/browser.sh   # headless Chromium from Debian, for the MLflow UI test
# Two workers: the tests that start Ray run one after another on one, the rest module by module on
# the other (the scheduler in tests/conftest.py); `-n 0` as an argument runs everything in this process.
exec .venv/bin/python -m pytest -q -n 2 --dist loadscope --no-loadscope-reorder "$@"
