"""A claim's speed-up measured fairly: its baseline and its candidate trained side by side, under the same load.

A reproduction sweep runs two trials at a time, so each row's training time depends on what happened to run next to
it (the same configuration took 434 s beside one neighbour and ~500 s beside another; a final AutoAttack evaluation
or a GRAD-MATCH trial next door slows an epoch by up to 40%). Cost ratios are immune to that; time ratios are not.
This script takes two labelled configurations of one reproduction YAML, builds each exactly as the sweep would
(``cfg.trial_spec(point)``, one seed per round), and trains both at the same time in two processes, one core and one
torch thread each (what ``max_concurrent: 2`` on two cores gives a sweep's trials). When one finishes first, a
discarded copy of it keeps running until the other is done, so neither ever has the machine to itself. It prints the
per-round training times and the ratio of their means, and records them in ``bench/results/paired_times.json``,
where ``bench/claims.py`` judges the claim's speed by this ratio (and shows the sweep's beside it).

    .venv/bin/python bench/paired_time.py search_spaces/reproduce/mnist/data_pruning.yaml \\
        "PGD-AT" "PGD-AT + pruning (tuned)"            # one round (~10 min for MNIST's 4-5 epoch rows)
    ... data_pruning_trades_mart.yaml "TRADES-10" "TRADES + pruning (tuned)" \
        --baseline-from search_spaces/reproduce/mnist/backward_smoothing.yaml   # the baseline's point elsewhere
    ... --rounds 2                                      # seeds 0 and 1, one pair after the other
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "bench" / "results" / "paired_times.json"


def spec_of(path: Path, label: str, seed_offset: int) -> Dict[str, Any]:
    """The trial spec the sweep builds for the enqueued point ``label``, one seed (the sweep's first + offset)."""
    from raysweep.config import load_yaml, parse_config

    cfg = parse_config(load_yaml(path), path)
    points = [p for p in cfg.sweep.enqueue if p.get("label") == label]
    if not points:
        raise SystemExit(f"paired_time: error: {path}: sweep.enqueue has no point labelled {label!r}; "
                         f"labels: {', '.join(repr(p.get('label')) for p in cfg.sweep.enqueue)}")
    spec = cfg.trial_spec({k: v for k, v in points[0].items() if k != "label"}).to_dict()
    spec["repeats"] = 1
    spec["train"]["seed"] = int(spec["train"]["seed"]) + seed_offset
    spec["device"] = "cpu"
    return spec


def worker(spec_file: str, out_file: str) -> int:
    import torch

    from raysweep.train import run_trial

    torch.set_num_threads(1)
    hist = run_trial(json.loads(Path(spec_file).read_text()), device="cpu")
    last = hist[-1]
    Path(out_file).write_text(json.dumps({"train_time_s": last["train_time_s"], "cost": last["cost"],
                                          "epoch_time_s": [h["epoch_time_s"] for h in hist],
                                          "val_robust_acc": last["val_robust_acc"]}))
    return 0


def _launch(spec_file: Path, out_file: Path, core: int) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", str(spec_file), str(out_file)]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    # one core each (Ray does not pin; pinning keeps the two from trading cores mid-run)
    if len(cores) >= 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cores[core % len(cores)])] + cmd
    return subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_round(specs: Dict[str, Dict[str, Any]], tmp: Path, r: int) -> Dict[str, Dict[str, Any]]:
    """Both configurations at once; whichever ends first is replaced by a discarded copy until the other ends."""
    files, procs = {}, {}
    for core, (name, spec) in enumerate(specs.items()):
        sf = tmp / f"{name}-{r}.spec.json"
        sf.write_text(json.dumps(spec))
        files[name] = (sf, tmp / f"{name}-{r}.out.json", core)
        procs[name] = _launch(*files[name])
    fillers: List[subprocess.Popen] = []
    filled = set()
    try:
        while len(filled) < len(procs):
            for name, p in procs.items():
                if name in filled or p.poll() is None:
                    continue
                if p.returncode != 0:
                    raise SystemExit(f"paired_time: error: the {name} run exited {p.returncode}")
                filled.add(name)
                if len(filled) < len(procs):  # keep the load on: the other one is still training
                    sf, _, core = files[name]
                    fillers.append(_launch(sf, tmp / f"filler-{name}-{r}.json", core))
            time.sleep(1.0)
    finally:
        for p in fillers + [p for p in procs.values() if p.poll() is None]:
            p.kill()
            p.wait()
    return {name: json.loads(files[name][1].read_text()) for name in procs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("yaml", nargs="?")
    ap.add_argument("baseline", nargs="?", help="label of the baseline point in sweep.enqueue")
    ap.add_argument("candidate", nargs="?", help="label of the candidate point")
    ap.add_argument("--rounds", type=int, default=1, help="pairs run one after the other, seeds 0..rounds-1")
    ap.add_argument("--baseline-from", metavar="YAML",
                    help="the baseline's point is in this YAML (e.g. TRADES-10 of backward_smoothing.yaml)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--worker", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    if not (args.yaml and args.baseline and args.candidate):
        ap.error("give a reproduction YAML, the baseline's label and the candidate's label")
    path = Path(args.yaml)
    base_path = Path(args.baseline_from) if args.baseline_from else path
    for p in (path, base_path):
        if not p.is_file():
            print(f"paired_time: error: {p}: no such file", file=sys.stderr)
            return 2
    rounds = []
    with tempfile.TemporaryDirectory(prefix="paired-time-") as tmp:
        for r in range(args.rounds):
            specs = {"baseline": spec_of(base_path, args.baseline, r), "candidate": spec_of(path, args.candidate, r)}
            res = one_round(specs, Path(tmp), r)
            rounds.append(res)
            b, c = res["baseline"], res["candidate"]
            print(f"round {r} (seed +{r}): {args.baseline}: {b['train_time_s']:.1f} s, cost {b['cost']:.2f} | "
                  f"{args.candidate}: {c['train_time_s']:.1f} s, cost {c['cost']:.2f} | "
                  f"time ratio {c['train_time_s'] / b['train_time_s']:.3f}", flush=True)
    mean = lambda k, w: sum(x[w][k] for x in rounds) / len(rounds)  # noqa: E731
    t_ratio = mean("train_time_s", "candidate") / mean("train_time_s", "baseline")
    c_ratio = mean("cost", "candidate") / mean("cost", "baseline")
    rel = lambda p: str(p.resolve().relative_to(REPO)) if p.resolve().is_relative_to(REPO) else str(p)  # noqa: E731
    entry = {"yaml": rel(path), "baseline_yaml": rel(base_path),
             "dataset": specs["candidate"]["dataset"]["name"], "baseline": args.baseline, "candidate": args.candidate,
             "rounds": rounds, "time_ratio": t_ratio, "cost_ratio": c_ratio,
             "measured": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
             "command": "bench/paired_time.py " + " ".join(f'"{a}"' if " " in a else a for a in (argv or sys.argv[1:]))}
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else []
    data = [e for e in data if not (e["dataset"] == entry["dataset"] and e["baseline"] == entry["baseline"]
                                    and e["candidate"] == entry["candidate"])] + [entry]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    print(f"{args.candidate} / {args.baseline}, side by side: time {t_ratio:.3f}x, cost {c_ratio:.3f}x "
          f"({len(rounds)} round(s)) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
