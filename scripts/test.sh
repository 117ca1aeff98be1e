#!/usr/bin/env bash
# The README's second command (and CI's): set up, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/datasets.sh  # Fashion-MNIST from Debian, for the reproduction tests
bash scripts/browser.sh   # headless Chromium from Debian, for the MLflow UI test
# Two pytest processes side by side, split by the `ray` marker: the tests that start a Ray one after
# another (each starts a 2-CPU Ray; two at once overload a 2-core machine), the rest beside them.
# Arguments go to both (e.g. a test file: each runs what of it is theirs).
rest_log="$(mktemp)"
trap 'rm -f "$rest_log"' EXIT
.venv/bin/python -m pytest -q -m "not ray" "$@" >"$rest_log" 2>&1 &
rest=$!
set +e
.venv/bin/python -m pytest -q -m ray "$@"
ray_rc=$?
wait "$rest"
rest_rc=$?
set -e
echo "---- the tests that start no Ray ----"
cat "$rest_log"
ok() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ]; }  # 5: none of the selected tests is in this half
ok "$ray_rc" && ok "$rest_rc" && ! { [ "$ray_rc" -eq 5 ] && [ "$rest_rc" -eq 5 ]; }
