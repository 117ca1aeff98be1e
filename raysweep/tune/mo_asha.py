"""Multi-objective ASHA: asynchronous successive halving that promotes on the sweep's own
objectives instead of one scalar proxy.

Why: ASHA compares the trials at a rung (equal epochs) on robust accuracy alone, so in a
cross-method sweep it stops the cheap single-step trials first, the very points a
cost/robustness front is for. Here the trials at a rung are ranked by non-dominated sorting on
every objective as measured at that rung (training time or cost so far, robust accuracy so
far), inside a front by crowding distance (NSGA-II's: both ends of a front are kept first).
As in ASHA (Li et al. 2020; Ray's ``AsyncHyperBandScheduler``), a trial reaching a rung
continues when it ranks among the best ``ceil(n / reduction_factor)`` of the n trials recorded
there (itself included; a tie at the cut continues), so the first trial at a rung always
continues. Syne Tune's MOASHA (outside Ray) also sorts by non-dominance but orders a front with
an epsilon-net (Salinas et al. 2021) instead of crowding distance.

The rungs are keyed by Optuna trial number and can be rebuilt from the sweep's state.json
histories, so a resumed sweep ranks new trials against everything that reached a rung before
the driver stopped.
"""

import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ..tracking.pareto import rank_keys


def rung_levels(grace_period: int, reduction_factor: float, max_t: int) -> List[int]:
    """Epochs at which trials are compared: grace, grace*rf, ... below max_t (as ASHA)."""
    levels, k = [], 0
    while True:
        m = int(round(grace_period * reduction_factor ** k))
        if m >= max_t:
            return levels
        if not levels or m > levels[-1]:
            levels.append(m)
        k += 1


def promotes(recorded: Dict[int, Sequence[float]], key: int, values: Sequence[float], modes: Sequence[str],
             reduction_factor: float) -> bool:
    """Whether the trial ``key`` with ``values`` goes on from a rung where ``recorded`` (other
    trials' values) are already: it must rank no worse than the ``ceil(n / rf)``-th best of the
    n points, itself included (a tie at the cut goes on, as ASHA's ``>=`` cutoff). Non-finite
    values rank behind every measured point."""
    pts = [list(v) for k, v in recorded.items() if k != key] + [list(values)]
    pts = [[v if v is not None and math.isfinite(v) else float("nan") for v in p] for p in pts]
    ranks = rank_keys(pts, modes)
    keep = max(1, math.ceil(len(pts) / reduction_factor))
    return ranks[-1] <= sorted(ranks)[keep - 1]


class MultiObjectiveASHA(FIFOScheduler):
    """ASHA's rungs and asynchronous promotion, ranked by Pareto dominance (see the module)."""

    def __init__(self, objectives: Sequence[Tuple[str, str]], *, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 2.0, time_attr: str = "epoch",
                 history: Optional[Dict[int, Iterable[Dict[str, float]]]] = None):
        super().__init__()
        self.metrics = [m for m, _ in objectives]
        self.modes = [mode for _, mode in objectives]
        self.time_attr = time_attr
        self.max_t = int(max_t)
        self.rf = float(reduction_factor)
        self.levels = rung_levels(int(grace_period), self.rf, self.max_t)
        self.rungs: Dict[int, Dict[int, List[float]]] = {m: {} for m in self.levels}
        for key, reports in (history or {}).items():  # a resumed sweep: what reached each rung before
            for rep in reports:
                t = rep.get(self.time_attr)
                if t is not None and int(t) in self.rungs:
                    self.rungs[int(t)][int(key)] = self._values(rep)
        self.decisions: List[Tuple[int, int, bool]] = []  # (rung, trial, promoted), for the sweep's log

    def _values(self, result: Dict) -> List[float]:
        out = []
        for m in self.metrics:
            v = result.get(m)
            out.append(float(v) if isinstance(v, (int, float)) else float("nan"))
        return out

    def on_trial_result(self, tune_controller, trial, result: Dict) -> str:
        t = result.get(self.time_attr)
        if t is None or int(t) >= self.max_t:
            return TrialScheduler.CONTINUE
        key = int(trial.config.get("optuna_trial", -1))
        for level in reversed(self.levels):  # the highest rung the trial has reached decides
            if int(t) < level:
                continue
            recorded = self.rungs[level]
            if key in recorded:  # already judged here (a restarted trial reporting again)
                return TrialScheduler.CONTINUE
            values = self._values(result)
            go_on = promotes(recorded, key, values, self.modes, self.rf)
            recorded[key] = values
            self.decisions.append((level, key, go_on))
            return TrialScheduler.CONTINUE if go_on else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return "MultiObjectiveASHA: " + ", ".join(f"rung {m}: {len(r)} trials" for m, r in self.rungs.items())
