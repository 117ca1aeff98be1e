"""Learning-rate schedules as functions of training progress t in [0, 1].

Progress, not step count, so that data pruning (fewer steps per epoch) keeps the same
schedule shape over the same number of epochs."""

import math

from .spec import TrainSpec


def lr_at(spec: TrainSpec, t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    if spec.schedule == "constant":
        return spec.lr
    if spec.schedule == "cyclic":  # triangular: 0 -> lr at cyclic_peak -> 0 (Wong et al.)
        p = spec.cyclic_peak
        if p > 0 and t <= p:
            return spec.lr * t / p
        return spec.lr * max(0.0, (1.0 - t) / max(1e-12, 1.0 - p))
    if spec.schedule == "multistep":
        return spec.lr * spec.gamma ** sum(t >= m for m in spec.milestones)
    if spec.schedule == "cosine":
        return spec.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(spec.schedule)
