"""A user's own training method, model and dataset for raysweep, in one module.

A sweep loads it with the YAML key ``imports: [my_plugin]`` (``examples/my_plugin.yaml``); the
module must be importable by the driver and by the Ray workers, e.g. with
``PYTHONPATH=$PWD/examples`` (docs/extending.md). Importing it registers:

* the method ``fgsm_fixed``: FGSM from a fixed start δ0 = start·ε instead of a random one
  (start = 0 and α = ε is the FGSM of Goodfellow et al., ICLR 2015);
* the model ``tiny_mlp``: one hidden layer, any input shape;
* the dataset ``stripes``: 16×16 grey images of four stripe patterns with noise, seeded.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from raysweep.attacks.core import ascent_direction, project
from raysweep.data import register_dataset
from raysweep.data.registry import RawDataset
from raysweep.errors import DataError
from raysweep.hparams import hp, parse_eps_relative
from raysweep.methods import Method, StepResult, register_method
from raysweep.models import ClassifierNet, register_model


# -- a method ---------------------------------------------------------------------------------
@dataclass
class FGSMFixedParams:
    alpha: object = hp("eps", low=0.0, low_open=True, scale_by_eps=True,
                       doc="step size, absolute (0.1, '8/255') or relative to ε ('eps', '1.25eps')")
    start: float = hp(0.0, low=-1.0, high=1.0, doc="δ0 = start·ε on every pixel (0: the attack starts at x)")


@register_method
class FGSMFixed(Method):
    name = "fgsm_fixed"
    Params = FGSMFixedParams
    paper = "Goodfellow, Shlens, Szegedy, ICLR 2015 (arXiv 1412.6572) at start = 0, alpha = eps"
    fidelity = "faithful"

    def step(self, ctx, x, y):
        eps, norm = self.threat.eps, self.threat.norm  # eps follows train.eps_warmup
        alpha = float(parse_eps_relative(self.p.alpha, eps))
        # attack: one forward+backward to the input, on the unwrapped model (no DDP gradient sync)
        delta = project(torch.full_like(x, self.p.start * eps), x, eps, norm).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(ctx.raw_model(x + delta), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, delta)
        x_adv = (x + project(delta.detach() + alpha * ascent_direction(grad, norm), x, eps, norm)).detach()
        # update: one forward here, one backward by the training loop, on the (possibly DDP) model
        logits = ctx.model(x_adv)
        per = F.cross_entropy(logits, y, reduction="none")
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=2.0, x_adv=x_adv,
                          per_example_loss=per.detach())


# -- a model ----------------------------------------------------------------------------------
@register_model("tiny_mlp")
class TinyMLP(ClassifierNet):
    """Flatten, one hidden layer of ``width`` units, a linear classifier. No skippable blocks."""

    def __init__(self, num_classes, input_shape, mean, std, width=64):
        super().__init__(mean, std)  # inputs arrive in [0, 1]; (x - mean) / std happens inside
        self.stem = nn.Flatten()
        self.blocks = nn.ModuleList()  # fp_better needs SkippableBlocks here; other methods do not
        self.hidden = nn.Sequential(nn.Linear(int(np.prod(input_shape)), width), nn.ReLU())
        self.feature_dim = width  # what rrm matches and gradmatch pruning reads
        self.fc = nn.Linear(width, num_classes)

    def head_features(self, h):
        return self.hidden(h)


# -- a dataset --------------------------------------------------------------------------------
def _stripes(n, rng):
    i, j = np.mgrid[0:16, 0:16]
    patterns = np.stack([(i // 2) % 2, (j // 2) % 2, ((i + j) // 2) % 2, ((i - j) // 2) % 2]).astype(np.float32)
    y = rng.integers(0, 4, size=n)
    x = 0.3 + 0.4 * patterns[y] + 0.2 * rng.standard_normal((n, 16, 16))
    return (np.clip(x, 0.0, 1.0) * 255).round().astype(np.uint8)[:, None], y.astype(np.int64)


@register_dataset("stripes")
def load_stripes(root=None, **_):
    """uint8 N x C x H x W arrays and int64 labels. With ``dataset.root``: ``stripes.npz`` there."""
    if root:
        f = Path(root).expanduser() / "stripes.npz"
        if not f.is_file():
            raise DataError(f"stripes: {f} does not exist (expected train_x, train_y, test_x, test_y)")
        d = np.load(f)
        return RawDataset(d["train_x"], d["train_y"], d["test_x"], d["test_y"], num_classes=4, source=str(f))
    rng = np.random.default_rng(0)
    train_x, train_y = _stripes(2000, rng)
    test_x, test_y = _stripes(500, rng)
    return RawDataset(train_x, train_y, test_x, test_y, num_classes=4, source="stripes(seed=0)")
