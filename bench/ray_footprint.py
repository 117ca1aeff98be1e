"""What a local Ray costs the embedded default, in processes and memory, with and without the dashboard.

Run it once with the base install and once with `raysweep[cluster]` (ray[default]) installed, to see
what the extra costs a quickstart that does not use it (raysweep starts its local Ray with
include_dashboard=False) and what the dashboard costs when it is on (a cluster head serving the job API).

    .venv/bin/python bench/ray_footprint.py     # prints one line per setting; JSON with --json
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, time, ray
ray.init(num_cpus=2, include_dashboard={dash}, log_to_driver=False, logging_level="WARNING",
         _temp_dir="/tmp/raysweep-footprint")
time.sleep(8)  # let the agents and the idle workers come up
parent = {{}}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            parent[int(d)] = int(open(f"/proc/{{d}}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            pass
procs, todo = set(), [os.getpid()]
while todo:  # this driver and everything it started: the whole local Ray
    p = todo.pop()
    procs.add(p)
    todo += [c for c, pp in parent.items() if pp == p and c not in procs]
pss = 0
for p in procs:
    try:
        for ln in open(f"/proc/{{p}}/smaps_rollup"):
            if ln.startswith("Pss:"):
                pss += int(ln.split()[1])
    except OSError:
        pass
print(json.dumps({{"processes": len(procs), "pss_mb": round(pss / 1024)}}))
ray.shutdown()
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    full = importlib.util.find_spec("opencensus") is not None  # one of ray[default]'s extra packages
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    out = {"ray_default_installed": full, "settings": {}}
    for dash in ([False, True] if full else [False]):
        r = subprocess.run([sys.executable, "-c", CHILD.format(dash=dash)], capture_output=True, text=True, env=env,
                           timeout=300)
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        res = json.loads(line[-1]) if line else {"error": r.stderr[-500:]}
        key = f"dashboard_{'on' if dash else 'off'}"
        out["settings"][key] = res
        print(f"ray[default] {'installed' if full else 'not installed'}, {key}: {res}", flush=True)
        time.sleep(2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
