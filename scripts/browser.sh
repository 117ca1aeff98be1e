#!/usr/bin/env bash
# Headless Chromium (Debian's `chromium`) for the real-browser test of the MLflow UI (tests/test_ui_browser.py).
# Needs root (or sudo) and the Debian archive; idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "browser: installing headless Chromium (Debian package chromium)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >/tmp/raysweep-apt-chromium.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/raysweep-apt-chromium.log 2>&1 || true
  if ! $SUDO apt-get install -y -q --no-install-recommends chromium >>/tmp/raysweep-apt-chromium.log 2>&1; then
    tail -5 /tmp/raysweep-apt-chromium.log
    echo "browser: could not install chromium; tests/test_ui_browser.py needs it" >&2
    exit 1
  fi
fi
