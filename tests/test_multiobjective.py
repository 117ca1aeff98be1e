"""Multi-objective ASHA's promotion rule on hand-made rungs, the ranking primitives it stands on
(non-dominated sorting, crowding distance, 2-D hypervolume), and its rung state rebuilt from a
sweep's trial histories (what a resumed sweep does). The end-to-end sweeps are in
test_sweep_e2e.py (in-process executor) and test_lean_train.py (Ray Train executor)."""

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from raysweep.config import ConfigError, parse_config
from raysweep.tracking.pareto import crowding_distance, hypervolume_2d, nondominated_fronts, rank_keys
from raysweep.tune.mo_asha import MultiObjectiveASHA, promotes, rung_levels

MODES = ["min", "max"]  # (training cost so far, robust accuracy so far), as a sweep's objectives


def test_rung_levels_are_ashas():
    assert rung_levels(1, 2, 8) == [1, 2, 4]
    assert rung_levels(1, 3, 9) == [1, 3]
    assert rung_levels(2, 2, 3) == [2]
    assert rung_levels(1, 2, 1) == []


def test_nondominated_fronts_and_nan_last():
    pts = [[1, 0.5], [2, 0.9], [2, 0.4], [3, 0.3], [float("nan"), 0.99]]
    assert nondominated_fronts(pts, MODES) == [[0, 1], [2], [3], [4]]


def test_crowding_distance_extremes_infinite_middle_normalised():
    pts = [[0, 0.0], [1, 0.5], [4, 1.0]]
    d = crowding_distance(pts, MODES)
    assert math.isinf(d[0]) and math.isinf(d[2])
    assert d[1] == pytest.approx((4 - 0) / 4 + (1.0 - 0.0) / 1.0)


def test_hypervolume_2d_by_hand():
    # ref (10 s, 0.0 accuracy): the staircase of (2, 0.5) and (6, 0.9) covers
    # (10-2)*0.5 + (10-6)*(0.9-0.5) = 4 + 1.6
    assert hypervolume_2d([[2, 0.5], [6, 0.9], [7, 0.4]], MODES, [10, 0.0]) == pytest.approx(5.6)
    assert hypervolume_2d([[12, 0.5]], MODES, [10, 0.0]) == 0.0  # beyond the reference adds nothing
    assert hypervolume_2d([], MODES, [10, 0.0]) == 0.0


def test_cheap_trial_goes_on_where_single_objective_asha_would_stop_it():
    # Two expensive robust trials at rung 1; a cheap single-step trial arrives with lower
    # robustness. ASHA on robust accuracy alone: cutoff = median 0.7 > 0.3, stop. Here it is the
    # cheap end of the front (infinite crowding distance): it goes on, the middle point would not.
    recorded = {0: [100.0, 0.8], 1: [90.0, 0.7]}
    assert np.percentile([0.8, 0.7, 0.3], 50) > 0.3
    assert promotes(recorded, 2, [10.0, 0.3], MODES, 2)
    assert not promotes({0: [100.0, 0.8], 2: [10.0, 0.3]}, 1, [90.0, 0.7], MODES, 2)


def test_dominated_trial_stops_first_trial_goes_on_nan_ranks_last():
    assert promotes({}, 0, [5.0, 0.1], MODES, 2)
    assert not promotes({0: [10.0, 0.8]}, 1, [20.0, 0.5], MODES, 2)
    assert promotes({0: [10.0, 0.8]}, 1, [20.0, 0.9], MODES, 2)  # a tie at the cut goes on
    assert not promotes({0: [10.0, 0.2]}, 1, [1.0, float("nan")], MODES, 2)
    # reduction factor 3 keeps the best third: of 3, one; of 4, two
    assert not promotes({0: [1, 0.9], 1: [2, 0.95]}, 2, [3, 0.5], MODES, 3)
    assert promotes({0: [1, 0.9], 1: [2, 0.95], 3: [5, 0.1]}, 2, [3, 0.97], MODES, 3)


def test_rank_keys_front_then_spread():
    keys = rank_keys([[0, 0.0], [1, 0.5], [4, 1.0], [5, 0.2]], MODES)
    assert keys[0][0] == keys[1][0] == keys[2][0] == 0 and keys[3][0] == 1
    assert keys[0] < keys[1] and keys[2] < keys[1]


def _trial(n):
    return SimpleNamespace(config={"optuna_trial": n}, trial_id=f"t{n}")


def test_scheduler_decides_once_per_rung_and_rebuilds_from_history():
    s = MultiObjectiveASHA([("cost", "min"), ("val_robust_acc", "max")], max_t=4, grace_period=1, reduction_factor=2)
    assert s.levels == [1, 2]
    assert s.on_trial_result(None, _trial(0), {"epoch": 1, "cost": 10, "val_robust_acc": 0.8}) == "CONTINUE"
    assert s.on_trial_result(None, _trial(1), {"epoch": 1, "cost": 20, "val_robust_acc": 0.5}) == "STOP"
    # a restarted trial reporting the same rung again is not judged twice
    assert s.on_trial_result(None, _trial(0), {"epoch": 1, "cost": 99, "val_robust_acc": 0.0}) == "CONTINUE"
    assert s.on_trial_result(None, _trial(0), {"epoch": 3, "cost": 30, "val_robust_acc": 0.85}) == "CONTINUE"  # rung 2
    assert s.on_trial_result(None, _trial(0), {"epoch": 4, "cost": 40, "val_robust_acc": 0.9}) == "CONTINUE"  # max_t
    assert s.rungs == {1: {0: [10.0, 0.8], 1: [20.0, 0.5]}, 2: {0: [30.0, 0.85]}}
    # A resumed sweep rebuilds the rungs from the trials' epoch histories (state.json)
    history = {0: [{"epoch": 1, "cost": 10, "val_robust_acc": 0.8}, {"epoch": 2, "cost": 20, "val_robust_acc": 0.85}],
               1: [{"epoch": 1, "cost": 20, "val_robust_acc": 0.5}]}
    r = MultiObjectiveASHA([("cost", "min"), ("val_robust_acc", "max")], max_t=4, history=history)
    assert r.rungs == {1: {0: [10.0, 0.8], 1: [20.0, 0.5]}, 2: {0: [20.0, 0.85]}}
    assert r.on_trial_result(None, _trial(2), {"epoch": 1, "cost": 30, "val_robust_acc": 0.4}) == "STOP"


def _rejects(sweep, match):
    raw = {"name": "s", "method": "fgsm_rs", "dataset": {"name": "synthetic"}, "sweep": sweep}
    with pytest.raises(ConfigError, match=match):
        parse_config(raw, "s.yaml")


def test_mo_asha_rejects_a_scalar_proxy():
    _rejects({"early_stopping": {"scheduler": "mo_asha", "metric": "val_robust_acc"}},
             r"sweep\.early_stopping\.metric.*mo_asha ranks trials on the sweep's objectives")
    _rejects({"early_stopping": {"scheduler": "mo_ashaa"}}, r"sweep\.early_stopping\.scheduler.*mo_asha")


def _rec(n, cost, acc, status="FINISHED", flagged=False):
    r = {"trial": n, "status": status, "metrics": {"train_time_s": cost, "val_robust_acc": acc}}
    if flagged:
        r["catastrophic_overfit"] = True
    return r


def test_hypervolume_curve_fixed_reference_failed_and_flagged_trials(tmp_path):
    from raysweep.tracking.hypervolume import HypervolumeTracker
    from raysweep.sweep_state import SweepState

    state = SweepState(tmp_path / "state.json")
    objs = [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}]
    hv = HypervolumeTracker(state, objs)
    recs = [_rec(0, 10.0, 0.5), _rec(1, 5.0, 0.0, status="FAILED"), _rec(2, 20.0, 0.9, flagged=True),
            _rec(3, 40.0, 0.8), _rec(4, 4.0, 0.2)]
    curve = []
    for r in recs:
        state.trials[str(r["trial"])] = r
        curve.append(hv.on_complete(r))
    assert hv.data["ref"] == {"train_time_s": 100.0, "val_robust_acc": 0.0}  # from the first finished trial
    assert hv.on_complete(recs[0]) is None  # a trial is counted once (e.g. a resumed sweep)
    # the failed trial adds time but nothing to the front; the collapsed one stays off it
    a0 = (100 - 10) * 0.5
    a3 = a0 + (100 - 40) * (0.8 - 0.5)
    a4 = a3 + (10 - 4) * 0.2
    assert [c[0] for c in curve] == [1, 2, 3, 4, 5]
    assert [c[1] for c in curve] == [10, 15, 35, 75, 79]
    assert [c[2] for c in curve] == pytest.approx([a0, a0, a0, a3, a4])
    assert hv.ref_param() == "train_time_s=100,val_robust_acc=0"
    # a declared reference wins and survives a new tracker over the same state (resume)
    state2 = SweepState(tmp_path / "s2.json")
    declared = HypervolumeTracker(state2, objs, declared={"train_time_s": 50, "val_robust_acc": 0.1})
    state2.trials["0"] = recs[0]
    assert declared.on_complete(recs[0])[2] == pytest.approx((50 - 10) * (0.5 - 0.1))
    state2.save()
    again = HypervolumeTracker(SweepState(tmp_path / "s2.json"), objs)
    assert again.data["ref"] == {"train_time_s": 50.0, "val_robust_acc": 0.1} and again.data["done"] == [0]


def test_hypervolume_of_a_sweep_begun_before_the_record_existed(tmp_path):
    from raysweep.tracking.hypervolume import HypervolumeTracker
    from raysweep.sweep_state import SweepState

    state = SweepState(tmp_path / "old.json")
    for r in (_rec(1, 40.0, 0.8), _rec(0, 10.0, 0.5), {**_rec(2, 5.0, 0.1), "status": "RUNNING"}):
        state.trials[str(r["trial"])] = r
    objs = [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}]
    hv = HypervolumeTracker(state, objs)  # a resumed sweep: its ended trials enter the curve, in trial order
    assert hv.data["done"] == [0, 1] and [c[0] for c in hv.data["curve"]] == [1, 2]
    assert hv.data["ref"] == {"train_time_s": 100.0, "val_robust_acc": 0.0}
    assert hv.data["curve"][-1][2] == pytest.approx(90 * 0.5 + 60 * 0.3)
    assert len(HypervolumeTracker(state, objs).data["curve"]) == 2  # built once


def test_hypervolume_ref_must_name_every_objective():
    _rejects({"hypervolume_ref": {"train_time_s": 100}}, r"sweep\.hypervolume_ref.*train_time_s, val_robust_acc")


def _study(n=16, seed=0):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        t = study.ask()
        method = t.suggest_categorical("method", ["fgsm_rs", "pgd_at"])
        lr = t.suggest_float("lr", 1e-3, 1e-1, log=True)
        steps = t.suggest_int("pgd_at.steps", 1, 10) if method == "pgd_at" else 1
        # cost is driven by the attack steps only, robustness by the learning rate only
        study.tell(t, [10.0 * (steps + 1), 1.0 - abs(math.log10(lr) + 2.0)])
    return study


def test_importance_ranks_what_drives_each_objective_per_method_too():
    from raysweep.config import Objective
    from raysweep.tune.importance import format_importances, param_importances

    imp = param_importances(_study(), [Objective(metric="train_time_s", mode="min"),
                                       Objective(metric="val_robust_acc", mode="max")])
    assert imp["trials"] == 16 and imp["evaluator"].startswith("fANOVA")
    rob = imp["objectives"]["val_robust_acc"]
    assert max(rob["all"], key=rob["all"].get) == "lr"  # across methods: lr, not the method
    cost = imp["objectives"]["train_time_s"]
    assert "pgd_at.steps" not in cost["all"]  # conditional: not in every trial ...
    assert max(cost["per_method"]["pgd_at"], key=cost["per_method"]["pgd_at"].get) == "pgd_at.steps"  # ... but here
    assert "skipped" in cost["per_method"]["fgsm_rs"] or max(cost["per_method"]["fgsm_rs"].values()) >= 0
    text = format_importances(imp)
    assert "val_robust_acc, all trials: lr" in text and "train_time_s, method pgd_at: pgd_at.steps" in text


def test_importance_with_too_few_trials_says_so():
    from raysweep.config import Objective
    from raysweep.tune.importance import param_importances

    imp = param_importances(_study(n=3), [Objective(metric="train_time_s", mode="min"),
                                          Objective(metric="val_robust_acc", mode="max")])
    assert "3 completed trials" in imp["objectives"]["train_time_s"]["all"]["skipped"]


def test_constraints_validate_and_reach_the_sampler(tmp_path):
    import optuna

    from raysweep.tune.searcher import OptunaMultiObjectiveSearch, open_study

    base = {"name": "c", "method": "fgsm_rs", "dataset": {"name": "synthetic"},
            "search": {"lr": {"float": [1e-3, 1e-1], "log": True}}, "sweep": {"num_samples": 4, "seed": 0}}
    for bad, key in (([{"metric": "val_clen_acc", "min": 0.9}], r"constraints\[0\]\.metric.*val_clean_acc"),
                     ([{"metric": "val_clean_acc", "min": 0.9, "max": 0.5}], r"constraints\[0\]\.min.*> max"),
                     ([{"metric": "val_clean_acc"}], r"constraints\[0\].*needs min, max or both"),
                     ([{"metric": "val_clean_acc", "minimum": 0.9}], r"constraints\[0\]")):
        with pytest.raises(ConfigError, match=key):
            parse_config(dict(base, constraints=bad), "c.yaml")
    cfg = parse_config(dict(base, constraints=[{"metric": "val_clean_acc", "min": 0.9}]), "c.yaml")
    assert cfg.infeasible({"val_clean_acc": 0.8}) and not cfg.infeasible({"val_clean_acc": 0.95})
    assert cfg.infeasible({})  # not measured: not feasible
    study = open_study(cfg, f"sqlite:///{tmp_path / 'c.db'}", "c")
    assert study.metric_names == ["train_time_s", "val_robust_acc"]  # optuna-dashboard shows these
    s = OptunaMultiObjectiveSearch(cfg, study)
    for i, clean in enumerate((0.8, 0.95)):
        s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"train_time_s": 1.0 + i, "val_robust_acc": 0.5, "val_clean_acc": clean})
    trials = optuna.load_study(study_name="c", storage=f"sqlite:///{tmp_path / 'c.db'}").trials
    assert [t.constraints for t in trials] == [{"0:val_clean_acc": pytest.approx(0.1)},
                                               {"0:val_clean_acc": pytest.approx(-0.05)}]
    # TPE's split puts the infeasible trial with the bad ones, whatever its objectives
    from optuna.samplers._tpe.sampler import _get_infeasible_trial_score

    assert _get_infeasible_trial_score(trials[0]) > 0 and _get_infeasible_trial_score(trials[1]) == 0


def test_progress_line_counts_only_what_the_front_may_hold():
    from raysweep.tracking.hypervolume import front_eligible
    from raysweep.tune.callbacks import ProgressPrinter

    base = {"name": "c", "method": "fgsm_rs", "dataset": {"name": "synthetic"},
            "constraints": [{"metric": "val_clean_acc", "min": 0.9}]}
    cfg = parse_config(base, "c.yaml")
    objs = [{"metric": o.metric, "mode": o.mode} for o in cfg.objectives]
    # the cheapest and most robust trial is outside the constraint; a collapsed one is off the front too
    trials = {"0": {"status": "FINISHED", "metrics": {"train_time_s": 1.0, "val_robust_acc": 0.9, "val_clean_acc": 0.5}},
              "1": {"status": "FINISHED", "metrics": {"train_time_s": 2.0, "val_robust_acc": 0.5, "val_clean_acc": 0.95}},
              "2": {"status": "FINISHED", "metrics": {"train_time_s": 3.0, "val_robust_acc": 0.7, "val_clean_acc": 0.95}},
              "3": {"status": "FINISHED", "catastrophic_overfit": True,
                    "metrics": {"train_time_s": 0.5, "val_robust_acc": 0.95, "val_clean_acc": 0.99}}}
    lines = []
    rec = SimpleNamespace(state=SimpleNamespace(trials=trials), counts=Counter(r["status"] for r in trials.values()))
    p = ProgressPrinter(rec, 4, cfg.objectives, printer=lambda *a, **k: lines.append(a[0]),
                        eligible=lambda r: front_eligible(r, objs, False, cfg.infeasible))
    p._line("x")
    assert "front 2 |" in lines[-1]  # trials 1 and 2; without the rule trial 0 and 3 would dominate them


def test_a_tpe_sweep_of_thousands_of_trials_is_told_what_the_sampler_will_cost():
    from raysweep.tune.searcher import TPE_MANY_TRIALS, sampler_cost_note

    def note(sampler, n):
        raw = {"name": "s", "method": "fgsm_rs", "dataset": {"name": "synthetic"},
               "search": {"lr": {"float": [1e-3, 1e-1], "log": True}}, "sweep": {"num_samples": n, "sampler": sampler}}
        return sampler_cost_note(parse_config(raw, "s.yaml"))

    line = note("tpe", TPE_MANY_TRIALS + 1)
    assert line and "grows with the study" in line and "nsga2 or random" in line
    assert note("tpe", TPE_MANY_TRIALS) is None  # a sweep of the usual size hears nothing
    assert note("random", 10 * TPE_MANY_TRIALS) is None and note("nsga2", 10 * TPE_MANY_TRIALS) is None
