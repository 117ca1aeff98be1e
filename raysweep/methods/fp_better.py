"""FP-Better: FGSM-RS on sampled subnetworks (Jia, Li, Gu, Bai, Cao, "Fast Propagation is
Better: Accelerating Single-Step Adversarial Training via Sampling Subnetworks", IEEE TIFS
2024, arXiv 2310.15444; official code jiaxiaojunQAQ/FP-Better, FGSM_DSD_cifar10.py).

Per iteration, one Bernoulli mask over the L skippable residual blocks is drawn, shared by
the whole batch, with keep-probabilities decaying linearly with depth

    p_l = p_0 − (l−1)(p_0 − p_L)/(L−1),   p_0 = 1.0, p_L = 0.5 initially.

A dropped block passes only its shortcut (identity, or the projection of a downsampling
block; the residual branch is not rescaled). The FGSM-RS attack pass and the weight update
run on the SAME subnetwork, with the label-smoothed CE (ỹ_y = s, ỹ_k = (1−s)/(K−1), s = 0.5)
in both. Per epoch, p_L grows by ``rate`` (capped at ``cap``) when the train adversarial
accuracy did not improve: at epoch e ≥ 2, if acc(e−1) ≤ acc(e−2) then p_L ← min(p_L + rate, cap).

Follows the official code: the linear schedule, one mask per iteration shared by the batch
and by both passes, no rescaling, label smoothing s = 0.5 on both passes, train-mode BN in
the attack, the "not improved" rule with ≤ and its cap (min(p_L + rate, cap), which also
pulls an initial p_L above the cap down to it on the first increase), α = 1.25ε (10/255 at
8/255), and the momentum reset every epoch (the official code re-creates the SGD optimiser
each epoch; ``reset_momentum_each_epoch``).

Dropped blocks and the optimiser (``dropped_block_update``). The official code sets
``requires_grad=False`` on a dropped block's convolutions (its BN layers are simply not run)
and calls ``opt.zero_grad()``, which under the PyTorch of its time (< 2.0) *zeroed* the
gradients instead of dropping them. So a dropped block's parameters reach ``SGD.step`` with a
zero gradient, and SGD still applies weight decay (wd·θ) and momentum to them. ``official``
(default) reproduces that: after the backward pass every parameter left without a gradient
gets a zero one. (The official code differs only in the first steps of training, for a block
that has never been kept: it has no gradient tensor yet and is skipped.) ``skip`` leaves them
without a gradient, so the optimiser leaves dropped blocks untouched in that step, which is
what the official code does under PyTorch ≥ 2.0 (``zero_grad`` sets gradients to None).

Differences from the official code, by design:
* the mask is passed explicitly (``model(x, block_mask=mask)``), never through module-level
  state, and drawn from a ``torch.Generator`` owned by the method and seeded from the trial
  seed, so every DDP rank draws the same masks (the DDP wrapper must use
  ``find_unused_parameters=True``: ``partial_network = True`` tells it so);
* it works for any number of skippable blocks (the official code hard-codes 8);
* ``bn_recalibrate`` (off by default, our suggestion, not in the paper): before each
  validation evaluation, recompute the BN running statistics of the FULL network from a few
  training batches, since in training the full network never runs in train mode.
"""

import time
from dataclasses import dataclass
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attacks import fgsm
from ..hparams import hp, parse_eps_relative
from ..models.modes import train_mode
from .base import FORWARD_ONLY, Method, StepResult
from .registry import register_method


@dataclass
class FPBetterParams:
    alpha: object = hp("1.25eps", low=0.0, low_open=True, scale_by_eps=True,
                       doc="FGSM step size (official: 10/255 at ε = 8/255)")
    clip_start: bool = hp(True, doc="clip the FGSM random start to the image before the gradient, as the official "
                                    "(CIFAR-10) code; false: as Wong et al.'s MNIST code, for parity with an FGSM-RS "
                                    "baseline run that way")
    keep_prob_first: float = hp(1.0, low=0.0, low_open=True, high=1.0, doc="p_0: keep-probability of the first block")
    keep_prob_last: float = hp(0.5, low=0.0, low_open=True, high=1.0,
                               doc="initial p_L: keep-probability of the last block (adapted per epoch)")
    rate: float = hp(0.04, low=0.0, high=1.0, doc="p_L increment when train adversarial accuracy did not improve (0: fixed p_L)")
    cap: float = hp(0.9, low=0.0, low_open=True, high=1.0, doc="upper bound of the adapted p_L")
    label_smoothing: float = hp(0.5, low=0.0, low_open=True, high=1.0,
                                doc="s: probability mass on the true class (1.0 = plain CE)")
    reset_momentum_each_epoch: bool = hp(True, doc="clear optimizer state at each epoch start (official-code parity)")
    dropped_block_update: str = hp("official", choices=("official", "skip"),
                                   doc="official: dropped blocks get a zero gradient, so weight decay and momentum still "
                                       "move them (official code, PyTorch < 2.0); skip: the optimiser leaves them alone")
    bn_recalibrate: bool = hp(False, doc="recompute BN running stats on the full network before each validation")
    bn_recal_batches: int = hp(10, low=1, high=100_000, doc="training batches used for BN recalibration")
    bn_recal_input: str = hp("adversarial", choices=("adversarial", "clean"),
                             doc="recalibrate on FGSM-RS examples of the full network (as in training) or clean images")


def label_smoothed_ce(logits: torch.Tensor, y: torch.Tensor, s: float) -> torch.Tensor:
    """Per-example −Σ_k ỹ_k log softmax(z)_k with ỹ_y = s and ỹ_k = (1−s)/(K−1) otherwise."""
    logp = F.log_softmax(logits, dim=1)
    k = logits.shape[1]
    if s >= 1.0 or k < 2:
        return -logp.gather(1, y[:, None]).squeeze(1)
    other = (1.0 - s) / (k - 1)
    target = torch.full_like(logp, other)
    target.scatter_(1, y[:, None], s)
    return -(target * logp).sum(1)


def keep_probabilities(num_blocks: int, p_first: float, p_last: float) -> List[float]:
    """The linear layer-to-layer schedule p_1 = p_0 ... p_L = p_last (one block: [p_0])."""
    if num_blocks <= 0:
        return []
    if num_blocks == 1:
        return [float(p_first)]
    step = (p_first - p_last) / (num_blocks - 1)
    return [float(p_first - l * step) for l in range(num_blocks)]


@register_method
class FPBetter(Method):
    name = "fp_better"
    Params = FPBetterParams
    paper = "Jia et al., IEEE TIFS 2024 (arXiv 2310.15444); code jiaxiaojunQAQ/FP-Better"
    fidelity = "faithful"
    partial_network = True  # dropped blocks get no gradient: DDP needs find_unused_parameters

    MASK_SEED_SALT = 7_919  # the mask stream differs from the trial's other seeded streams

    def __init__(self, params, threat, num_classes):
        super().__init__(params, threat, num_classes)
        self.p_last = float(self.p.keep_prob_last)
        self.train_adv_acc: List[List[float]] = []  # [epoch, train adversarial accuracy]
        self._adapted_epoch = -1  # last epoch whose start applied the adaptation rule
        self._gen = None
        self._seed = 0
        self._frac_sum = 0.0
        self._frac_n = 0

    # -- masks ---------------------------------------------------------------------------
    def _ensure_generator(self, seed: int = None):
        if seed is not None:
            self._seed = int(seed)
            self._gen = None
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self._seed * 1_000_003 + self.MASK_SEED_SALT)
        return self._gen

    @staticmethod
    def check_model(model):
        if getattr(model, "num_blocks", 0) <= 0:
            raise ValueError(f"fp_better needs a model with skippable residual blocks; {type(model).__name__} has none "
                             "(use resnet_small, resnet18 or preact_resnet18)")

    def keep_probs(self, num_blocks: int) -> List[float]:
        return keep_probabilities(num_blocks, self.p.keep_prob_first, self.p_last)

    def sample_mask(self, num_blocks: int) -> List[bool]:
        """One Bernoulli(p_l) draw per block, from the method's own generator."""
        probs = torch.tensor(self.keep_probs(num_blocks), dtype=torch.float64)
        u = torch.rand(num_blocks, generator=self._ensure_generator(), dtype=torch.float64)
        return (u < probs).tolist()

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, run) -> None:
        self.check_model(run.raw_model)
        # same seed on every rank -> identical masks on every rank
        self._ensure_generator(run.spec.train.seed)

    def on_epoch_start(self, epoch: int, run) -> None:
        self._frac_sum, self._frac_n = 0.0, 0
        if epoch >= 2 and self._adapted_epoch < epoch:
            acc = {int(e): a for e, a in self.train_adv_acc}
            if epoch - 1 in acc and epoch - 2 in acc and acc[epoch - 1] <= acc[epoch - 2]:
                self.p_last = min(self.p_last + self.p.rate, self.p.cap)
        self._adapted_epoch = max(self._adapted_epoch, epoch)
        if self.p.reset_momentum_each_epoch:
            run.optimizer.state.clear()

    def after_backward(self, run) -> None:
        if self.p.dropped_block_update != "official":
            return
        for prm in run.raw_model.parameters():
            if prm.requires_grad and prm.grad is None:
                prm.grad = torch.zeros_like(prm)

    def before_eval(self, run) -> None:
        if self.p.bn_recalibrate:
            self.recalibrate_bn(run)

    def on_epoch_end(self, epoch: int, metrics: Dict[str, float], run) -> Dict[str, float]:
        self.train_adv_acc = [r for r in self.train_adv_acc if int(r[0]) != epoch]
        self.train_adv_acc.append([int(epoch), float(metrics["train_acc"])])
        mean_frac = self._frac_sum / self._frac_n if self._frac_n else float("nan")
        return {"keep_prob_last": self.p_last, "mean_executed_fraction": mean_frac}

    # -- the step ------------------------------------------------------------------------
    def step(self, ctx, x, y):
        self.check_model(ctx.raw_model)
        mask = self.sample_mask(ctx.raw_model.num_blocks)
        frac = ctx.raw_model.executed_fraction(mask, ctx.input_shape)
        self._frac_sum += frac
        self._frac_n += 1
        s = self.p.label_smoothing
        alpha = float(parse_eps_relative(self.p.alpha, self.threat.eps))
        sub = lambda z: ctx.raw_model(z, block_mask=mask)  # noqa: E731  (the sampled subnetwork)
        x_adv = fgsm(sub, x, y, self.threat.eps, alpha=alpha, norm=self.threat.norm, random_init=True,
                     loss_fn=lambda logits, yy: label_smoothed_ce(logits, yy, s).sum(), clip_start=self.p.clip_start)
        logits = ctx.model(x_adv, block_mask=mask)  # the SAME subnetwork for the update
        per = label_smoothed_ce(logits, y, s)
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=2.0 * frac, x_adv=x_adv,
                          per_example_loss=per.detach())

    # -- BN recalibration (our ablation, not in the paper) --------------------------------
    @torch.no_grad()
    def _forward_stats(self, model, x):
        model(x)

    def recalibrate_bn(self, run) -> None:
        """Recompute every BN layer's running statistics as a plain average over
        ``bn_recal_batches`` training batches through the FULL network in train mode.

        The batches are drawn with a generator seeded by (trial seed, epoch), so every DDP rank
        uses the same images; rank 0's buffers are then broadcast. Time and cost are charged
        to the trial (this runs outside the timed training epoch)."""
        model = run.raw_model
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not bns:
            return
        t0 = time.perf_counter()
        train = run.data.train
        bs = int(run.spec.train.batch_size)
        g = torch.Generator().manual_seed(run.spec.train.seed * 1_000_003 + 104_729 + run.epoch)
        n = min(len(train), self.p.bn_recal_batches * bs)
        order = torch.randperm(len(train), generator=g)[:n]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the recalibration batches
        augment = getattr(run.loader, "augment", None)
        eps = float(run.spec.threat.eps)
        alpha = float(parse_eps_relative(self.p.alpha, eps))
        per_example = FORWARD_ONLY
        try:
            with train_mode(model):
                for i in range(0, n, bs):
                    idx = order[i:i + bs].to(train.x.device)
                    x = train.floats(idx).to(run.device)
                    if augment is not None:
                        x = augment(x)
                    if self.p.bn_recal_input == "adversarial":
                        y = train.y[idx].to(run.device)
                        s = self.p.label_smoothing
                        # the attack's forward also feeds the statistics, as it does in training
                        x = fgsm(model, x, y, eps, alpha=alpha, norm=run.spec.threat.norm, random_init=True,
                                 loss_fn=lambda logits, yy: label_smoothed_ce(logits, yy, s).sum(),
                                 clip_start=self.p.clip_start)
                        per_example = 1.0 + FORWARD_ONLY
                    self._forward_stats(model, x)
        finally:
            for m, mom in zip(bns, momenta):
                m.momentum = mom
        _broadcast_buffers(run, bns)
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        # every rank did this work: charge all of it
        run.add_cost(time.perf_counter() - t0, run.cost_units(n * per_example * run.dist.world_size))

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self):
        return {"p_last": self.p_last, "train_adv_acc": [list(r) for r in self.train_adv_acc],
                "adapted_epoch": self._adapted_epoch, "seed": self._seed,
                "generator": self._ensure_generator().get_state()}

    def load_state_dict(self, state):
        if not state:
            return
        self.p_last = float(state["p_last"])
        self.train_adv_acc = [[int(e), float(a)] for e, a in state.get("train_adv_acc", [])]
        self._adapted_epoch = int(state.get("adapted_epoch", -1))
        self._ensure_generator(int(state.get("seed", self._seed)))
        if "generator" in state:
            self._gen.set_state(state["generator"].cpu() if hasattr(state["generator"], "cpu") else state["generator"])


def _broadcast_buffers(run, modules):
    """Make rank 0's BN buffers everyone's (no-op on one process)."""
    if run.dist.world_size <= 1:
        return
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return
    for m in modules:
        for b in m.buffers():
            tdist.broadcast(b, src=0)
