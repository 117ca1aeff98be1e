"""Base of the test doubles that hold a trial at its first step until something has happened
elsewhere (other trials training, the warm pool's processes started), then train as FGSM-RS."""

import torch.nn.functional as F

from raysweep.attacks import fgsm
from raysweep.methods import Method, StepResult


class WaitsThenFGSM(Method):
    """Not registered itself: a subclass names itself, its Params, and ``wait()``."""

    def wait(self) -> None:
        raise NotImplementedError

    def step(self, ctx, x, y):
        if not getattr(self, "_waited", False):
            self.wait()
            self._waited = True
        x_adv = fgsm(ctx.raw_model, x, y, self.threat.eps, alpha=1.25 * self.threat.eps)
        logits = ctx.model(x_adv)
        return StepResult(F.cross_entropy(logits, y), logits.detach(), cost=2.0, x_adv=x_adv)
