"""What Optuna costs the sweep driver as a study grows. For each sampler raysweep offers, with raysweep's own settings
(``searcher.make_sampler``) and storage (the journal beside the sweep, ``study_store.py``; or the SQLite study sweeps
kept before, in WAL mode), a study of the
quickstart's search space is filled to N finished trials, then the next ``--probe`` trials are asked (the
configuration raysweep's searcher samples, define-by-run) and told (two objectives) one at a time, as the driver
does: the mean wall of one ask + tell. And at the end of a sweep: raysweep's parameter importance (fANOVA on a
seeded sample of at most 200 trials per ranking) against Optuna's default evaluator, PED-ANOVA, over every trial.

    .venv/bin/python bench/optuna_cost.py --storage memory --sizes 100,1000,10000      # the samplers and importance
    .venv/bin/python bench/optuna_cost.py --sizes 100,1000 --storage journal,sqlite --no-importance   # side by side
    RAYSWEEP_SQLITE_WAL=0 .venv/bin/python bench/optuna_cost.py --sizes 1000 --samplers random --storage sqlite --no-importance
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fill(study, cfg, n, rng):
    """``n`` finished trials with plausible objectives (training time grows with PGD steps and epochs, robustness
    with both, plus noise), written in bulk: their cost is not what is measured."""
    import optuna

    from raysweep.tune.searcher import sample_point
    from raysweep.tune.study_space import space

    dists = space(cfg)
    trials = []
    for _ in range(n):
        fixed = optuna.trial.FixedTrial({k: (rng.choice(d.choices) if hasattr(d, "choices") else
                                             (rng.randint(d.low, d.high) if isinstance(d, optuna.distributions.IntDistribution)
                                              else rng.uniform(d.low, d.high))) for k, d in dists.items()})
        p = sample_point(fixed, cfg)
        steps = p.get("pgd_at.steps", 1) if p.get("method") == "pgd_at" else 1
        epochs = p.get("epochs", 1)
        t = 10.0 * epochs * (1 + steps) * rng.uniform(0.9, 1.1)
        acc = min(0.95, 0.2 * epochs + 0.1 * steps + rng.gauss(0, 0.05))
        used = {k: dists[k] for k in p}
        trials.append(optuna.trial.create_trial(params=p, distributions=used, values=[t, acc]))
    study.add_trials(trials)


def _storage(where, work, tag):
    """``journal``: a sweep's study as raysweep keeps it (``study_store.study_storage``); ``sqlite``: the SQLite study
    sweeps kept before (WAL mode as raysweep sets it); ``memory``: Optuna's in-memory storage, which isolates what the
    sampler itself computes (and fills 10,000 trials in seconds where SQLite takes minutes)."""
    import optuna

    if where == "memory":
        return optuna.storages.InMemoryStorage()
    if where == "journal":
        from raysweep.tune.study_store import study_storage

        return study_storage(work / tag)
    storage = f"sqlite:///{work / f'{tag}.db'}"
    from raysweep.tracking.sqlite_wal import write_ahead

    write_ahead(storage)  # RAYSWEEP_SQLITE_WAL=0: the rollback journal
    return storage


def probe(cfg, sampler_name, n, k, work, rng, where="journal"):
    import optuna

    from raysweep.tune.searcher import make_sampler, sample_point

    cfg.sweep.sampler = sampler_name
    storage = _storage(where, work, f"{sampler_name}-{n}")
    study = optuna.create_study(storage=storage, study_name="cost", directions=["minimize", "maximize"],
                                sampler=make_sampler(cfg))
    fill(study, cfg, n, rng)
    study = optuna.load_study(storage=storage, study_name="cost", sampler=make_sampler(cfg, resumed_at=n))
    # the first ask reads every trial into Optuna's cache (a driver does that once, at its start): not timed
    trial = study.ask()
    sample_point(trial, cfg)
    study.tell(trial.number, [rng.uniform(1, 100), rng.uniform(0, 1)])
    t0 = time.perf_counter()
    for _ in range(k):
        trial = study.ask()
        sample_point(trial, cfg)
        study.tell(trial.number, [rng.uniform(1, 100), rng.uniform(0, 1)])
    return (time.perf_counter() - t0) / k


def importance_cost(cfg, n, work, rng, where="journal"):
    """Seconds for raysweep's importance (every ranking it computes) and for PED-ANOVA over all trials (the same
    rankings: per objective, all trials and per method)."""
    import optuna

    from raysweep.tune import importance

    storage = _storage(where, work, f"imp-{n}")
    study = optuna.create_study(storage=storage, study_name="imp", directions=["minimize", "maximize"])
    fill(study, cfg, n, rng)
    t0 = time.perf_counter()
    importance.param_importances(study, cfg.objectives)
    ours = time.perf_counter() - t0
    complete = study.get_trials(deepcopy=False)
    methods = sorted({t.params["method"] for t in complete})
    t0 = time.perf_counter()
    for i, o in enumerate(cfg.objectives):
        direction = "minimize" if o.mode == "min" else "maximize"
        for group in [complete] + [[t for t in complete if t.params["method"] == m] for m in methods]:
            common = sorted(k for k in group[0].params if all(k in t.params for t in group))
            optuna.importance.get_param_importances(importance._single_objective(group, i, direction),
                                                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                                                    params=common)
    return ours, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,3000,10000")
    ap.add_argument("--samplers", default="random,tpe,nsga2")
    ap.add_argument("--probe", type=int, default=20)
    ap.add_argument("--storage", default="journal",
                    help="comma-separated, measured side by side: journal (raysweep's), sqlite, memory")
    ap.add_argument("--out", help="append this run to a JSON file ({'runs': [...]})")
    ap.add_argument("--no-importance", dest="importance", action="store_false")
    args = ap.parse_args(argv)
    import optuna

    from raysweep.config import load_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml", ["sweep.num_samples=10000"])
    work = Path(tempfile.mkdtemp(prefix="rs-sampler-"))
    rows = []
    wheres = args.storage.split(",")
    for name in args.samplers.split(","):
        for n in map(int, args.sizes.split(",")):
            for where in wheres:  # side by side: the same study size, one after the other
                s = probe(cfg, name, n, args.probe, work, random.Random(0), where)
                rows.append({"sampler": name, "trials": n, "storage": where, "ask_tell_s": round(s, 4)})
                print(f"{name:7s} at {n:6d} trials ({where}): {s * 1000:8.1f} ms per ask + tell", flush=True)
    imp = []
    if args.importance:
        for n in map(int, args.sizes.split(",")):
            ours, ped = importance_cost(cfg, n, work, random.Random(0), wheres[0])
            imp.append({"trials": n, "raysweep_fanova_sampled_s": round(ours, 2), "ped_anova_all_s": round(ped, 2)})
            print(f"importance at {n:6d} trials: raysweep (fANOVA, <= 200 sampled) {ours:6.1f} s; "
                  f"PED-ANOVA over all {ped:6.1f} s", flush=True)
    if args.out:
        out = {"command": " ".join(["bench/optuna_cost.py"] + (argv if argv is not None else sys.argv[1:])),
               "importance": imp, "wal": os.environ.get("RAYSWEEP_SQLITE_WAL", "1") != "0", "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
               "optuna": optuna.__version__, "probe": args.probe, "rows": rows}
        path = Path(args.out)
        old = json.loads(path.read_text()) if path.is_file() else {"runs": []}
        old["runs"].append(out)
        path.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    main()
