"""The torch-only training loop: metrics, cost accounting, checkpoint/resume, determinism."""

import pytest
import torch

from raysweep.train import LocalReporter, NonFiniteLoss, TrialRun, TrialSpec, run_trial

SPEC = {
    "method": "fgsm_rs", "dataset": {"name": "synthetic", "val_size": 128, "train_size": 512},
    "model": {"name": "small_cnn", "width": 4}, "threat": {"eps": 0.1},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.01, "optimizer": "adam", "weight_decay": 0.0},
    "eval": {"val_pgd_steps": 2},
}


def test_reports_every_objective_every_epoch():
    hist = run_trial(SPEC)
    assert len(hist) == 3
    for e, m in enumerate(hist, 1):
        for k in ("epoch", "train_loss", "train_time_s", "cost", "val_clean_acc", "val_robust_acc"):
            assert k in m
        assert m["epoch"] == e
    assert hist[0]["train_time_s"] < hist[1]["train_time_s"] < hist[2]["train_time_s"]
    # FGSM-RS: 2 forward+backward passes per example per epoch, in clean-epoch units
    assert [round(m["cost"], 6) for m in hist] == [2.0, 4.0, 6.0]
    assert hist[-1]["val_clean_acc"] > 0.5


def test_pgd_cost_is_steps_plus_one():
    spec = dict(SPEC, method="pgd_at", method_params={"steps": 4})
    spec["train"] = dict(SPEC["train"], epochs=1)
    assert run_trial(spec)[0]["cost"] == pytest.approx(5.0)


def test_same_seed_same_metrics():
    a = run_trial(SPEC)
    b = run_trial(SPEC)
    for ma, mb in zip(a, b):
        assert ma["train_loss"] == mb["train_loss"] and ma["val_robust_acc"] == mb["val_robust_acc"]


def test_resume_from_checkpoint_matches_uninterrupted_run():
    full = run_trial(SPEC)
    rep = LocalReporter()
    spec2 = dict(SPEC, train=dict(SPEC["train"]))
    states = []
    rep.on_report = lambda m, s: states.append(s)
    run_trial(spec2, rep)
    # restart from the state saved after epoch 1, as a retried trial would
    resumed = run_trial(SPEC, resume_state=states[0])
    assert [m["epoch"] for m in resumed] == [1.0, 2.0, 3.0]
    assert resumed[-1]["train_loss"] == pytest.approx(full[-1]["train_loss"], rel=1e-6)
    assert resumed[-1]["val_robust_acc"] == pytest.approx(full[-1]["val_robust_acc"])


@pytest.mark.parametrize("repeats", [1, 2])
def test_resume_from_the_last_checkpoint_reports_the_last_epoch_again(repeats):
    """A driver killed after a trial's last checkpoint was written but before its last report arrived
    restarts the trial from a state with nothing left to train: the trial still reports its last epoch
    (with the epochs before it), or the sweep would record it finished with an earlier epoch's numbers."""
    spec = dict(SPEC, repeats=repeats)
    rep = LocalReporter()
    full = run_trial(spec, rep)
    again = LocalReporter()
    run_trial(spec, again, resume_state=rep.last_state)
    assert len(again.history) == 1
    last = again.history[0]
    assert last["epoch"] == 3.0 and last["restarts"] == 1.0
    assert last["val_robust_acc"] == full[-1]["val_robust_acc"]
    assert [h["epoch"] for h in last["resumed_history"]] == [1.0, 2.0]
    assert again.last_state is None  # nothing new to save


def test_state_dict_is_weights_only_loadable(tmp_path):
    rep = LocalReporter()
    run_trial(dict(SPEC, train=dict(SPEC["train"], epochs=1)), rep)
    torch.save(rep.last_state, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)
    assert loaded["epoch"] == 1


def test_non_finite_loss_fails_the_trial():
    spec = dict(SPEC, train=dict(SPEC["train"], lr=10.0, optimizer="sgd", epochs=2))
    run = TrialRun(TrialSpec.from_dict(spec))
    with torch.no_grad():
        for p in run.raw_model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss):
        run.run(LocalReporter())


def test_spec_rejects_unknown_keys():
    with pytest.raises(ValueError, match="train.lrr"):
        TrialSpec.from_dict(dict(SPEC, train={"lrr": 0.1}))


def test_best_on_validation_checkpoint_is_kept_beside_the_last():
    rep = LocalReporter()
    hist = run_trial(SPEC, rep)
    best_epoch = max(hist, key=lambda m: m["val_robust_acc"])["epoch"]
    state = rep.last_state
    assert state["best"]["epoch"] == best_epoch and hist[-1]["best_epoch"] == best_epoch
    assert set(state["best"]["model"]) == set(state["model"])


def test_startup_is_split_into_phases_that_add_up():
    import time

    from raysweep.train.ray_worker import process_started_at

    launched = time.time()
    started = process_started_at()
    assert started is not None and started < launched  # this (pytest) process is older than the launch
    time.sleep(0.05)
    hist = run_trial(dict(SPEC, repeats=2), launched_at=launched, startup_marks={"process": started})
    first = hist[0]
    phases = ["startup_before_process_s", "startup_process_s", "startup_build_s", "startup_first_step_s"]
    assert first["startup_s"] == pytest.approx(sum(first[p] for p in phases), abs=1e-6)
    assert first["startup_before_process_s"] == 0.0  # a process older than the launch was reused: nothing spent
    assert first["startup_process_s"] >= 0.05  # launch to the loop's call
    assert first["startup_build_s"] > 0 and first["startup_first_step_s"] >= 0
    assert all(not any(k.startswith("startup") for k in m) for m in hist[1:])  # once per trial


@pytest.mark.parametrize("switches", [{"amp": "bf16"}, {"channels_last": "on"}, {"compile": True}],
                         ids=["bf16_autocast", "channels_last", "compile"])
def test_the_gpu_paths_switches_run_on_cpu(switches):
    """What a GPU user sets (``train.amp: bf16``, ``channels_last: on``, ``compile: true``) runs here too,
    so the options are exercised somewhere without a GPU: the switch in effect, and the model learns as without it."""
    spec = dict(SPEC, train=dict(SPEC["train"], **switches))
    run = TrialRun(TrialSpec.from_dict(spec), device="cpu")
    assert run.amp == (switches.get("amp") == "bf16")
    assert run.channels_last == (switches.get("channels_last") == "on")
    if switches.get("channels_last") == "on":
        conv = next(p for p in run.raw_model.parameters() if p.dim() == 4)
        assert conv.is_contiguous(memory_format=torch.channels_last)
    if switches.get("compile"):
        assert getattr(run.raw_model, "_compiled_call_impl", None) is not None
    hist = run_trial(spec)
    assert len(hist) == 3 and all(torch.isfinite(torch.tensor(float(m[k]))) for m in hist for k in ("train_loss", "val_robust_acc"))
    assert hist[-1]["val_clean_acc"] > 0.5
