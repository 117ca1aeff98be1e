"""Which search to use when: how fast each search finds the cost/robustness front.

Every variant runs the quickstart's cross-method MNIST space (FGSM-RS vs PGD-AT: method, step
size or PGD steps, epochs 1-4, learning rate) on a training subset, two trials at a time as
users run it, with the same number of trials, for several search seeds (``sweep.seed``; the
training seed stays fixed). Variants: ``random``, ``tpe``, ``nsga2``, ``tpe + asha`` (Ray's ASHA
on validation robust accuracy alone) and ``tpe + mo_asha`` (raysweep's multi-objective ASHA).

From each sweep's state.json (completion order, final metrics) the hypervolume of the front in
the (train_time_s, val_robust_acc) plane is recomputed after every completed trial against ONE
reference point for all runs (1.05 x the largest training time any trial took, accuracy 0), and
plotted against the cumulative training time of completed trials. Printed and written to
bench/results/search_efficiency.{json,md} and docs/search_efficiency.png:
- final hypervolume, mean +- std over search seeds;
- the cumulative training time at which each variant first reaches ``random``'s mean final
  hypervolume, as a ratio of ``random``'s own total (the goal for tpe + mo_asha: <= 0.5);
- single-step (FGSM-RS) trials on the final front, mean over seeds.

    .venv/bin/python bench/search_efficiency.py                      # 5 variants x 3 seeds x 24 trials (~20 min)
    .venv/bin/python bench/search_efficiency.py --from-json bench/results/search_efficiency.json  # re-summarise
    .venv/bin/python bench/search_efficiency.py --trials 8 --seeds 1 --variants tpe,tpe+mo_asha   # a smoke run
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

ASHA = "{scheduler: asha, metric: val_robust_acc, mode: max, grace_period: 1, reduction_factor: 2}"
VARIANTS = {
    "random": ["sweep.sampler=random"],
    "tpe": [],
    "nsga2": ["sweep.sampler=nsga2", "sweep.population_size=6"],
    "tpe+asha": [f"sweep.early_stopping={ASHA}"],
    "tpe+mo_asha": ["sweep.early_stopping={scheduler: mo_asha, grace_period: 1, reduction_factor: 2}"],
}


def run_variant(name, seed, args, work):
    from raysweep.config import load_config
    from raysweep.sweep_state import read_state
    from raysweep.tracking.hypervolume import front_eligible
    from raysweep.tune.runner import run_sweep

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", [
        f"name=search-{name.replace('+', '-')}-s{seed}", f"sweep.num_samples={args.trials}", f"sweep.seed={seed}",
        "sweep.max_concurrent=2", f"dataset.train_size={args.train_size}", "resources.executor=inprocess",
        "final_eval.enabled=false", f"train.epochs={args.epochs}", f"search.epochs={{int: [1, {args.epochs}]}}"]
        + VARIANTS[name])
    t0 = time.time()
    summary = run_sweep(cfg, workdir=work, printer=lambda *a, **k: None)
    state = read_state(summary["sweep_dir"])
    order = state["hypervolume"]["done"]
    trials = [state["trials"][str(t)] for t in order]
    return {"variant": name, "seed": seed, "wall_s": time.time() - t0,
            "trials": [{"trial": r["trial"], "method": r["method"], "status": r["status"],
                        "stopped_early": bool(r.get("stopped_early")),
                        # the sweep's own rule for its front (collapsed and infeasible trials are not on it)
                        "eligible": front_eligible(r, cfg.objective_specs, cfg.sweep.front_includes_flagged, cfg.infeasible),
                        "train_time_s": r["metrics"].get("train_time_s"),
                        "val_robust_acc": r["metrics"].get("val_robust_acc")} for r in trials]}


def curve(run, ref):
    """[(cumulative training time, hypervolume)] after each completed trial: the package's hypervolume of the
    trials the sweep's front admits, against one reference point for every run."""
    from raysweep.tracking.pareto import hypervolume_2d

    pts, out, spent = [], [], 0.0
    for t in run["trials"]:
        spent += t["train_time_s"] or 0.0
        if t.get("eligible", t["status"] == "FINISHED" and t["val_robust_acc"] is not None):
            pts.append([t["train_time_s"], t["val_robust_acc"]])
        out.append((spent, hypervolume_2d(pts, ["min", "max"], ref) if pts else 0.0))
    return out


def front_methods(run):
    from raysweep.tracking.pareto import pareto_mask

    fin = [t for t in run["trials"] if t.get("eligible", t["status"] == "FINISHED" and t["val_robust_acc"] is not None)]
    mask = pareto_mask([[t["train_time_s"], t["val_robust_acc"]] for t in fin], ["min", "max"])
    return [t["method"] for t, on in zip(fin, mask) if on]


def hv_at(run, budget):
    """The hypervolume reached once ``budget`` seconds of training had been spent (a step function)."""
    return max([hv for t, hv in run["curve"] if t <= budget], default=0.0)


def summarise(runs):
    ref = [1.05 * max(t["train_time_s"] or 0 for r in runs for t in r["trials"]), 0.0]
    by = {}
    for r in runs:
        r["curve"] = curve(r, ref)
        by.setdefault(r["variant"], []).append(r)
    # equal budget: the least training time any search spent in all, so every run has reached it
    budget = min(r["curve"][-1][0] for r in runs)
    rnd = by.get("random", [])
    target = float(np.mean([r["curve"][-1][1] for r in rnd])) if rnd else None
    rnd_total = float(np.mean([r["curve"][-1][0] for r in rnd])) if rnd else None
    rows = []
    for name, rs in by.items():
        finals = [r["curve"][-1][1] for r in rs]
        reach = []
        for r in rs:
            hit = next((t for t, hv in r["curve"] if target is not None and hv >= target), None)
            reach.append(None if hit is None else hit / rnd_total)
        rows.append({"variant": name, "seeds": len(rs), "hv_mean": float(np.mean(finals)), "hv_std": float(np.std(finals)),
                     "time_total_s": float(np.mean([r["curve"][-1][0] for r in rs])),
                     "reach_random_ratio": (float(np.mean(reach)) if all(x is not None for x in reach) else None),
                     "reach_random_per_seed": reach,
                     "hv_at_budget_mean": float(np.mean([hv_at(r, budget) for r in rs])),
                     "hv_at_budget_std": float(np.std([hv_at(r, budget) for r in rs])),
                     "best_val_robust_acc": float(np.mean([max(t["val_robust_acc"] for t in r["trials"]
                                                               if t["status"] == "FINISHED" and t["val_robust_acc"] is not None)
                                                           for r in rs])),
                     "wall_s": float(np.mean([r["wall_s"] for r in rs])),
                     "single_step_on_front": float(np.mean([front_methods(r).count("fgsm_rs") for r in rs])),
                     "front_size": float(np.mean([len(front_methods(r)) for r in rs])),
                     "stopped_early": float(np.mean([sum(t["stopped_early"] for t in r["trials"]) for r in rs]))})
    return {"reference_point": {"train_time_s": ref[0], "val_robust_acc": ref[1]}, "random_final_hv": target,
            "equal_budget_s": budget, "rows": rows}


def table(summary, args):
    lines = [f"{args.trials} trials per search, {args.seeds} search seeds, two at a time; training subset "
             f"{args.train_size} MNIST images, epochs 1-{args.epochs}; reference point "
             f"({summary['reference_point']['train_time_s']:.1f} s, 0.0). Mean +- std over seeds; equal budget = "
             f"{summary['equal_budget_s']:.1f} s of training, the least any search spent.", "",
             "| search | final hypervolume | hypervolume at equal budget | training time spent (s) | sweep wall (s) "
             "| time to reach random's final HV / random's total | most robust point (val PGD-10) "
             "| FGSM-RS trials on the front | front size | stopped early |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        reach = "not reached in every seed" if r["reach_random_ratio"] is None else f"{r['reach_random_ratio']:.2f}"
        lines.append(f"| {r['variant']} | {r['hv_mean']:.2f} +- {r['hv_std']:.2f} "
                     f"| {r['hv_at_budget_mean']:.2f} +- {r['hv_at_budget_std']:.2f} | {r['time_total_s']:.0f} "
                     f"| {r['wall_s']:.0f} | {reach} | {r['best_val_robust_acc']:.3f} "
                     f"| {r['single_step_on_front']:.1f} | {r['front_size']:.1f} | {r['stopped_early']:.1f} |")
    return "\n".join(lines)


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    horizon = max(r["curve"][-1][0] for r in runs)
    grid = np.linspace(0, horizon, 200)
    for name in dict.fromkeys(r["variant"] for r in runs):
        ys = []
        for r in (r for r in runs if r["variant"] == name):
            t = np.array([c[0] for c in r["curve"]])
            hv = np.array([c[1] for c in r["curve"]])
            idx = np.searchsorted(t, grid, side="right") - 1  # the step function: last value reached
            ys.append(np.where(idx >= 0, hv[np.clip(idx, 0, None)], 0.0))
        m, sd = np.mean(ys, axis=0), np.std(ys, axis=0)
        ax.plot(grid, m, label=name)
        ax.fill_between(grid, m - sd, m + sd, alpha=0.15)
    ax.set_xlabel("cumulative training time of completed trials (s)")
    ax.set_ylabel("front hypervolume")
    ax.set_title("search efficiency (mean +- std over search seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--from-json", help="re-summarise the runs of an earlier search_efficiency.json instead of running")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        args = argparse.Namespace(**dict(saved["args"], out=args.out, from_json=args.from_json))
        runs = saved["runs"]
    else:
        work = Path(tempfile.mkdtemp(prefix="rs-search-"))
        os.chdir(work)
        runs = []
        for seed in range(args.seeds):  # seed-major: machine drift spreads over every variant
            for name in args.variants.split(","):
                runs.append(run_variant(name, seed, args, work))
                print(f"{name} seed {seed}: {len(runs[-1]['trials'])} trials in {runs[-1]['wall_s']:.0f} s", flush=True)
    summary = summarise(runs)
    text = table(summary, args)
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_efficiency.json").write_text(json.dumps({"args": vars(args), **summary, "runs": runs}, indent=1))
    (out / "search_efficiency.md").write_text(text + "\n")
    plot(runs, REPO / "docs" / "search_efficiency.png")
    print(f"\nwritten: {out / 'search_efficiency.json'}, {out / 'search_efficiency.md'}, docs/search_efficiency.png")


if __name__ == "__main__":
    main()
