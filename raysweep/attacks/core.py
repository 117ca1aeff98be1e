"""Projections and random starts for L-inf and L2 threat models. Inputs live in [0, 1]."""

import torch


def _flat_norm(t):
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Π: into the ε-ball, then so that x + δ stays in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    elif norm == "l2":
        delta = delta * (eps / _flat_norm(delta)).clamp(max=1.0)
    else:
        raise ValueError(f"unknown norm {norm!r} (allowed: linf, l2)")
    return (x + delta).clamp(0.0, 1.0) - x


def random_start(x: torch.Tensor, eps: float, norm: str, clip: bool = True) -> torch.Tensor:
    """δ0 uniform in the ε-ball (L-inf: per coordinate; L2: uniform in volume), clipped to the image
    unless ``clip`` is false (then x + δ0 may leave [0, 1]; see ``fgsm``)."""
    if norm == "linf":
        delta = torch.empty_like(x).uniform_(-eps, eps)
    else:
        d = torch.randn_like(x)
        n = x[0].numel()
        r = torch.rand(x.shape[0], device=x.device).pow(1.0 / n).view(-1, *([1] * (x.dim() - 1)))
        delta = d / _flat_norm(d) * r * eps
    return (x + delta).clamp(0.0, 1.0) - x if clip else delta


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step: sign for L-inf, normalised gradient for L2."""
    return grad.sign() if norm == "linf" else grad / _flat_norm(grad)
