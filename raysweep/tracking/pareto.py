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
    mask = valid.copy()
    for i in np.flatnonzero(valid):
        others = p[valid]
        dominated = np.any(np.all(others <= p[i], axis=1) & np.any(others < p[i], axis=1))
        mask[i] = not dominated
    return mask


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
