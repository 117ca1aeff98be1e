"""The Optuna ask/tell searcher: conditional spaces, reproducible sampling, honest failure states."""

import optuna

from raysweep.config import parse_config
from raysweep.tune.searcher import OptunaMultiObjectiveSearch, objective_values, open_study

RAW = {
    "name": "s", "method": {"choice": ["fgsm_rs", "pgd_at"]}, "dataset": {"name": "synthetic", "val_size": 64},
    "model": {"name": "small_cnn"}, "threat": {"eps": 0.1},
    "search": {"pgd_at.steps": {"int": [1, 5]}, "fgsm_rs.alpha": {"float": [0.05, 0.2]}, "lr": {"float": [1e-3, 1e-1], "log": True}},
    "sweep": {"num_samples": 6, "sampler": "tpe", "seed": 3},
}


def _samples(tmp_path, tag, sampler="tpe"):
    raw = dict(RAW, sweep=dict(RAW["sweep"], sampler=sampler))
    cfg = parse_config(raw, "s.yaml")
    study = open_study(cfg, f"sqlite:///{tmp_path / (tag + '.db')}", "s")
    s = OptunaMultiObjectiveSearch(cfg, study)
    out = []
    for i in range(6):
        c = s.suggest(f"t{i}")
        out.append(c["sampled"])
        s.on_trial_complete(f"t{i}", {"train_time_s": float(i + 1), "val_robust_acc": 0.1 * i})
    return out, study


def test_conditional_parameters_only_for_their_method(tmp_path):
    out, _ = _samples(tmp_path, "a")
    for p in out:
        if p["method"] == "pgd_at":
            assert "pgd_at.steps" in p and "fgsm_rs.alpha" not in p
        else:
            assert "fgsm_rs.alpha" in p and "pgd_at.steps" not in p
        assert 1e-3 <= p["lr"] <= 1e-1


def test_same_seed_same_configs(tmp_path):
    for sampler in ("tpe", "nsga2", "random"):
        a, _ = _samples(tmp_path, f"a-{sampler}", sampler)
        b, _ = _samples(tmp_path, f"b-{sampler}", sampler)
        assert a == b


def test_failed_and_nan_trials_end_as_fail_not_running(tmp_path):
    cfg = parse_config(RAW, "s.yaml")
    study = open_study(cfg, f"sqlite:///{tmp_path / 'f.db'}", "s")
    s = OptunaMultiObjectiveSearch(cfg, study)
    for i in range(3):
        s.suggest(f"t{i}")
    s.on_trial_complete("t0", {"train_time_s": 1.0, "val_robust_acc": float("nan")})
    s.on_trial_complete("t1", None, error=True)
    s.on_trial_complete("t2", {"train_time_s": 1.0, "val_robust_acc": 0.5})
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert [t.number for t in study.best_trials] == [2]


def test_objective_values_requires_every_objective():
    cfg = parse_config(RAW, "s.yaml")
    assert objective_values(cfg, {"train_time_s": 1.0}) is None
    assert objective_values(cfg, {"train_time_s": 1.0, "val_robust_acc": 0.3}) == [1.0, 0.3]
