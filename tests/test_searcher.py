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
    return [c["sampled"] for c in _run(cfg, study, 6)], study


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


def _space_raw(epochs, methods=("fgsm_rs", "pgd_at"), enqueue=()):
    return dict(RAW, method={"choice": list(methods)},
                search=dict(RAW["search"], epochs={"choice": list(epochs)}),
                sweep=dict(RAW["sweep"], enqueue=list(enqueue)))


def _run(cfg, study, n, start=0):
    s = OptunaMultiObjectiveSearch(cfg, study)
    got = []
    for i in range(start, start + n):
        got.append(s.suggest(f"t{i}"))
        s.on_trial_complete(f"t{i}", {"train_time_s": float(i + 1), "val_robust_acc": 0.05 * i})
    return got


def test_resuming_with_a_new_choice_or_method_rebuilds_the_study_and_keeps_its_history(tmp_path):
    """Optuna refuses a categorical whose choices changed; a resumed reproduction that gained a
    configuration with a new value (epochs 8) or a new method must still run, with the earlier
    trials (same numbers, values, params) as the sampler's history and the old study kept."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cfg = parse_config(_space_raw([3, 4]), "s.yaml")
    _run(cfg, open_study(cfg, url, "s"), 4)
    before = optuna.load_study(study_name="s", storage=url).trials
    cfg2 = parse_config(_space_raw([3, 4, 8], methods=("fgsm_rs", "pgd_at", "trades"),
                                   enqueue=[{"label": "new", "method": "trades", "epochs": 8}]), "s.yaml")
    notes = []
    study = open_study(cfg2, url, "s", notes=notes)
    assert len(notes) == 1 and "epochs: choices [3, 4] -> [3, 4, 8]" in notes[0] and "method:" in notes[0]
    assert "'s@space-1'" in notes[0]
    after = study.trials
    assert [t.number for t in after[:4]] == [t.number for t in before]
    assert [t.values for t in after[:4]] == [t.values for t in before]
    assert [t.params for t in after[:4]] == [t.params for t in before]
    assert after[0].distributions["epochs"].choices == (3, 4, 8)
    got = _run(cfg2, study, 3, start=4)  # would raise "does not support dynamic value space" before
    assert got[0]["label"] == "new" and got[0]["sampled"] == {"method": "trades", "epochs": 8, "lr": got[0]["sampled"]["lr"]}
    assert got[0]["optuna_trial"] == 4
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert names == {"s", "s@space-1"}
    assert len(optuna.load_study(study_name="s@space-1", storage=url).trials) == 4
    assert open_study(cfg2, url, "s", notes=notes) and len(notes) == 1  # unchanged space: no second rebuild


def test_a_choice_that_left_the_space_drops_only_that_parameter_from_history(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    cfg = parse_config(_space_raw([3, 4]), "s.yaml")
    _run(cfg, open_study(cfg, url, "s"), 3)
    study = open_study(parse_config(_space_raw([4, 8]), "s.yaml"), url, "s", notes=[])
    for t in study.trials:
        assert ("epochs" in t.params) == (t.params.get("epochs") == 4) and t.values is not None


def test_a_rebuild_cut_short_by_a_killed_driver_is_finished_on_the_next_open(tmp_path):
    from raysweep.tune import study_space

    url = f"sqlite:///{tmp_path / 'k.db'}"
    cfg = parse_config(_space_raw([3, 4]), "s.yaml")
    _run(cfg, open_study(cfg, url, "s"), 3)
    cfg2 = parse_config(_space_raw([3, 4, 8]), "s.yaml")
    real = study_space._rebuild

    def dies_half_way(storage, name, backup, wanted):
        optuna.delete_study(study_name=name, storage=storage)
        optuna.create_study(study_name=name, storage=storage, directions=["minimize", "maximize"])
        raise KeyboardInterrupt  # the driver is killed after the original is gone

    study_space._rebuild = dies_half_way
    try:
        try:
            open_study(cfg2, url, "s")
        except KeyboardInterrupt:
            pass
    finally:
        study_space._rebuild = real
    assert optuna.load_study(study_name="s", storage=url).trials == []  # what the kill left
    study = open_study(cfg2, url, "s", notes=[])
    assert len(study.trials) == 3 and all(t.values for t in study.trials)
    assert study.user_attrs[study_space.REBUILT_FROM] == "s@space-1"
    _run(cfg2, study, 1, start=3)


def test_a_labelled_point_asked_by_a_driver_that_died_before_tune_started_it_is_queued_again(tmp_path):
    cfg, url = _enqueued(tmp_path, [{"method": "pgd_at", "pgd_at.steps": 2, "label": "a"}])
    s = OptunaMultiObjectiveSearch(cfg, open_study(cfg, url, "s"))
    assert s.suggest("t0")["label"] == "a"  # asked; the driver dies before the trial starts
    study = open_study(cfg, url, "s", started=set())  # the sweep's state never saw trial 0
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.user_attrs.get("label") for t in waiting] == ["a"]
    assert [t.user_attrs.get("label") for t in open_study(cfg, url, "s", started={0}).trials
            if t.state == optuna.trial.TrialState.WAITING] == ["a"]  # nothing twice


def test_a_resumed_sweep_does_not_replay_its_first_samples(tmp_path):
    """A seeded sampler rebuilt by a resumed driver would start its sequence again: the random start-up
    trials after a resume repeated the first ones (seen in a real tuning sweep). Still reproducible."""
    def run(tag):
        url = f"sqlite:///{tmp_path / (tag + '.db')}"
        for sampler in ("random", "tpe"):
            raw = dict(RAW, name=sampler, sweep=dict(RAW["sweep"], sampler=sampler))
            cfg = parse_config(raw, "s.yaml")
            first = _run(cfg, open_study(cfg, url, sampler), 2)
            again = _run(cfg, open_study(cfg, url, sampler), 2, start=2)  # as `raysweep resume` reopens it
            yield [c["sampled"] for c in first], [c["sampled"] for c in again]
    a, b = list(run("a")), list(run("b"))
    assert a == b
    for first, again in a:
        assert not any(x == y for x in first for y in again), (first, again)


def test_a_trial_config_carries_its_spec_as_one_string_that_reads_back_as_the_spec(tmp_path):
    from ray.tune.utils import flatten_dict

    from raysweep.tune.trial_config import spec_of

    cfg = parse_config(RAW, "s.yaml")
    s = OptunaMultiObjectiveSearch(cfg, open_study(cfg, f"sqlite:///{tmp_path / 'c.db'}", "s"))
    config = s.suggest("t0")
    # one atomic value to Tune's copies and flattening, not ~40 nested settings
    assert isinstance(config["spec"], str)
    assert sum(k.startswith("spec") for k in flatten_dict(config)) == 1
    assert spec_of(config) == cfg.trial_spec(config["sampled"]).to_dict()
    # a config made by hand (tests, tools) may still give the spec as a dict
    assert spec_of({"spec": {"method": "fgsm_rs"}}) == {"method": "fgsm_rs"} and spec_of({}) == {}
