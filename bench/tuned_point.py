"""Pick the configuration a tuning sweep found, for its reproduction (the rule: raysweep/repro/tuned_point.py).
Run from anywhere; paths default to this checkout's raysweep_runs/ and bench/results/claims.json.

    .venv/bin/python bench/tuned_point.py TUNING_EXPERIMENT --baseline REPRO_EXPERIMENT LABEL --max-time-ratio R
"""

import os
import sys
from pathlib import Path

from raysweep.repro.tuned_point import main

if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main())
