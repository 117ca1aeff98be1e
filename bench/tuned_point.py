"""Pick the configuration a tuning sweep (search_spaces/reproduce/<dataset>/tune/*.yaml) found, for its reproduction.

The rule, stated once so the "(tuned)" rows can be traced: among the tuning sweep's finished trials that are not
flagged for catastrophic overfitting and whose training time is within the claim's budget (``--max-time-ratio``
times the baseline's mean training time per seed in the reproduction sweep; no budget with 0), take the one with
the highest validation robust accuracy. Validation only: the tuning sweep never touches the test set.
Prints the trial, its validation numbers and the point to add to the reproduction's ``sweep.enqueue``
(the tuning sweep's keys; write them as the reproduction's search keys).

    .venv/bin/python bench/tuned_point.py tune-local-ball-mnist --baseline reproduce-local-ball-mnist \\
        "PGD-AT, PGD-40 (strong adversary)" --max-time-ratio 0.75
"""

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from claims import latest_state  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tuning", help="the tuning sweep's experiment name")
    ap.add_argument("--baseline", nargs=2, metavar=("EXPERIMENT", "LABEL"), help="the reproduction sweep and its baseline's label")
    ap.add_argument("--max-time-ratio", type=float, default=0.0, help="training-time budget as a multiple of the baseline's")
    ap.add_argument("--runs", default=str(REPO / "raysweep_runs"))
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    tune = latest_state(runs, args.tuning)
    if tune is None:
        raise SystemExit(f"no sweep of {args.tuning!r} under {runs}")
    budget = None
    if args.baseline and args.max_time_ratio > 0:
        rep = latest_state(runs, args.baseline[0])
        base = next((r for r in (rep or {}).get("trials", {}).values() if r.get("label") == args.baseline[1]), None)
        if base is None:
            raise SystemExit(f"no trial labelled {args.baseline[1]!r} in {args.baseline[0]!r}")
        budget = args.max_time_ratio * base["metrics"]["train_time_s"]
    trials = [r for r in tune["trials"].values() if r["status"] == "FINISHED" and not r.get("catastrophic_overfit")
              and (budget is None or r["metrics"]["train_time_s"] <= budget)]
    if not trials:
        raise SystemExit("no finished trial within the budget")
    best = max(trials, key=lambda r: r["metrics"]["val_robust_acc"])
    m = best["metrics"]
    out = {"tuning_sweep": Path(tune["_sweep_dir"]).name, "trial": best["trial"], "val_robust_acc": m["val_robust_acc"],
           "val_clean_acc": m.get("val_clean_acc"), "train_time_s": m["train_time_s"], "budget_s": budget,
           "candidates": len(trials), "of": len(tune["trials"]), "point": best["sampled"]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
