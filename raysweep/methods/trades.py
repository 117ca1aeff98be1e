"""TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, "Theoretically Principled Trade-off between
Robustness and Accuracy", ICML 2019, arXiv 1901.08573).

Algorithm, as in the official code (yaodongyu/TRADES: trades.py, train_trades_cifar10.py):

* attack, model in **eval** mode (BN running statistics, nothing updated):
  x'_0 = x + 0.001·N(0, I) (not clipped, as in the official code; every step projects);
  K times: x' ← Π(x' + α·sign ∇_{x'} KL(p(x) ‖ p(x'))), with p(x) = softmax f(x) a constant;
* loss, model in **train** mode (the mode the step was called in is restored after the attack;
  the training loop calls steps in train mode):
  L = CE(f(x), y) + β·KL(p(x) ‖ p(x')), KL averaged over the batch ("batchmean"), p(x) **not**
  detached, so the KL term also pulls the clean prediction towards the adversarial one.
  Clean and adversarial batches go through the network in separate forwards (separate BN
  batch statistics), as in the official code, which runs f(x) **twice** in train mode: once
  for the CE term and once more for p(x) inside the KL term. The two give the same values
  and the same gradient; what the second changes is BN's running statistics (updated with
  x twice and x' once per step), i.e. the eval-mode model that is tested. ``second_clean_forward``
  (default true) reproduces it; false uses the first f(x) for both terms (one pass cheaper).

Defaults: K = 10, β = 6 (official CIFAR-10 settings; MNIST uses β = 1, K = 40, α = 0.01 at ε = 0.3).
The official CIFAR step size is α = 0.007 at ε = 0.031 (≈ 0.226ε); the default here is ε-relative,
α = ε/4 (0.00775 at ε = 0.031, 2/255 at 8/255), so it follows ε warm-up and other budgets.

Faithful to the official code except: (1) p(x) in the attack is computed once per step (the
official loop recomputes it in every attack iteration; identical values in eval mode, K−1
forwards fewer); (2) for ``threat.norm == "l2"`` the attack takes normalised-gradient steps
projected onto the L2 ball (the official L2 branch runs an SGD optimiser on δ with gradient
renormalisation; same idea, not the same update).

Cost accounting (units of one forward+backward per example; a forward alone is FORWARD_ONLY):
attack = FORWARD_ONLY (p(x), no grad) + K (forward+backward to the input per step);
training = 3 (forwards on x, x and x', one backward through all three; 2 without the second
clean forward) → K + 3 + 1/3 per example (K + 2 + 1/3).

Helpers shared with ``mart``, ``backward_smoothing`` and ``local_ball`` live here:
``kl_per_example``, ``signed_ascent``.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attacks.core import ascent_direction, project
from ..models.modes import eval_mode
from ..hparams import hp, parse_eps_relative
from .base import FORWARD_ONLY, Method, StepResult
from .registry import register_method


# ---------------------------------------------------------------------------------------
# shared helpers
def kl_per_example(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits_p) ‖ softmax(logits_q)) = Σ_k p_k (log p_k − log q_k), one per example.

    Its batch mean is PyTorch's ``KLDivLoss(log q, p, reduction="batchmean")``."""
    logp = F.log_softmax(logits_p, dim=1)
    logq = F.log_softmax(logits_q, dim=1)
    return (logp.exp() * (logp - logq)).sum(dim=1)


def signed_ascent(forward, x, x_start, loss_fn, eps: float, alpha: float, steps: int, norm: str = "linf"):
    """``steps`` projected steepest-ascent steps on ``loss_fn(forward(x'))`` starting at ``x_start``:
    x' ← x + Π(x' − x + α·dir ∇_{x'} loss), dir = sign (L-inf) or the normalised gradient (L2).

    ``loss_fn`` maps logits to a scalar (summed over the batch, so per-example steps do not
    depend on the batch size). Returns a detached tensor; with steps = 0, ``x_start`` itself."""
    x_adv = x_start.detach()
    for _ in range(steps):
        with torch.enable_grad():
            x_adv.requires_grad_(True)
            loss = loss_fn(forward(x_adv))
            (g,) = torch.autograd.grad(loss, x_adv)
        delta = project(x_adv.detach() - x + alpha * ascent_direction(g, norm), x, eps, norm)
        x_adv = (x + delta).detach()
    return x_adv


# ---------------------------------------------------------------------------------------
# TRADES
def trades_attack(model, x, eps: float, alpha: float, steps: int, norm: str = "linf", init_std: float = 0.001):
    """The TRADES inner maximisation of KL(p(x) ‖ p(x')) from x + init_std·N(0, I). Runs in
    whatever mode ``model`` is in (the method wraps it in ``eval_mode``)."""
    with torch.no_grad():
        z = model(x)
    start = x + init_std * torch.randn_like(x)
    return signed_ascent(model, x, start, lambda logits: kl_per_example(z, logits).sum(), eps, alpha, steps, norm)


def trades_per_example(logits_nat, logits_adv, y, beta: float, logits_nat_kl=None) -> torch.Tensor:
    """CE(f(x_i), y_i) + β·KL(p(x_i) ‖ p(x'_i)), gradients through every logit. ``logits_nat_kl``:
    the second clean forward's logits for p(x) in the KL (the official code's), else ``logits_nat``."""
    p_nat = logits_nat if logits_nat_kl is None else logits_nat_kl
    return F.cross_entropy(logits_nat, y, reduction="none") + beta * kl_per_example(p_nat, logits_adv)


@dataclass
class TRADESParams:
    steps: int = hp(10, low=1, high=200, doc="attack steps K (official: 10 on CIFAR, 40 on MNIST)")
    alpha: object = hp("eps/4", low=0.0, low_open=True, scale_by_eps=True,
                       doc="attack step size, absolute or ε-relative (official: 0.007 at ε=0.031)")
    beta: float = hp(6.0, low=0.0, high=1000.0, doc="weight β of the KL robustness term (official: 6 CIFAR, 1 MNIST)")
    init_std: float = hp(0.001, low=0.0, high=1.0, doc="std of the Gaussian attack start x + σ·N(0, I)")
    second_clean_forward: bool = hp(True, doc="run f(x) again (train mode) for p(x) in the KL term, as the official "
                                              "code does: same loss and gradient, BN running statistics see x twice")


@register_method
class TRADES(Method):
    name = "trades"
    Params = TRADESParams
    paper = "Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, ICML 2019 (arXiv 1901.08573)"
    fidelity = "faithful"

    def step(self, ctx, x, y):
        eps, norm = self.threat.eps, self.threat.norm
        alpha = float(parse_eps_relative(self.p.alpha, eps))
        with eval_mode(ctx.raw_model):
            x_adv = trades_attack(ctx.raw_model, x, eps, alpha, self.p.steps, norm, self.p.init_std)
        logits_nat = ctx.model(x)
        if self.p.second_clean_forward:
            # official order: CE's forward on x, then the KL's on x' and on x again
            logits_adv = ctx.model(x_adv)
            logits_nat_kl = ctx.model(x)
        else:
            logits_adv, logits_nat_kl = ctx.model(x_adv), logits_nat
        per = trades_per_example(logits_nat, logits_adv, y, self.p.beta, logits_nat_kl)
        forwards = 3.0 if self.p.second_clean_forward else 2.0
        return StepResult(self.weighted_mean(per, ctx), logits_adv.detach(),
                          cost=self.p.steps + forwards + FORWARD_ONLY, x_adv=x_adv, per_example_loss=per.detach())
