"""The reproduction sweeps read back as rows: one per configuration, its seeds' test accuracies, training time and
cost (mean, std and the seeds), the flags its sweep raised; the rows of sweeps not on this machine come from the
committed results."""

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..evaluation.suite import DEFAULT_PGD_AA_GAP, masking_flags
from ..sweep_state import latest_state
from ..train.seeds import seed_stat
from .judge import judge
from .rules import BASELINE_SWEEP, BASELINE_TARGETS, DATASETS, RULES


def _per_seed(src: Dict[str, float], key: str, n: int) -> List[float]:
    vals = [src.get(f"{key}_seed{i}") for i in range(n)]
    if all(v is not None for v in vals) and n > 1:
        return vals
    return [src[key]] if key in src else []


def make_row(rec: Dict[str, Any], state: Dict[str, Any], paper: Optional[str]) -> Dict[str, Any]:
    spec, m, test = rec["spec"], rec.get("metrics", {}), rec.get("test", {})
    n = int(spec.get("repeats", 1))
    pr = spec.get("pruning")
    pruning = None if not pr or pr.get("mode") == "none" else {
        k: pr[k] for k in ("mode", "keep", "rule", "warmup_epochs", "every", "stratified") if k in pr}
    if pruning and pruning["mode"] == "static":
        pruning.pop("every", None)
    model = spec["model"]["name"] + (f" (width {spec['model']['width']})" if spec["model"].get("width") else "")
    row = {
        "label": rec.get("label") or f"trial {rec['trial']}", "paper": paper, "method": rec["method"], "pruning": pruning,
        "dataset": spec["dataset"]["name"], "eps": spec["threat"]["eps"], "model": model,
        "epochs": int(spec["train"]["epochs"]), "seeds": n,
        "clean": seed_stat(_per_seed(test, "test_clean_acc", n)),
        "pgd20": seed_stat(_per_seed(test, "test_pgd20_acc", n)),
        "aa": seed_stat(_per_seed(test, "test_autoattack_acc", n)),
        "train_time_s": seed_stat(_per_seed(m, "train_time_s", n)),
        "cost": seed_stat(_per_seed(m, "cost", n)),
        "val_robust_acc": seed_stat(_per_seed(m, "val_robust_acc", n)),
        "aa_images": _aa_images(test),
        "test_images": int(test.get("test_n", 0) or 0),
        "epochs_run": float(m.get("epoch", 0.0)),
        "catastrophic_overfit": bool(rec.get("catastrophic_overfit") or m.get("catastrophic_overfit", 0) > 0),
        "masking": sorted(k for k, v in _masking(rec, state).items() if v),
        "experiment": state.get("experiment"), "sweep": Path(state["_sweep_dir"]).name, "trial": rec["trial"],
        "run_id": rec.get("run_id"), "status": rec["status"],
    }
    if rec["method"] == "rrm":
        row["teacher"] = {k: m.get(k) for k in ("teacher_time_s", "teacher_cost", "teacher_val_robust_acc",
                                                 "teacher_val_clean_acc", "teacher_catastrophic_overfit", "teacher_epochs")}
    return row


def _aa_images(test: Dict[str, float]) -> int:
    """Images AutoAttack ran on: the smaller evaluation group (``test_n_<k>``), else all."""
    if "test_autoattack_acc" not in test:
        return 0
    sizes = [int(v) for k, v in test.items() if k.startswith("test_n_") and k != "test_n_all"]
    return min(sizes) if sizes else int(test.get("test_n", 0))


def _masking(rec: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, bool]:
    """The flags the sweep recorded; for a sweep from before they were recorded, the same rule on its numbers."""
    if "masking" in rec:
        return rec["masking"]
    return masking_flags(rec.get("test", {}), float(state.get("pgd_aa_gap", DEFAULT_PGD_AA_GAP)))


EXPERIMENTS = sorted({s for r in RULES for s in r["sweeps"]} | {BASELINE_SWEEP.format(ds=d) for d in DATASETS})


def local_states(runs: Path) -> Dict[str, Optional[Dict[str, Any]]]:
    """The newest sweep state of every reproduction experiment under ``runs`` (None where there is none)."""
    return {exp: latest_state(runs, exp) for exp in EXPERIMENTS}


def reported(state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A sweep's trials that become rows: finished and evaluated on the test set, in trial order."""
    return [rec for rec in sorted(state.get("trials", {}).values(), key=lambda r: r["trial"])
            if rec["status"] == "FINISHED" and rec.get("test")]


def pools(rows: List[Dict[str, Any]]) -> List[tuple]:
    """(rule, its rows by label) for every rule with a row: a rule draws on all of its sweeps (data pruning's
    unpruned TRADES-10 is the Backward Smoothing sweep's row)."""
    by_sweep: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in rows:
        by_sweep.setdefault(row["experiment"], {})[row["label"]] = row
    out = []
    for rule in RULES:
        pool: Dict[str, Dict[str, Any]] = {}
        for s in rule["sweeps"]:
            pool.update(by_sweep.get(s, {}))
        if pool:
            out.append((rule, pool))
    return out


def baseline_checks(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The baselines sweeps' rows against the levels their papers report (``BASELINE_TARGETS``)."""
    out = []
    for ds, targets in BASELINE_TARGETS.items():
        pool = {r["label"]: r for r in rows if r["experiment"] == BASELINE_SWEEP.format(ds=ds)}
        for label, (metric, target, source) in targets.items():
            if label in pool and pool[label][metric]["mean"] is not None:
                v = pool[label][metric]["mean"]
                out.append({"dataset": ds, "label": label, "metric": metric, "target": target, "measured": v,
                            "reached": v >= target, "source": source})
    return out


def by_pair(entries) -> Dict[tuple, Dict[str, Any]]:
    """bench/paired_time.py's side-by-side timings, by (dataset, baseline label, candidate label)."""
    return {(e["dataset"], e["baseline"], e["candidate"]): e for e in entries or []}


def load_paired(path: Path) -> Dict[tuple, Dict[str, Any]]:
    return by_pair(json.loads(path.read_text())) if path.is_file() else {}


def merge_committed(local: Dict[str, Dict[str, Dict[str, Any]]], committed: List[Dict[str, Any]],
                    experiments: List[str]) -> List[Dict[str, Any]]:
    """The rows to report: this machine's (``local``, by experiment and label) and, where this machine has no row of
    that experiment and label, the committed one. Sweeps are run in pieces on different machines and only their
    results are committed; without this, reproducing one claim on a fresh checkout would drop every other claim
    from the table. A local row replaces the committed row of the same label in its place; new labels follow."""
    out: List[Dict[str, Any]] = []
    for exp in experiments:
        loc = local.get(exp, {})
        placed = set()
        for old in (r for r in committed if r.get("experiment") == exp):
            if old["label"] in placed:
                continue
            placed.add(old["label"])
            out.append(loc.get(old["label"]) or old)
        out += [r for label, r in loc.items() if label not in placed]
    return out


def collect(runs: Path, paired_file: Optional[Path] = None, committed: Optional[Dict[str, Any]] = None,
            states: Optional[Dict[str, Optional[Dict[str, Any]]]] = None) -> Dict[str, Any]:
    """``committed``: the claims.json already in the repository, whose rows (and sweeps) stand in for sweeps whose
    state is not on this machine. ``states``: ``local_states(runs)``, when the caller has read them already."""
    committed = committed or {}
    paired = load_paired(paired_file) if paired_file else {}
    local: Dict[str, Dict[str, Dict[str, Any]]] = {}
    papers = {s: r["paper"] for r in RULES for s in r["sweeps"]}
    experiments = EXPERIMENTS
    states = local_states(runs) if states is None else states
    for exp in experiments:
        st = states.get(exp)
        if st is None:
            continue
        for rec in reported(st):
            row = make_row(rec, st, papers.get(exp))
            local.setdefault(exp, {})[row["label"]] = row
    rows = merge_committed(local, committed.get("rows", []), experiments)
    claims = [judge(rule, pool, paired) for rule, pool in pools(rows)]
    sweeps = []
    for exp in experiments:
        st = states.get(exp)
        if st is None or exp not in local:
            continue
        d = Path(st["_sweep_dir"])
        started = _sweep_start(d.name)
        end = (d / "pareto.csv").stat().st_mtime if (d / "pareto.csv").is_file() else None
        sweeps.append({"experiment": exp, "sweep": d.name, "configurations": len(local[exp]),
                       "wall_s": (end - started) if (started and end) else None,
                       "trials_wall_s": st.get("sweep_wall_s")})
    here = {(s["experiment"], s["sweep"]) for s in sweeps}
    used = {(r["experiment"], r["sweep"]) for r in rows}
    sweeps += [s for s in committed.get("sweeps", []) if (s["experiment"], s["sweep"]) not in here
               and (s["experiment"], s["sweep"]) in used]
    sweeps.sort(key=lambda s: (s["experiment"], s["sweep"]))
    baselines = baseline_checks(rows)
    return {"rows": rows, "claims": claims, "baselines": baselines, "sweeps": sweeps}


def _sweep_start(name: str) -> Optional[float]:
    """The sweep directory's name is its start time (sweep-YYYYmmdd-HHMMSS, local time)."""
    try:
        return time.mktime(time.strptime(name, "sweep-%Y%m%d-%H%M%S"))
    except ValueError:
        return None
