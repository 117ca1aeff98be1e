"""Pick the configuration a tuning sweep (search_spaces/reproduce/<dataset>/tune/*.yaml) found, for its reproduction.

The rule, stated once so the "(tuned)" rows can be traced: among the tuning sweep's finished trials that are not
flagged for catastrophic overfitting and whose training time is within the claim's budget (``--max-time-ratio``
times the baseline's mean training time per seed in the reproduction sweep; no budget with 0), take the one with
the highest validation robust accuracy (ties: the higher validation FGSM accuracy, then clean accuracy).
Validation only: the tuning sweep never touches the test set.

``--anchor TUNE_LABEL REPRO_LABEL`` calibrates the budget for the machine's load: the tuning sweep's enqueued
point TUNE_LABEL is the same configuration as the reproduction's REPRO_LABEL, so the ratio of their training times
is how much slower (or faster) the tuning sweep's trials ran than the reproduction's, and the budget is multiplied
by it. Both budgets and what each would pick are printed.

The baseline's numbers come from the reproduction's sweep on this machine, else from its committed rows
(``bench/results/claims.json``: the tune and the reproduction may run on different machines).

``--max-cost-ratio`` bounds the cost instead (or as well): the trial's cost units (gradient passes, selection
included) at most that multiple of the baseline's. Cost does not depend on what ran beside a trial, so this budget
needs no calibration; a time budget calibrated by one anchor pair can be off by the ~20% a neighbour moves a
trial's time (data pruning's first pick met its calibrated time budget at 0.82x the baseline's cost, so no fair
timing could have put it under 0.75x).
Prints the trial, its validation numbers and the point to add to the reproduction's ``sweep.enqueue``
(the tuning sweep's keys; write them as the reproduction's search keys).

    .venv/bin/python bench/tuned_point.py tune-local-ball-mnist --baseline reproduce-local-ball-mnist \\
        "PGD-AT, PGD-40 (strong adversary)" --max-time-ratio 0.75
"""

import argparse
import json
import sys
from pathlib import Path

from ..sweep_state import latest_state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tuning", help="the tuning sweep's experiment name")
    ap.add_argument("--baseline", nargs=2, metavar=("EXPERIMENT", "LABEL"), help="the reproduction sweep and its baseline's label")
    ap.add_argument("--max-time-ratio", type=float, default=0.0, help="training-time budget as a multiple of the baseline's")
    ap.add_argument("--max-cost-ratio", type=float, default=0.0, help="cost budget as a multiple of the baseline's")
    ap.add_argument("--anchor", nargs=2, metavar=("TUNE_LABEL", "REPRO_LABEL"),
                    help="a tuning trial that repeats a reproduction configuration: rescales the budget by their time ratio")
    ap.add_argument("--runs", default="raysweep_runs")
    ap.add_argument("--committed", default="bench/results/claims.json",
                    help="where the reproduction's rows are read when its sweep is not on this machine")
    args = ap.parse_args(argv)
    runs = Path(args.runs)
    tune = latest_state(runs, args.tuning)
    if tune is None:
        raise SystemExit(f"no sweep of {args.tuning!r} under {runs}")
    budget, scale, rep, cost_budget = None, 1.0, None, None
    if args.baseline and (args.max_time_ratio > 0 or args.max_cost_ratio > 0):
        rep = latest_state(runs, args.baseline[0]) or _committed(args.baseline[0], Path(args.committed))
    if args.baseline and args.max_time_ratio > 0:
        budget = args.max_time_ratio * _labelled(rep, args.baseline)["metrics"]["train_time_s"]
    if args.baseline and args.max_cost_ratio > 0:
        cost_budget = args.max_cost_ratio * _labelled(rep, args.baseline)["metrics"]["cost"]
    if args.anchor and budget is not None:
        tuned = _labelled(tune, (args.tuning, args.anchor[0]))["metrics"]["train_time_s"]
        scale = tuned / _labelled(rep, (args.baseline[0], args.anchor[1]))["metrics"]["train_time_s"]
    calibrated = None if budget is None else budget * scale
    best, n = _pick(tune, calibrated, cost_budget)
    m = best["metrics"]
    out = {"tuning_sweep": Path(tune["_sweep_dir"]).name, "trial": best["trial"], "val_robust_acc": m["val_robust_acc"],
           "val_clean_acc": m.get("val_clean_acc"), "train_time_s": m["train_time_s"],
           "cost": m.get("cost"), "budget_s": calibrated, "cost_budget": cost_budget, "candidates": n, "of": len(tune["trials"]),
           "point": best["sampled"]}
    if rep and rep.get("_from"):
        out["baseline_from"] = rep["_from"]
    if args.anchor and budget is not None:
        raw, n_raw = _pick(tune, budget, cost_budget)
        out["anchor"] = {"tune_label": args.anchor[0], "repro_label": args.anchor[1], "time_scale": scale,
                         "uncalibrated_budget_s": budget, "uncalibrated_pick": raw["trial"], "uncalibrated_candidates": n_raw}
    print(json.dumps(out, indent=1))
    return 0


def _committed(experiment, path: Path):
    """The reproduction's committed rows (bench/claims.py's claims.json) shaped as sweep state, for a reproduction
    that ran on another machine: each row's mean training time and cost per seed stand for its trial's metrics."""
    rows = json.loads(path.read_text()).get("rows", []) if path.is_file() else []
    trials = {str(i): {"label": r["label"], "metrics": {"train_time_s": r["train_time_s"]["mean"], "cost": r["cost"]["mean"]}}
              for i, r in enumerate(r for r in rows if r.get("experiment") == experiment)}
    return {"trials": trials, "_from": str(path)} if trials else None


def _labelled(state, where):
    trial = next((r for r in (state or {}).get("trials", {}).values() if r.get("label") == where[1]), None)
    if trial is None:
        raise SystemExit(f"no trial labelled {where[1]!r} in {where[0]!r}")
    return trial


def _pick(tune, budget, cost_budget=None):
    trials = [r for r in tune["trials"].values() if r["status"] == "FINISHED" and not r.get("catastrophic_overfit")
              and (budget is None or r["metrics"]["train_time_s"] <= budget)
              and (cost_budget is None or r["metrics"]["cost"] <= cost_budget)]
    if not trials:
        raise SystemExit("no finished trial within the budget")
    # Ties on validation robust accuracy (an RRM tune where PGD breaks every student) go to the trial that holds
    # more against the weaker FGSM attack, then to the higher clean accuracy: still robustness first.
    m = lambda r, k: r["metrics"].get(k) or 0.0  # noqa: E731
    return max(trials, key=lambda r: (m(r, "val_robust_acc"), m(r, "val_fgsm_acc"), m(r, "val_clean_acc"))), len(trials)


if __name__ == "__main__":
    sys.exit(main())
