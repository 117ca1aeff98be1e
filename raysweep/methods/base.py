"""The method interface: one adversarial-training method per module, registered by name."""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

import torch
import torch.nn as nn


@dataclass
class Threat:
    eps: float
    norm: str = "linf"


@dataclass
class StepResult:
    loss: torch.Tensor  # scalar to backpropagate into the parameters
    logits: torch.Tensor  # detached logits on the input the loss was trained on (for train accuracy)
    cost: float  # forward+backward passes per example, weighted by the fraction of the network run
    x_adv: Optional[torch.Tensor] = None  # the training perturbation, when the method makes one
    per_example_loss: Optional[torch.Tensor] = None  # detached, for data-pruning selectors


@dataclass
class StepContext:
    """What a method sees of the training run at each step."""

    model: nn.Module  # the trained model, possibly DDP-wrapped: use for the loss that is backpropagated
    raw_model: nn.Module  # the unwrapped module: use for attack passes (no gradient sync needed)
    epoch: int
    num_classes: int
    input_shape: tuple
    example_weights: Optional[torch.Tensor] = None  # per-example weights from a data policy


@dataclass
class TeacherRequest:
    """What teacher a method needs; ``raysweep.train.teacher`` trains or loads it before the
    first epoch and hands it back through ``Method.set_teacher``."""

    source: str = "train"  # "train" (inside the trial) | "checkpoint"
    method: str = "pgd_at"  # source train: the adversarial-training method
    method_params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    epochs: Optional[int] = None  # None: the student's
    lr: Optional[float] = None  # None: the student's
    model: Optional[str] = None  # None: the student's architecture
    width: Optional[int] = None
    checkpoint: Optional[str] = None  # source checkpoint: a file or directory
    guard: bool = True  # validate each teacher epoch; roll back a catastrophic-overfitting collapse
    min_val_robust_acc: Optional[float] = None  # fail the trial if the teacher ends below this


# Passes are counted in units of one forward+backward through the full network per example.
# A forward without backward counts as 1/3 (backward ≈ 2× forward in FLOPs).
FORWARD_ONLY = 1.0 / 3.0


class Method:
    """Base class. Subclasses set ``name``, ``Params`` (a dataclass of paper defaults built
    with ``params.hp``), ``paper`` and ``fidelity``, and implement ``step``."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = None
    paper: ClassVar[str] = ""
    fidelity: ClassVar[str] = "faithful"  # or "reconstruction"

    def __init__(self, params, threat: Threat, num_classes: int):
        self.p = params
        self.threat = threat
        self.num_classes = num_classes

    @staticmethod
    def check_model(model: nn.Module) -> None:
        """Raise ValueError when this method cannot train ``model`` (e.g. it needs skippable blocks). Called by
        the sweep's pre-flight on every model the sweep can pair with the method, before any trial starts."""

    # -- hooks -------------------------------------------------------------------------
    def setup(self, run) -> None:
        """Called once before training with the ``TrialRun`` (masks, schedules)."""

    def teacher_request(self) -> Optional[TeacherRequest]:
        """The teacher this method learns from, if any (trained or loaded by the trial)."""
        return None

    def set_teacher(self, teacher: nn.Module, run) -> None:
        """Receives the frozen teacher (before the first step, or on resume)."""

    def on_epoch_start(self, epoch: int, run) -> None:
        pass

    def before_eval(self, run) -> None:
        """Called after each training epoch, before the validation evaluation (e.g. BN recalibration)."""

    def after_backward(self, run) -> None:
        """Called after the step's loss was backpropagated, before the optimiser step."""

    def on_epoch_end(self, epoch: int, metrics: Dict[str, float], run) -> Dict[str, float]:
        """Return extra metrics to report for this epoch."""
        return {}

    def step(self, ctx: StepContext, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        raise NotImplementedError

    # -- state for checkpoints ----------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass

    def weighted_mean(self, per_example: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Mean of a per-example loss, using data-policy weights when there are any."""
        w = ctx.example_weights
        if w is None:
            return per_example.mean()
        return (per_example * w).sum() / w.sum().clamp_min(1e-12)
