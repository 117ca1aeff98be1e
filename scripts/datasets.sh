#!/usr/bin/env bash
# Datasets that come from Debian rather than PyPI: Fashion-MNIST (package dataset-fashion-mnist, the official IDX
# files under /usr/share/datasets/fashion-mnist). Needs root (or sudo) and the Debian archive; idempotent.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "datasets: installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q dataset-fashion-mnist >/tmp/raysweep-apt.log 2>&1; then
  $SUDO apt-get update -q >>/tmp/raysweep-apt.log 2>&1 || true
  if ! $SUDO apt-get install -y -q dataset-fashion-mnist >>/tmp/raysweep-apt.log 2>&1; then
    tail -5 /tmp/raysweep-apt.log
    echo "datasets: could not install dataset-fashion-mnist; fashion_mnist runs need dataset.root pointing at its IDX files" >&2
    exit 1
  fi
fi
