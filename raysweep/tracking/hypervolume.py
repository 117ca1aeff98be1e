"""How a sweep's search is going: the hypervolume of the front after every completed trial.

The reference point is fixed once per sweep (kept in state.json, logged as the parent run's
``hypervolume_ref`` param) so the curve only rises when the front improves: the YAML's
``sweep.hypervolume_ref`` when given, else derived from the first finished trial: an accuracy
to maximise gets 0, a cost to minimise ten times that trial's value (room for methods up to
~10x dearer; a trial beyond the reference adds nothing). Declare it to compare sweeps.
Two objectives only: with more, nothing is computed and the sweep says so once."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from ..sweep_state import ENDED
from .pareto import IncrementalFront, hypervolume_2d

DERIVED_FACTOR = 10.0


def derive_reference(objectives: Sequence[Dict[str, str]], first: Dict[str, float]) -> Dict[str, float]:
    ref = {}
    for o in objectives:
        v = float(first[o["metric"]])
        if o["mode"] == "max":
            ref[o["metric"]] = 0.0 if o["metric"].endswith("_acc") else v - DERIVED_FACTOR * abs(v) - 1.0
        else:
            ref[o["metric"]] = DERIVED_FACTOR * v if v > 0 else v + DERIVED_FACTOR
    return ref


def front_eligible(rec: Dict[str, Any], objectives, include_flagged: bool, excluded: Optional[Callable] = None) -> bool:
    """Whether a trial can be on the front: finished, measured, not collapsed (unless the sweep
    lets collapses on), not outside the YAML's constraints."""
    m = rec.get("metrics", {})
    if rec.get("status") != "FINISHED" or any(not isinstance(m.get(o["metric"]), (int, float)) for o in objectives):
        return False
    if excluded is not None and excluded(m):
        return False
    return include_flagged or not rec.get("catastrophic_overfit")


class HypervolumeTracker:
    """Appends one point per completed trial to ``state.data['hypervolume']``:
    ``{"ref": {metric: value}, "curve": [[completed, cumulative_train_time_s, hv], ...],
    "done": [trial numbers in completion order], "logged": points already in MLflow}``.

    The front of the ended trials and their training time are kept in memory (rebuilt once from the
    state), so a completion costs O(front), not a recomputation over every trial: that was 16% of
    a 1,000-trial sweep's driver. A trial is judged (eligible, its point) when it ends; nothing
    changes an ended trial's record later in a sweep."""

    def __init__(self, state, objectives: Sequence[Dict[str, str]], declared: Optional[Dict[str, float]] = None,
                 include_flagged: bool = False, excluded: Optional[Callable] = None):
        self.state = state
        self.objectives = list(objectives)
        self.include_flagged = include_flagged
        self.excluded = excluded
        self._front = IncrementalFront([o["mode"] for o in self.objectives])
        self._seen: Set[int] = set()
        self._count, self._spent = 0, 0.0
        fresh = "hypervolume" not in state.data
        self.data = state.data.setdefault("hypervolume", {"ref": None, "curve": [], "done": [], "logged": 0})
        declare = bool(declared and not self.data["ref"])
        if declare:
            self.data["ref"] = {k: float(v) for k, v in declared.items()}
        if self.enabled and not fresh:
            for n in self.data["done"]:
                self._seen.add(n)
                self._take(state.trials.get(str(n)))
        # a sweep begun by a raysweep without this record (fresh), or a driver killed between a trial's
        # end and its point: its ended trials, in trial order
        missed = [r for r in state.trials.values() if r.get("status") in ENDED and r["trial"] not in self._seen]
        for rec in sorted(missed, key=lambda r: r["trial"]):
            self.on_complete(rec, save=False)
        if fresh or declare or missed:
            state.save(keys=["hypervolume"])

    @property
    def enabled(self) -> bool:
        return len(self.objectives) == 2

    def _eligible(self, rec: Dict[str, Any]) -> bool:
        return front_eligible(rec, self.objectives, self.include_flagged, self.excluded)

    def _take(self, rec: Optional[Dict[str, Any]]) -> None:
        if rec is None:  # a number without a record adds nothing, as before
            return
        self._count += 1
        self._spent += float(rec.get("metrics", {}).get("train_time_s", 0.0) or 0.0)
        if self._eligible(rec):
            self._front.add([rec["metrics"][o["metric"]] for o in self.objectives])

    def front_size(self) -> int:
        """How many ended trials are on the front (the progress lines)."""
        return len(self._front)

    def on_complete(self, rec: Dict[str, Any], save: bool = True) -> Optional[List[float]]:
        """Record trial ``rec`` (just FINISHED or FAILED); returns the new curve point."""
        if rec["trial"] in self._seen:
            return None
        self._seen.add(rec["trial"])
        self._take(self.state.trials.get(str(rec["trial"])))
        if not self.enabled:
            return None  # the front is still kept, for the progress lines
        self.data["done"].append(rec["trial"])
        ref_was = self.data["ref"]
        if ref_was is None and self._eligible(rec):
            self.data["ref"] = derive_reference(self.objectives, rec["metrics"])
        point = [self._count, self._spent, self.value()]
        self.data["curve"].append(point)
        if save:
            self.state.save(keys=["hypervolume.ref"] if ref_was is None else (),
                            extended={"hypervolume.done": [rec["trial"]], "hypervolume.curve": [point]})
        return point

    def value(self, recs: Optional[List[Dict[str, Any]]] = None) -> float:
        """The hypervolume of ``recs`` (all eligible), or of the ended trials' front."""
        if not self.data["ref"]:
            return 0.0
        metrics = [o["metric"] for o in self.objectives]
        modes = [o["mode"] for o in self.objectives]
        pts = self._front.points() if recs is None else [[r["metrics"][m] for m in metrics] for r in recs]
        if not pts:
            return 0.0
        return hypervolume_2d(pts, modes, [self.data["ref"][m] for m in metrics])  # dominated points add no area

    def ref_param(self) -> str:
        return format_ref(self.data.get("ref"))


def format_ref(ref: Optional[Dict[str, float]]) -> str:
    """The reference point as logged (parent param ``hypervolume_ref``) and printed."""
    return ",".join(f"{k}={v:g}" for k, v in (ref or {}).items())


def plot_curve(curve: List[List[float]], path, title: str = "", ref: str = ""):
    """Hypervolume against completed trials and against cumulative training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [c[0] for c in curve]
    t = [c[1] for c in curve]
    hv = [c[2] for c in curve]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120, sharey=True)
    axes[0].step(n, hv, where="post", marker="o", ms=3)
    axes[0].set_xlabel("completed trials")
    axes[0].set_ylabel("front hypervolume" + (f"\n(reference {ref})" if ref else ""))
    axes[1].step(t, hv, where="post", marker="o", ms=3, color="darkorange")
    axes[1].set_xlabel("cumulative training time of completed trials (s)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "hypervolume of the front")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
