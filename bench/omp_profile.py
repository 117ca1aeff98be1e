"""Where GRAD-MATCH's selection time goes: ``omp_nonneg`` on one class of Fashion-MNIST's real sizes (5,900 examples,
1,011 last-layer gradient coordinates of small_cnn, keep 0.5), one torch thread, and the share of it spent in the
NNLS re-fits. Synthetic gradients of that shape: the solver's work depends on the sizes, not the values.

    .venv/bin/python bench/omp_profile.py        # ~30 s; writes bench/results/omp_profile.json
"""

import cProfile
import json
import pstats
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

from raysweep.train.pruning import omp_nonneg  # noqa: E402


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    n, d, keep = 5900, 1011, 0.5
    G = torch.randn(n, d, dtype=torch.float64) * 0.1 + 0.05
    t0 = time.perf_counter()
    omp_nonneg(G, G.sum(0), int(n * keep))
    wall = time.perf_counter() - t0
    prof = cProfile.Profile()
    prof.runcall(omp_nonneg, G, G.sum(0), int(n * keep))
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # own time of every function
    nnls = sum(v[3] for k, v in stats.items() if k[2] == "_nnls")  # cumulative time in the NNLS re-fits
    out = {"examples_per_class": n, "coordinates": d, "keep": keep, "omp_s_per_class": round(wall, 2),
           "nnls_share": round(nnls / total, 3), "classes": 10, "machine": "2-core CPU, one torch thread",
           "measured": time.strftime("%Y-%m-%d %H:%M")}
    (REPO / "bench" / "results" / "omp_profile.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
