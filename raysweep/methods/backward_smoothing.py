"""Backward Smoothing (Chen, Liu, Gu, Cheng, Gan, "Efficient Robust Training via Backward
Smoothing", AAAI 2022, arXiv 2010.01278).

A cheap TRADES: the random start of single-step TRADES is replaced by randomised smoothing in
*output* space mapped back to input space. As in the official code
(jinghuichen/BackwardSmoothing: trades_backward.py):

* attack, model in **eval** mode:
  z = f(x) (no grad); ξ ~ U(−γ, γ)^K per example (K = number of classes);
  init: x'_1 = Π(x + α·sign ∇_{x'}[−KL(softmax(z + ξ) ‖ softmax(f(x')))] at x' = x), one signed
  step from x that *decreases* the KL to the noisy target, i.e. moves f(x') towards z + ξ;
  then ``steps`` (default 1) ascent steps x' ← Π(x' + α·sign ∇_{x'} KL(softmax(z) ‖ softmax(f(x'))));
* loss, model in **train** mode (the step's mode is restored after the attack):
  L = CE(f(x), y) + β·KL(softmax f(x) ‖ softmax f(x')), batchmean, f(x) not detached (TRADES).

Defaults: γ = 1, β = 6 (the README example uses 10), α = ε (ε = α = 0.031 in the paper), 1 step.
Faithful to the official code; for ``threat.norm == "l2"`` (not in the paper) both the init and the
ascent steps use normalised-gradient steps projected onto the L2 ball.

Cost accounting (units of one forward+backward per example): FORWARD_ONLY for z, 1 for the init
step, ``steps`` ascent steps, 2 for training (forwards on x and x', one backward through both)
→ steps + 3 + 1/3 per example (about 3x cheaper than TRADES-10).
"""

from dataclasses import dataclass

import torch

from ..hparams import hp, parse_eps_relative
from .base import FORWARD_ONLY, Method, StepResult
from .registry import register_method
from ..models.modes import eval_mode
from .trades import kl_per_example, signed_ascent, trades_per_example


def backward_smoothing_init(model, x, target_logits, eps: float, alpha: float, norm: str = "linf"):
    """One projected step from x that decreases KL(softmax(target_logits) ‖ softmax(f(x')))."""
    return signed_ascent(model, x, x, lambda logits: -kl_per_example(target_logits, logits).sum(),
                         eps, alpha, 1, norm)


def backward_smoothing_attack(model, x, eps: float, alpha: float, steps: int, gamma: float, norm: str = "linf"):
    """The full inner maximisation (init + ``steps`` KL-ascent steps) in the model's current mode."""
    with torch.no_grad():
        z = model(x)
    xi = gamma * (2.0 * torch.rand_like(z) - 1.0)
    x1 = backward_smoothing_init(model, x, z + xi, eps, alpha, norm)
    return signed_ascent(model, x, x1, lambda logits: kl_per_example(z, logits).sum(), eps, alpha, steps, norm)


@dataclass
class BackwardSmoothingParams:
    steps: int = hp(1, low=1, high=50, doc="KL-ascent steps after the backward-smoothing init (paper: 1)")
    alpha: object = hp("eps", low=0.0, low_open=True, scale_by_eps=True,
                       doc="step size of the init and the ascent steps, absolute or ε-relative (paper: α = ε)")
    gamma: float = hp(1.0, low=0.0, high=100.0, doc="half-width γ of the uniform logit-space noise ξ ~ U(−γ, γ)")
    beta: float = hp(6.0, low=0.0, high=1000.0, doc="weight β of the KL robustness term")


@register_method
class BackwardSmoothing(Method):
    name = "backward_smoothing"
    Params = BackwardSmoothingParams
    paper = "Chen, Liu, Gu, Cheng, Gan, AAAI 2022 (arXiv 2010.01278)"
    fidelity = "faithful"

    def step(self, ctx, x, y):
        eps, norm = self.threat.eps, self.threat.norm
        alpha = float(parse_eps_relative(self.p.alpha, eps))
        with eval_mode(ctx.raw_model):
            x_adv = backward_smoothing_attack(ctx.raw_model, x, eps, alpha, self.p.steps, self.p.gamma, norm)
        logits_nat = ctx.model(x)
        logits_adv = ctx.model(x_adv)
        per = trades_per_example(logits_nat, logits_adv, y, self.p.beta)
        return StepResult(self.weighted_mean(per, ctx), logits_adv.detach(),
                          cost=self.p.steps + 3.0 + FORWARD_ONLY, x_adv=x_adv, per_example_loss=per.detach())
