"""The Pareto front of finished trials, computed here (Ray Tune has no Pareto API), and its plot."""

from typing import Dict, List, Sequence

import numpy as np

UNITS = {
    "train_time_s": "training time (s, training steps only)",
    "cost": "training cost (clean-epoch equivalents)",
    "val_robust_acc": "validation robust accuracy (PGD)",
    "val_clean_acc": "validation clean accuracy",
    "test_pgd20_acc": "test robust accuracy (PGD-20)",
}


def pareto_mask(points: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """True for non-dominated rows. ``points`` is n x k; ``modes`` 'min'/'max' per column.
    Rows with a NaN are never on the front. Exact duplicates are all kept."""
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[0] == 0:
        return np.zeros(len(pts), dtype=bool)
    sign = np.array([1.0 if m == "min" else -1.0 for m in modes])
    p = pts * sign  # everything to minimise
    valid = ~np.isnan(p).any(axis=1)
    front = IncrementalFront(["min"] * p.shape[1])
    for row in p[valid]:
        front.add(row)
    # a dominated row is dominated by some front member (dominance is transitive): testing every row
    # against the front alone costs n x front, not n x n (the end of a 10,000-trial sweep)
    f = np.array(front.points(), dtype=float).reshape(-1, p.shape[1])
    mask = np.zeros(len(p), dtype=bool)
    for i in np.flatnonzero(valid):
        mask[i] = not np.any(np.all(f <= p[i], axis=1) & np.any(f < p[i], axis=1))
    return mask


class IncrementalFront:
    """The non-dominated points among those added so far, kept as they arrive: O(front) per point
    rather than a recomputation over every point. Points with a NaN never enter; duplicates all do."""

    def __init__(self, modes: Sequence[str]):
        self._sign = tuple(1.0 if m == "min" else -1.0 for m in modes)
        self._pts: List[tuple] = []  # in the to-minimise space

    def add(self, point) -> bool:
        """Adds ``point`` (in the objectives' own units); True when it is on the front now."""
        p = tuple(float(v) * s for v, s in zip(point, self._sign))
        if any(v != v for v in p):
            return False
        if any(q != p and all(a <= b for a, b in zip(q, p)) for q in self._pts):
            return False
        self._pts = [q for q in self._pts if q == p or not all(a <= b for a, b in zip(p, q))]
        self._pts.append(p)
        return True

    def __len__(self) -> int:
        return len(self._pts)

    def points(self) -> List[tuple]:
        """The front, in the objectives' own units, in the order its members arrived."""
        return [tuple(v * s for v, s in zip(q, self._sign)) for q in self._pts]


def _to_min(points, modes: Sequence[str]) -> np.ndarray:
    pts = np.asarray(points, dtype=float).reshape(len(points), len(modes))
    return pts * np.array([1.0 if m == "min" else -1.0 for m in modes])


def nondominated_fronts(points, modes: Sequence[str]) -> List[List[int]]:
    """Non-dominated sorting: row indices grouped into fronts, best front first. Rows with a NaN
    come last, as one front of their own (worse than anything measured)."""
    p = _to_min(points, modes)
    valid = ~np.isnan(p).any(axis=1)
    left = [i for i in range(len(p)) if valid[i]]
    fronts: List[List[int]] = []
    while left:
        sub = p[left]
        front = [i for i, row in zip(left, sub)
                 if not np.any(np.all(sub <= row, axis=1) & np.any(sub < row, axis=1))]
        fronts.append(front)
        left = [i for i in left if i not in front]
    bad = [i for i in range(len(p)) if not valid[i]]
    return fronts + ([bad] if bad else [])


def crowding_distance(points, modes: Sequence[str]) -> np.ndarray:
    """NSGA-II's crowding distance of each row within its set: the sum over objectives of the
    normalised gap between its two neighbours; the extremes of every objective get infinity."""
    p = _to_min(points, modes)
    n, k = p.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(p[:, j], kind="stable")
        lo, hi = p[order[0], j], p[order[-1], j]
        dist[order[0]] = dist[order[-1]] = np.inf
        if hi > lo:
            dist[order[1:-1]] += (p[order[2:], j] - p[order[:-2], j]) / (hi - lo)
    return dist


def rank_keys(points, modes: Sequence[str]) -> List[tuple]:
    """A sort key per row, smaller is better: (non-dominated front, minus crowding distance
    inside that front). Spread-out points come first inside a front, so both of its ends survive;
    equal keys are a genuine tie."""
    pts = np.asarray(points, dtype=float).reshape(len(points), len(modes))
    out: List[tuple] = [()] * len(pts)
    for f, front in enumerate(nondominated_fronts(pts, modes)):
        cd = crowding_distance(pts[front], modes) if not np.isnan(pts[front]).any() else np.zeros(len(front))
        for i, d in zip(front, cd):
            out[i] = (f, -float(d))
    return out


def hypervolume_2d(points, modes: Sequence[str], ref: Sequence[float]) -> float:
    """Area dominated by the points and bounded by the reference point ``ref`` (in the
    objectives' own units and directions); points not better than ``ref`` in both add nothing."""
    p = _to_min(points, modes)
    r = _to_min([ref], modes)[0]
    p = p[~np.isnan(p).any(axis=1)]
    p = p[np.all(p < r, axis=1)]
    if len(p) == 0:
        return 0.0
    p = p[np.lexsort((p[:, 1], p[:, 0]))]
    area, best_y = 0.0, r[1]
    for x, y in p:
        if y < best_y:
            area += (r[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def front_rows(rows: List[Dict], objectives: List[Dict]) -> List[Dict]:
    """Mark ``pareto_optimal`` on each row (dicts with the objective metrics) and return them
    sorted by the first objective."""
    metrics = [o["metric"] for o in objectives]
    modes = [o["mode"] for o in objectives]
    pts = np.array([[r.get(m, np.nan) for m in metrics] for r in rows], dtype=float).reshape(len(rows), len(metrics))
    mask = pareto_mask(pts, modes)
    for r, on in zip(rows, mask):
        r["pareto_optimal"] = bool(on)
    return sorted(rows, key=lambda r: (r.get(metrics[0], np.inf) if modes[0] == "min" else -r.get(metrics[0], -np.inf)))


def plot_front(rows: List[Dict], x: str, y: str, path, title: str = "", x_mode: str = "min", y_mode: str = "max",
               labels: Dict[str, str] = None):
    """Scatter of every finished trial, the front highlighted and joined as a staircase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    methods = sorted({r.get("method", "?") for r in rows})
    markers = "osD^vP*Xh<>"
    for i, m in enumerate(methods):
        pts = [(r[x], r[y]) for r in rows if r.get("method") == m and _finite(r.get(x)) and _finite(r.get(y))]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, marker=markers[i % len(markers)], s=36, alpha=0.55, label=m)
    front = sorted([(r[x], r[y], r) for r in rows if r.get("pareto_optimal") and _finite(r.get(x)) and _finite(r.get(y))],
                   key=lambda t: t[0])
    if front:
        fx, fy = [f[0] for f in front], [f[1] for f in front]
        ax.step(fx, fy, where="post" if y_mode == "max" else "pre", color="crimson", lw=1.5, alpha=0.8)
        ax.scatter(fx, fy, s=110, facecolors="none", edgecolors="crimson", linewidths=1.8, label="Pareto front")
        for fxi, fyi, r in front:
            ax.annotate(str(r.get("trial", "")), (fxi, fyi), textcoords="offset points", xytext=(5, 4), fontsize=7)
    names = {**UNITS, **(labels or {})}
    ax.set_xlabel(names.get(x, x))
    ax.set_ylabel(names.get(y, y))
    ax.set_title(title or f"{y} vs {x}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _finite(v):
    try:
        return v is not None and np.isfinite(float(v))
    except (TypeError, ValueError):
        return False
