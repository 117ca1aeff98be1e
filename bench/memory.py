"""Peak memory of a sweep on this machine: the sum of PSS (proportional set size, so shared
pages are not double counted) over the sweep's whole process tree — the driver, Ray's
processes and every trial and worker — sampled every 0.5 s.

    .venv/bin/python bench/memory.py                       # the quickstart sweep
    .venv/bin/python bench/memory.py search_spaces/x.yaml --set sweep.num_samples=4
    .venv/bin/python bench/memory.py --out bench/results/memory.json    # the figures as JSON too
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree(root):
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += _children(p)
    return seen


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default=str(REPO / "search_spaces" / "quickstart.yaml"))
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="rs-mem-")
    cmd = [sys.executable, "-m", "raysweep.cli", "sweep", args.file] + sum((["--set", s] for s in args.set), [])
    t0 = time.time()
    log = Path(work) / "sweep.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
        peak, peak_n, peak_t = 0, 0, 0.0
        while proc.poll() is None:
            pids = tree(proc.pid)
            total = sum(pss_kb(p) for p in pids)
            if total > peak:
                peak, peak_n, peak_t = total, len(pids), time.time() - t0
            time.sleep(0.5)
    print("\n".join(log.read_text().splitlines()[-3:]))
    wall = time.time() - t0
    print(f"\nsweep {Path(args.file).name}: exit {proc.returncode}, wall {wall:.0f} s; "
          f"peak memory {peak / 1024 / 1024:.2f} GiB PSS over {peak_n} processes (at {peak_t:.0f} s)")
    if args.out:
        rel = os.path.relpath(args.file, REPO) if os.path.isabs(args.file) else args.file
        Path(args.out).write_text(json.dumps({
            "command": "bench/memory.py " + " ".join(argv or sys.argv[1:]), "file": rel, "set": args.set,
            "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "exit": proc.returncode,
            "wall_s": round(wall, 1), "peak_pss_gib": round(peak / 1024 / 1024, 3), "peak_processes": peak_n,
            "peak_at_s": round(peak_t, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
