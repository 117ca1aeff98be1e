"""``sweep.budget``: the sweep stops starting trials once the training time or cost it has spent reaches the bound,
says so on the terminal and on its parent run, and a resumed sweep counts what its earlier runs spent."""

import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config
from raysweep.errors import ConfigError
from raysweep.sweep_state import read_state
from raysweep.tune.budget import spent
from raysweep.tune.runner import run_sweep


@pytest.mark.parametrize("value", ["{cost: 0}", "{cost: -1}", "{epochs: 3}", "{cost: 5, train_time_s: 9}", "5",
                                   "{cost: true}", "{cost: .inf}"])
def test_a_budget_is_one_of_train_time_s_or_cost_above_zero(tiny_yaml, value):
    with pytest.raises(ConfigError) as e:
        load_config(tiny_yaml("b", n=2), [f"sweep.budget={value}"])
    assert ": sweep.budget: " in str(e.value) and "train_time_s or cost" in str(e.value) and "\n" not in str(e.value)


def test_spent_counts_every_seed_of_every_trial_running_ones_included():
    trials = {"0": {"metrics": {"cost": 4.0}, "spec": {"repeats": 1}},
              "1": {"metrics": {"cost": 2.0}, "spec": {"repeats": 3}},  # the mean of 3 seeds, each trained
              "2": {"metrics": {}, "spec": {}}}  # started, nothing reported yet
    assert spent(trials, "cost") == 10.0 and spent(trials, "train_time_s") == 0.0


@pytest.mark.ray
def test_the_sweep_stops_starting_trials_at_its_budget_and_resume_honours_it(ray_session, tiny_yaml, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tiny_yaml("budget", n=6), ["sweep.budget={cost: 5}", "final_eval.enabled=false"])
    lines = []
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    state = read_state(summary["sweep_dir"])
    n = len(state["trials"])
    # every trial costs 4-8 (2 epochs); two start at once, so the bound is passed with the first two or three
    assert 2 <= n < 6, n
    assert spent(state["trials"], "cost") >= 5
    reached = [ln for ln in lines if "budget reached (cost" in ln]
    assert len(reached) == 1 and "of 5 spent" in reached[0], lines
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(state["parent_run_id"])
    assert parent.data.params["sweep.budget"] == "cost=5"
    assert parent.data.tags["raysweep.budget_reached"].startswith("raysweep: budget reached (cost")

    lines.clear()
    again = run_sweep(load_config(tiny_yaml("budget", n=6), ["sweep.budget={cost: 5}", "final_eval.enabled=false"]),
                      workdir=tmp_path, resume_dir=summary["sweep_dir"],
                      printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert len(read_state(again["sweep_dir"])["trials"]) == n  # nothing new started: the budget was spent
    assert any("budget reached" in ln for ln in lines), lines


def test_the_tally_kept_report_by_report_equals_the_full_count():
    import random

    from raysweep.tune.budget import SpentTally

    rng = random.Random(0)
    trials = {}
    tally = SpentTally(trials, "cost")
    for step in range(300):
        key = str(rng.randrange(40))
        rec = trials.setdefault(key, {"trial": int(key), "spec": {"repeats": rng.choice([1, 3])}, "metrics": {}})
        rec["metrics"] = {"cost": rng.random() * 5} if rng.random() > 0.1 else {"cost": float("nan")}
        tally.update(rec)
        assert abs(tally.total("cost") - spent(trials, "cost")) < 1e-9
    assert abs(SpentTally(trials, "cost").total("cost") - spent(trials, "cost")) < 1e-9  # rebuilt on resume
