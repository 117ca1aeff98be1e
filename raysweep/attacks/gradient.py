"""FGSM (with random start) and PGD (with restarts), shared by training and evaluation.

``forward`` is any callable x -> logits (a model, or a closure that fixes a subnetwork
mask), so methods can attack exactly the network they train.
"""

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .core import ascent_direction, project, random_start

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ce_sum(logits, y):
    return F.cross_entropy(logits, y, reduction="sum")


def margin_loss(logits, y):
    """CW margin: max_{k≠y} z_k − z_y (summed); what the CW∞ evaluation ascends."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return (other.max(1).values - z_y).sum()


def _grad(forward, x, delta, y, loss_fn):
    delta = delta.detach().requires_grad_(True)
    loss = loss_fn(forward(x + delta), y)
    (g,) = torch.autograd.grad(loss, delta)
    return g


def fgsm(forward, x, y, eps: float, alpha: Optional[float] = None, norm: str = "linf",
         random_init: bool = True, loss_fn: LossFn = ce_sum, clip_start: bool = True) -> torch.Tensor:
    """One signed (L-inf) or normalised (L2) step of size α from a random start (Wong et al.).

    ``clip_start``: clip the start x + δ0 to [0, 1] before the gradient, as Wong et al.'s CIFAR-10 and
    ImageNet code do; false is their MNIST code (train_mnist.py), where the gradient is taken at an
    unclipped x + δ0. Only the start differs: the returned x + δ is in the ε-ball and in [0, 1] either way."""
    alpha = eps if alpha is None else alpha
    delta = random_start(x, eps, norm, clip=clip_start) if random_init else torch.zeros_like(x)
    g = _grad(forward, x, delta, y, loss_fn)
    delta = project(delta + alpha * ascent_direction(g, norm), x, eps, norm)
    return (x + delta).detach()


def pgd(forward, x, y, eps: float, alpha: float, steps: int, norm: str = "linf",
        random_init: bool = True, restarts: int = 1, loss_fn: LossFn = ce_sum) -> torch.Tensor:
    """PGD-k with ``restarts``; per example, the first restart that fools the model wins
    (else the last), which is the standard worst-case evaluation."""
    best = x.clone()
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for r in range(max(1, restarts)):
        delta = random_start(x, eps, norm) if random_init else torch.zeros_like(x)
        for _ in range(steps):
            g = _grad(forward, x, delta, y, loss_fn)
            delta = project(delta + alpha * ascent_direction(g, norm), x, eps, norm)
        x_adv = (x + delta).detach()
        if restarts <= 1:
            return x_adv
        with torch.no_grad():
            wrong = forward(x_adv).argmax(1) != y
        take = wrong & ~fooled
        best[take] = x_adv[take]
        if r == restarts - 1:
            best[~fooled & ~take] = x_adv[~fooled & ~take]
        fooled |= wrong
    return best
