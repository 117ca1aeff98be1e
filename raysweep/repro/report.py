"""The verdicts and rows as Markdown tables and, per dataset, one figure of every configuration (cost against
AutoAttack accuracy, with the AutoAttack front)."""

import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from .judge import pts as _pts
from .rules import DATASETS


def _ms(a: Dict[str, Any], pct: bool = True, digits: int = 1) -> str:
    if a.get("mean") is None:
        return "–"
    f = 100.0 if pct else 1.0
    return f"{a['mean'] * f:.{digits}f} ± {a['std'] * f:.{digits}f}"


def markdown(rows: List[Dict[str, Any]], claims: List[Dict[str, Any]], baselines: List[Dict[str, Any]],
             sweeps: List[Dict[str, Any]] = ()) -> str:
    out = []
    for ds, name in DATASETS.items():
        cl = [c for c in claims if c["dataset"] == ds]
        if not cl and not any(r["dataset"] == ds for r in rows):
            continue
        eps = next((r["eps"] for r in rows if r["dataset"] == ds), None)
        out.append(f"#### {name}, ε = {eps} (L∞): verdicts\n")
        if cl:
            out.append("| paper | claim | baseline | verdict | why (AutoAttack on the first 500 test images, means over 3 seeds) |")
            out.append("|---|---|---|---|---|")
        else:
            out.append(f"No claim reproduced on {name} yet; its baselines ran first.")
        for c in cl:
            out.append(f"| {c['paper']} | {c['claim']} | {c['baseline']} | **{c['verdict'] or 'not run'}**{' (provisional: tuning not run)' if c.get('provisional') else ''} | {c['why']} |")
        bl = [b for b in baselines if b["dataset"] == ds]
        if bl:
            out.append("")
            for b in bl:
                metric = {"aa": "AutoAttack"}.get(b["metric"], b["metric"])
                src = f"; {b['source']}" if b.get("source") else ""
                out.append(f"Baseline check: {b['label']}: test {metric} {_pts(b['measured'])}% "
                           f"(target ≥ {_pts(b['target'])}%{src}): **{'reached' if b['reached'] else 'NOT reached'}**.")
        out.append(f"\n#### {name}: every configuration (mean ± std over seeds; accuracy in %, test set)\n")
        out.append("| sweep | configuration | model | epochs | clean | PGD-20 | AutoAttack | train time (s) | cost | flags | MLflow run |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        split = {e for e in {r["experiment"] for r in rows}
                 if len({r["sweep"] for r in rows if r["experiment"] == e}) > 1}
        for r in rows:
            if r["dataset"] != ds:
                continue
            flags = ", ".join((["CO"] if r["catastrophic_overfit"] else []) + r["masking"]) or "–"
            # an experiment whose rows come from two sweeps (a configuration added later) names each row's sweep
            where = r["experiment"].replace("reproduce-", "") + (f" ({r['sweep']})" if r["experiment"] in split else "")
            out.append(f"| {where} | {r['label']} | {r['model']} | {r['epochs']} | "
                       f"{_ms(r['clean'])} | {_ms(r['pgd20'])} | {_ms(r['aa'])} | {_ms(r['train_time_s'], False, 0)} | "
                       f"{_ms(r['cost'], False, 1)} | {flags} | `{(r['run_id'] or '')[:8]}` |")
        out.append("")
    if sweeps:
        out.append("#### What each reproduction took (2-core CPU, 2 trials at a time, final evaluation included)\n")
        out.append("| sweep | configurations × seeds | first start to results (a resumed sweep's pause included) "
                   "| of which training |")
        out.append("|---|---|---|---|")
        for sw in sweeps:
            if not sw["configurations"]:
                continue
            wall = "–" if sw["wall_s"] is None else f"{sw['wall_s'] / 60:.0f} min"
            tr = "–" if not sw["trials_wall_s"] else f"{sw['trials_wall_s'] / 60:.0f} min"
            name = sw["experiment"].replace("reproduce-", "")
            if sum(s["experiment"] == sw["experiment"] for s in sweeps) > 1:
                name += f" ({sw['sweep']})"
            out.append(f"| {name} | {sw['configurations']} × 3 | {wall} | {tr} |")
        out.append("")
    return "\n".join(out)


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


def update_readme(md: str, readme: Path) -> bool:
    text = readme.read_text()
    start, end = "<!-- claims:start -->", "<!-- claims:end -->"
    if start not in text or end not in text:
        return False
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: f"{start}\n{md}\n{end}", text, flags=re.S)
    readme.write_text(new)
    return True
