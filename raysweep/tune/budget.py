"""``sweep.budget``: what a user can afford, as training time or cost, and the sweep stops starting trials once
that much is spent. The count is the sweep's own record (``state.json``): every trial's latest report, running
ones included, from every run of the sweep, so a resumed sweep honours what its earlier runs spent."""

from typing import Any, Dict, Optional, Tuple


def budget_of(budget: Optional[Dict[str, float]]) -> Optional[Tuple[str, float]]:
    """(metric, bound) of a validated ``sweep.budget``, or None."""
    if not budget:
        return None
    (metric, bound), = budget.items()
    return metric, float(bound)


def _share(rec: Dict[str, Any], metric: str) -> float:
    """What one trial has spent: a ``repeats`` trial reports the mean of its seeds, and trains each."""
    v = (rec.get("metrics") or {}).get(metric)
    if isinstance(v, (int, float)) and v == v:
        return float(v) * int((rec.get("spec") or {}).get("repeats", 1) or 1)
    return 0.0


def spent(trials: Dict[str, Dict[str, Any]], metric: str) -> float:
    """Training time or cost spent so far, over every seed of every trial."""
    return sum(_share(rec, metric) for rec in trials.values())


class SpentTally:
    """``spent`` kept up to date report by report (``update``), so that asking before each new trial costs O(1)
    instead of a pass over every trial (10,000 passes of 10,000 trials in a large sweep)."""

    def __init__(self, trials: Dict[str, Dict[str, Any]], metric: Optional[str]):
        self.metric = metric
        self._share: Dict[int, float] = {}
        self._total = 0.0
        for rec in (trials.values() if metric else ()):
            self.update(rec)

    def update(self, rec: Dict[str, Any]) -> None:
        if not self.metric:
            return
        share = _share(rec, self.metric)
        self._total += share - self._share.get(rec["trial"], 0.0)
        self._share[rec["trial"]] = share

    def total(self, metric: str) -> float:
        assert metric == self.metric, (metric, self.metric)
        return self._total


def describe(metric: str, bound: float, used: float) -> str:
    unit = " s" if metric == "train_time_s" else ""
    return f"{metric} {used:.1f}{unit} of {bound:g}{unit} spent"
