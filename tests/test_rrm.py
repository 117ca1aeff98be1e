"""RRM: the teacher is frozen, the projection is trained, the teacher's cost is reported and
charged to the trial, checkpoint teachers load, a resumed trial does not retrain its teacher,
the in-trial teacher is the paper's kind (PGD) and guarded, and the loss is the paper's."""

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


def _run(**params):
    run = TrialRun(_spec(**params), device="cpu")
    run.ensure_teacher()
    return run


@pytest.fixture(scope="module")
def trained_run():
    torch.set_num_threads(1)
    return _run(teacher_epochs=1)


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
    # the teacher's forward to its features: a whole pass less its classifier
    assert res.cost == pytest.approx(1.0 + FORWARD_ONLY * run.method.mac_ratio) and run.method.mac_ratio < 1.0
    assert res.cost == pytest.approx(1.0 + FORWARD_ONLY, rel=1e-3)
    # relative L2 distance
    run.method.p.distance = "relative_l2"
    try:
        d = run.method.distance(phi_s, phi_t)
        assert torch.allclose(d, (phi_s - phi_t).norm(dim=1) / phi_t.norm(dim=1))
        assert torch.allclose(run.method.distance(phi_t, phi_t), torch.zeros(len(x)))
    finally:
        run.method.p.distance = "cosine"


def test_projection_is_trained_when_feature_dims_differ():
    run = _run(teacher_epochs=1, teacher_width=8)
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


def m_ratio(_h):
    """The student's per-step teacher share: same architecture, features only."""
    from raysweep.models.base import model_macs

    model = build_model("resnet_small", 10, (1, 28, 28), width=4)
    full = model_macs(model, (1, 28, 28))
    return (full - model.fc.in_features * model.fc.out_features) / full


def test_teacher_cost_reported_and_included():
    hist = run_trial(_spec(teacher_epochs=2, teacher_method="fgsm_rs"), LocalReporter())
    h = hist[-1]
    assert h["teacher_cost"] == pytest.approx(2 * 2.0)  # 2 FGSM-RS epochs = 2 passes × 2
    assert h["teacher_time_s"] > 0
    student = (1.0 + FORWARD_ONLY * m_ratio(h)) * h["examples_seen"] / 256
    assert h["cost"] == pytest.approx(h["teacher_cost"] + student)
    assert h["train_time_s"] >= h["teacher_time_s"] + h["epoch_time_s"] - 1e-9


def test_default_teacher_is_pgd7_and_its_validation_is_reported():
    """The paper's teacher is multi-step PGD AT (PGD-7), not a single-step one."""
    run = TrialRun(_spec(), device="cpu")
    rq = run.method.teacher_request()
    assert rq.method == "pgd_at" and rq.method_params == {"steps": 7} and rq.guard
    hist = run_trial(_spec(teacher_epochs=1), LocalReporter())
    h = hist[-1]
    assert h["teacher_cost"] == pytest.approx(1 * (7 + 1))  # one PGD-7 epoch: 8 passes
    assert 0.0 <= h["teacher_val_robust_acc"] <= 1.0 and 0.0 <= h["teacher_val_clean_acc"] <= 1.0
    assert h["teacher_epochs"] == 1 and h["teacher_catastrophic_overfit"] == 0.0


def test_teacher_guard_rolls_back_a_collapse_and_a_weak_teacher_fails_the_trial(monkeypatch):
    from raysweep.train import teacher as teacher_mod
    from raysweep.train.loop import TrialRun as Loop

    # make the teacher's second epoch look like catastrophic overfitting (PGD accuracy falls,
    # FGSM accuracy rises): the guard must stop the teacher and restore its first epoch
    calls = {"n": 0}
    real = Loop.evaluate_val

    def fake_eval(self):
        out = real(self)
        if self.spec.method == "pgd_at":
            calls["n"] += 1
            out.update(val_robust_acc=0.9 if calls["n"] == 1 else 0.0, val_fgsm_acc=0.5 if calls["n"] == 1 else 1.0)
        return out

    monkeypatch.setattr(Loop, "evaluate_val", fake_eval)
    run = _run(teacher_epochs=3)
    info = run.teacher.info
    assert info["teacher_catastrophic_overfit"] == 1.0
    assert info["teacher_epochs"] == 2  # stopped after the collapsed epoch, not 3
    assert info["teacher_val_robust_acc"] == pytest.approx(0.9)  # the rolled-back epoch's numbers
    calls["n"] = 0
    with pytest.raises(teacher_mod.TeacherNotRobust, match="teacher_min_val_robust_acc"):
        _run(teacher_epochs=3, teacher_min_val_robust_acc=0.95)


def test_checkpoint_teacher_loads(tmp_path, trained_run):
    src = trained_run.method.teacher.state_dict()
    raw_path, wrapped_path = tmp_path / "raw.pt", tmp_path / "wrapped.pt"
    torch.save(src, raw_path)
    torch.save({"epoch": 1, "model": src, "optimizer": {}}, wrapped_path)
    for path in (raw_path, wrapped_path):
        run = _run(teacher="checkpoint", teacher_checkpoint=str(path))
        t = run.method.teacher
        assert all(torch.equal(v, src[k]) for k, v in t.state_dict().items())
        assert not t.training and all(not p.requires_grad for p in t.parameters())
        assert run.teacher.info["teacher_cost"] == 0.0 and run.totals["cost"] == 0.0
    with pytest.raises(ValueError, match="does not fit"):
        _run(teacher="checkpoint", teacher_checkpoint=str(raw_path), teacher_width=8)
    with pytest.raises(ValueError, match="teacher_checkpoint"):
        _run(teacher="checkpoint")
    with pytest.raises(ValueError, match="set teacher: checkpoint"):
        TrialRun(_spec(teacher_checkpoint=str(raw_path)), device="cpu")


def test_state_round_trip_restores_teacher_and_projection_without_retraining(monkeypatch):
    a = _run(teacher_epochs=1, teacher_width=8)
    _one_step(a)
    state = a.state_dict()
    from raysweep.train.teacher import TeacherStage

    def no_training(self):
        raise AssertionError("a resumed trial must not train its teacher again")

    monkeypatch.setattr(TeacherStage, "_train", no_training)
    b = TrialRun(_spec(teacher_epochs=1, teacher_width=8), device="cpu")
    b.load_state_dict(state)
    assert b.teacher.ready
    b.ensure_teacher()  # no-op: restored
    assert all(torch.equal(v, a.method.teacher.state_dict()[k]) for k, v in b.method.teacher.state_dict().items())
    assert torch.equal(b.method.projection.weight, a.method.projection.weight)
    assert b.totals["cost"] == a.totals["cost"]
    assert b.teacher.info == a.teacher.info
    _one_step(b)  # the optimiser (with the projection's parameter group) was restored too


def test_teacher_from_an_earlier_trials_run_directory(tmp_path):
    """The teacher can be an earlier trial: its Ray Train run folder (latest checkpoint_*)."""
    from raysweep.train.teacher import checkpoint_file as _checkpoint_file

    run_dir = tmp_path / "train-0003"
    for stamp in ("2026-01-01_10-00-00", "2026-01-01_10-00-05"):
        (run_dir / f"checkpoint_{stamp}").mkdir(parents=True)
        torch.save({"model": {}}, run_dir / f"checkpoint_{stamp}" / "state.pt")
    assert _checkpoint_file(str(run_dir)).endswith("checkpoint_2026-01-01_10-00-05/state.pt")
    assert _checkpoint_file(str(run_dir / "checkpoint_2026-01-01_10-00-00")).endswith("10-00-00/state.pt")
    with pytest.raises(ValueError, match="no state.pt"):
        _checkpoint_file(str(tmp_path))
    # a pattern: the last match in name order (the latest sweep of an experiment)
    other = tmp_path / "sweep-20260102-000000" / "train" / "train-0000"
    (other / "checkpoint_2026-01-02_00-00-00").mkdir(parents=True)
    torch.save({"model": {}}, other / "checkpoint_2026-01-02_00-00-00" / "state.pt")
    (tmp_path / "sweep-20260101-000000" / "train" / "train-0000").mkdir(parents=True)
    assert _checkpoint_file(str(tmp_path / "sweep-*" / "train" / "train-0000")).startswith(str(other))
    with pytest.raises(ValueError, match="no file or directory matches"):
        _checkpoint_file(str(tmp_path / "nothing-*"))

