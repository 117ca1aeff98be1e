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


def spent(trials: Dict[str, Dict[str, Any]], metric: str) -> float:
    """Training time or cost spent so far, over every seed of every trial (a ``repeats`` trial reports the mean of
    its seeds, and trains each)."""
    total = 0.0
    for rec in trials.values():
        v = (rec.get("metrics") or {}).get(metric)
        if isinstance(v, (int, float)) and v == v:
            total += float(v) * int((rec.get("spec") or {}).get("repeats", 1) or 1)
    return total


def describe(metric: str, bound: float, used: float) -> str:
    unit = " s" if metric == "train_time_s" else ""
    return f"{metric} {used:.1f}{unit} of {bound:g}{unit} spent"
