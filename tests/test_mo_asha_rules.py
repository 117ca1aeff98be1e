"""mo_asha's promotion rule, as properties on many random rungs: a trial that dominates every trial recorded at its
rung always continues (a published multi-objective ASHA can stop such a trial, by reading an ordering of trials as
their scores), and the order inside a front does not depend on the objectives' units (seconds must not swamp
accuracy)."""

import math

import numpy as np
import pytest

from raysweep.tracking.pareto import nondominated_fronts, rank_keys
from raysweep.tune.mo_asha import promotes

MODES = ["min", "max"]  # (training seconds, robust accuracy), as the default objectives


def _rung(rng, n):
    secs = rng.uniform(5.0, 500.0, n)
    acc = rng.uniform(0.0, 0.9, n)
    pts = {i: [float(s), float(a)] for i, (s, a) in enumerate(zip(secs, acc))}
    for i in rng.choice(n, size=n // 10, replace=False):  # a few trials that reported nothing usable
        pts[int(i)] = [float("nan"), float(pts[int(i)][1])]
    return pts


@pytest.mark.parametrize("rf", [2.0, 3.0, 4.0])
@pytest.mark.parametrize("seed", range(20))
def test_a_trial_dominating_its_rung_always_continues(rf, seed):
    rng = np.random.default_rng(seed)
    recorded = _rung(rng, int(rng.integers(1, 60)))
    finite = [p for p in recorded.values() if all(math.isfinite(v) for v in p)]
    best = [min((p[0] for p in finite), default=10.0) * 0.9, max((p[1] for p in finite), default=0.5) + 0.01]
    assert promotes(recorded, 10_000, best, MODES, rf)


@pytest.mark.parametrize("seed", range(20))
def test_a_trial_dominated_by_the_whole_rung_stops_once_the_rung_is_full(seed):
    rng = np.random.default_rng(100 + seed)
    recorded = {i: [float(s), float(a)] for i, (s, a) in
                enumerate(zip(rng.uniform(5, 50, 8), rng.uniform(0.5, 0.9, 8)))}
    worst = [60.0, 0.4]  # slower and less robust than every recorded trial
    assert not promotes(recorded, 10_000, worst, MODES, 2.0)


@pytest.mark.parametrize("seed", range(20))
def test_order_inside_a_front_does_not_depend_on_units(seed):
    """Crowding distance normalises each objective by its range on the front: the same trials measured in
    milliseconds instead of seconds (or accuracy in percent) rank the same."""
    rng = np.random.default_rng(200 + seed)
    acc = np.sort(rng.uniform(0.1, 0.9, 12))
    secs = np.sort(rng.uniform(5, 500, 12))  # more robust costs more: one front
    pts = np.stack([secs, acc], axis=1)
    assert len(nondominated_fronts(pts, MODES)) == 1
    scaled = np.stack([secs * 1000.0, acc * 100.0], axis=1)
    order = sorted(range(12), key=lambda i: rank_keys(pts, MODES)[i])
    assert order == sorted(range(12), key=lambda i: rank_keys(scaled, MODES)[i])
    # and neither objective decides alone: the two ends of the front rank first
    ends = {int(np.argmin(secs)), int(np.argmax(acc))}
    assert set(order[:2]) == ends
