"""Record real per-epoch learning curves on a finite grid of configurations, once, for replaying searches.

Every grid point is trained by raysweep's own sweep (every point enqueued, two trials at a time, in-process
trials) and its per-epoch reports are read back from the sweep's state. The grid spans the cross-method space
of search_spaces/all_methods.yaml (resnet_small width 8: FP-Better needs residual blocks): each method x two
values of its main knob x epochs {1, 2, 4} under the ``cyclic`` schedule (one cycle over the trial's own
epochs, so an epochs=2 run is not the first half of an epochs=4 run and each is trained), plus each
method x knob at 4 epochs under ``cyclic_rungs`` (a cycle per rung segment 0-1, 1-2, 2-4; its ε warm-up
over the first 30% of the first segment, as an epochs=1 cyclic run has over 30% of its one epoch).

RRM is left out: its in-trial teacher (a PGD-7 run as long as the student) more than doubles a trial, for a
method whose MNIST robustness at these budgets is ~0 (bench/results/methods_mnist.md).

Written: ``bench/results/replay_curves_<dataset>.json``: the sizes, and per run its params, its trial record's
status/flags and per epoch the cumulative ``train_time_s`` and ``cost``, ``val_robust_acc``,
``val_clean_acc``, ``val_fgsm_acc`` and ``catastrophic_overfit`` (what the sweep's front rule reads).

Sizes: a few thousand training images (batch 64, 500 validation images, PGD-5) so that one dataset's grid,
two trials at a time on 2 CPU cores, records in about 20 minutes; the JSON keeps the sizes and the wall time.

    .venv/bin/python bench/record_curves.py --dataset mnist --train-size 2000
    .venv/bin/python bench/record_curves.py --dataset fashion_mnist --train-size 1600
    .venv/bin/python bench/record_curves.py --smoke --out /tmp/curves.json      # a few seconds, synthetic data
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

METHODS = ["pgd_at", "fgsm_rs", "trades", "mart", "fp_better", "backward_smoothing", "local_ball"]
# The main knob of each method, two values inside all_methods.yaml's range around the paper default.
KNOBS = {
    "pgd_at": ("pgd_at.steps", [3, 7]),
    "fgsm_rs": ("fgsm_rs.alpha", ["eps", "1.25eps"]),   # 1.25 eps: Wong et al.; ε-relative so both datasets share it
    "trades": ("trades.beta", [1.0, 6.0]),               # official: 1 on MNIST, 6 on CIFAR
    "mart": ("mart.beta", [2.0, 6.0]),
    "fp_better": ("fp_better.keep_prob_last", [0.5, 0.8]),
    "backward_smoothing": ("backward_smoothing.gamma", [0.5, 2.0]),
    "local_ball": ("local_ball.rho", [0.5, 1.0]),
}
# PGD steps inside TRADES and MART fixed at 5 (default 10): the recording has to fit its compute cap.
FIXED_PARAMS = {"trades": {"steps": 5}, "mart": {"steps": 5}}
EPOCHS = [1, 2, 4]
RUNG_EPOCHS = 4
EPS = {"mnist": 0.3, "fashion_mnist": 0.1, "synthetic": 0.3}  # the repo's reproductions' ε per dataset
WARMUP = 0.3
# Rough relative cost of an epoch (forward+backward passes per example), to start the dearest runs first so
# the two slots finish together.
PASSES = {"pgd_at.steps": lambda v: v + 1, "trades": 7, "mart": 7, "fgsm_rs": 2, "fp_better": 1.5,
          "backward_smoothing": 3, "local_ball": 3.5}
HISTORY_KEYS = ["epoch", "train_time_s", "cost", "val_robust_acc", "val_clean_acc", "val_fgsm_acc",
                "catastrophic_overfit"]


def grid(methods=METHODS, epochs=EPOCHS, rungs=True):
    """The grid's runs: {method, <knob>: value, epochs, schedule, eps_warmup} (search keys of the sweep)."""
    runs = []
    for m in methods:
        key, values = KNOBS[m]
        for v in values:
            for e in epochs:
                runs.append({"method": m, key: v, "epochs": e, "schedule": "cyclic", "eps_warmup": WARMUP})
            if rungs:
                runs.append({"method": m, key: v, "epochs": RUNG_EPOCHS, "schedule": "cyclic_rungs",
                             "eps_warmup": round(WARMUP / RUNG_EPOCHS, 6)})
    return runs


def run_key(point):
    """A run's name in the curve table: method, knob value, schedule, epochs."""
    m = point["method"]
    key, _ = KNOBS.get(m, (None, None))
    return f"{m}|{point.get(key)}|{point['schedule']}|{point['epochs']}"


def _passes(point):
    m = point["method"]
    return PASSES["pgd_at.steps"](point["pgd_at.steps"]) if m == "pgd_at" else PASSES[m]


def sweep_yaml(dataset, points, train_size, val_size, pgd_steps, name, width=8, batch_size=64):
    """The recording sweep: all_methods.yaml's setting, every point enqueued, nothing else sampled."""
    methods = sorted({p["method"] for p in points}, key=METHODS.index)
    search = {"epochs": {"choice": sorted({p["epochs"] for p in points})},
              "schedule": {"choice": sorted({p["schedule"] for p in points})},
              "eps_warmup": {"choice": sorted({p["eps_warmup"] for p in points})}}
    for m in methods:
        key = KNOBS[m][0]
        search[key] = {"choice": list(dict.fromkeys(p[key] for p in points if p["method"] == m))}
    return {
        "name": name,
        "method": {"choice": methods} if len(methods) > 1 else methods[0],
        "dataset": {"name": dataset, "val_size": val_size, "train_size": train_size},
        "model": {"name": "resnet_small", "width": width},
        "threat": {"norm": "linf", "eps": EPS[dataset]},
        "train": {"epochs": max(p["epochs"] for p in points), "batch_size": batch_size, "lr": 0.005, "optimizer": "adam",
                  "weight_decay": 0.0, "schedule": "cyclic", "eps_warmup": WARMUP},
        "eval": {"val_pgd_steps": pgd_steps},
        "params": {m: FIXED_PARAMS[m] for m in methods if m in FIXED_PARAMS},
        "search": search,
        "objectives": [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}],
        "sweep": {"num_samples": len(points), "max_concurrent": 2, "sampler": "random", "seed": 0,
                  "enqueue": [dict(p) for p in points]},
        "resources": {"num_workers": 1, "cpus_per_worker": 1, "use_gpu": False, "executor": "inprocess"},
        "final_eval": {"enabled": False},
    }


def curves_from_state(state, points):
    """The curve table's runs from a sweep state's trial records, matched to the grid points by their sampled
    params. Each history entry is one epoch's report (epochs 1..n in order)."""
    by_key = {run_key(p): p for p in points}
    runs = {}
    for rec in state["trials"].values():
        sampled = dict(rec.get("sampled") or {})
        key = run_key(sampled)
        if key not in by_key:
            continue
        hist = sorted(rec.get("history") or [], key=lambda h: h.get("epoch", 0))
        assert [int(h["epoch"]) for h in hist] == list(range(1, len(hist) + 1)), f"{key}: epochs not 1..n"
        runs[key] = {
            "params": sampled, "trial": rec["trial"], "status": rec["status"],
            "catastrophic_overfit": bool(rec.get("catastrophic_overfit")), "error": rec.get("error"),
            "epochs": [{k: h.get(k) for k in HISTORY_KEYS if k in h} for h in hist],
        }
    return runs


def record(args):
    from raysweep.config import load_config
    from raysweep.sweep_state import read_state
    from raysweep.tune.runner import run_sweep

    import yaml

    if args.smoke:
        points = [{"method": "pgd_at", "pgd_at.steps": 1, "epochs": 1, "schedule": "cyclic", "eps_warmup": WARMUP},
                  {"method": "pgd_at", "pgd_at.steps": 1, "epochs": 2, "schedule": "cyclic", "eps_warmup": WARMUP},
                  {"method": "fgsm_rs", "fgsm_rs.alpha": "1.25eps", "epochs": 2, "schedule": "cyclic_rungs",
                   "eps_warmup": WARMUP / 2}]
    else:
        points = grid()
    points.sort(key=lambda p: -_passes(p) * p["epochs"])  # dearest first: the two slots end together
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rs-record-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = sweep_yaml(args.dataset, points, args.train_size, args.val_size, args.val_pgd_steps,
                     f"replay-curves-{args.dataset}", width=args.width, batch_size=args.batch_size)
    if args.smoke:
        raw["model"] = {"name": "small_cnn"}
        raw["train"]["batch_size"] = 32
    ypath = work / "record.yaml"
    ypath.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(ypath, [])
    os.chdir(work)
    t0 = time.time()
    quiet = (lambda *a, **k: None) if args.quiet else print
    summary = run_sweep(cfg, workdir=work, printer=quiet)
    wall = time.time() - t0
    state = read_state(summary["sweep_dir"])
    runs = curves_from_state(state, points)
    missing = sorted(set(map(run_key, points)) - set(runs))
    import torch

    out = {
        "dataset": args.dataset, "eps": EPS[args.dataset],
        "sizes": {"train_size": args.train_size, "val_size": args.val_size, "val_pgd_steps": args.val_pgd_steps,
                  "model": raw["model"], "batch_size": raw["train"]["batch_size"]},
        "setting": {k: raw[k] for k in ("train", "params", "threat")},
        "knobs": {m: [KNOBS[m][0], list(dict.fromkeys(p[KNOBS[m][0]] for p in points if p["method"] == m))]
                  for m in sorted({p["method"] for p in points})},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads_per_trial": 1, "max_concurrent": 2},
        "wall_s": wall, "missing": missing, "sweep_dir": str(summary["sweep_dir"]),
        "runs": runs,
    }
    path = Path(args.out or REPO / "bench" / "results" / f"replay_curves_{args.dataset}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"{len(runs)}/{len(points)} runs recorded in {wall:.0f} s -> {path}" + (f"; missing {missing}" if missing else ""),
          flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "synthetic"])
    ap.add_argument("--train-size", type=int, default=2000)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--val-pgd-steps", type=int, default=5)
    ap.add_argument("--width", type=int, default=8)
    # 64, not all_methods.yaml's 128: on a few thousand images that is twice the optimiser steps for ~25% more time
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out")
    ap.add_argument("--workdir")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="three tiny runs on synthetic data (seconds)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.dataset, args.train_size, args.val_size, args.val_pgd_steps = "synthetic", 64, 32, 1
    return record(args)


if __name__ == "__main__":
    main()
