"""Equation-level checks of TRADES, MART, Backward Smoothing and the local-ball reconstruction on
tiny inputs: losses against hand computations, attack geometry, and BN train/eval discipline."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from raysweep.attacks import pgd
from raysweep.attacks.core import random_start
from raysweep.methods import StepContext, Threat, get_method
from raysweep.methods.backward_smoothing import backward_smoothing_attack, backward_smoothing_init
from raysweep.methods.local_ball import local_ball_loss, local_ball_samples
from raysweep.methods.mart import MART_BCE_OFFSET, mart_loss
from raysweep.methods.trades import eval_mode, kl_per_example, trades_attack, trades_per_example
from raysweep.models import build_model

MINE = ["trades", "mart", "backward_smoothing", "local_ball"]



LOGITS_NAT = [[1.0, 2.0, 0.0], [0.5, -1.0, 0.0]]
LOGITS_ADV = [[0.0, 1.0, 1.0], [2.0, 0.0, -1.0]]
LOGITS_U = [[0.3, 0.2, 0.1], [-1.0, 1.0, 0.5]]
Y = [1, 0]


def softmax(z):
    e = [math.exp(v) for v in z]
    s = sum(e)
    return [v / s for v in e]


def kl(zp, zq):
    p, q = softmax(zp), softmax(zq)
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def ce(z, y):
    return -math.log(softmax(z)[y])


def t(v):
    return torch.tensor(v, dtype=torch.float64)


# ------------------------------------------------------------------------------------------
# losses against hand computations
def test_kl_per_example_is_batchmean_kldiv():
    zp, zq = t(LOGITS_NAT), t(LOGITS_ADV)
    ref = F.kl_div(F.log_softmax(zq, 1), F.softmax(zp, 1), reduction="batchmean")
    assert torch.allclose(kl_per_example(zp, zq).mean(), ref)
    assert kl_per_example(zp, zq)[0].item() == pytest.approx(kl(LOGITS_NAT[0], LOGITS_ADV[0]), rel=1e-12)


def test_trades_per_example_matches_hand_computation():
    beta = 6.0
    hand = [ce(LOGITS_NAT[i], Y[i]) + beta * kl(LOGITS_NAT[i], LOGITS_ADV[i]) for i in range(2)]
    got = trades_per_example(t(LOGITS_NAT), t(LOGITS_ADV), torch.tensor(Y), beta)
    assert got.tolist() == pytest.approx(hand, rel=1e-12)
    # p(x) from a second forward (the official code's) enters the KL only
    hand_u = [ce(LOGITS_NAT[i], Y[i]) + beta * kl(LOGITS_U[i], LOGITS_ADV[i]) for i in range(2)]
    got_u = trades_per_example(t(LOGITS_NAT), t(LOGITS_ADV), torch.tensor(Y), beta, logits_nat_kl=t(LOGITS_U))
    assert got_u.tolist() == pytest.approx(hand_u, rel=1e-12)


def test_trades_kl_target_not_detached():
    zn = t(LOGITS_NAT).requires_grad_(True)
    y = torch.tensor(Y)
    robust_part = trades_per_example(zn, t(LOGITS_ADV), y, 6.0).mean() - F.cross_entropy(zn, y)
    (g,) = torch.autograd.grad(robust_part, zn)
    assert g.abs().sum() > 0  # p(x) in the KL carries gradient, as in the official code


def _fixed_batch():
    """A BN-free model (its passes are repeatable) and a fixed MNIST-shaped batch."""
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, (1, 28, 28), width=4, hidden=16)
    g = torch.Generator().manual_seed(0)
    return model, torch.rand(4, 1, 28, 28, generator=g), torch.randint(0, 10, (4,), generator=g)


@pytest.mark.parametrize("second_clean_forward", [True, False])
def test_trades_step_loss_and_gradient_equal_formula(second_clean_forward):
    """TRADES.step on a fixed input: its attack is trades_attack in eval mode from the same noise, its loss
    CE(f(x), y) + β·KL(p(x) ‖ p(x')) with batchmean KL, and its gradient the formula's (p(x) not detached),
    with or without the official second clean forward."""
    model, x, y = _fixed_batch()
    cls = get_method("trades")
    method = cls(cls.Params(steps=3, beta=2.5, second_clean_forward=second_clean_forward), Threat(eps=0.3), 10)
    torch.manual_seed(7)
    res = method.step(StepContext(model, model, 0, 10, (1, 28, 28)), x, y)
    got = torch.autograd.grad(res.loss, list(model.parameters()))
    torch.manual_seed(7)
    x_adv = trades_attack(model, x, 0.3, 0.3 / 4, 3)
    assert torch.equal(res.x_adv, x_adv)
    fn, fa = model(x), model(x_adv)
    kl_ref = F.kl_div(F.log_softmax(fa, 1), F.log_softmax(fn, 1), reduction="batchmean", log_target=True)
    expected = F.cross_entropy(fn, y) + 2.5 * kl_ref
    assert res.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    for a, b in zip(got, torch.autograd.grad(expected, list(model.parameters()))):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    assert res.cost == pytest.approx(3 + (3 if second_clean_forward else 2) + 1 / 3)


def test_mart_loss_matches_hand_computation():
    beta = 6.0
    hand_exact, hand_official = 0.0, 0.0
    for i in range(2):
        pa = softmax(LOGITS_ADV[i])
        top_wrong = max(p for k, p in enumerate(pa) if k != Y[i])
        w = 1.0 - softmax(LOGITS_NAT[i])[Y[i]]
        reg = beta * kl(LOGITS_NAT[i], LOGITS_ADV[i]) * w
        hand_exact += (-math.log(pa[Y[i]]) - math.log(1.0 - top_wrong) + reg) / 2
        hand_official += (-math.log(pa[Y[i]]) - math.log(1.0 + MART_BCE_OFFSET - top_wrong) + reg) / 2
    got = mart_loss(t(LOGITS_NAT), t(LOGITS_ADV), torch.tensor(Y), beta).item()
    assert got == pytest.approx(hand_official, rel=1e-12)
    assert got == pytest.approx(hand_exact, rel=1e-3)  # the official 1e-4 offset is a small change


def test_mart_loss_finite_when_wrong_class_is_certain():
    za = torch.tensor([[0.0, 200.0, 0.0]])
    loss = mart_loss(torch.zeros(1, 3), za, torch.tensor([0]), 6.0)
    assert torch.isfinite(loss)


def test_local_ball_loss_matches_hand_computation():
    bg, bl = 6.0, 0.5
    hand = 0.0
    for i in range(2):
        local = kl(LOGITS_ADV[i], LOGITS_U[i]) + ce(LOGITS_ADV[i], Y[i])
        hand += (ce(LOGITS_NAT[i], Y[i]) + bg * kl(LOGITS_NAT[i], LOGITS_ADV[i]) + bl * local) / 2
    got = local_ball_loss(t(LOGITS_NAT), t(LOGITS_ADV), [t(LOGITS_U)], torch.tensor(Y), bg, bl)
    assert got.item() == pytest.approx(hand, rel=1e-12)
    # with m samples the ball KL is their mean
    u2 = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    hand2 = hand + sum(bl * (0.5 * kl(LOGITS_ADV[i], u2[i]) - 0.5 * kl(LOGITS_ADV[i], LOGITS_U[i])) / 2 for i in range(2))
    got2 = local_ball_loss(t(LOGITS_NAT), t(LOGITS_ADV), [t(LOGITS_U), t(u2)], torch.tensor(Y), bg, bl)
    assert got2.item() == pytest.approx(hand2, rel=1e-12)


# ------------------------------------------------------------------------------------------
# geometry of the attacks
def _linear_model(d=16, k=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, k)).double()


def test_backward_smoothing_init_moves_towards_noisy_target():
    model = _linear_model()
    g = torch.Generator().manual_seed(1)
    x = (0.25 + 0.5 * torch.rand(6, 1, 4, 4, generator=g)).double()  # away from the box edges
    with torch.no_grad():
        z = model(x)
    xi = 1.0 * (2 * torch.rand(z.shape, generator=g).double() - 1)
    target = z + xi
    x1 = backward_smoothing_init(model, x, target, eps=0.01, alpha=1e-3)
    with torch.no_grad():
        before = kl_per_example(target, model(x))
        after = kl_per_example(target, model(x1))
    assert (after < before).all()
    assert (x1 - x).abs().max().item() <= 1e-3 + 1e-12


def test_backward_smoothing_attack_stays_in_ball():
    model = _linear_model().float()
    torch.manual_seed(0)
    x = torch.rand(6, 1, 4, 4)
    x_adv = backward_smoothing_attack(model, x, eps=0.1, alpha=0.1, steps=2, gamma=1.0)
    assert (x_adv - x).abs().max().item() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_trades_attack_increases_kl():
    model = _linear_model()
    torch.manual_seed(0)
    x = (0.25 + 0.5 * torch.rand(6, 1, 4, 4)).double()
    x_adv = trades_attack(model, x, eps=0.05, alpha=0.0125, steps=10)
    with torch.no_grad():
        z = model(x)
        assert (kl_per_example(z, model(x_adv)) > 1e-6).all()
    assert (x_adv - x).abs().max().item() <= 0.05 + 1e-12


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_local_ball_samples_in_ball_and_box(norm):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    x[:4] = 0.0  # images on the box corners exercise the [0, 1] clip
    x[4:8] = 1.0
    eps, rho, m = 0.3 if norm == "linf" else 2.0, 0.5, 4
    x_adv = x + random_start(x, eps, norm)
    us = local_ball_samples(x, x_adv, eps, rho * eps, m, norm)
    assert len(us) == m
    for u in us:
        assert u.min() >= 0 and u.max() <= 1
        if norm == "linf":
            assert (u - x).abs().max().item() <= eps + 1e-6
            assert (u - x_adv).abs().max().item() <= rho * eps + 1e-6  # projection only moves u towards x'
        else:
            assert (u - x).flatten(1).norm(dim=1).max().item() <= eps + 1e-5
    assert not torch.equal(us[0], us[1])


def test_local_ball_step_loss_equals_formula():
    """The method's loss on a fixed input equals the reconstruction's formula written out."""
    model, x, y = _fixed_batch()
    cls = get_method("local_ball")
    p = cls.Params(k=2, rho=0.5, m=2, beta_g=3.0, beta_l=0.7)
    method = cls(p, Threat(eps=0.3), 10)
    ctx = StepContext(model, model, 0, 10, (1, 28, 28))
    torch.manual_seed(5)
    res = method.step(ctx, x, y)
    torch.manual_seed(5)
    x_adv = pgd(model, x, y, 0.3, 1.25 * 0.3 / 2, 2, random_init=True)
    us = local_ball_samples(x, x_adv, 0.3, 0.15, 2)
    assert torch.equal(res.x_adv, x_adv)
    fn, fa = model(x), model(x_adv)
    kl_ref = lambda zp, zq: F.kl_div(F.log_softmax(zq, 1), F.log_softmax(zp, 1), reduction="batchmean", log_target=True)
    local = 0.5 * (kl_ref(fa, model(us[0])) + kl_ref(fa, model(us[1]))) + F.cross_entropy(fa, y)
    expected = F.cross_entropy(fn, y) + 3.0 * kl_ref(fn, fa) + 0.7 * local
    assert res.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert res.cost == 2 + 2 + 2


def test_standard_training_is_clean_cross_entropy_with_no_perturbation():
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, (1, 28, 28), width=4, hidden=16)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 1, 28, 28, generator=g), torch.randint(0, 10, (4,), generator=g)
    res = get_method("standard")(get_method("standard").Params(), Threat(eps=0.3), 10).step(
        StepContext(model, model, 0, 10, (1, 28, 28)), x, y)
    assert res.x_adv is None and res.cost == 1.0
    assert res.loss.item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


# ------------------------------------------------------------------------------------------
# BN discipline: attack in eval mode (running stats untouched), loss in train mode
def _bn_model():
    torch.manual_seed(0)
    return build_model("resnet_small", 10, (1, 28, 28), width=4, blocks_per_stage=1)


def _running_stats(model):
    return [b.running_mean.clone() for b in model.modules() if isinstance(b, nn.BatchNorm2d)]


def test_trades_attack_part_leaves_bn_running_stats_unchanged():
    model = _bn_model().train()
    x = torch.rand(8, 1, 28, 28)
    before = _running_stats(model)
    with eval_mode(model):
        trades_attack(model, x, eps=0.3, alpha=0.075, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(before, _running_stats(model)))
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("name", MINE)
def test_attack_in_eval_mode_loss_in_train_mode(name):
    model = _bn_model().train()
    bn = model.stem[1]
    modes = []
    hook = bn.register_forward_hook(lambda m, i, o: modes.append(m.training))
    cls = get_method(name)
    method = cls(cls.Params(), Threat(eps=0.3), 10)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = _running_stats(model)
    res = method.step(StepContext(model, model, 0, 10, (1, 28, 28)), x, y)
    hook.remove()
    n_train = {"local_ball": 2 + getattr(method.p, "m", 0), "trades": 3}.get(name, 2)  # TRADES: f(x) twice, as official
    assert modes[-n_train:] == [True] * n_train  # the training forwards (x, x', ...) in train mode
    assert modes[:-n_train] and not any(modes[:-n_train])  # every attack forward in eval mode
    assert not all(torch.equal(a, b) for a, b in zip(before, _running_stats(model)))  # train forwards update BN
    assert model.training
    assert torch.isfinite(res.loss)


@pytest.mark.parametrize("name", MINE)
def test_l2_threat(name):
    model = _bn_model().train()
    cls = get_method(name)
    method = cls(cls.Params(), Threat(eps=1.5, norm="l2"), 10)
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    res = method.step(StepContext(model, model, 0, 10, (1, 28, 28)), x, y)
    d = (res.x_adv - x).flatten(1).norm(dim=1)
    assert d.max().item() <= 1.5 + 1e-4 and d.min().item() > 0
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert torch.isfinite(res.loss)


@pytest.mark.parametrize("name", MINE)
def test_uniform_example_weights_change_nothing(name):
    cls = get_method(name)
    method = cls(cls.Params(), Threat(eps=0.3), 10)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    losses = []
    for w in (None, torch.full((8,), 0.5)):
        model = _bn_model().train()
        torch.manual_seed(1)
        res = method.step(StepContext(model, model, 0, 10, (1, 28, 28), w), x, y)
        losses.append(res.loss.item())
        assert res.loss.item() == pytest.approx(res.per_example_loss.mean().item(), rel=1e-5)
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_costs_follow_documented_counting():
    def cost(name, **kw):
        cls = get_method(name)
        model = _bn_model().train()
        m = cls(cls.Params(**kw), Threat(eps=0.3), 10)
        return m.step(StepContext(model, model, 0, 10, (1, 28, 28)), torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))).cost

    assert cost("trades", steps=10) == pytest.approx(13 + 1 / 3)  # official: f(x) twice, f(x') once
    assert cost("trades", steps=10, second_clean_forward=False) == pytest.approx(12 + 1 / 3)
    assert cost("mart", steps=10) == pytest.approx(12)
    assert cost("backward_smoothing") == pytest.approx(4 + 1 / 3)  # ≈ 3x cheaper than TRADES-10
    assert cost("local_ball", k=1, m=1) == pytest.approx(4)
