"""Each reproduction row's per-epoch validation curve, per seed, as ``bench/results/curves/<experiment>.csv``.

A sweep's state keeps every trial's per-epoch reports (``history``, written by ``raysweep.tune.callbacks``), but the
state stays on the machine that ran the sweep; claims.json keeps only the last epoch. Statements about how a
configuration's robustness moved during training need the curves committed beside the rows.
"""

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Optional

from .rows import reported

FIELDS = ["sweep", "trial", "label", "run_id", "seed", "epoch", "val_robust_acc", "val_clean_acc", "train_time_s", "cost"]
METRICS = FIELDS[-4:]  # the keys the training loop reports per seed (RepeatedTrial.SPREAD)


def _num(v: Any) -> str:
    return "" if v is None else f"{float(v):.6g}"


def curve_lines(state: Dict[str, Any]) -> List[Dict[str, str]]:
    """One line per reported trial, seed and epoch. ``seed`` is the seed's index in the trial (its position in
    claims.json's per-seed lists); ``mean`` where a multi-seed trial's history kept only the seeds' mean."""
    sweep = Path(state.get("_sweep_dir", "")).name
    out = []
    for rec in reported(state):
        n = int(rec.get("spec", {}).get("repeats", 1))
        for h in rec.get("history") or []:
            per_seed = n > 1 and all(f"val_robust_acc_seed{i}" in h for i in range(n))
            seeds = [(str(i), f"_seed{i}") for i in range(n)] if per_seed else [("0" if n == 1 else "mean", "")]
            for seed, suffix in seeds:
                out.append({"sweep": sweep, "trial": str(rec["trial"]), "label": rec.get("label") or f"trial {rec['trial']}",
                            "run_id": rec.get("run_id") or "", "seed": seed, "epoch": str(int(h.get("epoch", 0))),
                            **{k: _num(h.get(k + suffix)) for k in METRICS}})
    return out


def _render(lines: List[Dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(lines)
    return buf.getvalue()


def write_curves(states: Dict[str, Optional[Dict[str, Any]]], out_dir: Path) -> List[Path]:
    """One CSV per experiment with a state here. A label this state reports replaces that label's lines in an
    existing file; the others stay (they come from a sweep of the same experiment run on another machine, as
    claims.json keeps their rows)."""
    written = []
    for exp, st in sorted(states.items()):
        if st is None:
            continue
        new = curve_lines(st)
        if not new:
            continue
        path = Path(out_dir) / f"{exp}.csv"
        labels = {ln["label"] for ln in new}
        kept = []
        if path.is_file():
            kept = [ln for ln in csv.DictReader(io.StringIO(path.read_text())) if ln.get("label") not in labels]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_render([{k: ln.get(k, "") for k in FIELDS} for ln in kept] + new))
        written.append(path)
    return written
