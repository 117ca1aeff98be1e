import pytest
import torch
import torch.nn.functional as F

from raysweep.attacks import fgsm, make_attack, pgd
from raysweep.attacks.evaluate import accuracy_under
from raysweep.models import build_model


def _model():
    torch.manual_seed(0)
    return build_model("small_cnn", 10, (1, 28, 28), width=4).eval()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbation_inside_ball_and_box(norm):
    m = _model()
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    eps = 0.3 if norm == "linf" else 1.5
    for xa in (fgsm(m, x, y, eps, alpha=eps * 1.25, norm=norm),
               pgd(m, x, y, eps, eps / 4, 5, norm=norm, restarts=2)):
        d = (xa - x).flatten(1)
        size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
        assert (size <= eps + 1e-5).all()
        assert xa.min() >= 0 and xa.max() <= 1


def test_pgd_increases_loss_more_than_fgsm_and_restarts_do_not_hurt():
    torch.manual_seed(1)
    m = _model()
    x = torch.rand(64, 1, 28, 28)
    y = m(x).argmax(1)  # a model that is right on every point: attacks have work to do
    clean = F.cross_entropy(m(x), y).item()
    l_fgsm = F.cross_entropy(m(fgsm(m, x, y, 0.1, random_init=False)), y).item()
    l_pgd = F.cross_entropy(m(pgd(m, x, y, 0.1, 0.025, 10)), y).item()
    assert clean < l_fgsm <= l_pgd + 1e-4
    acc1 = accuracy_under(m, x, y, {"p": make_attack("pgd", 0.1, steps=10)})["p"]
    acc5 = accuracy_under(m, x, y, {"p": make_attack("pgd", 0.1, steps=10, restarts=5)})["p"]
    assert acc5 <= acc1 + 1e-9


def test_accuracy_under_accepts_uint8_and_restores_mode():
    m = _model().train()
    x = (torch.rand(10, 1, 28, 28) * 255).to(torch.uint8)
    y = torch.randint(0, 10, (10,))
    acc = accuracy_under(m, x, y, {"clean": make_attack("clean", 0.1)})
    assert 0 <= acc["clean"] <= 1 and m.training


class _InputRecorder(torch.nn.Module):
    """A model that remembers the smallest and largest pixel it was shown."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x, **kw):
        self.seen.append((x.min().item(), x.max().item()))
        return self.inner(x, **kw)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_clipped_to_the_image_unless_asked_not_to(norm):
    from raysweep.attacks.core import random_start

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)  # MNIST's background: every negative noise value leaves the image
    eps = 0.3 if norm == "linf" else 1.5
    clipped, free = random_start(x, eps, norm), random_start(x, eps, norm, clip=False)
    assert (x + clipped).min() >= 0 and (clipped > 0).any()
    assert (x + free).min() < 0  # Wong et al.'s MNIST start: half the noise points out of [0, 1]
    size = free.flatten(1).abs().max(1).values if norm == "linf" else free.flatten(1).norm(dim=1)
    assert (size <= eps + 1e-5).all()


def test_fgsm_unclipped_start_takes_the_gradient_outside_the_image_and_returns_inside():
    m = _InputRecorder(_model())
    x = torch.zeros(32, 1, 28, 28)
    y = torch.randint(0, 10, (32,))
    for clip in (True, False):
        m.seen.clear()
        torch.manual_seed(1)
        xa = fgsm(m, x, y, 0.3, alpha=0.375, clip_start=clip)
        lo, hi = m.seen[0]  # the one forward: where the gradient was taken
        assert (lo >= 0) if clip else (lo < -0.1)
        assert hi <= 0.3 + 1e-6
        assert xa.min() >= 0 and (xa - x).abs().max() <= 0.3 + 1e-6  # the result is in the ball and the box either way
    # the same noise, so the two starts differ only where x + δ0 left [0, 1]
    torch.manual_seed(1)
    a = fgsm(m, x + 0.5, y, 0.3, alpha=0.375, clip_start=True)
    torch.manual_seed(1)
    b = fgsm(m, x + 0.5, y, 0.3, alpha=0.375, clip_start=False)
    assert torch.allclose(a, b, atol=1e-6)  # x = 0.5: the ball lies inside the image, nothing to clip


@pytest.mark.parametrize("name", ["fgsm_rs", "fp_better"])
def test_single_step_methods_pass_clip_start_to_their_attack(name):
    from raysweep.methods import StepContext
    from raysweep.train.loop import build_method
    from raysweep.train.spec import ThreatSpec, TrialSpec

    torch.manual_seed(0)
    net = build_model("resnet_small" if name == "fp_better" else "small_cnn", 10, (1, 28, 28), width=4).train()
    net.block_fractions((1, 28, 28))  # the one-off MAC count runs a forward; do it before recording
    x, y = torch.zeros(8, 1, 28, 28), torch.randint(0, 10, (8,))
    for clip in (True, False):
        m = build_method(TrialSpec(method=name, method_params={"clip_start": clip}, threat=ThreatSpec(eps=0.3)), 10)
        if name == "fp_better":
            m._ensure_generator(0)
        rec = _InputRecorder(net)
        rec.num_blocks, rec.executed_fraction = net.num_blocks, net.executed_fraction
        res = m.step(StepContext(rec, rec, 0, 10, (1, 28, 28)), x, y)
        attack_lo = rec.seen[0][0]
        assert (attack_lo >= 0) if clip else (attack_lo < 0)
        assert rec.seen[1][0] >= 0  # the update always sees an image
        assert torch.isfinite(res.loss)
