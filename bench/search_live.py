"""Which search to use under a budget, live: the replay's ordering checked on real sweeps (Fashion-MNIST).

bench/search_budget.py ranks searches by replaying them against recorded learning curves
(bench/results/replay_curves_fashion_mnist.json). Here the same searches run as real raysweep sweeps
(``raysweep.tune.runner.run_sweep``, real Ray Tune, every trial trained) in the replay's space: the seven
recorded methods x the same two values of each method's main knob (categorical), epochs categorical {1, 2, 4}
under ``train.schedule: cyclic`` for the searches without early stopping; the recording's model
(resnet_small width 8), subset sizes (1,600 training / 500 validation images), batch size, optimiser and
validation attack (PGD-5), taken from bench/record_curves.py's own sweep (``sweep_yaml``); in-process trials,
two at a time, final evaluation off, and ``sweep.budget: {train_time_s: B}`` with B computed as
search_budget.py computes it (``Table(curves).default_budget()``: the training time of 30 average grid
trials, each configuration's median epoch time).

Searches (search_budget.py's definitions, ``search_budget.SEARCHES``):
- ``random``, ``tpe``: the sampler alone over method x knob x epochs {1, 2, 4};
- ``tpe+mo_asha_cycles``: tpe with raysweep's multi-objective ASHA (grace 1, reduction factor 2), epochs fixed
  at 4 under ``train.schedule: cyclic_rungs`` (ε warm-up 0.3/4 of training, as the recorded runs had).

From each sweep's state.json: the trials in completion order (``hypervolume.done``), each one's last report,
and the sweep's own front rule (``front_eligible``: finished, not collapsed). The hypervolume in the
(train_time_s, val_robust_acc) plane is recomputed after every completed trial against search_budget.json's
Fashion-MNIST reference point (also declared as the sweep's ``hypervolume_ref``, so the sweep's own curve is a
cross-check), on the replay's clock: the training time spent by every trial's latest report, running trials
included (read from the sweep's callbacks as reports arrive; without that log, ``--from-json`` on an older
file, the training time of the completed trials). Per search: final HV, HV at B/4, B/2 and B, the fraction of
B at which the sweep first reaches the live ``random`` sweeps' mean final HV (mean over seeds; undefined when
a seed never reaches it), trials run, trials stopped early, training spent / B and wall time, each beside
search_budget.json's replayed numbers for the same search. Written: bench/results/search_live.{json,md}.

    .venv/bin/python bench/search_live.py              # random, tpe, tpe+mo_asha_cycles, 2 seeds (~60 min, 2 cores)
    .venv/bin/python bench/search_live.py --seeds 1    # one seed (~30 min)
    .venv/bin/python bench/search_live.py --from-json bench/results/search_live.json   # re-summarise
    .venv/bin/python bench/search_live.py --seeds 1 --searches random --budget-s 40 --out /tmp/live.json  # a smoke run
    .venv/bin/python bench/search_live.py --seeds 1 --searches random --out /tmp/rerun/search_live.json   # a rerun,
    .venv/bin/python bench/search_live.py --from-json bench/results/search_live.json \
        --supplement /tmp/rerun/search_live.json   # shown (and kept) beside the main table, not mixed into it
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import record_curves  # noqa: E402
import search_budget as sb  # noqa: E402

DATASET = "fashion_mnist"
CURVES = RESULTS / f"replay_curves_{DATASET}.json"
REPLAY = RESULTS / "search_budget.json"
SEARCHES = ["random", "tpe", "tpe+mo_asha_cycles"]
FRACTIONS = sb.FRACTIONS
OBJECTIVES = [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}]


# ---------------------------------------------------------------------------------------------- the setting
def budget_and_reference(curves: Dict[str, Any], replay: Optional[Dict[str, Any]] = None):
    """B as search_budget.py computes it (median epoch times), and the replay's reference point: the one in
    search_budget.json when given (checked against the curves), else computed the same way."""
    table = sb.Table(curves, "median")
    budget = table.default_budget()
    ref = [1.05 * table.max_time(), 0.0]
    if replay is not None:
        d = replay["datasets"][curves["dataset"]]
        assert abs(d["budget_s"] - budget) < 1e-6 * budget, (d["budget_s"], budget)
        assert np.allclose(d["reference_point"], ref), (d["reference_point"], ref)
        ref = [float(x) for x in d["reference_point"]]
    return budget, ref


def live_raw(curves: Dict[str, Any], search: str, seed: int, budget_s: float, ref: List[float],
             num_samples: int = sb.MAX_TRIALS) -> Dict[str, Any]:
    """The sweep's YAML (as a dict): record_curves.py's recording sweep (model, sizes, training setting,
    validation attack, in-process trials two at a time), with the replay's search space, sampler, scheduler
    and budget (search_budget.replay_config's choices)."""
    s = sb.SEARCHES[search]
    if s["space"] not in ("epochs", "cycles"):
        raise ValueError(f"{search}: only the 'epochs' and 'cycles' spaces run live here")
    sizes = curves["sizes"]
    points = [p for p in record_curves.grid() if p["method"] in curves["knobs"]]
    raw = record_curves.sweep_yaml(DATASET, points, sizes["train_size"], sizes["val_size"], sizes["val_pgd_steps"],
                                   "live-" + search.replace("+", "-") + f"-s{seed}", width=sizes["model"]["width"],
                                   batch_size=sizes["batch_size"])
    # the recorded setting, unchanged (the curves keep it): the replay compares against these runs
    assert raw["train"] == curves["setting"]["train"], (raw["train"], curves["setting"]["train"])
    assert raw["model"] == sizes["model"] and raw["threat"] == curves["setting"]["threat"]
    cycles = s["space"] == "cycles"
    space = {key: {"choice": list(values)} for key, values in curves["knobs"].values()}
    if not cycles:
        space["epochs"] = {"choice": list(sb.RESTART_EPOCHS)}
    raw["search"] = space
    methods = list(curves["knobs"])  # the replay's order of the choices (a seed samples alike)
    raw["method"] = {"choice": methods} if len(methods) > 1 else methods[0]
    raw["train"] = dict(raw["train"], epochs=sb.MAX_EPOCHS, schedule="cyclic_rungs" if cycles else "cyclic",
                        # the recorded cyclic_rungs runs warmed ε up over 0.3 of the first rung segment
                        eps_warmup=round(record_curves.WARMUP / record_curves.RUNG_EPOCHS, 6) if cycles
                        else record_curves.WARMUP)
    sweep = {"num_samples": int(num_samples), "max_concurrent": 2, "sampler": s["sampler"], "seed": int(seed),
             "budget": {"train_time_s": float(budget_s)},
             "hypervolume_ref": {"train_time_s": float(ref[0]), "val_robust_acc": float(ref[1])}}
    if s.get("early_stopping"):
        sweep["early_stopping"] = dict(s["early_stopping"])
    raw["sweep"] = sweep
    raw["objectives"] = [dict(o) for o in OBJECTIVES]
    raw["final_eval"] = {"enabled": False}
    return raw


# ---------------------------------------------------------------------------------------------- a live sweep
@contextlib.contextmanager
def spend_log():
    """The replay's clock for a live sweep: when each trial ends, the training time spent by every trial's
    latest report (running ones included), as the sweep's budget counts it. Read from the sweep's own trial
    recorder (a Tune callback on the driver) as Tune calls it; yields {trial key: spent when it ended}."""
    from raysweep.tune.callbacks import MlflowTrialRecorder as R

    latest: Dict[str, float] = {}
    ended: Dict[str, float] = {}
    on_result, on_complete = R.on_trial_result, R.on_trial_complete

    def key(trial):
        return str(trial.config.get("optuna_trial", trial.trial_id))

    def result_hook(self, iteration, trials, trial, result, **info):
        v = result.get("train_time_s")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            latest[key(trial)] = float(v)
        return on_result(self, iteration, trials, trial, result, **info)

    def complete_hook(self, iteration, trials, trial, **info):
        out = on_complete(self, iteration, trials, trial, **info)
        ended[key(trial)] = sum(latest.values())
        return out

    R.on_trial_result, R.on_trial_complete = result_hook, complete_hook
    try:
        yield ended
    finally:
        R.on_trial_result, R.on_trial_complete = on_result, on_complete


def trials_from_state(state: Dict[str, Any], objectives=OBJECTIVES, include_flagged: bool = False,
                      excluded=None, ended: Optional[Dict[str, float]] = None) -> List[Dict[str, Any]]:
    """A sweep's trials in completion order (the state's ``hypervolume.done``), each with its last report's
    point, the sweep's front rule, whether the scheduler stopped it, and ``spent_at_end`` (the sweep's
    spend when it ended) where the spend log has it."""
    from raysweep.tracking.hypervolume import front_eligible

    trials = state["trials"]
    order = [str(n) for n in (state.get("hypervolume") or {}).get("done", [])]
    rest = sorted((k for k, r in trials.items() if k not in order and r.get("status") in ("FINISHED", "FAILED")),
                  key=lambda k: trials[k]["trial"])
    out = []
    for k in order + rest:
        r = trials[k]
        m = r.get("metrics") or {}
        out.append({"trial": r["trial"], "method": r.get("method"), "sampled": r.get("sampled"), "status": r["status"],
                    "epochs_run": int(m.get("epoch", 0) or 0), "stopped_early": bool(r.get("stopped_early")),
                    "catastrophic_overfit": bool(r.get("catastrophic_overfit")),
                    "eligible": front_eligible(r, objectives, include_flagged, excluded),
                    "train_time_s": m.get("train_time_s"), "val_robust_acc": m.get("val_robust_acc"),
                    "spent_at_end": None if ended is None else ended.get(k)})
    return out


def hv_curve(trials: List[Dict[str, Any]], ref: List[float]):
    """[(training time spent, hypervolume)] from (0, 0), a point after every completed trial. The clock: each
    trial's ``spent_at_end`` where every trial has one (the replay's: running trials' reports included), else
    the cumulative training time of the completed trials. Returns (curve, clock name)."""
    from raysweep.tracking.pareto import hypervolume_2d

    spend_log_ok = bool(trials) and all(t.get("spent_at_end") is not None for t in trials)
    pts, curve, done = [], [(0.0, 0.0)], 0.0
    for t in trials:
        done += float(t["train_time_s"] or 0.0)
        if t["eligible"]:
            pts.append([t["train_time_s"], t["val_robust_acc"]])
        x = max(float(t["spent_at_end"]), curve[-1][0]) if spend_log_ok else done
        curve.append((x, hypervolume_2d(pts, ["min", "max"], ref) if pts else 0.0))
    return curve, ("all_reports" if spend_log_ok else "completed_trials")


def run_one(curves, search, seed, budget_s, ref, work: Path, num_samples=sb.MAX_TRIALS, quiet=True):
    import yaml

    from raysweep.config import load_config
    from raysweep.sweep_state import read_state
    from raysweep.tune.runner import run_sweep

    raw = live_raw(curves, search, seed, budget_s, ref, num_samples)
    ypath = work / f"{raw['name']}.yaml"
    ypath.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(ypath, [])
    printer = (lambda *a, **k: None) if quiet else print
    load0, t0 = os.getloadavg(), time.time()
    with spend_log() as ended:
        summary = run_sweep(cfg, workdir=work, printer=printer)
    wall = time.time() - t0
    state = read_state(summary["sweep_dir"])
    trials = trials_from_state(state, cfg.objective_specs, cfg.sweep.front_includes_flagged, cfg.infeasible, ended)
    for t in trials:
        t["recorded_time_s"] = recorded_time(curves, t)
    own = (state.get("hypervolume") or {}).get("curve") or []
    return {"search": search, "seed": seed, "wall_s": wall, "sweep_wall_s": state.get("sweep_wall_s"),
            "loadavg_1min_start_end": [load0[0], os.getloadavg()[0]],
            "sweep_dir": str(summary["sweep_dir"]), "own_final_hv": own[-1][2] if own else None,
            "trials": trials}


def recorded_time(curves, trial) -> Optional[float]:
    """What the replay charges for this trial's epochs: its configuration's median recorded epoch time x the
    epochs it ran (the machine's speed then; the live/recorded ratio shows how loaded it is now)."""
    sampled = trial.get("sampled") or {}
    m = sampled.get("method")
    if m not in curves["knobs"] or not trial.get("epochs_run"):
        return None
    run = sb.Table(curves, "median").run(m, sampled.get(curves["knobs"][m][0]), "cyclic", 1)
    return None if run is None else run["epochs"][0]["train_time_s"] * trial["epochs_run"]


# ---------------------------------------------------------------------------------------------- summary
def summarise(runs: List[Dict[str, Any]], budget_s: float, ref: List[float], replay: Optional[Dict[str, Any]] = None):
    """Per search over its seeds (means): final HV, HV at fractions of B, the fraction of B to the live random
    sweeps' mean final HV (None unless every seed reaches it), trials, stopped early, spent / B, wall; beside
    each, the replay's number for the same search (search_budget.json) where given."""
    by: Dict[str, list] = {}
    for r in runs:
        curve, clock = hv_curve(r["trials"], ref)
        r["curve"], r["clock"] = curve, clock
        r["final_hv"] = curve[-1][1]
        r["spent"] = float(sum(t["train_time_s"] or 0.0 for t in r["trials"]))
        by.setdefault(r["search"], []).append(r)
    target = float(np.mean([r["final_hv"] for r in by["random"]])) if "random" in by else None
    rep = (replay or {}).get("datasets", {}).get(DATASET, {}).get("searches", {})
    out = {}
    for name, rs in by.items():
        fr = [None if target is None else sb.first_reach(r["curve"], target) for r in rs]
        fr = [None if x is None else x / budget_s for x in fr]
        s = {"seeds": len(rs), "final_hv": float(np.mean([r["final_hv"] for r in rs])),
             "final_hv_per_seed": [r["final_hv"] for r in rs],
             "hv_at_budget_fraction": {f"{f:g}": float(np.mean([sb.hv_at(r["curve"], f * budget_s) for r in rs]))
                                       for f in FRACTIONS},
             "budget_fraction_to_random_final_hv": (None if not fr or any(x is None for x in fr)
                                                    else float(np.mean(fr))),
             "per_seed_fraction": fr, "reached": sum(x is not None for x in fr),
             "trials_mean": float(np.mean([len(r["trials"]) for r in rs])),
             "stopped_early_mean": float(np.mean([sum(t["stopped_early"] for t in r["trials"]) for r in rs])),
             "spent_over_budget_mean": float(np.mean([r["spent"] / budget_s for r in rs])),
             "wall_s_mean": float(np.mean([r.get("wall_s") or 0.0 for r in rs])),
             # live training time over the replay's charge for the same epochs (1: as fast as when recorded)
             "time_ratio_vs_recorded_median": _time_ratio(rs),
             "clock": sorted({r["clock"] for r in rs})}
        if name in rep:
            p = rep[name]
            s["replay"] = {"seeds": p["seeds"], "final_hv": p["final_hv"]["mean"],
                           "hv_at_budget_fraction": {k: v["mean"] for k, v in p["hv_at_budget_fraction"].items()},
                           "budget_fraction_to_random_final_hv": p["budget_fraction_to_random_final_hv"]["mean"],
                           "reached": p["budget_fraction_to_random_final_hv"]["reached"],
                           "trials_mean": p["trials_mean"], "stopped_early_mean": p["stopped_early_mean"],
                           "spent_over_budget_mean": p.get("spent_over_budget_mean")}
        out[name] = s
    return out, target


def _time_ratio(rs):
    x = [t["train_time_s"] / t["recorded_time_s"] for r in rs for t in r["trials"]
         if t.get("recorded_time_s") and t.get("train_time_s")]
    return float(np.median(x)) if x else None


def ordering(searches: Dict[str, Any]):
    """The searches by final HV, highest first, live and replayed; and whether the two orders agree."""
    live = sorted(searches, key=lambda n: -searches[n]["final_hv"])
    if not all("replay" in s for s in searches.values()):
        return {"live": live, "replay": None, "agree": None}
    replay = sorted(searches, key=lambda n: -searches[n]["replay"]["final_hv"])
    return {"live": live, "replay": replay, "agree": live == replay}


def build_result(runs, budget_s, ref, replay, meta):
    searches, target = summarise(runs, budget_s, ref, replay)
    rep = (replay or {}).get("datasets", {}).get(DATASET, {})
    return dict(meta, dataset=DATASET, budget_s=budget_s, reference_point=ref, random_final_hv=target,
                replay_random_final_hv=rep.get("random_final_hv"), searches=searches, ordering=ordering(searches))


def supplement(result, runs, saved, source):
    """Another search_live.json's runs (e.g. a search rerun when the machine was quieter), summarised on the same
    budget and reference point, kept apart from the main table; with the fraction of B at which each main run
    reaches that file's random final HV. ``runs``: the main runs, their curves computed (``build_result``)."""
    sup_runs = saved["runs"]
    searches, target = summarise(sup_runs, result["budget_s"], result["reference_point"])
    reach = {}
    for name in result["searches"]:
        fr = [None if target is None else sb.first_reach(r["curve"], target) for r in runs if r["search"] == name]
        reach[name] = [None if x is None else x / result["budget_s"] for x in fr]
    return {"source": str(source), "date": saved.get("date"), "commit": saved.get("commit"),
            "random_final_hv": target, "searches": searches,
            "loadavg_1min_start_end": {r["search"]: r.get("loadavg_1min_start_end") for r in sup_runs},
            "main_fraction_to_this_random_final_hv": reach,
            "runs": [{k: v for k, v in r.items() if k != "curve"} for r in sup_runs]}  # kept, for --from-json


def _f(x, fmt="{:.2f}"):
    return "—" if x is None else fmt.format(x)


def markdown(result):
    lines = [f"Live sweeps on {result['dataset']} ({result.get('date', '?')}, commit `{str(result.get('commit'))[:7]}`, "
             f"{result.get('cpus')} CPUs): budget B = {result['budget_s']:.0f} s of training, reference point "
             f"({result['reference_point'][0]:.1f} s, 0). Live random's mean final HV: "
             f"{_f(result['random_final_hv'], '{:.3f}')}; "
             f"replayed: {_f(result.get('replay_random_final_hv'), '{:.3f}')}. Live: mean over "
             f"{max(s['seeds'] for s in result['searches'].values())} search seed(s); replay: mean over its seeds.", "",
             "| search | final HV live (replay) | HV at B/4 | HV at B/2 | HV at B | fraction of B to random's final HV "
             "(seeds reaching) | trials | stopped early | spent / B | wall (s) | epoch time live / recorded |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in result["searches"].items():
        p = s.get("replay") or {}
        pa = p.get("hv_at_budget_fraction") or {}
        at = " ".join(f"| {s['hv_at_budget_fraction'][k]:.2f} ({_f(pa.get(k))})" for k in ("0.25", "0.5", "1"))
        frac = (f"{_f(s['budget_fraction_to_random_final_hv'])} ({s['reached']}/{s['seeds']}); replay "
                f"{_f(p.get('budget_fraction_to_random_final_hv'))} ({p.get('reached', '?')}/{p.get('seeds', '?')})")
        lines.append(f"| {name} | {s['final_hv']:.2f} ({_f(p.get('final_hv'))}) {at} | {frac} "
                     f"| {s['trials_mean']:.1f} ({_f(p.get('trials_mean'), '{:.1f}')}) "
                     f"| {s['stopped_early_mean']:.1f} ({_f(p.get('stopped_early_mean'), '{:.1f}')}) "
                     f"| {s['spent_over_budget_mean']:.2f} ({_f(p.get('spent_over_budget_mean'))}) "
                     f"| {s['wall_s_mean']:.0f} | {_f(s.get('time_ratio_vs_recorded_median'))} |")
    for sup in result.get("supplementary") or []:
        lines += ["", f"Run apart ({sup['source']}, {sup['date']}, commit `{str(sup['commit'])[:7]}`), same B and "
                  "reference point: " + "; ".join(
                      f"`{n}` final HV {s['final_hv']:.2f}, {s['trials_mean']:.0f} trials, epoch time live / recorded "
                      f"{_f(s.get('time_ratio_vs_recorded_median'))}" for n, s in sup["searches"].items())
                  + ". Fraction of B at which each run of the table reaches that random's final HV: " + ", ".join(
                      f"`{n}` " + "/".join(_f(x) for x in fr)
                      for n, fr in sup["main_fraction_to_this_random_final_hv"].items())
                  + " (— : not reached)."]
    o = result["ordering"]
    lines += ["", "Replayed numbers (bench/results/search_budget.json) in brackets. Epoch time live / recorded: the "
              "median over trials of a trial's training time over its configuration's median recorded epoch time "
              "x its epochs (above 1: the machine was slower than when the curves were recorded, and B bought "
              "fewer epochs). Order by final HV, live: "
              + " > ".join(f"`{n}`" for n in o["live"])
              + ("" if o["replay"] is None else "; replayed: " + " > ".join(f"`{n}`" for n in o["replay"])
                 + f" ({'the same' if o['agree'] else 'different'})") + "."]
    return "\n".join(lines) + "\n"


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--searches", default=",".join(SEARCHES))
    ap.add_argument("--out", default=str(RESULTS / "search_live.json"), help="the JSON; the markdown beside it (.md)")
    ap.add_argument("--from-json", help="re-summarise the runs kept in an earlier search_live.json")
    ap.add_argument("--supplement", help="comma-separated search_live.json files of runs made apart (e.g. a rerun "
                    "on a quieter machine): summarised beside the main table, not in it")
    ap.add_argument("--budget-s", type=float, help="a smaller budget (smoke runs); default: search_budget.py's B")
    ap.add_argument("--num-samples", type=int, default=sb.MAX_TRIALS, help="trial cap (the budget ends a sweep first)")
    ap.add_argument("--verbose", action="store_true", help="the sweeps' progress lines")
    args = ap.parse_args(argv)
    curves = json.loads(CURVES.read_text())
    replay = json.loads(REPLAY.read_text()) if REPLAY.exists() else None
    budget, ref = budget_and_reference(curves, replay)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        runs, budget, ref = saved["runs"], saved["budget_s"], saved["reference_point"]
        meta = {k: saved.get(k) for k in ("date", "commit", "cpus", "platform", "torch", "wall_s", "args")}
    else:
        if args.budget_s:
            budget = args.budget_s
        work = Path(tempfile.mkdtemp(prefix="rs-live-"))
        os.chdir(work)
        runs, t0 = [], time.time()
        for seed in range(args.seeds):  # seed-major: machine drift spreads over every search
            for name in args.searches.split(","):
                r = run_one(curves, name, seed, budget, ref, work, args.num_samples, quiet=not args.verbose)
                runs.append(r)
                c, _ = hv_curve(r["trials"], ref)
                print(f"{name} seed {seed}: {len(r['trials'])} trials, final HV {c[-1][1]:.3f} (sweep's own "
                      f"{r['own_final_hv']}), {r['wall_s']:.0f} s", flush=True)
        import torch

        meta = {"date": datetime.date.today().isoformat(), "commit": _commit(), "cpus": os.cpu_count(),
                "platform": platform.platform(), "torch": torch.__version__, "wall_s": time.time() - t0,
                "args": {k: v for k, v in vars(args).items() if k != "from_json"}}
    result = build_result(runs, budget, ref, replay, meta)
    sups = [(json.loads(Path(p).read_text()), p) for p in args.supplement.split(",")] if args.supplement else []
    if args.from_json and not sups:  # those an earlier summary kept
        sups = [(sup, sup["source"]) for sup in saved.get("supplementary") or []]
    if sups:
        result["supplementary"] = [supplement(result, runs, sup, src) for sup, src in sups]
    text = markdown(result)
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = [{k: v for k, v in r.items() if k != "curve"} for r in runs]
    out.write_text(json.dumps(dict(result, runs=kept), indent=1))
    out.with_suffix(".md").write_text("# Searches under a compute budget, live (Fashion-MNIST)\n\n" + text)
    print(f"written: {out}, {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
