"""Judging one claim: each candidate configuration against its baseline on AutoAttack accuracy and training time
(means over seeds), by the thresholds in ``rules``; the why names the numbers and what went wrong."""

import math
from typing import Any, Dict, List, Optional, Tuple

from .rules import HIGHER, MIN_BASELINE_AA, PARTLY_MARGIN, SIMILAR, SPEED_BOUND


def _se(a: Dict[str, Any]) -> float:
    sd, k = a.get("std") or 0.0, max(1, len(a.get("seeds") or [1]))
    return sd / math.sqrt(k)


def compare(base: Dict[str, Any], cand: Dict[str, Any], robust: str, speed: str, teacher: bool,
            also_clean: bool = False, paired: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """``paired``: bench/paired_time.py's entry for this pair; its side-by-side time ratio then judges the speed
    (the sweep's ratio, which depends on what ran next to each row, is kept beside it)."""
    b, c = base["aa"], cand["aa"]
    if b["mean"] is None or c["mean"] is None:
        return {"ok": False, "why": f"{cand['label']}: no AutoAttack result"}
    diff = c["mean"] - b["mean"]
    se = math.sqrt(_se(b) ** 2 + _se(c) ** 2)
    similar = diff >= -SIMILAR
    higher = diff > max(HIGHER, 2 * se)
    robust_ok = higher if robust == "higher" else similar
    clean_diff = (cand["clean"]["mean"] or 0.0) - (base["clean"]["mean"] or 0.0)
    clean_ok = clean_diff >= -SIMILAR
    if also_clean:
        robust_ok = robust_ok and clean_ok
    t_ratio = cand["train_time_s"]["mean"] / base["train_time_s"]["mean"]
    c_ratio = cand["cost"]["mean"] / base["cost"]["mean"]
    out = {"candidate": cand["label"], "aa_diff": diff, "aa_diff_se": se, "clean_diff": clean_diff, "clean_ok": clean_ok,
           "time_ratio": t_ratio, "cost_ratio": c_ratio, "robust_ok": robust_ok,
           "noisy": not similar and diff >= -2 * se}
    if paired is not None:
        out["time_ratio_sweep"], out["paired_rounds"] = t_ratio, len(paired.get("rounds", []))
        out["time_ratio"] = t_ratio = float(paired["time_ratio"])
    if teacher and cand.get("teacher"):
        t = cand["teacher"].get("teacher_time_s") or 0.0
        out["time_ratio_teacher_excluded"] = (cand["train_time_s"]["mean"] - t) / base["train_time_s"]["mean"]
        tc = cand["teacher"].get("teacher_cost") or 0.0
        out["cost_ratio_teacher_excluded"] = (cand["cost"]["mean"] - tc) / base["cost"]["mean"]
    bound = SPEED_BOUND[speed]
    if speed == "cheaper":
        speed_ok = t_ratio < bound and c_ratio < bound
    elif teacher:  # the paper's speed-up excludes the teacher; raysweep reports both, judges the paper's
        speed_ok = out.get("time_ratio_teacher_excluded", t_ratio) <= bound
    else:
        speed_ok = t_ratio <= bound
    out["speed_ok"] = speed_ok
    out["ok"] = robust_ok and speed_ok
    # Speed alone earns "partly" only for a robust model: being quick to train a model AutoAttack breaks is no part
    # of an efficient-AT claim (the same bar, MIN_BASELINE_AA, that a baseline must clear).
    out["robust_model"] = c["mean"] >= MIN_BASELINE_AA
    out["near_baseline"] = diff >= -PARTLY_MARGIN - 1e-9  # a margin met exactly, whatever the float rounding
    out["partly"] = robust_ok or (speed_ok and out["robust_model"] and out["near_baseline"])
    return out


def pts(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def reasons(base: Dict[str, Any], cand: Dict[str, Any], cmp: Dict[str, Any], robust: str,
            speed: str) -> List[Tuple[str, str]]:
    """What went wrong for one candidate, each as (the why's wording, a table cell's short phrase); the baseline's
    own flags are in both."""
    out = []
    if robust == "higher" and not cmp["robust_ok"]:
        out.append(("not more robust", "not more robust") if cmp["aa_diff"] > -SIMILAR else ("less robust", "less robust"))
    if robust == "similar" and cmp["aa_diff"] < -SIMILAR:
        out.append(("less robust (within 2 SE: the seeds disagree, more would decide)", "less robust, within 2 SE")
                   if cmp.get("noisy") else ("less robust", "less robust"))
    elif robust == "similar" and not cmp["robust_ok"]:
        out.append(("less accurate on clean images", "less accurate on clean images"))
    if cmp["clean_diff"] < -SIMILAR:
        out.append((f"clean accuracy {cmp['clean_diff'] * 100:+.1f} points", f"clean {cmp['clean_diff'] * 100:+.1f} points"))
    if cmp["speed_ok"] and not cmp.get("robust_model", True):
        out.append((f"its speed does not count: AutoAttack below {pts(MIN_BASELINE_AA)}%, not a robust model",
                    f"speed not counted: AutoAttack < {pts(MIN_BASELINE_AA)}%"))
    elif cmp["speed_ok"] and not cmp["robust_ok"] and not cmp.get("near_baseline", True):
        out.append((f"its speed does not count: AutoAttack more than {pts(PARTLY_MARGIN)} points below the baseline's",
                    f"past {pts(PARTLY_MARGIN)}-pt margin"))
    if not cmp["speed_ok"]:
        out.append(({"third": "not about a third of the time", "fraction": "not a fraction of the cost",
                     "faster": "not markedly faster", "cheaper": "not cheaper"}[speed],) * 2)
    for row, who, short in ((cand, cand["label"], ""), (base, base["label"], "baseline ")):
        if row["catastrophic_overfit"]:
            out.append((f"{who} hit catastrophic overfitting in at least one seed (rolled back)", f"{short}CO"))
        if row["masking"]:
            out.append((f"{who} raises {', '.join(row['masking'])}", f"{short}{', '.join(row['masking'])}"))
    t = cand.get("teacher") or {}
    if t.get("teacher_val_robust_acc") is not None:
        out.append((f"its in-trial teacher holds {pts(t['teacher_val_robust_acc'])}% validation PGD-10 accuracy",
                    f"teacher {pts(t['teacher_val_robust_acc'])}% val PGD-10"))
    return out


def describe(base: Dict[str, Any], cand: Dict[str, Any], cmp: Dict[str, Any], robust: str, speed: str) -> str:
    s = (f"{cand['label']}: AutoAttack {pts(cand['aa']['mean'])}% vs {pts(base['aa']['mean'])}% for {base['label']} "
         f"({cmp['aa_diff'] * 100:+.1f} points, ±{2 * cmp['aa_diff_se'] * 100:.1f} at 2 SE) at {cmp['time_ratio']:.2f}x its "
         f"training time{' side by side' if 'time_ratio_sweep' in cmp else ''} and {cmp['cost_ratio']:.2f}x its cost")
    if "time_ratio_sweep" in cmp:
        s += f" ({cmp['time_ratio_sweep']:.2f}x time as the sweep ran them)"
    if "time_ratio_teacher_excluded" in cmp:
        s += f" ({cmp['time_ratio_teacher_excluded']:.2f}x time, {cmp['cost_ratio_teacher_excluded']:.2f}x cost without the teacher)"
    why = [long for long, _ in reasons(base, cand, cmp, robust, speed)]
    return s + ("; " + "; ".join(why) if why else "")


def standing(cmp: Dict[str, Any]) -> str:
    """One candidate's own verdict against one baseline."""
    return "holds" if cmp.get("ok") else "partly" if cmp.get("partly") else "does not hold"


def assess(rule: Dict[str, Any], rows: Dict[str, Dict[str, Any]],
           paired: Optional[Dict[tuple, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The verdict with what it rests on: per baseline, every candidate's comparison and which one decided it. The
    documentation pages (``pages``) tabulate this; ``judge`` words it."""
    paired = paired or {}
    pairs = []
    for base_label, cands in rule["pairs"]:
        base = rows.get(base_label)
        present = [rows[c] for c in cands if c in rows]
        p: Dict[str, Any] = {"baseline": base_label, "base": base, "verdict": None, "comparisons": [], "status": "judged"}
        pairs.append(p)
        if base is None or not present:
            p["status"], p["why"] = "not run", f"{base_label}: not run yet"
            continue
        if base["aa"]["mean"] is None or base["aa"]["mean"] < MIN_BASELINE_AA:
            p["status"] = "unrobust baseline"
            p["why"] = (f"{base_label}: AutoAttack {pts(base['aa']['mean'])}%, below {pts(MIN_BASELINE_AA)}%: "
                        f"not a robust baseline, nothing judged against it")
            continue
        cmps = [(c, compare(base, c, rule["robust"], rule["speed"], rule.get("teacher", False), rule.get("also_clean", False),
                            paired.get((rule["dataset"], base_label, c["label"]))))
                for c in present]
        best = max(cmps, key=lambda t: (t[1].get("ok", False), t[1].get("partly", False), t[1].get("aa_diff", -1)))
        c, cmp = best
        p["verdict"] = standing(cmp)
        p["comparisons"] = [{"candidate": o, "cmp": oc, "best": o is c} for o, oc in cmps]
        others = [describe(base, o, oc, rule["robust"], rule["speed"]) for o, oc in cmps if o is not c]
        p["why"] = (describe(base, c, cmp, rule["robust"], rule["speed"])
                    + (f" (also run: {'; '.join(others)})" if others else ""))
    ctl = rows.get(rule.get("control") or "")
    verdicts = [p["verdict"] for p in pairs]
    known = [v for v in verdicts if v is not None]
    if not known:
        verdict = None
    elif rule.get("all_pairs"):
        verdict = "holds" if all(v == "holds" for v in known) and len(known) == len(verdicts) else \
            ("does not hold" if all(v == "does not hold" for v in known) else "partly")
    else:
        verdict = known[0]
    # The rule above: no "does not hold" (or "partly") before the method's own tuning sweep has had its say.
    # a tuned configuration judged against several baselines is named once
    untuned = list(dict.fromkeys(c for _, cands in rule["pairs"] for c in cands if c.endswith("(tuned)") and c not in rows))
    provisional = verdict not in (None, "holds") and bool(untuned)
    return {"rule": rule, "pairs": pairs, "control": ctl, "verdict": verdict, "provisional": provisional,
            "untuned": untuned if provisional else []}


def judge(rule: Dict[str, Any], rows: Dict[str, Dict[str, Any]],
          paired: Optional[Dict[tuple, Dict[str, Any]]] = None) -> Dict[str, Any]:
    a = assess(rule, rows, paired)
    whys = [p["why"] for p in a["pairs"]]
    ctl = a["control"]
    if ctl is not None:  # what the same architecture gets without the method, e.g. from clean images alone
        whys.append(f"control, {ctl['label']}: clean {pts(ctl['clean']['mean'])}%, PGD-20 {pts(ctl['pgd20']['mean'])}%, "
                    f"AutoAttack {pts(ctl['aa']['mean'])}%")
    return {"paper": rule["paper"], "dataset": rule["dataset"], "claim": rule["claim"],
            "baseline": ", ".join(b for b, _ in rule["pairs"]), "verdict": a["verdict"], "provisional": a["provisional"],
            "why": " | ".join(whys) + (f" | provisional: {', '.join(a['untuned'])} not run yet" if a["provisional"] else ""),
            "per_baseline": [{"baseline": p["baseline"], "verdict": p["verdict"]} for p in a["pairs"]]}
