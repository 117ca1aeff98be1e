"""What the driver does per trial stays the same size as the sweep grows: the hypervolume curve and the front
kept as trials end (equal to recomputing them from every trial), and the copy of the incremental state to
object storage (a snapshot and a log that replay without a gap)."""

import json
import random

import numpy as np
import pytest

from raysweep.sweep_state import STATE_FILE, SweepState, read_state
from raysweep.tracking.hypervolume import HypervolumeTracker, derive_reference, front_eligible
from raysweep.tracking.pareto import IncrementalFront, hypervolume_2d, pareto_mask

OBJS = [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}]


def _full_recomputation(order, trials, objs, include_flagged=False, excluded=None, declared=None):
    """The curve as raysweep computed it before: every completion, the front of every ended trial."""
    ref, done, curve = dict(declared) if declared else None, [], []
    for n in order:
        done.append(n)
        rec = trials[str(n)]
        if ref is None and front_eligible(rec, objs, include_flagged, excluded):
            ref = derive_reference(objs, rec["metrics"])
        recs = [trials[str(t)] for t in done]
        spent = sum(float(r.get("metrics", {}).get("train_time_s", 0.0) or 0.0) for r in recs)
        ok = [r for r in recs if front_eligible(r, objs, include_flagged, excluded)]
        pts = [[r["metrics"][o["metric"]] for o in objs] for r in ok]
        hv = hypervolume_2d(pts, [o["mode"] for o in objs], [ref[o["metric"]] for o in objs]) if ok and ref else 0.0
        curve.append([len(recs), spent, hv])
    return curve


def _random_trials(n, seed):
    rng = random.Random(seed)
    trials = {}
    for t in range(n):
        cost = rng.choice([rng.uniform(1, 100), rng.uniform(1, 100), 400.0, float(rng.randint(1, 5))])
        acc = rng.choice([rng.random(), rng.random(), 0.5, float("nan")])
        rec = {"trial": t, "status": rng.choice(["FINISHED"] * 8 + ["FAILED"]),
               "metrics": {"train_time_s": cost, "val_robust_acc": acc}}
        if rng.random() < 0.1:
            rec["catastrophic_overfit"] = True
        if rng.random() < 0.05:
            del rec["metrics"]["val_robust_acc"]  # an objective never measured
        trials[str(t)] = rec
    return trials


@pytest.mark.parametrize("seed,include_flagged,declared", [(0, False, None), (1, True, None),
                                                            (2, False, {"train_time_s": 80.0, "val_robust_acc": 0.1})])
def test_the_incremental_curve_equals_the_full_recomputation_across_a_resume(tmp_path, seed, include_flagged, declared):
    trials = _random_trials(300, seed)
    order = list(range(300))
    random.Random(seed).shuffle(order)  # completion order is not trial order
    excluded = lambda m: m.get("train_time_s", 0) > 90  # a YAML constraint
    want = _full_recomputation(order, trials, OBJS, include_flagged, excluded, declared)
    kw = dict(declared=declared, include_flagged=include_flagged, excluded=excluded)

    state = SweepState(tmp_path / STATE_FILE)
    hv = HypervolumeTracker(state, OBJS, **kw)
    for n in order[:150]:
        state.trials[str(n)] = trials[str(n)]
        state.save(trials=[str(n)])  # as the recorder's sync does, before the curve
        hv.on_complete(trials[str(n)])
    # the driver is killed; a new one rebuilds the front from the state on disk and goes on
    resumed = SweepState(tmp_path / STATE_FILE)
    hv2 = HypervolumeTracker(resumed, OBJS, **kw)
    for n in order[150:]:
        resumed.trials[str(n)] = trials[str(n)]
        resumed.save(trials=[str(n)])
        hv2.on_complete(trials[str(n)])
    got = read_state(tmp_path)["hypervolume"]["curve"]
    assert [c[0] for c in got] == [c[0] for c in want]
    assert [c[1] for c in got] == pytest.approx([c[1] for c in want])  # a running sum: rounding apart
    assert [c[2] for c in got] == [c[2] for c in want]  # the same sum in the same order: equal, not close
    on_front = [r for r in trials.values() if front_eligible(r, OBJS, include_flagged, excluded)]
    pts = [[r["metrics"][o["metric"]] for o in OBJS] for r in on_front]
    assert hv2.front_size() == int(pareto_mask(pts, ["min", "max"]).sum())


def _pareto_mask_all_pairs(points, modes):
    p = np.asarray(points, dtype=float) * np.array([1.0 if m == "min" else -1.0 for m in modes])
    valid = ~np.isnan(p).any(axis=1)
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        o = p[valid]
        mask[i] = not np.any(np.all(o <= p[i], axis=1) & np.any(o < p[i], axis=1))
    return mask


@pytest.mark.parametrize("k", [2, 3])
def test_pareto_mask_against_the_front_equals_all_pairs(k):
    rng = np.random.default_rng(k)
    pts = np.round(rng.random((400, k)), 1)  # coarse: many ties and exact duplicates
    pts[rng.random(400) < 0.05, 0] = np.nan
    modes = ["min", "max", "min"][:k]
    assert (pareto_mask(pts, modes) == _pareto_mask_all_pairs(pts, modes)).all()
    f = IncrementalFront(modes)
    for row in pts:
        f.add(row)
    assert len(f) == int(_pareto_mask_all_pairs(pts, modes).sum())


def test_the_copy_in_storage_replays_without_a_gap_across_a_fold(tmp_path):
    from raysweep.tune import durable

    local, remote = tmp_path / "sweep", tmp_path / "bucket"
    local.mkdir()
    s = SweepState(local / STATE_FILE)
    mirror = durable.SweepMirror(local, str(remote))
    for i in range(60):
        s.trials[str(i)] = {"trial": i, "status": "FINISHED", "metrics": {"x": i}}
        s.save(trials=[str(i)])
        if i % 7 == 0:
            mirror.push(force=True)
        if i % 11 == 0:
            s.snapshot()  # the driver folds its log between two copies
        assert set(read_state(remote)["trials"]) <= set(s.trials)
    mirror.push(force=True)
    assert read_state(remote) == read_state(local) == s.data
    fetched = tmp_path / "new-head"
    assert durable.fetch(str(remote), fetched) and read_state(fetched) == s.data


def test_importance_ranks_a_seeded_bounded_sample(monkeypatch):
    import math

    import optuna

    from raysweep.config import Objective
    from raysweep.tune import importance

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(120):
        t = study.ask()
        lr, wd = t.suggest_float("lr", 1e-3, 1e-1, log=True), t.suggest_float("wd", 0.0, 1.0)
        study.tell(t, [wd, 1.0 - abs(math.log10(lr) + 2.0)])
    monkeypatch.setattr(importance, "MAX_TRIALS", 40)
    objs = [Objective(metric="train_time_s", mode="min"), Objective(metric="val_robust_acc", mode="max")]
    first, again = importance.param_importances(study, objs), importance.param_importances(study, objs)
    assert first == again and first["trials"] == 120  # the sample is seeded; the count is of all trials
    assert max(first["objectives"]["val_robust_acc"]["all"], key=first["objectives"]["val_robust_acc"]["all"].get) == "lr"
    assert max(first["objectives"]["train_time_s"]["all"], key=first["objectives"]["train_time_s"]["all"].get) == "wd"


def test_an_ended_trial_lets_tunes_running_statistics_go_and_keeps_its_last_result():
    from ray.tune.experiment import Trial

    from raysweep.tune.ray_compat import release_trial_statistics

    trial = Trial("raysweep_trial", config={"optuna_trial": 0}, stub=True)
    for it in (1, 2, 3):
        trial.update_last_result({"training_iteration": it, "epoch": it, "val_robust_acc": 0.1 * it, "train_time_s": it})
    meta = trial.run_metadata
    assert meta.metric_n_steps and meta.metric_analysis  # what Tune keeps for every number reported
    assert release_trial_statistics(trial)
    assert meta.metric_n_steps == {} and meta.metric_analysis == {}
    assert abs(trial.last_result["val_robust_acc"] - 0.3) < 1e-12
    assert json.loads(meta.get_json_state())["last_result"]["epoch"] == 3  # Tune's own checkpoint still reads it
    assert not release_trial_statistics(object())  # a Ray without these names: nothing done
