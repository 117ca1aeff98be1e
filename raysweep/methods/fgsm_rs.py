"""FGSM with random start (Wong, Rice, Kolter, ICLR 2020, "Fast is better than free").

δ0 ~ U(−ε, ε) clipped to the image; δ = Π(δ0 + α·sign ∇_δ CE(f(x+δ0), y)); train on
CE(f(x+δ), y). Defaults from locuslab/fast_adversarial: α = 1.25ε (10/255 at 8/255).

The start: the official CIFAR-10 code clips x + δ0 to [0, 1] before the gradient (the default here);
the official MNIST code (train_mnist.py) does not. On MNIST at ε = 0.3 the clipped start overfits
catastrophically in Wong et al.'s setting (MNIST is mostly black background, so clipping zeroes half
the start's noise there; de Jorge et al. 2022 find that noise without clipping avoids CO at large ε),
while the unclipped one is robust in some seeds on small_cnn and in every seed on resnet_tiny (the
README's reproduction). ``clip_start: false`` follows the MNIST code.

Faithful to the official code; its epoch-level early stop on PGD-5 of a training batch is
handled by raysweep's evaluation layer, not here.

Schedule (``train:``, not this module): the official cyclic learning rate peaks at half of
training on CIFAR-10 (train_fgsm.py: CyclicLR with equal up and down phases) and at 2/5 on
MNIST (train_mnist.py); raysweep's ``train.cyclic_peak`` defaults to 0.4, so a CIFAR-10
reproduction sets ``cyclic_peak: 0.5`` (the shipped CIFAR-10 search spaces do).
"""

from dataclasses import dataclass

import torch.nn.functional as F

from ..attacks import fgsm
from .base import Method, StepResult
from ..hparams import hp, parse_eps_relative
from .registry import register_method


@dataclass
class FGSMRSParams:
    alpha: object = hp("1.25eps", low=0.0, low_open=True, scale_by_eps=True, doc="step size")
    clip_start: bool = hp(True, doc="clip the random start x + δ0 to the image before the gradient (the official "
                                    "CIFAR-10/ImageNet code); false: the official MNIST code, which takes the gradient "
                                    "at an unclipped x + δ0 (on MNIST at ε = 0.3 the clipped start collapses where "
                                    "this one often does not)")


@register_method
class FGSMRS(Method):
    name = "fgsm_rs"
    Params = FGSMRSParams
    paper = "Wong, Rice, Kolter, ICLR 2020 (arXiv 2001.03994)"

    def step(self, ctx, x, y):
        alpha = float(parse_eps_relative(self.p.alpha, self.threat.eps))
        x_adv = fgsm(ctx.raw_model, x, y, self.threat.eps, alpha=alpha, norm=self.threat.norm, random_init=True,
                     clip_start=self.p.clip_start)
        logits = ctx.model(x_adv)
        per = F.cross_entropy(logits, y, reduction="none")
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=2.0, x_adv=x_adv,
                          per_example_loss=per.detach())
