"""MART: Misclassification-Aware adveRsarial Training (Wang, Zou, Yi, Bailey, Ma, Gu, "Improving
Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020; OpenReview
rklOg6EFwS; no arXiv version).

Algorithm, as in the official code (YisenWang/MART: mart.py, train_wideresnet.py):

* attack, model in **eval** mode: x'_0 = x + 0.001·N(0, I); K = 10 steps of
  x' ← Π(x' + α·sign ∇_{x'} CE(f(x'), y)) (PGD on cross-entropy, Gaussian start);
* loss, model in **train** mode (the step's mode is restored after the attack):
  L = mean_i [ BCE(p(x'_i), y_i) + β·KL(p(x_i) ‖ p(x'_i))·(1 − p_{y_i}(x_i)) ], with the
  "boosted" cross-entropy BCE(p, y) = −log p_y − log(1 − max_{k≠y} p_k).
  Nothing is detached: the weight (1 − p_y(x)) and p(x) in the KL both carry gradient, as in the
  official code.

Defaults: K = 10, β = 6 (official WideResNet-34-10 setting; the official ResNet-18 script uses
β = 5), α = ε/4 (0.00775 at ε = 0.031; the official step is 0.007 at ε = 0.031).

Numerics follow the official code: the second BCE term is −log(1.0001 − max_{k≠y} p_k(x'))
(``MART_BCE_OFFSET`` = 1e-4 keeps it finite when the top wrong class has probability 1). The
official KL uses log(p' + 1e-12) and the weight 1.0000001 − p_y; here the KL uses log-softmax and
the weight is exactly 1 − p_y (differences below 1e-6). For ``threat.norm == "l2"`` the attack
takes normalised-gradient steps projected onto the L2 ball (the official code has no L2 attack:
its "l2" branch only clips the Gaussian start).

Cost accounting (units of one forward+backward per example): attack = K; training = 2
(forwards on x and x', one backward through both) → K + 2 per example.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..hparams import hp, parse_eps_relative
from .base import Method, StepResult
from .registry import register_method
from ..models.modes import eval_mode
from .trades import kl_per_example, signed_ascent

MART_BCE_OFFSET = 1e-4


def mart_attack(model, x, y, eps: float, alpha: float, steps: int, norm: str = "linf", init_std: float = 0.001):
    """PGD on CE from the Gaussian start x + init_std·N(0, I), in the model's current mode."""
    start = x + init_std * torch.randn_like(x)
    return signed_ascent(model, x, start, lambda logits: F.cross_entropy(logits, y, reduction="sum"),
                         eps, alpha, steps, norm)


def mart_per_example(logits_nat, logits_adv, y, beta: float) -> torch.Tensor:
    """BCE(p(x'_i), y_i) + β·KL(p(x_i) ‖ p(x'_i))·(1 − p_{y_i}(x_i)) for each example."""
    probs_adv = F.softmax(logits_adv, dim=1)
    is_true = F.one_hot(y, probs_adv.shape[1]).bool()
    top_wrong = probs_adv.masked_fill(is_true, float("-inf")).max(dim=1).values
    bce = F.cross_entropy(logits_adv, y, reduction="none") - torch.log(1.0 + MART_BCE_OFFSET - top_wrong)
    p_true_nat = F.softmax(logits_nat, dim=1).gather(1, y[:, None]).squeeze(1)
    return bce + beta * kl_per_example(logits_nat, logits_adv) * (1.0 - p_true_nat)


def mart_loss(logits_nat, logits_adv, y, beta: float) -> torch.Tensor:
    """The MART objective averaged over the batch."""
    return mart_per_example(logits_nat, logits_adv, y, beta).mean()


@dataclass
class MARTParams:
    steps: int = hp(10, low=1, high=200, doc="PGD steps K of the CE attack")
    alpha: object = hp("eps/4", low=0.0, low_open=True, scale_by_eps=True,
                       doc="attack step size, absolute or ε-relative (official: 0.007 at ε=0.031)")
    beta: float = hp(6.0, low=0.0, high=1000.0, doc="weight β of the misclassification-weighted KL (official: 6 WRN, 5 ResNet-18)")
    init_std: float = hp(0.001, low=0.0, high=1.0, doc="std of the Gaussian attack start x + σ·N(0, I)")


@register_method
class MART(Method):
    name = "mart"
    Params = MARTParams
    paper = "Wang, Zou, Yi, Bailey, Ma, Gu, ICLR 2020 (OpenReview rklOg6EFwS)"
    fidelity = "faithful"

    def step(self, ctx, x, y):
        eps, norm = self.threat.eps, self.threat.norm
        alpha = float(parse_eps_relative(self.p.alpha, eps))
        with eval_mode(ctx.raw_model):
            x_adv = mart_attack(ctx.raw_model, x, y, eps, alpha, self.p.steps, norm, self.p.init_std)
        logits_nat = ctx.model(x)
        logits_adv = ctx.model(x_adv)
        per = mart_per_example(logits_nat, logits_adv, y, self.p.beta)
        return StepResult(self.weighted_mean(per, ctx), logits_adv.detach(), cost=self.p.steps + 2.0,
                          x_adv=x_adv, per_example_loss=per.detach())
