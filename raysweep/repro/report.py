"""Per dataset, one figure of every configuration: cost against AutoAttack accuracy, with the AutoAttack front (the
tables are ``pages``')."""

from pathlib import Path
from typing import Any, Dict, List, Optional

from .rules import DATASETS


def plot(rows: List[Dict[str, Any]], dataset: str, path: Path) -> Optional[Path]:
    pts = [r for r in rows if r["dataset"] == dataset and r["aa"]["mean"] is not None]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..tracking.pareto import pareto_mask

    # x is the cost (gradient passes), not seconds: the rows of one figure come from sweeps run on different
    # machines (per-core speed differs ~2x between them), and only side-by-side time ratios are comparable.
    # A pass of resnet_tiny is not a pass of small_cnn, so the two models get different markers.
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    colors, markers = {}, {}
    cmap = plt.get_cmap("tab10")
    for r in pts:
        key = r["method"]
        colors.setdefault(key, cmap(len(colors) % 10))
        mk = markers.setdefault(r["model"], "os^Dv"[len(markers) % 5])
        x, y = r["cost"]["mean"], r["aa"]["mean"]
        ax.errorbar(x, y, yerr=r["aa"]["std"], fmt=mk, color=colors[key], ms=6, capsize=2)
        if r["pgd20"]["mean"] is not None:
            ax.plot([x, x], [y, r["pgd20"]["mean"]], color=colors[key], lw=0.8, alpha=0.5)
            ax.plot(x, r["pgd20"]["mean"], marker="_", color=colors[key], ms=10)
    mask = pareto_mask([[r["cost"]["mean"], r["aa"]["mean"]] for r in pts], ["min", "max"])
    front = sorted((r for r, m in zip(pts, mask) if m), key=lambda r: r["cost"]["mean"])
    ax.step([r["cost"]["mean"] for r in front], [r["aa"]["mean"] for r in front], where="post",
            color="black", lw=1.2, alpha=0.6, label="AutoAttack front")
    for m, c in colors.items():
        ax.plot([], [], "o", color=c, label=m)
    for model, mk in markers.items():
        ax.plot([], [], mk, color="black", mfc="none", label=f"model: {model}")
    ax.set_xscale("log")
    xs = [r["cost"]["mean"] for r in pts]
    ax.set_xlim(min(xs) / 1.2, max(xs) * 2.4)  # room on the right for the costliest rows' labels
    ax.set_xlabel("training cost per seed (passes of its own model, in clean epochs over the training set; log scale)")
    ax.set_ylabel("AutoAttack accuracy (dot; the dash above is PGD-20)")
    eps = pts[0]["eps"]
    ax.set_title(f"{DATASETS[dataset]}, ε = {eps}: every reproduction configuration (mean ± std over 3 seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    _place_labels(fig, ax, [(r["label"], r["cost"]["mean"], r["aa"]["mean"]) for r in pts])
    fig.savefig(path)
    plt.close(fig)
    return path


def _place_labels(fig, ax, items, size=6.5):
    """Labels beside their points, each moved down (then up) in steps of a line until its box overlaps no earlier
    one: the MNIST configurations crowd around 300 s and 500 s, where fixed offsets printed labels over each other."""
    fig.canvas.draw()  # fixes the limits, so data -> pixel is final
    line = size * fig.dpi / 72 * 1.15
    placed = []
    for label, x, y in sorted(items, key=lambda t: (-t[2], t[1])):
        px, py = ax.transData.transform((x, y))
        w = 0.52 * line * len(label)
        for k in [0] + [d for i in range(1, 12) for d in (-i, i)]:
            box = (px + 6, px + 6 + w, py - 10 - k * line, py - 10 - k * line + line)
            if not any(box[0] < b[1] and b[0] < box[1] and box[2] < b[3] and b[2] < box[3] for b in placed):
                break
        placed.append(box)
        dy = (box[2] - py) * 72 / fig.dpi
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6 * 72 / fig.dpi, dy), fontsize=size,
                    arrowprops=dict(arrowstyle="-", lw=0.4, alpha=0.5) if k else None)
