"""Local-ball robust training — a RECONSTRUCTION of Lu & Kumar, "Improving Local Effectiveness for
Global Robust Training", arXiv 2110.14030 (2021).

**This is not the authors' algorithm.** Only the abstract was available: weak adversaries are used
more effectively by improving robustness inside a *local ball centred on each adversary*, and a
*global term* joins these local balls into overall robustness. The loss, the ball radius, the
sampling and every default below are raysweep's reconstruction (docs/methods.md), tagged
``fidelity = "reconstruction"``; no number from the paper can be expected from it.

Reconstruction:

* weak adversary, model in **eval** mode (our choice, consistent with the TRADES family; the
  step's mode is restored afterwards): x' = PGD-k on CE inside B(x, ε) from a uniform random
  start, α = 1.25ε/k by default;
* local ball: u_j = x' + η_j, η_j ~ U(−r, r)^d with r = ρ·ε (L2 threat: uniform in the L2 ball of
  radius r), then projected into B(x, ε) ∩ [0, 1]^d; j = 1..m;
* loss, model in **train** mode, separate forwards on x, x', u_1..u_m (separate BN statistics):
  L = CE(f(x), y) + β_g·KL(p(x) ‖ p(x'))
      + β_l·[ (1/m) Σ_j KL(p(x') ‖ p(u_j)) + CE(f(x'), y) ],
  all batch means; nothing is detached (both ends of each KL carry gradient, as TRADES does
  for p(x)).

Defaults: k = 1, ρ = 0.5, m = 1, β_g = 6, β_l = 1, α = 1.25ε/k (None → computed from the current ε).

Cost accounting (units of one forward+backward per example): attack = k; training = 2 + m
(forwards on x, x' and every u_j, one backward through all) → k + 2 + m per example.
"""

from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn.functional as F

from ..attacks import pgd
from ..attacks.core import project, random_start
from ..hparams import hp, parse_eps_relative
from .base import Method, StepResult
from .registry import register_method
from ..models.modes import eval_mode
from .trades import kl_per_example


def local_ball_samples(x, x_adv, eps: float, radius: float, m: int, norm: str = "linf") -> List[torch.Tensor]:
    """m points u_j = x' + η_j, η_j uniform in the radius-``radius`` ball, projected into
    B(x, ε) ∩ [0, 1]^d."""
    out = []
    for _ in range(m):
        u = x_adv + random_start(x_adv, radius, norm)
        out.append((x + project(u - x, x, eps, norm)).detach())
    return out


def local_ball_per_example(logits_nat, logits_adv, logits_u: Sequence[torch.Tensor], y,
                           beta_g: float, beta_l: float) -> torch.Tensor:
    """CE(f(x),y) + β_g·KL(p(x)‖p(x')) + β_l·[mean_j KL(p(x')‖p(u_j)) + CE(f(x'),y)], per example."""
    global_term = kl_per_example(logits_nat, logits_adv)
    local_kl = torch.stack([kl_per_example(logits_adv, lu) for lu in logits_u]).mean(0)
    local_term = local_kl + F.cross_entropy(logits_adv, y, reduction="none")
    return F.cross_entropy(logits_nat, y, reduction="none") + beta_g * global_term + beta_l * local_term


def local_ball_loss(logits_nat, logits_adv, logits_u, y, beta_g: float, beta_l: float) -> torch.Tensor:
    return local_ball_per_example(logits_nat, logits_adv, logits_u, y, beta_g, beta_l).mean()


@dataclass
class LocalBallParams:
    k: int = hp(1, low=1, high=50, doc="PGD steps of the weak adversary")
    rho: float = hp(0.5, low=0.0, high=2.0, doc="local-ball radius r = ρ·ε around the adversary")
    m: int = hp(1, low=1, high=16, doc="samples u_j drawn in each local ball")
    beta_g: float = hp(6.0, low=0.0, high=1000.0, doc="weight of the global term KL(p(x) ‖ p(x'))")
    beta_l: float = hp(1.0, low=0.0, high=1000.0, doc="weight of the local term (ball KL + CE at x')")
    alpha: object = hp(None, low=0.0, low_open=True, scale_by_eps=True,
                       doc="weak-adversary step size, absolute or ε-relative; null: 1.25ε/k")


@register_method
class LocalBall(Method):
    name = "local_ball"
    Params = LocalBallParams
    paper = "Lu, Kumar, arXiv 2110.14030 (2021) — reconstructed from the abstract, not the authors' code"
    fidelity = "reconstruction"

    def step(self, ctx, x, y):
        eps, norm = self.threat.eps, self.threat.norm
        k = self.p.k
        alpha = 1.25 * eps / k if self.p.alpha is None else float(parse_eps_relative(self.p.alpha, eps))
        with eval_mode(ctx.raw_model):
            x_adv = pgd(ctx.raw_model, x, y, eps, alpha, k, norm=norm, random_init=True)
        us = local_ball_samples(x, x_adv, eps, self.p.rho * eps, self.p.m, norm)
        logits_nat = ctx.model(x)
        logits_adv = ctx.model(x_adv)
        logits_u = [ctx.model(u) for u in us]
        per = local_ball_per_example(logits_nat, logits_adv, logits_u, y, self.p.beta_g, self.p.beta_l)
        return StepResult(self.weighted_mean(per, ctx), logits_adv.detach(), cost=k + 2.0 + self.p.m,
                          x_adv=x_adv, per_example_loss=per.detach())
