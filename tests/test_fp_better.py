"""FP-Better: the keep-probability schedule, one mask shared by the attack and the update,
dropped blocks = shortcut only, the p_L adaptation rule, seeded masks and the cost."""

from types import SimpleNamespace

import pytest
import torch

from raysweep.methods import StepContext
from raysweep.methods.fp_better import FPBetter, keep_probabilities, label_smoothed_ce
from raysweep.models import build_model
from raysweep.train import LocalReporter, TrialRun, run_trial
from raysweep.train.loop import build_method
from raysweep.train.spec import DatasetSpec, ModelSpec, ThreatSpec, TrainSpec, TrialSpec

SHAPE = (1, 28, 28)



def _method(seed=0, **params):
    m = build_method(TrialSpec(method="fp_better", method_params=params, threat=ThreatSpec(eps=0.3)), 10)
    m._ensure_generator(seed)
    return m


def _model(name="resnet_small", seed=0):
    torch.manual_seed(seed)
    model = build_model(name, 10, SHAPE if name in ("resnet_small", "small_cnn") else (3, 32, 32), width=4)
    model.train()
    return model


def _batch(n=8, shape=SHAPE, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n,) + shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _record_masks(model):
    calls = []
    inner = model.forward

    def forward(x, block_mask=None):
        calls.append(None if block_mask is None else list(block_mask))
        return inner(x, block_mask=block_mask)

    model.forward = forward
    return calls


def test_keep_probability_schedule():
    assert keep_probabilities(6, 1.0, 0.5) == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    p8 = keep_probabilities(8, 1.0, 0.5)  # ResNet-18: p_l = 1 - (l-1)·0.5/7
    assert p8[0] == 1.0 and p8[-1] == pytest.approx(0.5)
    assert p8 == pytest.approx([1.0 - l * 0.5 / 7 for l in range(8)])
    assert keep_probabilities(1, 1.0, 0.5) == [1.0]
    m = _method(keep_prob_last=0.3)
    assert m.keep_probs(6)[-1] == pytest.approx(0.3)
    # empirical keep rates follow the schedule
    masks = torch.tensor([m.sample_mask(6) for _ in range(4000)], dtype=torch.float64)
    assert masks.mean(0).tolist() == pytest.approx(keep_probabilities(6, 1.0, 0.3), abs=0.03)


@pytest.mark.parametrize("name", ["resnet_small", "resnet18", "preact_resnet18"])
def test_attack_and_update_share_one_mask(name):
    model = _model(name)
    shape = SHAPE if name == "resnet_small" else (3, 32, 32)
    x, y = _batch(4, shape)
    model.block_fractions(shape)  # the one-off MAC count runs a forward; do it before recording
    calls = _record_masks(model)
    m = _method()
    seen = []
    for _ in range(6):
        calls.clear()
        res = m.step(StepContext(model, model, 0, 10, shape), x, y)
        assert len(calls) == 2, "one attack pass and one update pass"
        assert calls[0] is not None and calls[0] == calls[1]
        assert len(calls[0]) == model.num_blocks
        seen.append(tuple(calls[0]))
        # cost = 2 passes × the MAC fraction actually executed
        assert res.cost == pytest.approx(2.0 * model.executed_fraction(calls[0], shape))
    assert len(set(seen)) > 1, "masks are re-drawn every iteration"


def test_dropped_block_is_its_shortcut_and_gets_no_gradient():
    model = _model()
    h = torch.randn(2, 4, 28, 28)
    for b in model.blocks:
        out = b(h, keep=False)
        assert torch.allclose(out, b.post(b.shortcut(h)))
        h = b(h, keep=True)
    m = _method()
    mask = [True, False, True, False, False, True]
    m.sample_mask = lambda n: list(mask)
    x, y = _batch()
    res = m.step(StepContext(model, model, 0, 10, SHAPE), x, y)
    res.loss.backward()
    for b, keep in zip(model.blocks, mask):
        assert (b.conv1.weight.grad is not None) == keep
        assert (b.conv2.weight.grad is not None) == keep
    assert model.fc.weight.grad is not None and model.stem[0].weight.grad is not None
    assert res.cost == pytest.approx(2.0 * model.executed_fraction(mask, SHAPE))
    assert res.cost < 2.0


def test_all_blocks_kept_costs_two_passes():
    model = _model()
    m = _method(keep_prob_last=1.0)
    res = m.step(StepContext(model, model, 0, 10, SHAPE), *_batch())
    assert res.cost == pytest.approx(2.0)


def test_label_smoothing_target():
    logits = torch.randn(5, 10)
    y = torch.arange(5)
    s = 0.5
    target = torch.full((5, 10), (1 - s) / 9)
    target[torch.arange(5), y] = s
    expect = -(target * torch.log_softmax(logits, 1)).sum(1)
    assert torch.allclose(label_smoothed_ce(logits, y, s), expect)
    assert torch.allclose(label_smoothed_ce(logits, y, 1.0), torch.nn.functional.cross_entropy(logits, y, reduction="none"))


def _fake_run():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    return SimpleNamespace(optimizer=opt)


def _drive(m, accs, run):
    """Run epochs with the given train adversarial accuracies; return p_L used in each epoch."""
    used = []
    for e, a in enumerate(accs):
        m.on_epoch_start(e, run)
        used.append(m.p_last)
        m.on_epoch_end(e, {"train_acc": a}, run)
    return used


def test_keep_prob_last_adaptation_rule():
    run = _fake_run()
    m = _method(keep_prob_last=0.5, rate=0.04, cap=0.9)
    # e=2: acc1 0.4 <= acc0 0.5 -> +0.04; e=3: 0.45 > 0.4 -> same; e=4: 0.45 <= 0.45 -> +0.04
    used = _drive(m, [0.5, 0.4, 0.45, 0.45, 0.6, 0.7], run)
    assert used == pytest.approx([0.5, 0.5, 0.54, 0.54, 0.58, 0.58])


def test_keep_prob_last_cap_and_epoch_one():
    run = _fake_run()
    m = _method(keep_prob_last=0.5, rate=0.3, cap=0.9)
    used = _drive(m, [0.0, 0.0, 0.0, 0.0, 0.0], run)  # never improves
    assert used == pytest.approx([0.5, 0.5, 0.8, 0.9, 0.9])  # e=1 never adapts; then capped
    m = _method(keep_prob_last=0.5, rate=0.0)
    assert _drive(m, [0.3, 0.2, 0.1, 0.0], run) == pytest.approx([0.5] * 4)  # rate 0: fixed p_L


def test_momentum_reset_each_epoch():
    run = _fake_run()
    assert len(run.optimizer.state) == 1
    _method(reset_momentum_each_epoch=False).on_epoch_start(1, run)
    assert len(run.optimizer.state) == 1
    _method().on_epoch_start(1, run)
    assert len(run.optimizer.state) == 0


def test_same_seed_same_masks_and_state_round_trip():
    a, b, c = _method(seed=3), _method(seed=3), _method(seed=4)
    ma = [a.sample_mask(8) for _ in range(20)]
    assert ma == [b.sample_mask(8) for _ in range(20)]
    assert ma != [c.sample_mask(8) for _ in range(20)]
    a.p_last = 0.66
    a.train_adv_acc = [[0, 0.1], [1, 0.2]]
    state = a.state_dict()
    d = _method(seed=99)
    d.load_state_dict(state)
    assert d.p_last == 0.66 and d.train_adv_acc == [[0, 0.1], [1, 0.2]]
    assert [d.sample_mask(8) for _ in range(5)] == [a.sample_mask(8) for _ in range(5)]


def test_setup_seeds_from_trial_seed_and_rejects_models_without_blocks():
    def spec(seed, model="resnet_small"):
        return TrialSpec(method="fp_better", dataset=DatasetSpec(name="synthetic", val_size=64, train_size=128),
                         model=ModelSpec(name=model, width=4), threat=ThreatSpec(eps=0.3),
                         train=TrainSpec(epochs=1, batch_size=32, seed=seed), device="cpu")

    r1, r2, r3 = TrialRun(spec(5), device="cpu"), TrialRun(spec(5), device="cpu"), TrialRun(spec(6), device="cpu")
    m1 = [r1.method.sample_mask(6) for _ in range(10)]
    assert m1 == [r2.method.sample_mask(6) for _ in range(10)]
    assert m1 != [r3.method.sample_mask(6) for _ in range(10)]
    with pytest.raises(ValueError, match="skippable"):
        TrialRun(spec(0, "small_cnn"), device="cpu")
    with pytest.raises(ValueError, match="skippable"):
        m = FPBetter.__new__(FPBetter)
        FPBetter.__init__(m, _method().p, _method().threat, 10)
        model = build_model("small_cnn", 10, SHAPE)
        m.step(StepContext(model, model, 0, 10, SHAPE), *_batch())


def test_bn_recalibration_uses_full_network_statistics():
    spec = TrialSpec(method="fp_better", method_params={"bn_recalibrate": True, "bn_recal_input": "clean",
                                                        "bn_recal_batches": 1000},
                     dataset=DatasetSpec(name="synthetic", val_size=64, train_size=256),
                     model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=0.3),
                     train=TrainSpec(epochs=1, batch_size=64), device="cpu")
    run = TrialRun(spec, device="cpu")
    run.train_epoch(0)
    before = run.totals["cost"]
    run.method.before_eval(run)
    stem_bn = run.raw_model.stem[1]
    with torch.no_grad():
        z = run.raw_model.stem[0](run.raw_model.normalize(run.data.train.floats()))
    # cumulative average over 4 equal batches = the mean over all 256 training images
    assert torch.allclose(stem_bn.running_mean, z.mean((0, 2, 3)), atol=1e-5)
    assert run.totals["cost"] == pytest.approx(before + 1.0 / 3.0)  # one forward over the training set
    assert run.raw_model.training and stem_bn.momentum == 0.1


def test_end_to_end_reports_extra_metrics():
    spec = {"method": "fp_better", "dataset": {"name": "synthetic", "val_size": 64, "train_size": 256},
            "model": {"name": "resnet_small", "width": 4}, "threat": {"eps": 0.3},
            "train": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0},
            "eval": {"val_pgd_steps": 2}, "device": "cpu"}
    hist = run_trial(spec, LocalReporter())
    for h in hist:
        assert h["keep_prob_last"] == 0.5
        assert 0.5 < h["mean_executed_fraction"] < 1.0
        # cost of the epoch = 2 × mean executed fraction (equal batch sizes)
    assert hist[0]["cost"] == pytest.approx(2 * hist[0]["mean_executed_fraction"], rel=1e-6)


@pytest.mark.parametrize("update", ["official", "skip"])
def test_dropped_blocks_get_weight_decay_and_momentum_as_in_the_official_code(update):
    """Official code (PyTorch < 2.0 zero_grad): a dropped block reaches SGD with a zero
    gradient, so weight decay and momentum still move it; ``skip`` leaves it untouched."""
    from raysweep.train.spec import DatasetSpec, ModelSpec, ThreatSpec, TrainSpec, TrialSpec

    spec = TrialSpec(method="fp_better", method_params={"dropped_block_update": update, "reset_momentum_each_epoch": False},
                     dataset=DatasetSpec(name="synthetic", val_size=16, train_size=32),
                     model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=0.3),
                     train=TrainSpec(epochs=2, batch_size=16, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.1,
                                     schedule="constant"), device="cpu")
    run = TrialRun(spec, device="cpu")
    mask = [True, False, True, True, True, True]
    run.method.sample_mask = lambda n: list(mask)
    w0 = run.raw_model.blocks[1].conv1.weight.detach().clone()
    bn0 = run.raw_model.blocks[1].bn1.weight.detach().clone()
    kept0 = run.raw_model.blocks[0].conv1.weight.detach().clone()
    run.train_epoch(0)  # two steps with block 1 dropped
    w2 = run.raw_model.blocks[1].conv1.weight.detach()
    bn2 = run.raw_model.blocks[1].bn1.weight.detach()
    if update == "skip":
        assert torch.equal(w2, w0) and torch.equal(bn2, bn0)
    else:
        # SGD, zero gradient: buf1 = wd·w0, w1 = w0 − lr·buf1; buf2 = μ·buf1 + wd·w1, w2 = w1 − lr·buf2
        lr, wd, mu = 0.1, 0.1, 0.9
        w1 = w0 - lr * wd * w0
        expect = w1 - lr * (mu * wd * w0 + wd * w1)
        assert torch.allclose(w2, expect, atol=1e-7)
        assert torch.allclose(bn2, (bn0 - lr * wd * bn0) - lr * (mu * wd * bn0 + wd * (bn0 - lr * wd * bn0)), atol=1e-7)
    # a kept block moves by its gradient too, not by decay alone
    kept2 = run.raw_model.blocks[0].conv1.weight.detach()
    decay_only = (kept0 - 0.01 * kept0) - 0.1 * (0.9 * 0.1 * kept0 + 0.1 * (kept0 - 0.01 * kept0))
    assert not torch.allclose(kept2, decay_only, atol=1e-6)
