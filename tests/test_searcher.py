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


def _enqueued(tmp_path, points):
    raw = dict(RAW, sweep=dict(RAW["sweep"], enqueue=points))
    cfg = parse_config(raw, "s.yaml")
    return cfg, f"sqlite:///{tmp_path / 'q.db'}"


def test_every_enqueued_point_comes_first_labelled_or_not(tmp_path):
    points = [{"method": "pgd_at", "pgd_at.steps": s} for s in (1, 2, 3)] + [
        {"method": "fgsm_rs", "fgsm_rs.alpha": 0.1, "label": "paper"}]
    cfg, url = _enqueued(tmp_path, points)
    s = OptunaMultiObjectiveSearch(cfg, open_study(cfg, url, "s"))
    got = [s.suggest(f"t{i}") for i in range(4)]
    assert [c["sampled"].get("pgd_at.steps") for c in got[:3]] == [1, 2, 3]
    assert got[3]["sampled"]["fgsm_rs.alpha"] == 0.1 and got[3]["label"] == "paper"
    assert [c["label"] for c in got[:3]] == [None, None, None]


def test_a_resumed_study_queues_only_new_labelled_points(tmp_path):
    cfg, url = _enqueued(tmp_path, [{"method": "pgd_at", "pgd_at.steps": 1}, {"method": "pgd_at", "pgd_at.steps": 2, "label": "a"}])
    open_study(cfg, url, "s")
    cfg2, _ = _enqueued(tmp_path, [{"method": "pgd_at", "pgd_at.steps": 1}, {"method": "pgd_at", "pgd_at.steps": 2, "label": "a"},
                                   {"method": "pgd_at", "pgd_at.steps": 4, "label": "b"}])
    study = open_study(cfg2, url, "s")
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.params.get("pgd_at.steps", t.system_attrs.get("fixed_params", {}).get("pgd_at.steps")) for t in waiting] == [1, 2, 4]
