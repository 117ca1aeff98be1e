"""The sweep's own overhead, measured side by side: Ray Train with Ray's stock trainer, Ray
Train the way raysweep launches it (``raysweep/tune/lean_train.py``), and the in-process path.

For each, runs the same sweep of N short trials one at a time and prints
  start-up            = mean ``startup_s``: trial launched -> its first training step
  per-trial overhead  = (sweep wall time − Σ trial training time) / N
  overhead ratio      = sweep wall time / Σ trial training time
plus the driver's fixed start-up (imports, ray.init, MLflow/Optuna set-up).

``--quickstart`` measures what users run instead: search_spaces/quickstart.yaml as written (full MNIST, TPE,
two trials at a time), final evaluation off, the same trials for each executor (``train`` and ``inprocess``, one
after the other in one run), and prints per executor the median and max ``startup_s``, the trials-phase wall time
(Tune's fit), the wall ratio ``train / inprocess``, and how many of the trials both executors ran with the same parameters reached the same validation accuracies
(TPE's later suggestions depend on measured times, so they may differ between runs). ``--out FILE`` writes the figures as JSON.

    .venv/bin/python bench/overhead.py                # 6 trials per executor (~4 min on 2 cores)
    .venv/bin/python bench/overhead.py --trials 4 --out bench/results/overhead.json
    .venv/bin/python bench/overhead.py --quickstart --out bench/results/executors.json   # 8 trials each (~10 min)
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

YAML = """
name: overhead-{name}
method: fgsm_rs
dataset: {{name: mnist, val_size: 200, train_size: {train_size}}}
model: {{name: small_cnn}}
threat: {{eps: 0.3}}
train: {{epochs: 1, batch_size: 128, lr: 0.005, optimizer: adam, weight_decay: 0.0}}
search: {{lr: {{float: [0.001, 0.01], log: true}}}}
sweep: {{num_samples: {n}, max_concurrent: 1, sampler: random, seed: 0}}
resources: {{num_workers: 1, cpus_per_worker: 1, executor: {executor}}}
final_eval: {{enabled: false}}
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--executors", default="train-stock,train,inprocess",
                    help="train-stock: Ray's TorchTrainer + TuneReportCallback (RAYSWEEP_LEAN_TRAIN=0)")
    ap.add_argument("--quickstart", action="store_true",
                    help="the quickstart YAML as written, two at a time (executors train,inprocess unless given)")
    ap.add_argument("--out", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    if args.quickstart and args.executors == ap.get_default("executors"):
        args.executors = "train,inprocess"
    t_import = time.perf_counter()
    from raysweep._env import apply_quiet_env
    from raysweep.config import load_config
    from raysweep.tune.ray_setup import init_ray
    from raysweep.tune.runner import run_sweep

    work = Path(tempfile.mkdtemp(prefix="rs-ovh-"))
    os.chdir(work)
    apply_quiet_env(work)
    t0 = time.perf_counter()
    init_ray(work)
    t_ray = time.perf_counter() - t0
    print(f"imports {t0 - t_import:.1f} s, ray.init {t_ray:.1f} s", flush=True)
    rows = []
    for name in args.executors.split(","):
        executor = name.split("-")[0]
        os.environ["RAYSWEEP_LEAN_TRAIN"] = "0" if name == "train-stock" else "1"  # read by run_sweep
        if args.quickstart:
            # the same sampled trials for each executor: the YAML's seeded TPE, trial count as given
            n = args.trials if args.trials != ap.get_default("trials") else None
            over = [f"name=overhead-qs-{name}", f"resources.executor={executor}", "final_eval.enabled=false"]
            cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", over + ([f"sweep.num_samples={n}"] if n else []))
        else:
            y = work / f"{name}.yaml"
            y.write_text(YAML.format(executor=executor, n=args.trials, train_size=args.train_size, name=name))
            cfg = load_config(y)
        t = time.perf_counter()
        s = run_sweep(cfg, workdir=work, printer=lambda *a, **k: None)
        wall = time.perf_counter() - t
        train = sum(r.get("train_time_s", 0.0) for r in s["rows"])
        firsts = _first_reports(s["sweep_dir"])
        starts = [h["startup_s"] for h in firsts if "startup_s" in h]
        # the remainder is start-up, validation (PGD-10 on 200 images) and bookkeeping
        if args.quickstart:
            phases = {p: statistics.median(h.get(p, 0.0) for h in firsts) for p in PHASES}
            rows.append((name, len(s["rows"]), statistics.median(starts), max(starts), s["sweep_wall_s"], wall, train, phases,
                         _trained(s["rows"])))
            continue
        rows.append((name, sum(starts) / max(1, len(starts)), wall, s["sweep_wall_s"], train,
                     (s["sweep_wall_s"] - train) / args.trials))
    if args.quickstart:
        result = _print_quickstart(rows)
        if args.out:
            Path(args.out).write_text(json.dumps(dict(result, command="bench/overhead.py " + " ".join(argv or sys.argv[1:]),
                                                      date=time.strftime("%Y-%m-%d")), indent=1) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        return
    print(f"\n{args.trials} trials of 1 epoch FGSM-RS on {args.train_size} MNIST images, one at a time, 2-core CPU machine:")
    print("| executor | start-up to first step (s) | run_sweep wall (s) | tuner.fit wall (s) | Σ train_time_s "
          "| per-trial overhead (s) | fit / Σ train |")
    print("|---|---|---|---|---|---|---|")
    for ex, start, wall, fit, train, ovh in rows:
        print(f"| {ex} | {start:.1f} | {wall:.1f} | {fit:.1f} | {train:.1f} | {ovh:.1f} | {fit / max(train, 1e-9):.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "command": "bench/overhead.py " + " ".join(argv or sys.argv[1:]), "date": time.strftime("%Y-%m-%d"),
            "trials": args.trials, "train_size": args.train_size, "cpus": os.cpu_count(),
            "executors": {ex: {"mean_startup_s": start, "run_sweep_wall_s": wall, "trials_phase_s": fit,
                               "sum_train_time_s": train, "per_trial_overhead_s": ovh,
                               "trials_phase_to_train": fit / max(train, 1e-9)}
                          for ex, start, wall, fit, train, ovh in rows}}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


PHASES = {"startup_before_process_s": "before the worker process existed (controller, placement group, process spawn)",
          "startup_process_s": "worker process start to the training loop (imports, actor and backend set-up)",
          "startup_build_s": "building the trial (data, model, method)",
          "startup_first_step_s": "built to the first training step"}


def _trained(rows):
    """Each trial's sampled parameters and validation accuracies, by trial number: what an executor must not change."""
    keep = ("val_robust_acc", "val_clean_acc", "epoch")
    return {str(r["trial"]): {k: v for k, v in r.items() if k in keep or k.startswith("param:") or k == "method"} for r in rows}


def _first_reports(sweep_dir):
    """Each trial's first report (the one that carries its start-up), from the sweep's state."""
    from raysweep.sweep_state import read_state

    trials = read_state(sweep_dir)["trials"].values()
    return [t["history"][0] for t in trials if t.get("history")]


def _print_quickstart(rows):
    print("\nsearch_spaces/quickstart.yaml as written (two trials at a time), final evaluation off, 2-core CPU machine:")
    print("| executor | trials | median startup_s | max startup_s | trials phase (tuner.fit, s) | run_sweep wall (s) "
          "| Σ train_time_s |")
    print("|---|---|---|---|---|---|---|")
    for ex, n, med, mx, fit, wall, train, *_ in rows:
        print(f"| {ex} | {n} | {med:.1f} | {mx:.1f} | {fit:.1f} | {wall:.1f} | {train:.1f} |")
    print("\nwhere start-up went (median s over the trials, per phase):")
    print("| phase | " + " | ".join(r[0] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for p, what in PHASES.items():
        print(f"| {what} | " + " | ".join(f"{r[7][p]:.2f}" for r in rows) + " |")
    fits = {r[0]: r[4] for r in rows}
    result = {"executors": {r[0]: {"trials": r[1], "median_startup_s": r[2], "max_startup_s": r[3], "trials_phase_s": r[4],
                                   "run_sweep_wall_s": r[5], "sum_train_time_s": r[6], "startup_phases_median_s": r[7]}
                            for r in rows}}
    if "train" in fits and "inprocess" in fits:
        result["wall_ratio_train_to_inprocess"] = fits["train"] / fits["inprocess"]
        print(f"trials-phase wall ratio train / inprocess: {result['wall_ratio_train_to_inprocess']:.2f}")
    # TPE's suggestions after its random start-up depend on the measured train_time_s, so later trials may differ
    # between runs; the trials both executors ran with the same parameters must reach the same accuracies
    trained = [r[8] for r in rows]
    params = lambda t: {k: v for k, v in t.items() if k.startswith("param:") or k == "method"}  # noqa: E731
    both = [k for k in trained[0] if all(k in t and params(t[k]) == params(trained[0][k]) for t in trained[1:])]
    same = [k for k in both if all(t[k] == trained[0][k] for t in trained[1:])]
    result["same_params_trials"], result["same_params_and_val_metrics"] = len(both), len(same)
    print(f"trials both executors ran with the same parameters: {len(both)} of {len(trained[0])}; "
          f"of those with the same validation accuracies: {len(same)}")
    return result


if __name__ == "__main__":
    main()
