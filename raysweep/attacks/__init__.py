"""Attacks in [0, 1] pixel space: FGSM with random start, PGD (L-inf / L2, restarts), CW margin."""

from .core import project, random_start
from .evaluate import accuracy_under, default_alpha, make_attack
from .gradient import ce_sum, fgsm, margin_loss, pgd

__all__ = ["project", "random_start", "fgsm", "pgd", "ce_sum", "margin_loss", "accuracy_under", "default_alpha", "make_attack"]
