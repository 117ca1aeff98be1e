"""Training: the resolved trial spec, the one training loop, schedules and cost accounting.

``raysweep.train.loop`` and ``raysweep.train.spec`` are torch-only; ``raysweep.train.ray_worker``
is the Ray Train wiring and is imported only where Ray is installed."""

from .loop import LocalReporter, NonFiniteLoss, Reporter, TrialRun, run_trial
from .spec import TrialSpec

__all__ = ["LocalReporter", "NonFiniteLoss", "Reporter", "TrialRun", "TrialSpec", "run_trial"]
