"""The sweep's own overhead, measured side by side: Ray Train with Ray's stock trainer, Ray
Train the way raysweep launches it (``raysweep/tune/lean_train.py``), and the in-process path.

For each, runs the same sweep of N short trials one at a time and prints
  start-up            = mean ``startup_s``: trial launched -> its first training step
  per-trial overhead  = (sweep wall time − Σ trial training time) / N
  overhead ratio      = sweep wall time / Σ trial training time
plus the driver's fixed start-up (imports, ray.init, MLflow/Optuna set-up).

    .venv/bin/python bench/overhead.py                # 6 trials per executor (~4 min on 2 cores)
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    args = ap.parse_args(argv)
    t_import = time.perf_counter()
    from raysweep._env import apply_quiet_env
    from raysweep.config import load_config
    from raysweep.tune.runner import init_ray, run_sweep

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
        y = work / f"{name}.yaml"
        y.write_text(YAML.format(executor=executor, n=args.trials, train_size=args.train_size, name=name))
        cfg = load_config(y)
        t = time.perf_counter()
        s = run_sweep(cfg, workdir=work, printer=lambda *a, **k: None)
        wall = time.perf_counter() - t
        train = sum(r.get("train_time_s", 0.0) for r in s["rows"])
        starts = [r["startup_s"] for r in s["rows"] if "startup_s" in r]
        # the remainder is start-up, validation (PGD-10 on 200 images) and bookkeeping
        rows.append((name, sum(starts) / max(1, len(starts)), wall, s["sweep_wall_s"], train,
                     (s["sweep_wall_s"] - train) / args.trials))
    print(f"\n{args.trials} trials of 1 epoch FGSM-RS on {args.train_size} MNIST images, one at a time, 2-core CPU machine:")
    print("| executor | start-up to first step (s) | run_sweep wall (s) | tuner.fit wall (s) | Σ train_time_s "
          "| per-trial overhead (s) | fit / Σ train |")
    print("|---|---|---|---|---|---|---|")
    for ex, start, wall, fit, train, ovh in rows:
        print(f"| {ex} | {start:.1f} | {wall:.1f} | {fit:.1f} | {train:.1f} | {ovh:.1f} | {fit / max(train, 1e-9):.2f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
