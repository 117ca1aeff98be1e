"""Honest numbers: catastrophic-overfitting detection and rollback, repeats over seeds, and
reproducibility of sampled configs and metrics across processes."""

import json
import subprocess
import sys

import pytest
import torch

from raysweep.train import LocalReporter, TrialRun, TrialSpec, run_trial

from conftest import REPO

SPEC = {
    "method": "fgsm_rs", "dataset": {"name": "synthetic", "val_size": 128, "train_size": 512},
    "model": {"name": "small_cnn", "width": 4}, "threat": {"eps": 0.1},
    "train": {"epochs": 4, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "weight_decay": 0.0},
    "eval": {"val_pgd_steps": 2},
}


def _scripted_run(action, robust, fgsm):
    """A real TrialRun whose validation numbers follow a script: epoch 3 collapses (PGD
    accuracy falls 50 points while FGSM accuracy rises), as a catastrophically overfit FGSM run does."""
    spec = TrialSpec.from_dict({**SPEC, "eval": {**SPEC["eval"], "co_action": action}})
    run = TrialRun(spec)
    script = iter(zip(robust, fgsm))
    weights = []

    def scripted_eval():
        r, f = next(script)
        weights.append({k: v.clone() for k, v in run.raw_model.state_dict().items()})
        return {"val_clean_acc": 0.9, "val_robust_acc": r, "val_fgsm_acc": f}

    run.evaluate_val = scripted_eval
    rep = LocalReporter()
    run.run(rep)
    return run, rep.history, weights


@pytest.mark.parametrize("action", ["rollback", "stop", "flag"])
def test_collapse_is_flagged_and_handled(action):
    run, hist, weights = _scripted_run(action, [0.5, 0.6, 0.1, 0.1], [0.6, 0.7, 0.95, 0.97])
    assert [h["catastrophic_overfit"] for h in hist][:3] == [0.0, 0.0, 1.0]
    if action == "flag":
        assert len(hist) == 4
        return
    assert len(hist) == 3  # stopped at the collapse
    assert hist[2]["train_time_s"] > hist[1]["train_time_s"]  # the collapsed epoch's time stays counted
    if action == "rollback":
        assert hist[2]["val_robust_acc"] == 0.6 and hist[2]["rolled_back_to_epoch"] == 2
        for k, v in run.raw_model.state_dict().items():
            assert torch.equal(v, weights[1][k])  # the weights of epoch 2, not the collapsed epoch 3
    else:
        assert hist[2]["val_robust_acc"] == 0.1


def test_no_flag_when_fgsm_falls_too():
    _, hist, _ = _scripted_run("stop", [0.5, 0.6, 0.1, 0.1], [0.6, 0.7, 0.2, 0.2])  # plain divergence, not CO
    assert all(h["catastrophic_overfit"] == 0.0 for h in hist) and len(hist) == 4


def test_repeats_report_mean_std_and_per_seed():
    spec = {**SPEC, "repeats": 3, "train": {**SPEC["train"], "epochs": 2}}
    hist = run_trial(spec)
    single = [run_trial({**SPEC, "train": {**SPEC["train"], "epochs": 2, "seed": s}})[-1] for s in range(3)]
    last = hist[-1]
    assert last["repeats"] == 3
    for i, s in enumerate(single):
        assert last[f"val_robust_acc_seed{i}"] == pytest.approx(s["val_robust_acc"])
    mean = sum(s["val_robust_acc"] for s in single) / 3
    assert last["val_robust_acc"] == pytest.approx(mean)
    assert last["val_robust_acc_std"] == pytest.approx(float(torch.tensor([s["val_robust_acc"] for s in single]).std(unbiased=False)))
    assert last["cost"] == pytest.approx(4.0)  # the cost of one training run, averaged over seeds


def test_one_seed_summary_rule_for_reports_and_evaluations():
    from raysweep.train.seeds import summarise_seeds

    out = summarise_seeds([{"test_pgd20_acc": 0.5, "test_n": 100.0}, {"test_pgd20_acc": 0.7, "test_n": 100.0}])
    assert out["test_pgd20_acc"] == pytest.approx(0.6) and out["test_pgd20_acc_std"] == pytest.approx(0.1)
    assert (out["test_pgd20_acc_seed0"], out["test_pgd20_acc_seed1"]) == (0.5, 0.7)
    assert out["test_n"] == 100.0 and "test_n_std" not in out  # spread only of accuracies by default
    assert summarise_seeds([{"a_acc": 0.3}]) == {"a_acc": 0.3}  # one seed: no spread to report
    assert summarise_seeds([{"cost": 1.0}, {"cost": 3.0}], spread={"cost"}.__contains__)["cost_std"] == 1.0


REPRO = r"""
import json, sys
import optuna, torch
from raysweep.config import load_config
from raysweep.tune.searcher import OptunaMultiObjectiveSearch, open_study
from raysweep.train import run_trial
torch.set_num_threads(1)
cfg = load_config(sys.argv[1])
study = open_study(cfg, "sqlite:///" + sys.argv[2], cfg.name)
s = OptunaMultiObjectiveSearch(cfg, study)
configs = []
for i in range(4):
    c = s.suggest(f"t{i}")
    configs.append(c["sampled"])
    s.on_trial_complete(f"t{i}", {"train_time_s": 1.0 + i, "val_robust_acc": 0.1 * (i % 3)})
first = s.cfg.trial_spec(configs[0]).to_dict()
first["train"]["epochs"] = 1
metrics = run_trial(first)[-1]
print(json.dumps({"configs": configs, "metrics": {k: v for k, v in metrics.items() if "time" not in k}}))
"""


def test_same_yaml_and_seed_reproduce_configs_and_metrics_in_separate_processes(tmp_path, tiny_yaml):
    y = tiny_yaml("repro", n=4)
    outs = []
    for i in range(2):
        r = subprocess.run([sys.executable, "-c", REPRO, str(y), str(tmp_path / f"s{i}.db")], capture_output=True,
                           text=True, timeout=300, cwd=REPO)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert outs[0]["configs"] == outs[1]["configs"]
    assert outs[0]["metrics"] == outs[1]["metrics"]
