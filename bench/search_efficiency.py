"""Which search to use when: the hypervolume of the front reached on the same budget with the
`tpe`, `nsga2` and `random` samplers, and with TPE plus ASHA early stopping.

Every variant runs the same cross-method MNIST sweep (FGSM-RS vs PGD-AT, as the quickstart,
on a 10k-image subset) with the same number of trials, in-process, one trial at a time, on
this machine. Hypervolume is measured in the (train_time_s, val_robust_acc) plane against the
reference point (largest training time seen in any variant, accuracy 0); larger is better.
Also printed: the total training time each variant spent, so ASHA's savings show.

    .venv/bin/python bench/search_efficiency.py               # 4 variants x 12 trials (~10 min on 2 cores)
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def hypervolume_2d(points, ref_time, ref_acc=0.0):
    """Area dominated by (time ↓, accuracy ↑) points, bounded by the reference point."""
    pts = sorted((t, a) for t, a in points if t <= ref_time and a >= ref_acc)
    # exact: sort by time, take the staircase of running maxima
    area, run_max = 0.0, ref_acc
    stair = []
    for t, a in pts:
        if a > run_max:
            run_max = a
            stair.append((t, a))
    for i, (t, a) in enumerate(stair):
        t_end = stair[i + 1][0] if i + 1 < len(stair) else ref_time
        area += (t_end - t) * (a - ref_acc)
    return area


VARIANTS = {
    "tpe": [],
    "nsga2": ["sweep.sampler=nsga2", "sweep.population_size=4"],
    "random": ["sweep.sampler=random"],
    "tpe + ASHA": ["sweep.early_stopping={scheduler: asha, metric: val_robust_acc, mode: max, grace_period: 1, reduction_factor: 2}"],
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--train-size", type=int, default=10000)
    args = ap.parse_args(argv)
    from raysweep.config import load_config
    from raysweep.tune.runner import run_sweep

    work = Path(tempfile.mkdtemp(prefix="rs-search-"))
    os.chdir(work)
    results = {}
    for name, extra in VARIANTS.items():
        cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [
            f"name=search-{name.replace(' + ', '-').lower()}", f"sweep.num_samples={args.trials}",
            "sweep.max_concurrent=1", f"dataset.train_size={args.train_size}", "resources.executor=inprocess",
            "final_eval.enabled=false", "train.epochs=3", "search.epochs={int: [1, 3]}"] + extra)
        s = run_sweep(cfg, workdir=work, printer=lambda *a, **k: None)
        pts = [(r["train_time_s"], r["val_robust_acc"]) for r in s["rows"] if r["status"] == "FINISHED"]
        results[name] = (pts, sum(t for t, _ in pts), len(s["front"]))
        print(f"{name}: {len(pts)} trials, front {len(s['front'])}", flush=True)
    ref = max(t for pts, _, _ in results.values() for t, _ in pts) * 1.05
    print(f"\n{args.trials} trials each, one at a time; reference point ({ref:.1f} s, 0.0)")
    print("| search | hypervolume | front size | Σ training time (s) | hypervolume per training minute |")
    print("|---|---|---|---|---|")
    for name, (pts, spent, front) in results.items():
        hv = hypervolume_2d(pts, ref)
        print(f"| {name} | {hv:.2f} | {front} | {spent:.0f} | {hv / (spent / 60):.3f} |")


if __name__ == "__main__":
    main()
