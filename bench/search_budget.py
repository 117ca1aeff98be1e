"""Which search to use under a compute budget: many searches replayed against recorded learning curves.

bench/record_curves.py trains a grid of configurations once (each method x two values of its main knob x
epochs {1, 2, 4} under the ``cyclic`` schedule, and x 4 epochs under ``cyclic_rungs``) and keeps every
epoch's report. Here a sweep is replayed against that table: two trials at a time, each trial playing back
its recorded epochs on a clock of training time, its reports going to the real early-stopping scheduler
(``raysweep.tune.schedulers.make_scheduler``: Ray's ASHA or raysweep's MultiObjectiveASHA) and its
configurations coming from the real searcher (``OptunaMultiObjectiveSearch`` on an in-memory study, with
the repo's samplers), called as Tune calls them. The sweep stops starting trials through the searcher's
``sweep.budget`` path once the training time spent (every trial's latest report, running ones included)
reaches the budget B; running trials finish. Startup and validation time are not on the clock (the budget
counts training time, as ``sweep.budget: {train_time_s: ...}`` does).

Searches (the names in the JSON):
- ``random``, ``tpe``, ``nsga2``: the sampler alone over method x knob x epochs {1, 2, 4}.
- ``tpe+asha``: Ray's ASHA on val_robust_acc (grace 1, rf 2) over the same space;
  ``tpe+mo_asha``: raysweep's multi-objective ASHA (grace 1, rf 2). At a rung (epoch k) trials of different
  lengths are at different points of their schedules (the cyclic LR and the ε warm-up follow the trial's
  own total epochs).
- Early stopping that compares like with like (epochs not searched; the scheduler decides them):
  ``tpe+mo_asha_restart`` (and ``tpe+asha_restart``): a trial's rung-r measurement is a complete epochs=r run;
  a promoted trial trains the epochs=r' run from scratch and pays all of it.
  ``tpe+mo_asha_cycles`` (and ``tpe+asha_cycles``, ``tpe_cycles`` without early stopping): every trial is
  the 4-epoch ``cyclic_rungs`` run, whose LR cycle ends at every rung, read up to the epoch it is stopped at;
  a promoted trial pays only its extra epochs.
  ``tpe+mo_asha_fixed_epochs`` (and ``tpe_fixed_epochs``): every trial is the 4-epoch ``cyclic`` run, so a rung
  compares equal positions of one schedule.
  ``_grace2``: grace period 2 (a single rung, at epoch 2), for the restart and cycles options.

A trial's point is its last report (a stopped trial: the values at its stop, which is also what the searcher
is told), on the front when the sweep's own rule admits it (``front_eligible``: finished, not collapsed).
Hypervolume in the (train_time_s, val_robust_acc) plane against one reference point per dataset
(1.05 x the largest train_time_s in the grid, accuracy 0), against the training time spent. Per search and
dataset over the search seeds: the final hypervolume (when the sweep stops) with a 95% bootstrap CI over
seeds, the hypervolume at B/4, B/2 and B, and the fraction of B at which the search first reaches random's
mean final hypervolume. Written: bench/results/search_budget.{json,md}, docs/search_budget.png.

    .venv/bin/python bench/search_budget.py                                   # every search, 20 seeds, both datasets
    .venv/bin/python bench/search_budget.py --from-json bench/results/search_budget.json   # re-summarise
    .venv/bin/python bench/search_budget.py --seeds 2 --searches random,tpe+mo_asha --curves bench/results/replay_curves_mnist.json
"""

import argparse
import heapq
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

ASHA = {"scheduler": "asha", "metric": "val_robust_acc", "mode": "max", "grace_period": 1, "reduction_factor": 2}
MO_ASHA = {"scheduler": "mo_asha", "grace_period": 1, "reduction_factor": 2}
MO_ASHA_G2 = dict(MO_ASHA, grace_period=2)  # one rung, at 2 epochs: a 1-epoch measurement may be all noise
# space: which recorded run a trial plays. "epochs": the cyclic run of the sampled epochs; "fixed": the 4-epoch
# cyclic run; "cycles": the 4-epoch cyclic_rungs run; "restart": the cyclic runs of 1, 2, 4 epochs in turn.
SEARCHES = {
    "random": {"sampler": "random", "space": "epochs"},
    "tpe": {"sampler": "tpe", "space": "epochs"},
    "nsga2": {"sampler": "nsga2", "space": "epochs"},
    "tpe+asha": {"sampler": "tpe", "space": "epochs", "early_stopping": ASHA},
    "tpe+mo_asha": {"sampler": "tpe", "space": "epochs", "early_stopping": MO_ASHA},
    "tpe+mo_asha_restart": {"sampler": "tpe", "space": "restart", "early_stopping": MO_ASHA},
    "tpe+asha_restart": {"sampler": "tpe", "space": "restart", "early_stopping": ASHA},
    "tpe+mo_asha_restart_grace2": {"sampler": "tpe", "space": "restart", "early_stopping": MO_ASHA_G2},
    "tpe+mo_asha_cycles": {"sampler": "tpe", "space": "cycles", "early_stopping": MO_ASHA},
    "tpe+mo_asha_cycles_grace2": {"sampler": "tpe", "space": "cycles", "early_stopping": MO_ASHA_G2},
    "tpe+asha_cycles": {"sampler": "tpe", "space": "cycles", "early_stopping": ASHA},
    "tpe_cycles": {"sampler": "tpe", "space": "cycles"},
    "tpe+mo_asha_fixed_epochs": {"sampler": "tpe", "space": "fixed", "early_stopping": MO_ASHA},
    "tpe_fixed_epochs": {"sampler": "tpe", "space": "fixed"},
}
MAX_EPOCHS = 4
RESTART_EPOCHS = [1, 2, 4]
BUDGET_TRIALS = 30  # B = the training time of this many average grid trials (cyclic runs, epochs 1/2/4)
FRACTIONS = [0.25, 0.5, 1.0]
# A seed whose sweep ends below random's mean final HV is replayed again with this multiple of B: the spend at which
# it reaches it then (a fraction above 1) keeps the seed in the mean instead of leaving the mean undefined, and
# a seed that has not reached it even then leaves it undefined.
CONTINUE_BUDGETS = 3
MAX_TRIALS = 1000  # num_samples: the budget, not this, ends a replayed sweep


# ---------------------------------------------------------------------------------------------- curve table
class Table:
    """The recorded runs of one dataset, looked up by (method, knob value, schedule, epochs).

    ``times="median"``: every epoch of a configuration (method, knob value) costs the median of its recorded
    epoch times, over all its runs; the accuracies stay as recorded. The schedule and the epoch count do not
    change what an epoch computes, so the spread between a configuration's runs is the machine's (other work on
    a shared 2-core machine moved single epochs by up to 2x), not the method's. ``"recorded"``: as measured."""

    def __init__(self, curves: Dict[str, Any], times: str = "median"):
        self.curves = curves
        self.dataset = curves["dataset"]
        self.times = times
        self.knobs = {m: (k, list(v)) for m, (k, v) in curves["knobs"].items()}
        self.runs = {}
        for r in curves["runs"].values():
            p = r["params"]
            key, _ = self.knobs[p["method"]]
            self.runs[(p["method"], _norm(p[key]), p["schedule"], int(p["epochs"]))] = r
        if times == "median":
            self.runs = self._median_times()
        elif times != "recorded":
            raise ValueError(times)

    def _median_times(self):
        per: Dict[tuple, list] = {}
        for (m, v, _, _), r in self.runs.items():
            prev = 0.0
            for h in r["epochs"]:
                per.setdefault((m, v), []).append(h["train_time_s"] - prev)
                prev = h["train_time_s"]
        rate = {k: float(np.median(x)) for k, x in per.items()}
        out = {}
        for (m, v, s, e), r in self.runs.items():
            epochs = [dict(h, train_time_s=rate[(m, v)] * (i + 1), recorded_train_time_s=h["train_time_s"])
                      for i, h in enumerate(r["epochs"])]
            out[(m, v, s, e)] = dict(r, epochs=epochs)
        return out

    def run(self, method, knob_value, schedule, epochs):
        return self.runs.get((method, _norm(knob_value), schedule, int(epochs)))

    def cyclic_runs(self):
        return [r for (m, v, s, e), r in self.runs.items() if s == "cyclic" and e in RESTART_EPOCHS]

    def max_time(self):
        return max(r["epochs"][-1]["train_time_s"] for r in self.runs.values() if r["epochs"])

    def default_budget(self):
        times = [r["epochs"][-1]["train_time_s"] for r in self.cyclic_runs() if r["epochs"]]
        return BUDGET_TRIALS * float(np.mean(times))


def _norm(v):
    return f"{float(v):g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def replay_config(table: Table, search: str, seed: int, budget_s: float):
    """The sweep a replay runs: the recorded setting, a search space of exactly the recorded knob values, the
    search's sampler and scheduler, and the budget."""
    from raysweep.config.parse import parse_config

    s = SEARCHES[search]
    methods = list(table.knobs)
    setting = table.curves["setting"]
    space = {key: {"choice": values} for key, values in table.knobs.values()}
    if s["space"] == "epochs":
        space["epochs"] = {"choice": list(RESTART_EPOCHS)}
    sweep = {"num_samples": MAX_TRIALS, "max_concurrent": 2, "sampler": s["sampler"], "seed": int(seed),
             "budget": {"train_time_s": float(budget_s)}}
    if s.get("early_stopping"):
        sweep["early_stopping"] = dict(s["early_stopping"])
    train = dict(setting["train"], epochs=MAX_EPOCHS, schedule="cyclic_rungs" if s["space"] == "cycles" else "cyclic")
    raw = {
        "name": "replay-" + search.replace("+", "-"), "method": {"choice": methods} if len(methods) > 1 else methods[0],
        "dataset": {"name": table.dataset, "val_size": table.curves["sizes"]["val_size"],
                    "train_size": table.curves["sizes"]["train_size"]},
        "model": table.curves["sizes"]["model"], "threat": setting["threat"], "train": train,
        "params": {m: v for m, v in (setting.get("params") or {}).items() if m in methods},
        "search": space,
        "objectives": [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}],
        "sweep": sweep, "final_eval": {"enabled": False},
    }
    return parse_config(raw, f"<replay {search}>")


# ---------------------------------------------------------------------------------------------- the replay
REPORT_KEYS = ("epoch", "train_time_s", "cost", "val_robust_acc", "val_clean_acc", "val_fgsm_acc", "catastrophic_overfit")


def plan_trial(table: Table, space: str, sampled: Dict[str, Any], rungs=tuple(RESTART_EPOCHS)):
    """What a trial plays: a list of (training time spent since it started, report, recorded run). A report is
    what the trial tells Tune at that point; the time is all the training it has done so far. ``rungs``: the
    epochs of the runs a restart trial trains in turn (the scheduler's rungs, then the last epoch)."""
    m = sampled["method"]
    v = sampled[table.knobs[m][0]]
    if space == "restart":
        out, paid = [], 0.0
        for e in rungs:
            run = table.run(m, v, "cyclic", e)
            if run is None or len(run["epochs"]) < e:  # a run that stopped short (a collapse) ends the trial
                if run is not None and run["epochs"]:
                    last = run["epochs"][-1]
                    out.append((paid + last["train_time_s"], _report(last, epoch=e), run))
                break
            last = run["epochs"][-1]
            paid += last["train_time_s"]
            out.append((paid, _report(last, epoch=e), run))
        return out
    schedule, epochs = {"epochs": ("cyclic", sampled.get("epochs")), "fixed": ("cyclic", MAX_EPOCHS),
                        "cycles": ("cyclic_rungs", MAX_EPOCHS)}[space]
    run = table.run(m, v, schedule, epochs)
    if run is None:
        raise KeyError(f"no recorded run for {m} {v} {schedule} {epochs}")
    return [(h["train_time_s"], _report(h), run) for h in run["epochs"]]


def _report(h, epoch=None):
    r = {k: float(h[k]) for k in REPORT_KEYS if h.get(k) is not None}
    if epoch is not None:
        r["epoch"] = float(epoch)
    r.setdefault("catastrophic_overfit", 0.0)
    r["training_iteration"] = int(r["epoch"])
    return r


def simulate(table: Table, search: str, seed: int, budget_s: float, ref: List[float],
             concurrency: int = 2) -> Dict[str, Any]:
    """One replayed sweep. Returns its HV curve [(spent, hv)] (a point after every report), the trials it ran
    and the spend at which it started each."""
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from raysweep.tracking.hypervolume import front_eligible
    from raysweep.tracking.pareto import hypervolume_2d
    from raysweep.tune.mo_asha import rung_levels
    from raysweep.tune.schedulers import make_scheduler
    from raysweep.tune.searcher import OptunaMultiObjectiveSearch, open_study

    np.random.seed(seed)  # Ray's ASHA draws a bracket with numpy's global RNG
    cfg = replay_config(table, search, seed, budget_s)
    space = SEARCHES[search]["space"]
    study = _open_in_memory(open_study, cfg)
    trials: Dict[str, Dict[str, Any]] = {}

    def spent(metric="train_time_s"):
        return sum(t["spent"] for t in trials.values())

    searcher = OptunaMultiObjectiveSearch(cfg, study, spent=spent)
    scheduler = make_scheduler(cfg)
    if scheduler is None:
        from ray.tune.schedulers import FIFOScheduler

        scheduler = FIFOScheduler()
    modes = [o.mode for o in cfg.objectives]
    es = cfg.sweep.early_stopping
    restart_rungs = (rung_levels(es.grace_period, es.reduction_factor, MAX_EPOCHS) if es else []) + [MAX_EPOCHS]
    assert set(restart_rungs) <= set(RESTART_EPOCHS), "a restart rung without a recorded run"
    events: list = []  # (clock, order, trial id, index into its plan)
    clock, order, running, finished = 0.0, 0, set(), False
    points: List[List[float]] = []
    curve = [(0.0, 0.0)]
    log = []

    def start_trials():
        nonlocal order, finished
        while len(running) < concurrency and not finished:
            tid = f"t{len(trials):04d}"
            config = searcher.suggest(tid)
            if config is None or config == Searcher.FINISHED:
                finished = True
                return
            trial = SimpleNamespace(trial_id=tid, config=config)
            plan = plan_trial(table, space, config["sampled"], restart_rungs)
            trials[tid] = {"trial": trial, "plan": plan, "start": clock, "spent": 0.0, "spent_at_start": spent(),
                           "sampled": config["sampled"], "reports": 0, "stopped": False, "ended": False}
            scheduler.on_trial_add(None, trial)
            running.add(tid)
            heapq.heappush(events, (clock + plan[0][0], order, tid, 0))
            order += 1

    start_trials()
    while events:
        clock, _, tid, i = heapq.heappop(events)
        t = trials[tid]
        paid, result, run = t["plan"][i]
        t["spent"], t["reports"] = paid, i + 1
        t["result"] = result
        decision = scheduler.on_trial_result(None, t["trial"], dict(result))
        last = i + 1 == len(t["plan"])
        if decision == TrialScheduler.STOP or last:
            t["stopped"] = decision == TrialScheduler.STOP and not last
            t["ended"] = True
            running.discard(tid)
            failed = last and run.get("status") != "FINISHED"
            if failed:
                scheduler.on_trial_remove(None, t["trial"])
                searcher.on_trial_complete(tid, error=True)
            else:
                scheduler.on_trial_complete(None, t["trial"], dict(result))
                searcher.on_trial_complete(tid, dict(result))
                rec = {"status": "FINISHED", "metrics": result, "catastrophic_overfit": result["catastrophic_overfit"] > 0}
                t["eligible"] = front_eligible(rec, cfg.objective_specs, cfg.sweep.front_includes_flagged, cfg.infeasible)
                if t["eligible"]:
                    points.append([result["train_time_s"], result["val_robust_acc"]])
            hv = hypervolume_2d(points, modes, ref) if points else 0.0
            curve.append((spent(), hv))
            start_trials()
        else:
            searcher.on_trial_result(tid, dict(result))
            curve.append((spent(), curve[-1][1]))
            heapq.heappush(events, (t["start"] + t["plan"][i + 1][0], order, tid, i + 1))
            order += 1
    for t in trials.values():
        log.append({"method": t["sampled"]["method"], "sampled": t["sampled"], "epochs_run": int(t["result"]["epoch"]),
                    "stopped": t["stopped"],
                    "spent": t["spent"], "spent_at_start": t["spent_at_start"], "eligible": t.get("eligible", False),
                    "point": [t["result"]["train_time_s"], t["result"]["val_robust_acc"]]})
    return {"search": search, "seed": seed, "curve": curve, "trials": log, "spent": spent(),
            "final_hv": curve[-1][1]}


def _open_in_memory(open_study, cfg):
    """The sweep's own ``open_study`` on Optuna's in-memory storage: an RDB study, even SQLite in memory, made
    each replay ~6x slower."""
    import optuna

    return open_study(cfg, optuna.storages.InMemoryStorage(), cfg.name)


# ---------------------------------------------------------------------------------------------- statistics
def bootstrap_ci(values, n=10_000, seed=0):
    """Mean and 95% percentile-bootstrap interval of the mean, resampling seeds."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1)
    return float(v.mean()), [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def hv_at(curve, x):
    """The hypervolume reached once ``x`` of training time had been spent (a step function)."""
    return max([hv for s, hv in curve if s <= x + 1e-9], default=0.0)


def first_reach(curve, target):
    return next((s for s, hv in curve if hv >= target - 1e-12), None)


def random_final_hv(runs):
    """The target every search is timed to: random search's mean final hypervolume (None without random)."""
    hv = [r["final_hv"] for r in runs if r["search"] == "random"]
    return float(np.mean(hv)) if hv else None


def summarise_dataset(runs, budget_s, n_boot=10_000):
    by: Dict[str, list] = {}
    for r in runs:
        by.setdefault(r["search"], []).append(r)
    target = random_final_hv(runs)
    out = {}
    for name, rs in by.items():
        mean, ci = bootstrap_ci([r["final_hv"] for r in rs], n_boot)
        within = [None if target is None else first_reach(r["curve"], target) for r in rs]
        reach = [w if w is not None or target is None else (r.get("continued") or {}).get("reach_s")
                 for w, r in zip(within, rs)]
        fr = [None if x is None else x / budget_s for x in reach]
        if target is None or any(x is None for x in fr):
            frac = {"mean": None, "ci95": None}
        else:
            m, c = bootstrap_ci(fr, n_boot)
            frac = {"mean": m, "ci95": c}
        frac["reached"] = sum(x is not None for x in within)  # within the budget's own sweep
        frac["reached_continued"] = sum(x is not None for x in fr)  # ... or once continued to CONTINUE_BUDGETS x B
        hv_at_f = {}
        for f in FRACTIONS:
            m, c = bootstrap_ci([hv_at(r["curve"], f * budget_s) for r in rs], n_boot)
            hv_at_f[f"{f:g}"] = {"mean": m, "ci95": c}
        out[name] = {
            "seeds": len(rs), "final_hv": {"mean": mean, "ci95": ci},
            "budget_fraction_to_random_final_hv": frac, "hv_at_budget_fraction": hv_at_f,
            "per_seed_fraction": fr,
            "trials_mean": float(np.mean([len(r["trials"]) for r in rs])),
            "stopped_early_mean": float(np.mean([sum(t["stopped"] for t in r["trials"]) for r in rs])),
            "spent_over_budget_mean": float(np.mean([r["spent"] / budget_s for r in rs])),
            "front_methods": _front_method_counts(rs),
        }
    return out, target


def _front_method_counts(rs):
    from raysweep.tracking.pareto import pareto_mask

    counts: Dict[str, float] = {}
    for r in rs:
        el = [t for t in r["trials"] if t["eligible"]]
        if not el:
            continue
        mask = pareto_mask([t["point"] for t in el], ["min", "max"])
        for t, on in zip(el, mask):
            if on:
                counts[t["method"]] = counts.get(t["method"], 0) + 1 / len(rs)
    return {k: round(v, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}


def recommend(datasets):
    """The search that reaches random's final hypervolume soonest (mean fraction of B over datasets), among those
    that reach it on every seed of every dataset (within CONTINUE_BUDGETS x B); failing that, the highest final
    hypervolume relative to random's."""
    names = set.intersection(*[set(d["searches"]) for d in datasets.values()])
    ok = [n for n in names if all(d["searches"][n]["budget_fraction_to_random_final_hv"]["mean"] is not None
                                  for d in datasets.values())]
    if ok:
        return min(ok, key=lambda n: np.mean([d["searches"][n]["budget_fraction_to_random_final_hv"]["mean"]
                                              for d in datasets.values()])), "fraction"
    return max(names, key=lambda n: np.mean([d["searches"][n]["final_hv"]["mean"] / max(1e-12, d["random_final_hv"] or 1)
                                             for d in datasets.values()])), "final_hv"


# ---------------------------------------------------------------------------------------------- output
def markdown(result):
    lines = []
    for ds, d in result["datasets"].items():
        g = d["grid"]
        lines += [f"## {ds}", "",
                  f"Grid: {g['configs']} configurations (methods x 2 knob values), cyclic runs of {g['epochs']} epochs "
                  f"and {MAX_EPOCHS}-epoch cyclic_rungs runs; {g['train_size']} training images, {g['val_size']} "
                  f"validation images (PGD-{g['val_pgd_steps']}). Budget B = {d['budget_s']:.0f} s of training "
                  f"({BUDGET_TRIALS} average grid trials); reference point ({d['reference_point'][0]:.1f} s, 0). "
                  + ("Epoch times: each configuration's median recorded epoch time (accuracies as recorded). "
                     if d.get("times", "median") == "median" else "Epoch times as recorded. ") +
                  f"Random's mean final HV: {d['random_final_hv']:.3f}; a seed whose sweep ended below it is replayed "
                  f"again under {CONTINUE_BUDGETS} B for the spend at which it reaches it (a fraction above 1). "
                  f"Mean [95% bootstrap CI] over "
                  f"{next(iter(d['searches'].values()))['seeds']} search seeds.", "",
                  f"| search | final HV | HV at B/4 | HV at B/2 | HV at B | fraction of B to random's final HV (seeds reaching "
                  f"it within B; within {CONTINUE_BUDGETS} B) "
                  "| trials | stopped early | spent / B |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, s in d["searches"].items():
            f = s["budget_fraction_to_random_final_hv"]
            frac = (f"{f['mean']:.2f} [{f['ci95'][0]:.2f}, {f['ci95'][1]:.2f}]" if f["mean"] is not None
                    else f"not reached by every seed within {CONTINUE_BUDGETS} B") + \
                f" ({f['reached']}/{s['seeds']}; {f.get('reached_continued', f['reached'])}/{s['seeds']})"
            hv = s["final_hv"]
            at = s["hv_at_budget_fraction"]
            lines.append(f"| {name} | {hv['mean']:.3f} [{hv['ci95'][0]:.3f}, {hv['ci95'][1]:.3f}] "
                         + " ".join(f"| {at[k]['mean']:.3f}" for k in ("0.25", "0.5", "1")) +
                         f" | {frac} | {s['trials_mean']:.1f} | {s['stopped_early_mean']:.1f} "
                         f"| {s['spent_over_budget_mean']:.2f} |")
        lines.append("")
    rule = (f"the search that reaches random's final HV soonest, reaching it on every seed of every dataset within "
            f"{CONTINUE_BUDGETS} B"
            if result.get("default_rule") == "fraction" else
            "no search reached random's mean final HV on every seed of every dataset, so: the highest final HV "
            "relative to random's, averaged over datasets")
    lines += ["Searches: `random`, `tpe`, `nsga2` sample method x knob x epochs {1, 2, 4} (cyclic schedule); `+asha` "
              "(Ray's ASHA on val_robust_acc) and `+mo_asha` (raysweep's multi-objective ASHA), grace 1, rf 2. "
              "`_restart`: epochs not searched, a rung-r measurement is a complete epochs=r run and a promoted trial "
              "trains the next from scratch (paying all of it); `_cycles`: every trial is the 4-epoch `cyclic_rungs` "
              "run (its LR cycle ends at each rung), a promoted trial pays only its extra epochs; `_fixed_epochs`: "
              "every trial is the 4-epoch cyclic run. HV: front of the trials' last reports (a stopped trial's "
              "values at its stop) in (train_time_s, val_robust_acc); the clock and the budget count training "
              "time only.", "",
              f"Recommended default ({rule}): **{result['default']}**."]
    return "\n".join(lines) + "\n"


def plot(result, runs_by_ds, path, n_boot=2000):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dss = list(result["datasets"])
    fig, axes = plt.subplots(1, len(dss), figsize=(6.5 * len(dss), 4.6), dpi=120, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, ds in zip(axes[0], dss):
        b = result["datasets"][ds]["budget_s"]
        grid = np.linspace(0, 1.25, 126)
        for i, name in enumerate(result["datasets"][ds]["searches"]):
            rs = [r for r in runs_by_ds[ds] if r["search"] == name]
            ys = np.array([[hv_at(r["curve"], f * b) for f in grid] for r in rs])
            boot = ys[rng.integers(0, len(rs), size=(n_boot, len(rs)))].mean(axis=1)
            lo, hi = np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)
            style = "--" if name in ("random", "tpe", "nsga2") else "-"
            color = plt.cm.tab20((2 * i) % 20 + (2 * i) // 20)
            ax.plot(grid, ys.mean(axis=0), style, label=name, lw=1.3, color=color)
            ax.fill_between(grid, lo, hi, alpha=0.1, color=color)
        ax.axvline(1.0, color="k", lw=0.6, alpha=0.5)
        ax.set_title(f"{ds}: B = {b:.0f} s of training")
        ax.set_xlabel("training time spent / budget B")
        ax.set_ylabel("front hypervolume (train_time_s, val_robust_acc)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("replayed searches: mean and 95% bootstrap band over search seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def continue_unreached(runs, meta, procs=2, cache=None):
    """Each seed whose sweep ended below random's mean final HV, replayed again under CONTINUE_BUDGETS x B: its
    ``continued`` entry says at which spend it reached it then (None: not even then). The continued sweep is the
    same sweep up to the spend B (the budget only refuses new trials once B is spent), which is checked."""
    todo = []
    for ds, rs in runs.items():
        target = random_final_hv(rs)
        if target is None:
            continue
        for r in rs:
            if first_reach(r["curve"], target) is None and (r.get("continued") or {}).get("target") != target:
                todo.append((ds, r, target))
    if not todo:
        return
    jobs = [(meta[ds]["curves"], meta[ds]["times"], r["search"], r["seed"], CONTINUE_BUDGETS * meta[ds]["budget_s"],
             meta[ds]["reference_point"]) for ds, r, _ in todo]
    longer = run_all_jobs([(ds, j) for (ds, _, _), j in zip(todo, jobs)], procs, cache)
    for (ds, r, target), j in zip(todo, jobs):
        c = longer[_key(ds, j)]
        _same_until(r["curve"], c["curve"], meta[ds]["budget_s"])
        r["continued"] = {"budget_s": j[4], "target": target, "reach_s": first_reach(c["curve"], target),
                          "final_hv": c["final_hv"], "spent": c["spent"]}


def _same_until(short, long, budget_s):
    """The budget-B sweep and its continuation agree wherever less than B had been spent (compared as the JSON
    keeps curves: thinned to HV changes, spend rounded)."""
    a, b = (_thin([[round(x, 4), h] for x, h in c if x < budget_s - 1e-6]) for c in (short, long))
    if [(x, round(h, 9)) for x, h in a[:-1]] != [(x, round(h, 9)) for x, h in b[:-1]]:
        raise RuntimeError("a continued replay differs from its sweep before the budget was spent: not deterministic")


def _job(args):
    curves_path, times, search, seed, budget_s, ref = args
    table = Table(json.loads(Path(curves_path).read_text()), times)
    return simulate(table, search, seed, budget_s, ref)


def _key(ds, j):
    return (ds, j[1], j[2], j[3], round(j[4], 6))


def run_all_jobs(jobs, procs=2, cache=None):
    """Replays ``jobs`` [(dataset, _job's args)] not already in ``cache`` (JSON lines, appended as they end, a line
    torn by a kill skipped). Returns every replay by key."""
    done = {}
    if cache and Path(cache).exists():
        for line in Path(cache).read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill
                continue
            done[(r["dataset"], r["times"], r["search"], r["seed"], round(r["budget_s"], 6))] = r
    todo = [(ds, j) for ds, j in jobs if _key(ds, j) not in done]
    sink = open(cache, "a") if cache else None
    if sink and Path(cache).stat().st_size and not Path(cache).read_bytes().endswith(b"\n"):
        sink.write("\n")  # after a torn last line: it stays a line of its own, skipped when read
    try:
        if procs > 1 and len(todo) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(procs) as pool:
                for (ds, j), r in zip(todo, pool.imap(_job, [j for _, j in todo], chunksize=1)):
                    _keep(done, _key(ds, j), dict(r, dataset=ds, times=j[1], budget_s=j[4]), sink)
        else:
            for ds, j in todo:
                _keep(done, _key(ds, j), dict(_job(j), dataset=ds, times=j[1], budget_s=j[4]), sink)
    finally:
        if sink:
            sink.close()
    return done


def run_all(curve_paths, searches, seeds, procs=2, times="median", cache=None):
    """Every (dataset, search, seed) replay. ``cache``: a JSON-lines file of finished replays, appended as they
    end and read back first, so an interrupted run resumes where it stopped."""
    jobs, meta = [], {}
    for p in curve_paths:
        table = Table(json.loads(Path(p).read_text()), times)
        budget = table.default_budget()
        ref = [1.05 * table.max_time(), 0.0]
        meta[table.dataset] = {"budget_s": budget, "reference_point": ref, "curves": str(p), "curves_json": table.curves,
                               "times": times}
        for seed in range(seeds):  # seed-major, so a partial run still covers every search
            for s in searches:
                jobs.append((table.dataset, (str(p), times, s, seed, budget, ref)))
    done = run_all_jobs(jobs, procs, cache)
    runs: Dict[str, list] = {}
    for ds, j in jobs:
        runs.setdefault(ds, []).append(done[_key(ds, j)])
    return runs, meta


def _keep(done, k, r, sink):
    done[k] = r
    if sink:
        sink.write(json.dumps(r) + "\n")
        sink.flush()


def build_result(runs, meta, n_boot=10_000):
    datasets = {}
    for ds, rs in runs.items():
        m = meta[ds]
        searches, target = summarise_dataset(rs, m["budget_s"], n_boot)
        c = m["curves_json"]
        sizes = c["sizes"]
        datasets[ds] = {
            "searches": searches, "budget_s": m["budget_s"], "reference_point": m["reference_point"],
            "random_final_hv": target, "budget_trials": BUDGET_TRIALS, "curves": m["curves"], "times": m["times"],
            "grid": {"configs": len({(r["params"]["method"], str(r["params"][c["knobs"][r["params"]["method"]][0]]))
                                     for r in c["runs"].values()}),
                     "runs": len(c["runs"]), "epochs": RESTART_EPOCHS, "knobs": c["knobs"],
                     "train_size": sizes["train_size"], "val_size": sizes["val_size"],
                     "val_pgd_steps": sizes["val_pgd_steps"], "batch_size": sizes.get("batch_size"),
                     "model": sizes.get("model"), "recording_wall_s": c.get("wall_s")},
        }
    default, rule = recommend(datasets)
    return {"datasets": datasets, "default": default, "default_rule": rule}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--curves", default=",".join(str(RESULTS / f"replay_curves_{d}.json") for d in ("mnist", "fashion_mnist")),
                    help="comma-separated curve tables (bench/record_curves.py)")
    ap.add_argument("--searches", default=",".join(SEARCHES))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--times", default="median", choices=["median", "recorded"],
                    help="epoch times: each configuration's median recorded epoch time (default), or as recorded")
    ap.add_argument("--bootstrap", type=int, default=10_000)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--plot", default=str(REPO / "docs" / "search_budget.png"))
    ap.add_argument("--from-json", help="re-summarise the runs kept in an earlier search_budget.json")
    ap.add_argument("--cache", help="JSON-lines file of finished replays: appended, and read back to resume")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        runs = saved["runs"]
        meta = {}
        for ds, d in saved["datasets"].items():
            meta[ds] = {"budget_s": d["budget_s"], "reference_point": d["reference_point"], "curves": d["curves"],
                        "curves_json": json.loads(Path(d["curves"]).read_text()), "times": d.get("times", "median")}
    else:
        paths = [p for p in args.curves.split(",") if Path(p).exists()]
        runs, meta = run_all(paths, args.searches.split(","), args.seeds, args.procs, args.times, args.cache)
    continue_unreached(runs, meta, args.procs, args.cache)
    result = build_result(runs, meta, args.bootstrap)
    text = markdown(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_budget.json").write_text(dump(result, runs))
    (out / "search_budget.md").write_text("# Searches under a compute budget (replayed)\n\n" + text)
    if args.plot:
        plot(result, runs, args.plot)
    print(f"written: {out / 'search_budget.json'}, {out / 'search_budget.md'}, {args.plot}")
    return result


def _compact(runs):
    """The runs as kept in the JSON (for --from-json): the curve thinned to its HV changes and its last point, each
    trial's method, epochs, stop, eligibility and point."""
    out = {}
    for ds, rs in runs.items():
        out[ds] = []
        for r in rs:
            keep = _thin(r["curve"])
            trials = [{"method": t["method"], "epochs_run": t["epochs_run"], "stopped": t["stopped"],
                       "eligible": t["eligible"], "point": [round(t["point"][0], 3), round(t["point"][1], 4)]}
                      for t in r["trials"]]
            out[ds].append({"search": r["search"], "seed": r["seed"], "final_hv": r["final_hv"], "spent": r["spent"],
                            "curve": [[round(x, 4), h] for x, h in keep], "trials": trials,
                            **({"continued": r["continued"]} if r.get("continued") else {})})
    return out


def _thin(c):
    """A curve's first point, the points where its HV changed, and its last."""
    return [c[0]] + [p for a, p in zip(c, c[1:]) if p[1] != a[1]] + [c[-1]]


def dump(result, runs) -> str:
    """The summary indented, the runs one line each (thousands of them)."""
    head = json.dumps(result, indent=1)
    body = ",\n".join(f'  {json.dumps(ds)}: [\n' + ",\n".join("   " + json.dumps(r, separators=(",", ":")) for r in rs)
                      + "\n  ]" for ds, rs in _compact(runs).items())
    return head[:-2] + ',\n "runs": {\n' + body + "\n }\n}\n"


if __name__ == "__main__":
    main()
