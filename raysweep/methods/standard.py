"""Standard (clean) training: cross-entropy on the unperturbed images, no adversary.

Not an adversarial-training method: the control every AT paper reports beside its robust rows ("natural" or
"standard" training). raysweep uses it where a claim needs to know what robustness comes for free, e.g. whether
an RRM student, which also trains on clean images only, keeps anything of its robust teacher beyond what clean
training of the same architecture gives. One forward and backward pass per example.
"""

from dataclasses import dataclass

import torch.nn.functional as F

from .base import Method, StepResult
from .registry import register_method


@dataclass
class StandardParams:
    pass


@register_method
class Standard(Method):
    name = "standard"
    Params = StandardParams
    paper = "control, no adversary (clean cross-entropy)"

    def step(self, ctx, x, y):
        logits = ctx.model(x)
        per = F.cross_entropy(logits, y, reduction="none")
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=1.0, per_example_loss=per.detach())
