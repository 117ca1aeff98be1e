"""Mean over the seeds of a ``repeats`` trial, with the spread beside it: one rule for the
per-epoch reports, the final evaluation and ``raysweep evaluate``."""

from typing import Callable, Dict, Iterable, List, Optional


def is_accuracy(key: str) -> bool:
    return key.endswith("_acc")


def summarise_seeds(per_seed: List[Dict[str, float]], spread: Callable[[str], bool] = is_accuracy,
                    keys: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """``<k>``: the mean over seeds of every key; for the keys ``spread`` selects, and only with
    more than one seed, also ``<k>_std`` (population std) and ``<k>_seed<i>``."""
    keys = list(per_seed[0]) if keys is None else list(keys)
    n = len(per_seed)
    out = {k: sum(float(p[k]) for p in per_seed) / n for k in keys}
    if n > 1:
        for k in keys:
            if spread(k):
                out[f"{k}_std"] = (sum((float(p[k]) - out[k]) ** 2 for p in per_seed) / n) ** 0.5
                for i, p in enumerate(per_seed):
                    out[f"{k}_seed{i}"] = float(p[k])
    return out
