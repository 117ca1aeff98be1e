"""Learning-rate schedules as functions of training progress t in [0, 1].

Progress, not step count, so that data pruning (fewer steps per epoch) keeps the same
schedule shape over the same number of epochs.

``cyclic_rungs`` is one triangular cycle per early-stopping rung segment (epochs 0-1, 1-2, 2-4, ...):
the LR is back at 0 at every rung, so a trial measured there has finished a schedule, like a run
that was only ever meant to last that long, and a promoted trial goes on from its weights
instead of starting again. ``cyclic`` ties its single cycle to the trial's total epochs, so at a
rung trials of different lengths sit at different points of their schedules."""

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
    if spec.schedule == "cyclic_rungs":
        return spec.lr * _triangle(*rung_segment(spec.epochs, t * spec.epochs), spec.cyclic_peak)
    raise ValueError(spec.schedule)


def rung_bounds(epochs: int):
    """Epochs at which a ``cyclic_rungs`` cycle ends: 1, 2, 4, ... (doubling, the rungs of early
    stopping with grace period 1 and reduction factor 2), then the trial's last epoch."""
    bounds, b = [], 1
    while b < epochs:
        bounds.append(b)
        b *= 2
    return bounds + [epochs]


def rung_segment(epochs: int, e: float):
    """(start, end, position) of the cycle that epoch-progress ``e`` falls in."""
    start = 0
    for end in rung_bounds(epochs):
        if e < end or end == epochs:
            return start, end, e
        start = end
    return start, epochs, e


def _triangle(start: float, end: float, e: float, peak: float) -> float:
    """One cyclic triangle over [start, end]: 0 -> 1 at ``peak`` of the way -> 0."""
    u = min(max((e - start) / max(1e-12, end - start), 0.0), 1.0)
    if peak > 0 and u <= peak:
        return u / peak
    return max(0.0, (1.0 - u) / max(1e-12, 1.0 - peak))
