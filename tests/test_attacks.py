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
