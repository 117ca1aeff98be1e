"""Accuracy under attack, batched, with the model in eval mode and fp32."""

from typing import Dict

import torch

from ..models.modes import eval_mode
from .gradient import fgsm, margin_loss, pgd


def _batches(x, y, bs):
    for i in range(0, len(y), bs):
        yield x[i:i + bs], y[i:i + bs]


def default_alpha(eps: float, steps: int) -> float:
    """Madry et al.'s rule of thumb: 2.5·ε/k, so k steps can cross the ball and back."""
    return 2.5 * eps / max(1, steps)


def make_attack(name: str, eps: float, norm: str = "linf", steps: int = 10, alpha=None, restarts: int = 1):
    """An attack x, y, model -> x_adv by name: clean, fgsm, pgd, cw (PGD on the margin loss)."""
    a = default_alpha(eps, steps) if alpha is None else alpha
    if name == "clean":
        return lambda m, x, y: x
    if name == "fgsm":
        return lambda m, x, y: fgsm(m, x, y, eps, alpha=eps, norm=norm, random_init=False)
    if name == "pgd":
        return lambda m, x, y: pgd(m, x, y, eps, a, steps, norm=norm, restarts=restarts)
    if name == "cw":
        return lambda m, x, y: pgd(m, x, y, eps, a, steps, norm=norm, restarts=restarts, loss_fn=margin_loss)
    raise ValueError(f"unknown attack {name!r} (allowed: clean, fgsm, pgd, cw)")


def accuracy_under(model, x_u8_or_float, y, attacks: Dict[str, callable], batch_size: int = 500, device=None) -> Dict[str, float]:
    """Accuracy for each named attack over (x, y); x may be uint8 (scaled here) or float in [0,1]."""
    correct = {k: 0 for k in attacks}
    n = 0
    device = device or next(model.parameters()).device
    with eval_mode(model):
        for xb, yb in _batches(x_u8_or_float, y, batch_size):
            xb = xb.to(device)
            xb = xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()
            yb = yb.to(device)
            for k, atk in attacks.items():
                xa = atk(model, xb, yb)
                with torch.no_grad():
                    correct[k] += (model(xa).argmax(1) == yb).sum().item()
            n += len(yb)
    return {k: v / max(1, n) for k, v in correct.items()}
