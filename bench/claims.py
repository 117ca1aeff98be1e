"""The claims' verdicts from the reproduction sweeps: ``raysweep claims`` (raysweep/repro/), run from the
repository's root so its default paths (raysweep_runs/, bench/results/, docs/claims/, README.md) are this checkout's.

    .venv/bin/python bench/claims.py [--runs DIR] [--fresh] [--no-readme]
    .venv/bin/python bench/claims.py --pages-only     # docs/claims/ from the committed bench/results/claims.json
"""

import os
import sys
from pathlib import Path

from raysweep.cli import main

if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main(["claims", *sys.argv[1:]]))
