"""Shared model plumbing: input normalisation inside the model, skippable residual blocks,
and the fraction of the network's multiply-accumulates each block accounts for (the unit of
``cost`` when a method runs a subnetwork)."""

import threading
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from .modes import eval_mode


class Normalize(nn.Module):
    """(x - mean) / std with x in [0, 1], so attacks and ε live in pixel space."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class SkippableBlock(nn.Module):
    """A residual block ``out = post(F(h) + S(h))``; when skipped, ``out = post(S(h))``.

    ``S`` is the identity or the block's projection shortcut; ``F`` is never rescaled
    (FP-Better's convention, not stochastic depth's)."""

    def residual(self, h):  # F
        raise NotImplementedError

    def shortcut(self, h):  # S
        raise NotImplementedError

    def post(self, z):
        return z

    def forward(self, h, keep: bool = True):
        s = self.shortcut(h)
        return self.post(self.residual(h) + s if keep else s)


class ClassifierNet(nn.Module):
    """Base for every model: ``forward(x, block_mask=None)`` and ``features(x, block_mask=None)``.

    ``block_mask`` is a sequence of booleans, one per skippable block (None = all kept). It is
    passed explicitly on every call; no model holds mask state between calls.
    """

    feature_dim: int = 0

    def __init__(self, mean, std):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self._block_fractions: Optional[List[float]] = None

    # subclasses provide: stem(x), blocks (ModuleList of SkippableBlock or plain), head_features(h), fc
    blocks: nn.ModuleList

    @property
    def num_blocks(self) -> int:
        return sum(isinstance(b, SkippableBlock) for b in self.blocks)

    def _run_blocks(self, h, block_mask):
        i = 0
        for b in self.blocks:
            if isinstance(b, SkippableBlock):
                keep = True if block_mask is None else bool(block_mask[i])
                h = b(h, keep)
                i += 1
            else:
                h = b(h)
        return h

    def features(self, x, block_mask=None):
        h = self.stem(self.normalize(x))
        h = self._run_blocks(h, block_mask)
        return self.head_features(h)

    def forward(self, x, block_mask=None):
        return self.fc(self.features(x, block_mask))

    def block_fractions(self, input_shape) -> List[float]:
        """Share of the full network's MACs in each skippable block's residual branch."""
        if self._block_fractions is None:
            self._block_fractions = _residual_mac_fractions(self, input_shape)
        return self._block_fractions

    def executed_fraction(self, block_mask, input_shape) -> float:
        if block_mask is None:
            return 1.0
        fr = self.block_fractions(input_shape)
        return 1.0 - sum(f for f, k in zip(fr, block_mask) if not k)


MAC_LAYERS = (nn.Conv2d, nn.Linear)


def layer_macs(mod: nn.Module, out: torch.Tensor) -> int:
    """Multiply-accumulates one call of a convolution or linear layer did (for the whole batch)."""
    if isinstance(mod, nn.Conv2d):
        return out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
    if isinstance(mod, nn.Linear):
        return out.numel() * mod.in_features
    return 0


def model_macs(model: nn.Module, input_shape) -> int:
    """Multiply-accumulates of one forward pass of one example (convolutions and linear layers)."""
    return int(sum(_module_macs(model, input_shape).values()))


_PROBE = threading.local()


def probing() -> bool:
    """True while a one-example forward measures a model's MACs (not work to be counted)."""
    return getattr(_PROBE, "on", False)


def _module_macs(model: nn.Module, input_shape):
    macs = {}

    def hook(mod, inp, out):
        macs[mod] = layer_macs(mod, out)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, MAC_LAYERS)]
    _PROBE.on = True
    try:
        with torch.no_grad(), eval_mode(model):
            model(torch.zeros((1,) + tuple(input_shape), device=next(model.parameters()).device))
    finally:
        _PROBE.on = False
        for h in hs:
            h.remove()
    return macs


def _residual_mac_fractions(model: ClassifierNet, input_shape) -> List[float]:
    macs = _module_macs(model, input_shape)
    total = float(sum(macs.values())) or 1.0
    out = []
    for b in model.blocks:
        if isinstance(b, SkippableBlock):
            shortcut_mods = set(b.shortcut_modules()) if hasattr(b, "shortcut_modules") else set()
            res = sum(v for m, v in macs.items() if any(m is q for q in b.modules()) and m not in shortcut_mods)
            out.append(res / total)
    return out
