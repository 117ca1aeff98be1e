"""Do two runs of the same YAML and seeds give the same numbers? Compares two sweeps trial by trial (by Optuna
number): the sampled parameters, every validation metric (per seed too), the cost, and the test-set results and
masking flags of the members both evaluated. Times are measured, so they are reported, never compared.

Used to check that a change of code leaves the numbers alone: run the YAML with the old revision and the new one
(same command, two working directories), then compare:

    git worktree add /tmp/old REV
    (mkdir -p /tmp/a && cd /tmp/a && PYTHONPATH=/tmp/old python -m raysweep.cli sweep /tmp/old/FILE.yaml ...)
    (mkdir -p /tmp/b && cd /tmp/b && raysweep sweep FILE.yaml ...)
    .venv/bin/python bench/same_numbers.py /tmp/a/raysweep_runs/EXP /tmp/b/raysweep_runs/EXP --label NAME \\
        --out bench/results/same_numbers.json   # appends one entry per NAME
"""

import argparse
import json
from pathlib import Path

from raysweep.sweep_state import latest_state


def _numbers(rec):
    m = rec.get("metrics", {})
    val = {k: v for k, v in m.items() if k.startswith("val_") or k in ("cost", "epoch")}
    return {"sampled": rec["sampled"], "val": val, "test": rec.get("test"), "masking": rec.get("masking")}


def compare(a_dir: Path, b_dir: Path):
    a, b = (latest_state(d.parent, d.name) for d in (a_dir, b_dir))
    trials = {}
    for k in sorted(set(a["trials"]) | set(b["trials"]), key=int):
        ra, rb = a["trials"].get(k), b["trials"].get(k)
        if ra is None or rb is None:
            trials[k] = {"same": False, "why": "in one sweep only"}
            continue
        na, nb = _numbers(ra), _numbers(rb)
        both_tested = na["test"] is not None and nb["test"] is not None
        diff = [f for f in ("sampled", "val") + (("test",) if both_tested else ()) if na[f] != nb[f]]
        trials[k] = {"method": ra["method"], "same": not diff, "differs_in": diff, "val_robust_acc": [
            na["val"].get("val_robust_acc"), nb["val"].get("val_robust_acc")], "test_compared": both_tested,
            "train_time_s": [ra["metrics"].get("train_time_s"), rb["metrics"].get("train_time_s")]}
    return {"a": str(a["_sweep_dir"]), "b": str(b["_sweep_dir"]), "trials": trials,
            "all_same": all(t["same"] for t in trials.values())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="an experiment's directory under raysweep_runs (its latest sweep is read)")
    ap.add_argument("b", type=Path)
    ap.add_argument("--label", required=True, help="what was compared (the entry's name in --out)")
    ap.add_argument("--note", default="", help="how each side was run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = dict(compare(args.a, args.b), note=args.note)
    print(json.dumps(result, indent=1))
    if args.out:
        data = json.loads(args.out.read_text()) if args.out.is_file() else {}
        data[args.label] = result
        args.out.write_text(json.dumps(data, indent=1) + "\n")
    return 0 if result["all_same"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
