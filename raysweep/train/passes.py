"""Counting the network passes a piece of work really did, in raysweep's cost unit.

The unit is one forward+backward pass of the trial's full model per example; a forward alone
counts 1/3 (backward ≈ 2× forward in FLOPs). Methods declare their per-step cost; work done
*outside* a training step (a data-pruning scoring pass, a teacher's forward passes inside
someone else's step) is measured instead: every convolution and linear layer that runs adds
its multiply-accumulates (MACs) once for the forward and twice more when a gradient flows back
through its output, whatever model it belongs to. Dividing by the trained model's MACs per
example gives passes·examples, so a skipped residual block, a cheaper teacher or a second
forward are all counted as what they cost."""

import contextlib
from typing import Optional

import torch
import torch.nn as nn

from ..models.base import MAC_LAYERS, layer_macs, model_macs, probing


class PassCount:
    """Running totals of forward and backward MACs (whole batches)."""

    def __init__(self, macs_per_example: float):
        self.macs_per_example = float(macs_per_example) or 1.0
        self.forward_macs = 0.0
        self.backward_macs = 0.0

    @property
    def units(self) -> float:
        """passes·examples of the reference model: forwards at 1/3, backwards at 2/3."""
        return (self.forward_macs + 2.0 * self.backward_macs) / (3.0 * self.macs_per_example)


@contextlib.contextmanager
def count_passes(reference: nn.Module, input_shape, macs_per_example: Optional[float] = None):
    """Count every conv/linear call made inside the block (all modules of the process).

    ``reference``: the model whose full pass is the unit (the trained model)."""
    count = PassCount(macs_per_example if macs_per_example is not None else model_macs(reference, input_shape))

    def on_forward(mod, inp, out):
        if not isinstance(mod, MAC_LAYERS) or not isinstance(out, torch.Tensor) or probing():
            return
        macs = float(layer_macs(mod, out))
        count.forward_macs += macs
        if out.requires_grad:
            def on_grad(grad, macs=macs):
                count.backward_macs += macs
            out.register_hook(on_grad)

    handle = torch.nn.modules.module.register_module_forward_hook(on_forward)
    try:
        yield count
    finally:
        handle.remove()
