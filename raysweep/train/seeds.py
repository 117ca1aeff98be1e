"""Mean over the seeds of a ``repeats`` trial, with the spread beside it: one rule for the
per-epoch reports, the final evaluation and ``raysweep evaluate``."""

import math
from typing import Any, Callable, Dict, Iterable, List, Optional


def is_accuracy(key: str) -> bool:
    return key.endswith("_acc")


def seed_stat(values: Iterable[Optional[float]]) -> Dict[str, Any]:
    """Mean, population std and the values of the finite ones among ``values``: one configuration's seeds."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "seeds": []}
    m = sum(vals) / len(vals)
    return {"mean": m, "std": (sum((v - m) ** 2 for v in vals) / len(vals)) ** 0.5, "seeds": vals}


def summarise_seeds(per_seed: List[Dict[str, float]], spread: Callable[[str], bool] = is_accuracy,
                    keys: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """``<k>``: the mean over seeds of every key; for the keys ``spread`` selects, and only with
    more than one seed, also ``<k>_std`` (population std) and ``<k>_seed<i>``."""
    keys = list(per_seed[0]) if keys is None else list(keys)
    n = len(per_seed)
    out = {k: sum(float(p[k]) for p in per_seed) / n for k in keys}  # a NaN seed makes the mean NaN: seen, not hidden
    if n > 1:
        for k in keys:
            if spread(k):
                vals = [float(p[k]) for p in per_seed]
                out[f"{k}_std"] = seed_stat(vals)["std"] if all(map(math.isfinite, vals)) else float("nan")
                for i, p in enumerate(per_seed):
                    out[f"{k}_seed{i}"] = float(p[k])
    return out
