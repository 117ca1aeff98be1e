"""PGD adversarial training (Madry et al., ICLR 2018, "Towards Deep Learning Models
Resistant to Adversarial Attacks"; Rice et al. 2020 for the 10-step CIFAR schedule).

min_θ E max_{δ∈B(ε)} CE(f(x+δ), y), the inner max by K steps of projected signed gradient
ascent from a uniform random start. The attack runs in train mode (BN batch statistics), as
in Rice et al.'s and Wong et al.'s code. Defaults: K=10, α=ε/4 (= 2/255 at ε=8/255; = 2.5ε/K,
Madry et al.'s rule, at K=10: for other K write it out, e.g. '0.0625eps' for K=40).
Faithful to the published algorithm; no detail is reconstructed.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from ..attacks import pgd
from .base import Method, StepResult
from ..hparams import hp, parse_eps_relative
from .registry import register_method


@dataclass
class PGDATParams:
    steps: int = hp(10, low=1, high=200, doc="attack steps K")
    alpha: object = hp("eps/4", low=0.0, low_open=True, scale_by_eps=True,
                       doc="step size: absolute (0.01, '2/255') or relative to ε ('eps/4', '0.25eps'); Madry's 2.5ε/K is "
                           "'0.25eps' at K = 10")
    random_start: bool = hp(True, doc="uniform random start in the ε-ball")


@register_method
class PGDAT(Method):
    name = "pgd_at"
    Params = PGDATParams
    paper = "Madry et al., ICLR 2018 (arXiv 1706.06083)"

    def step(self, ctx, x, y):
        alpha = float(parse_eps_relative(self.p.alpha, self.threat.eps))
        x_adv = pgd(ctx.raw_model, x, y, self.threat.eps, alpha, self.p.steps, norm=self.threat.norm,
                    random_init=self.p.random_start)
        logits = ctx.model(x_adv)
        per = F.cross_entropy(logits, y, reduction="none")
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=self.p.steps + 1.0,
                          x_adv=x_adv, per_example_loss=per.detach())
