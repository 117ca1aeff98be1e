"""RRM: the teacher is frozen, the projection is trained, the teacher's cost is reported and
charged to the trial, checkpoint teachers load, and the loss is the paper's."""

import copy

import pytest
import torch
import torch.nn.functional as F

from raysweep.methods import FORWARD_ONLY, StepContext
from raysweep.models import build_model
from raysweep.train import LocalReporter, TrialRun, run_trial
from raysweep.train.spec import DatasetSpec, ModelSpec, ThreatSpec, TrainSpec, TrialSpec



def _spec(epochs=1, **params):
    return TrialSpec(method="rrm", method_params=params,
                     dataset=DatasetSpec(name="synthetic", val_size=64, train_size=256),
                     model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=0.3),
                     train=TrainSpec(epochs=epochs, batch_size=64, optimizer="adam", lr=5e-3, weight_decay=0.0),
                     device="cpu")


def _one_step(run):
    x, y, _, _ = next(iter(run.loader))
    run.raw_model.train()
    ctx = StepContext(run.model, run.raw_model, 0, run.data.num_classes, run.data.input_shape)
    run.optimizer.zero_grad(set_to_none=True)
    res = run.method.step(ctx, x, y)
    res.loss.backward()
    run.optimizer.step()
    return res, x, y


@pytest.fixture(scope="module")
def trained_run():
    torch.set_num_threads(1)
    return TrialRun(_spec(teacher_epochs=1), device="cpu")


def test_teacher_frozen(trained_run):
    run = trained_run
    t = run.method.teacher
    assert not t.training
    assert all(not p.requires_grad for p in t.parameters())
    assert not any(p is q for p in t.parameters() for g in run.optimizer.param_groups for q in g["params"])
    before = copy.deepcopy(t.state_dict())
    student_before = copy.deepcopy(run.raw_model.state_dict())
    res, _, _ = _one_step(run)
    assert all(p.grad is None for p in t.parameters())
    after = t.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN buffers too (eval mode)
    assert any(not torch.equal(student_before[k], v) for k, v in run.raw_model.state_dict().items())
    assert res.x_adv is None  # clean images only
    assert run.method.projection is None  # same architecture: no projection


def test_loss_is_lambda_ce_plus_negative_cosine(trained_run):
    run = trained_run
    x, y, _, _ = next(iter(run.loader))
    ctx = StepContext(run.model, run.raw_model, 0, run.data.num_classes, run.data.input_shape)
    res = run.method.step(ctx, x, y)
    with torch.no_grad():
        phi_s = run.raw_model.features(x)
        phi_t = run.method.teacher.features(x)
        logits = run.raw_model.fc(phi_s)
    expect = 0.005 * F.cross_entropy(logits, y, reduction="none") - F.cosine_similarity(phi_s, phi_t, dim=1)
    assert torch.allclose(res.per_example_loss, expect, atol=1e-5)
    assert res.cost == pytest.approx(1.0 + FORWARD_ONLY)
    # relative L2 distance
    run.method.p.distance = "relative_l2"
    try:
        d = run.method.distance(phi_s, phi_t)
        assert torch.allclose(d, (phi_s - phi_t).norm(dim=1) / phi_t.norm(dim=1))
        assert torch.allclose(run.method.distance(phi_t, phi_t), torch.zeros(len(x)))
    finally:
        run.method.p.distance = "cosine"


def test_projection_is_trained_when_feature_dims_differ():
    run = TrialRun(_spec(teacher_epochs=1, teacher_width=8), device="cpu")
    m = run.method
    assert m.teacher.feature_dim == 32 and run.raw_model.feature_dim == 16
    proj = m.projection
    assert proj is not None and (proj.in_features, proj.out_features) == (16, 32)
    opt_params = [q for g in run.optimizer.param_groups for q in g["params"]]
    assert all(any(p is q for q in opt_params) for p in proj.parameters())
    w0 = proj.weight.detach().clone()
    _one_step(run)
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert not torch.equal(w0, proj.weight)
    # the student's own state dict is untouched (checkpoints load into build_model)
    fresh = build_model("resnet_small", 10, run.data.input_shape, width=4)
    fresh.load_state_dict(run.raw_model.state_dict())
    # the teacher is bigger: its forward counts more than 1/3 of a student pass
    assert m.mac_ratio > 1.0
    assert m.step(StepContext(run.model, run.raw_model, 0, 10, run.data.input_shape),
                  *next(iter(run.loader))[:2]).cost == pytest.approx(1.0 + FORWARD_ONLY * m.mac_ratio)


def test_teacher_cost_reported_and_included():
    hist = run_trial(_spec(teacher_epochs=2), LocalReporter())
    h = hist[-1]
    assert h["teacher_cost"] == pytest.approx(2 * 2.0)  # 2 FGSM-RS epochs = 2 passes × 2
    assert h["teacher_time_s"] > 0
    student = (1.0 + FORWARD_ONLY) * h["examples_seen"] / 256
    assert h["cost"] == pytest.approx(h["teacher_cost"] + student)
    assert h["train_time_s"] >= h["teacher_time_s"] + h["epoch_time_s"] - 1e-9


def test_checkpoint_teacher_loads(tmp_path, trained_run):
    src = trained_run.method.teacher.state_dict()
    raw_path, wrapped_path = tmp_path / "raw.pt", tmp_path / "wrapped.pt"
    torch.save(src, raw_path)
    torch.save({"epoch": 1, "model": src, "optimizer": {}}, wrapped_path)
    for path in (raw_path, wrapped_path):
        run = TrialRun(_spec(teacher="checkpoint", teacher_checkpoint=str(path)), device="cpu")
        t = run.method.teacher
        assert all(torch.equal(v, src[k]) for k, v in t.state_dict().items())
        assert not t.training and all(not p.requires_grad for p in t.parameters())
        assert run.method.teacher_cost == 0.0 and run.totals["cost"] == 0.0
    with pytest.raises(ValueError, match="does not fit"):
        TrialRun(_spec(teacher="checkpoint", teacher_checkpoint=str(raw_path), teacher_width=8), device="cpu")
    with pytest.raises(ValueError, match="teacher_checkpoint"):
        TrialRun(_spec(teacher="checkpoint"), device="cpu")


def test_state_round_trip_restores_teacher_and_projection():
    a = TrialRun(_spec(teacher_epochs=1, teacher_width=8), device="cpu")
    _one_step(a)
    state = a.state_dict()
    b = TrialRun(_spec(teacher_epochs=1, teacher_width=8), device="cpu")
    with torch.no_grad():
        for p in b.method.teacher.parameters():
            p.add_(1.0)
    b.load_state_dict(state)
    assert all(torch.equal(v, a.method.teacher.state_dict()[k]) for k, v in b.method.teacher.state_dict().items())
    assert torch.equal(b.method.projection.weight, a.method.projection.weight)
    assert b.totals["cost"] == a.totals["cost"]


def test_teacher_from_an_earlier_trials_run_directory(tmp_path):
    """The teacher can be an earlier trial: its Ray Train run folder (latest checkpoint_*)."""
    from raysweep.methods.rrm import _checkpoint_file

    run_dir = tmp_path / "train-0003"
    for stamp in ("2026-01-01_10-00-00", "2026-01-01_10-00-05"):
        (run_dir / f"checkpoint_{stamp}").mkdir(parents=True)
        torch.save({"model": {}}, run_dir / f"checkpoint_{stamp}" / "state.pt")
    assert _checkpoint_file(str(run_dir)).endswith("checkpoint_2026-01-01_10-00-05/state.pt")
    assert _checkpoint_file(str(run_dir / "checkpoint_2026-01-01_10-00-00")).endswith("10-00-00/state.pt")
    with pytest.raises(ValueError, match="no state.pt"):
        _checkpoint_file(str(tmp_path))
