"""The claims as documentation pages, from the committed results alone: ``docs/claims/README.md`` (the rules, the
words the tables use, one row per paper and dataset, the baseline checks and what each reproduction took), one
page per paper (its verdicts on both datasets, every comparison, every configuration) and ``baselines.md``.

The verdicts are judged again here from claims.json's rows and ``paired_times.json`` (``judge.assess``), so a
page shows what the verdict rests on, not a copy of it; tests/test_claims_pages.py checks they equal claims.json's.
Each page's generated part sits between ``MARKERS``; the rest of the page is written by hand and kept.
Every table row has as many cells as its header, and a cell holds a number or a short phrase; reasons are prose.
"""

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ..evaluation.suite import DEFAULT_PGD_AA_GAP
from ..train.spec import EvalSpec
from .judge import assess, judge, pts, reasons, standing
from .rows import BASELINE_SWEEP, baseline_checks, by_pair, pools
from .rules import HIGHER, MIN_BASELINE_AA, PARTLY_MARGIN, RULES, SIMILAR, SPEED_BOUND

PAGES = "docs/claims"
MARKERS = ("<!-- generated:start -->", "<!-- generated:end -->")
README_MARKERS = ("<!-- results:start -->", "<!-- results:end -->")
REGENERATE = "raysweep claims --pages-only"
ROOT = "../../"  # from docs/claims/ to the repository's root
CLAIMS_JSON = "bench/results/claims.json"
PAIRED_JSON = "bench/results/paired_times.json"
DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# name, the paper(s) (the reproduction YAMLs' headers say more)
PAPERS = {
    "fp_better": ("FP-Better", "Jia et al., IEEE TIFS 2024, arXiv 2310.15444"),
    "data_pruning": ("Data pruning", "Kaufmann et al., arXiv 2207.00694 (static); Li et al., \"Less is More\", "
                                     "AAAI-23 SafeAI, arXiv 2302.12366 (dynamic, reconstructed)"),
    "local_ball": ("Local-ball training", "Lu & Kumar, arXiv 2110.14030; raysweep's loss is a reconstruction from "
                                          "the abstract, so this judges the reconstruction"),
    "backward_smoothing": ("Backward Smoothing", "Chen et al., AAAI 2022, arXiv 2010.01278"),
    "rrm": ("RRM", "Robust Representation Matching, Vaishnavi et al., USENIX Security 2022, arXiv 2202.09994"),
}
SPEED_WORDS = {
    "faster": "markedly faster (training time at most {b}x the baseline's)",
    "third": "about one third of the training time (at most {b}x)",
    "fraction": "a fraction of the cost (training time at most {b}x with the teacher's left out, as the paper counts "
                "it; the ratio with the teacher is shown beside it)",
    "cheaper": "cheaper (training time and cost both below {b}x)",
}
VERDICT_RANK = {"does not hold": 0, "partly": 1, "holds": 2}


# ---------------------------------------------------------------------------------------------------- formatting

def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        assert len(r) == len(header), (header, r)
        out.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return out


def _ms(a: Dict[str, Any], pct: bool = True, digits: int = 1) -> str:
    if a.get("mean") is None:
        return "–"
    f = 100.0 if pct else 1.0
    return f"{a['mean'] * f:.{digits}f} ± {(a.get('std') or 0.0) * f:.{digits}f}"


def _delta(cmp: Dict[str, Any]) -> str:
    return f"{cmp['aa_diff'] * 100:+.1f} ± {2 * cmp['aa_diff_se'] * 100:.1f}"


def _time(cmp: Dict[str, Any], compact: bool = False) -> str:
    s = f"{cmp['time_ratio']:.2f}"
    if "time_ratio_sweep" in cmp:
        s += " side by side" + ("" if compact else f" (sweep {cmp['time_ratio_sweep']:.2f})")
    if "time_ratio_teacher_excluded" in cmp:
        s += f" ({cmp['time_ratio_teacher_excluded']:.2f} without teacher)"
    return s


def _cost(cmp: Dict[str, Any]) -> str:
    s = f"{cmp['cost_ratio']:.2f}"
    if "cost_ratio_teacher_excluded" in cmp:
        s += f" ({cmp['cost_ratio_teacher_excluded']:.2f} without teacher)"
    return s


def _verdict(v: Optional[str], provisional: bool = False) -> str:
    return "not judged" if v is None else f"**{v}**" + (", provisional" if provisional else "")


def _flags(r: Dict[str, Any]) -> str:
    return ", ".join((["CO"] if r["catastrophic_overfit"] else []) + list(r["masking"])) or "–"


def _yaml(experiment: str, dataset: str) -> str:
    """search_spaces/reproduce/<dataset>/<name>.yaml of a reproduction experiment (its ``name:``)."""
    stem = experiment[len("reproduce-"):-len(dataset) - 1].replace("-", "_")
    return f"search_spaces/reproduce/{dataset}/{stem}.yaml"


def _pct(x: float) -> str:
    return f"{100 * x:g}"


# ---------------------------------------------------------------------------------------------------- the judging

def _paired(paired_times: Any) -> Dict[tuple, Dict[str, Any]]:
    return paired_times if isinstance(paired_times, dict) else by_pair(paired_times)


def assessments(claims_json: Dict[str, Any], paired_times: Any) -> List[Dict[str, Any]]:
    """Every claim's ``judge.assess`` on the committed rows, in ``RULES`` order."""
    paired = _paired(paired_times)
    return [assess(rule, pool, paired) for rule, pool in pools(claims_json["rows"])]


def rejudge(claims_json: Dict[str, Any], paired_times: Any) -> List[Dict[str, Any]]:
    """The claims as ``raysweep claims`` would write them from the committed rows."""
    paired = _paired(paired_times)
    return [judge(rule, pool, paired) for rule, pool in pools(claims_json["rows"])]


def deciding(a: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The baseline a claim does worst against (the first such): the pair its verdict cannot exceed."""
    judged = [p for p in a["pairs"] if p["verdict"] is not None]
    return min(judged, key=lambda p: VERDICT_RANK[p["verdict"]]) if judged else None


def _best(p: Dict[str, Any]) -> Dict[str, Any]:
    return next(c for c in p["comparisons"] if c["best"])


# ---------------------------------------------------------------------------------------------------- the pages

def _header(title: str) -> List[str]:
    return [MARKERS[0],
            f"<!-- Generated from {CLAIMS_JSON} and {PAIRED_JSON} by `{REGENERATE}`; edit outside the markers. -->",
            f"# {title}", ""]


def _figures() -> List[str]:
    return [f"![{name}: AutoAttack accuracy against training cost, every reproduction configuration]({ds}.png)"
            for ds, name in DATASETS.items()] + [
        "",
        "Every configuration of every claim on one plane per dataset: the dot is the mean AutoAttack accuracy over "
        "the seeds, the dash above it PGD-20 (a long stem is gradient masking), bars ± one std, the black step the "
        "front of AutoAttack accuracy against training cost. The x-axis is cost (gradient passes of the row's own "
        "model, in clean epochs over the training set; marker shape is the model), not seconds: the rows come from "
        "sweeps run on machines of different speed, so only the time ratios, measured within a sweep or side by "
        "side, compare times.", ""]


def _evaluated(rows: List[Dict[str, Any]]) -> str:
    """On how many test images each attack ran (the rows' own counts; one number where they agree)."""
    def n(key):
        vals = sorted({int(r.get(key) or 0) for r in rows}) or [0]
        return f"{vals[0]:,}" if len(vals) == 1 else f"{vals[0]:,}-{vals[-1]:,} (`{key}` in the row)"
    return f"clean and PGD-20 on {n('test_images')} test images, AutoAttack on the first {n('aa_images')} of them"


def _seeds(rows: List[Dict[str, Any]]) -> str:
    vals = sorted({int(r.get("seeds") or 1) for r in rows}) or [1]
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"


def _config_table(rows: List[Dict[str, Any]]) -> List[str]:
    out = [f"Mean ± std over the seeds; accuracy in % ({_evaluated(rows)}). Data: [`{CLAIMS_JSON}`]({ROOT}{CLAIMS_JSON}) (`rows`, one "
           f"entry per configuration, with every seed's numbers); the MLflow run opens with `raysweep ui` on the "
           f"machine that ran the sweep.", ""]
    out += table(["dataset", "configuration", "model", "epochs", "clean", "PGD-20", "AutoAttack", "train time (s)",
                  "cost", "flags", "sweep", "MLflow run"],
                 [[DATASETS[r["dataset"]], r["label"], r["model"], r["epochs"], _ms(r["clean"]), _ms(r["pgd20"]),
                   _ms(r["aa"]), _ms(r["train_time_s"], False, 0), _ms(r["cost"], False, 1), _flags(r),
                   f"{r['experiment'].replace('reproduce-', '')}, {r['sweep']}", f"`{r['run_id'] or '–'}`"]
                  for r in rows])
    return out + [""]


def paper_page(paper: str, claims_json: Dict[str, Any], found: List[Dict[str, Any]]) -> str:
    name, source = PAPERS[paper]
    mine = [a for a in found if a["rule"]["paper"] == paper]
    rules = [r for r in RULES if r["paper"] == paper]
    out = _header(name)
    yamls = [(_yaml(s, r["dataset"])) for r in rules for s in r["sweeps"] if s.startswith(_sweep_prefix(paper))]
    out += [f"> {rules[0]['claim']}", "", f"Paper: {source}. Reproductions: "
            + ", ".join(f"[`{y.split('reproduce/')[1]}`]({ROOT}{y})" for y in yamls)
            + " (their headers give the settings and sources). How a verdict is decided, and the words and flags "
              "the tables use: [the index](README.md).", ""]

    out += ["## Verdict", ""]
    out += table(["dataset", "ε (L∞)", "verdict", "waiting for"],
                 [[DATASETS[a["rule"]["dataset"]], _eps(claims_json, a["rule"]["dataset"]),
                   _verdict(a["verdict"], a["provisional"]), ", ".join(a["untuned"]) or "–"] for a in mine])
    rule = rules[0]
    words = (f"{'higher' if rule['robust'] == 'higher' else 'similar'} robustness"
             f"{' and similar clean accuracy' if rule.get('also_clean') else ''}, and "
             f"{SPEED_WORDS[rule['speed']].format(b=SPEED_BOUND[rule['speed']])}")
    several = any(len(r["pairs"]) > 1 for r in rules)
    out += ["", f"Judged in two parts: {words}. The claim "
            + ("must hold against each baseline below: it holds only where it holds against every one."
               if several else "has one baseline per dataset.")
            + " \"waiting for\" names a tuned configuration that has not run: until it has, a verdict other than "
              "\"holds\" is provisional.", ""]

    out += ["## Best configuration against each baseline", ""]
    rows = []
    for a in mine:
        ds = DATASETS[a["rule"]["dataset"]]
        for p in a["pairs"]:
            if p["status"] != "judged":
                base = p["base"]
                aa = "–" if base is None else f"– / {_ms(base['aa'])}"
                rows.append([ds, p["baseline"], "–", aa, "–", "–", "–",
                             "not run" if p["status"] == "not run" else
                             f"not judged: baseline below {pts(MIN_BASELINE_AA)}%"])
                continue
            c = _best(p)
            rows.append([ds, p["baseline"], c["candidate"]["label"], f"{_ms(c['candidate']['aa'])} / {_ms(p['base']['aa'])}",
                         _delta(c["cmp"]), _time(c["cmp"]), _cost(c["cmp"]), _verdict(p["verdict"])])
    out += table(["dataset", "baseline", "best configuration", "AutoAttack % (method / baseline)", "Δ points (±2 SE)",
                  "time ratio", "cost ratio", "verdict"], rows)
    out += ["", "The best configuration is the one that holds, else the one that holds partly, else the most "
                "robust. Ratios are method / baseline, means over the seeds.", ""]

    out += ["## Every comparison", ""]
    rows = []
    for a in mine:
        r_ = a["rule"]
        for p in a["pairs"]:
            for c in p["comparisons"]:
                cand, cmp = c["candidate"], c["cmp"]
                notes = [short for _, short in reasons(p["base"], cand, cmp, r_["robust"], r_["speed"])
                         if not short.startswith("teacher ")]
                label = f"**{cand['label']}**" if c["best"] else cand["label"]
                rows.append([DATASETS[r_["dataset"]], p["baseline"], label, f"{_ms(cand['aa'])} / {_ms(p['base']['aa'])}",
                             _delta(cmp), _time(cmp), _cost(cmp), standing(cmp), "; ".join(notes) or "–"])
    out += table(["dataset", "baseline", "configuration", "AutoAttack % (method / baseline)", "Δ points (±2 SE)", "time ratio",
                  "cost ratio", "result", "notes"], rows)
    out += ["", "Bold: the configuration the verdict against that baseline rests on. \"result\" is the "
                "configuration's own standing against the baseline by the same rules. Notes with \"baseline\" are "
                "about the baseline's row; the flags are those of the [index](README.md#words-and-flags).", ""]

    teachers = [r for r in _rows_of(claims_json, paper) if r.get("teacher")]
    if teachers:
        out += ["## Teachers", "",
                "The student's teacher is trained inside the trial (counted in its time and cost, and left out of the "
                "ratios marked \"without teacher\"); its validation numbers are on the validation split (PGD-10).", ""]
        out += table(["dataset", "student", "teacher val PGD-10 %", "teacher val clean %", "teacher epochs",
                      "teacher time (s)", "teacher cost"],
                     [[DATASETS[r["dataset"]], r["label"], pts(r["teacher"].get("teacher_val_robust_acc")),
                       pts(r["teacher"].get("teacher_val_clean_acc")), f"{r['teacher'].get('teacher_epochs') or 0:g}",
                       f"{r['teacher'].get('teacher_time_s') or 0:.0f}", f"{r['teacher'].get('teacher_cost') or 0:.1f}"]
                      for r in teachers])
        out += [""]
    controls = [(a["rule"]["dataset"], a["control"]) for a in mine if a["control"] is not None]
    if controls:
        out += ["Not judged, for comparison: " + "; ".join(
            f"{DATASETS[ds]}, {c['label']}: clean {pts(c['clean']['mean'])}%, PGD-20 {pts(c['pgd20']['mean'])}%, "
            f"AutoAttack {pts(c['aa']['mean'])}%" for ds, c in controls)
            + " (what the architecture gets without the method).", ""]

    out += ["## Every configuration", ""] + _config_table(_rows_of(claims_json, paper))
    out += ["## Figures", ""] + _figures()
    return "\n".join(out + [MARKERS[1]])


def _sweep_prefix(paper: str) -> str:
    return f"reproduce-{paper.replace('_', '-')}-"


def _rows_of(claims_json: Dict[str, Any], paper: str) -> List[Dict[str, Any]]:
    """A paper's rows and those of other sweeps its claim is judged against (data pruning's unpruned TRADES-10 is
    the Backward Smoothing sweep's), MNIST first."""
    out = []
    for rule in (r for r in RULES if r["paper"] == paper):
        labels = {lab for b, cands in rule["pairs"] for lab in [b, *cands]} | {rule.get("control")}
        out += [r for r in claims_json["rows"] if r["experiment"] in rule["sweeps"]
                and (r.get("paper") == paper or r["label"] in labels)]
    return out


def _eps(claims_json: Dict[str, Any], ds: str) -> str:
    return next((f"{r['eps']:g}" for r in claims_json["rows"] if r["dataset"] == ds), "–")


def results_rows(found: List[Dict[str, Any]], link: str) -> List[List[str]]:
    """One row per paper and dataset; ``link``: the folder of the paper pages, as seen from the page linking them."""
    rows = []
    for a in found:
        r = a["rule"]
        p = deciding(a)
        name = f"[{PAPERS[r['paper']][0]}]({link}{r['paper']}.md)"
        if p is None:
            rows.append([name, DATASETS[r["dataset"]], _verdict(None), "–", "–", "–", "–", "–", "–", "–"])
            continue
        c = _best(p)
        rows.append([name, DATASETS[r["dataset"]], _verdict(a["verdict"], a["provisional"]), c["candidate"]["label"],
                     _ms(c["candidate"]["aa"]), p["baseline"], _ms(p["base"]["aa"]), _delta(c["cmp"]),
                     _time(c["cmp"]), _cost(c["cmp"])])
    return rows


def index_page(claims_json: Dict[str, Any], found: List[Dict[str, Any]]) -> str:
    out = _header("Do the papers' claims hold?")
    rows = claims_json["rows"]
    out += [f"Five papers' claims about efficient adversarial training, each reproduced as a sweep on MNIST (ε = "
            f"{_eps(claims_json, 'mnist')}) and Fashion-MNIST (ε = {_eps(claims_json, 'fashion_mnist')}), L∞, "
            f"{_seeds(rows)} seeds per configuration, and judged by the rules below. The numbers are in "
            f"[`{CLAIMS_JSON}`]({ROOT}{CLAIMS_JSON}); side-by-side timings in [`{PAIRED_JSON}`]({ROOT}{PAIRED_JSON}).",
            "", "## Results", ""]
    out += table(["paper", "dataset", "verdict", "method configuration judged", "its AutoAttack %", "baseline",
                  "baseline AutoAttack %", "Δ points (±2 SE)", "time ratio", "cost ratio"], results_rows(found, ""))
    out += [""]
    for ds, name in DATASETS.items():
        if any(r["dataset"] == ds for r in rows) and not any(a["rule"]["dataset"] == ds for a in found):
            out += [f"No claim reproduced on {name} yet; its baselines ran first.", ""]
    out += ["A claim with several baselines must hold against each; its row shows the baseline it does worst "
            "against, and the paper's page shows all of them, with every configuration. The baselines "
            "themselves: [baselines](baselines.md).", ""]
    out += ["## Figures", ""] + _figures()
    out += _rules_section()
    out += _words_section(rows)
    out += ["## Baseline checks", ""] + _baseline_checks(claims_json) + [""]
    out += ["## What each reproduction took", ""] + _sweeps_table(claims_json) + [""]
    return "\n".join(out + [MARKERS[1]])


def _rules_section() -> List[str]:
    by_speed: Dict[str, List[str]] = {}
    for r in RULES:
        names = by_speed.setdefault(r["speed"], [])
        if PAPERS[r["paper"]][0] not in names:
            names.append(PAPERS[r["paper"]][0])
    speed = [f"  - {', '.join(v)}: {SPEED_WORDS[k].format(b=SPEED_BOUND[k])}" for k, v in by_speed.items()]
    return ["## How a verdict is decided", "",
            "The rules are data in [`raysweep/repro/rules.py`](" + ROOT + "raysweep/repro/rules.py), applied by "
            "[`judge.py`](" + ROOT + "raysweep/repro/judge.py) to the mean over the seeds of AutoAttack accuracy "
            "(the strongest attack; PGD-20 is shown beside it) and of training time:", "",
            f"- No baseline below {_pct(MIN_BASELINE_AA)}% AutoAttack accuracy (`MIN_BASELINE_AA`) is judged "
            f"against: it is not a converged robust model.",
            f"- **Similar robustness**: the method's AutoAttack accuracy is at most {_pct(SIMILAR)} points below the "
            f"baseline's (`SIMILAR`); for data pruning the clean accuracy must be similar by the same rule. A larger "
            f"drop within two standard errors is still not similar (\"less robust, within 2 SE\": the seeds "
            f"disagree).",
            f"- **Higher robustness**: above the baseline's by more than two standard errors and at least "
            f"{_pct(HIGHER)} point (`HIGHER`).",
            "- **Speed** (`SPEED_BOUND`), on the ratio of mean training times, method / baseline:", *speed,
            "- A configuration **holds** against a baseline when both parts hold, **partly** when one does (the "
            f"speed part counts only for a robust model, AutoAttack at or above {_pct(MIN_BASELINE_AA)}%, and at most "
            f"{_pct(PARTLY_MARGIN)} points below the baseline's (`PARTLY_MARGIN`): further below, the method reaches a "
            f"different robustness level, not the same one more cheaply), and "
            "**does not hold** otherwise. Against each baseline the best of the method's configurations is judged "
            "(its paper defaults and, where they fail, the configuration a tuning sweep found on validation data: "
            "\"(tuned)\").",
            "- A claim with several baselines holds when it holds against each, does not hold when it does not "
            "hold against any, and holds partly otherwise. A verdict other than \"holds\" is **provisional** while the claim's "
            "\"(tuned)\" configuration has not run.",
            "- A **control** row (RRM: standard training of the student architecture) is shown, not judged.", ""]


def _words_section(rows: List[Dict[str, Any]]) -> List[str]:
    drop = dict((f.name, f.default) for f in dataclasses.fields(EvalSpec))["co_drop"]
    return ["## Words and flags", "",
            "- **AutoAttack**: the standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square), the strongest attack here; "
            "**PGD-20**: 20 steps of PGD. Both, and **clean** accuracy, on the test set for every configuration and "
            f"seed ({_evaluated(rows)}).",
            "- **Δ points (±x at 2 SE)**: the method's mean AutoAttack accuracy minus the baseline's, in points; "
            "x is two standard errors of that difference of means over the seeds.",
            "- **time ratio**: mean training time of the method over the baseline's. **side by side**: the ratio "
            f"from [`bench/paired_time.py`]({ROOT}bench/paired_time.py), which trains the pair at the same time "
            f"on one machine ([`{PAIRED_JSON}`]({ROOT}{PAIRED_JSON})); where it exists it is the one judged, and "
            "the sweep's ratio (rows that ran beside different neighbours) is shown as \"sweep\".",
            "- **cost ratio**: the same for cost, the gradient passes of the row's own model in clean epochs over "
            "the training set (selection passes included); no neighbour moves it. **without teacher**: RRM's "
            "ratios with the in-trial teacher's time and cost left out.",
            f"- **past {pts(PARTLY_MARGIN)}-pt margin**: faster, but AutoAttack more than {_pct(PARTLY_MARGIN)} "
            f"points below the baseline's (`PARTLY_MARGIN`), so the speed half does not make it \"partly\".",
            f"- **CO**: catastrophic overfitting detected in at least one seed (validation PGD accuracy fell by more "
            f"than {_pct(drop)} points in an epoch while FGSM accuracy rose) and rolled back to the previous "
            f"epoch's weights.",
            f"- **pgd_far_above_aa**: PGD-20 accuracy more than the sweep's `final_eval.pgd_aa_gap` above "
            f"AutoAttack's (default {_pct(DEFAULT_PGD_AA_GAP)} points, `DEFAULT_PGD_AA_GAP` in "
            f"[`raysweep/evaluation/suite.py`]({ROOT}raysweep/evaluation/suite.py); the reproduction sweeps use "
            "it): gradient masking, PGD overstates the robustness. `fgsm_beats_pgd` and "
            "`blackbox_below_whitebox` are the suite's other masking flags.",
            "- **cost**, **train time (s)**: per seed; times are one core's, on the machine that ran the sweep.",
            "- Per-epoch validation curves: `raysweep claims`, run where a sweep's state is, writes them per "
            "seed to `bench/results/curves/<experiment>.csv`.", ""]


def _baseline_checks(claims_json: Dict[str, Any]) -> List[str]:
    checks = baseline_checks(claims_json["rows"])
    sources = list(dict.fromkeys(b["source"] for b in checks))
    rows = [[DATASETS[b["dataset"]], b["label"], {"aa": "AutoAttack"}.get(b["metric"], b["metric"].upper().replace("PGD", "PGD-")),
             pts(b["measured"]), f"≥ {pts(b['target'])}", "reached" if b["reached"] else "**not reached**",
             f"[{sources.index(b['source']) + 1}]"] for b in checks]
    out = table(["dataset", "baseline", "test metric", "measured %", "target %", "check", "target from"], rows)
    out += [""] + [f"{i + 1}. {_linked(s)}" for i, s in enumerate(sources)]
    return out


def _linked(text: str) -> str:
    return re.sub(r"bench/results/[\w.]+\.json", lambda m: f"[`{m.group(0)}`]({ROOT}{m.group(0)})", text)


def _sweeps_table(claims_json: Dict[str, Any]) -> List[str]:
    seeds: Dict[tuple, int] = {}
    for r in claims_json["rows"]:
        key = (r["experiment"], r["sweep"])
        seeds[key] = max(seeds.get(key, 0), int(r.get("seeds") or 1))
    rows = []
    for sw in claims_json.get("sweeps", []):
        if not sw["configurations"]:
            continue
        wall = "–" if sw.get("wall_s") is None else f"{sw['wall_s'] / 60:.0f} min"
        tr = "–" if not sw.get("trials_wall_s") else f"{sw['trials_wall_s'] / 60:.0f} min"
        rows.append([sw["experiment"], sw["sweep"], f"{sw['configurations']} × {seeds.get((sw['experiment'], sw['sweep']), 1)}",
                     wall, tr])
    out = ["2-core CPU machines, 2 trials at a time, the final evaluation included. \"first start to results\" "
           "includes any pause of a resumed sweep; \"of which training\" is the trials' wall time.", ""]
    return out + table(["experiment", "sweep", "configurations × seeds", "first start to results", "of which training"],
                       rows)


def baselines_page(claims_json: Dict[str, Any]) -> str:
    out = _header("Baselines")
    rows = [r for r in claims_json["rows"] if r["experiment"] == BASELINE_SWEEP.format(ds=r["dataset"])]
    rows.sort(key=lambda r: list(DATASETS).index(r["dataset"]))
    yamls = ", ".join(f"[{name}]({ROOT}{_yaml(BASELINE_SWEEP.format(ds=ds), ds)})" for ds, name in DATASETS.items())
    out += [f"PGD-AT (Madry et al. 2018) and FGSM-RS (Wong et al. 2020) on `small_cnn` (Wong et al.'s MNIST CNN), "
            f"checked before any efficient method is judged against them. Reproductions: {yamls}. Rules and words: "
            f"[the index](README.md).", "", "## Checks", ""]
    out += _baseline_checks(claims_json) + [""]
    out += ["## Every configuration", ""] + _config_table(rows)
    return "\n".join(out + [MARKERS[1]])


def render_pages(claims_json: Dict[str, Any], paired_times: Any) -> Dict[str, str]:
    """{path from the repository's root: the page's generated part, markers included}. Written into a page by
    ``merge``, which keeps the hand-written text around it."""
    found = assessments(claims_json, paired_times)
    pages = {f"{PAGES}/README.md": index_page(claims_json, found),
             f"{PAGES}/baselines.md": baselines_page(claims_json)}
    for paper in PAPERS:
        if any(a["rule"]["paper"] == paper for a in found):
            pages[f"{PAGES}/{paper}.md"] = paper_page(paper, claims_json, found)
    return pages


# ---------------------------------------------------------------------------------------------------- writing

HAND = "\n\n<!-- Hand-written below: kept when the generated part above is regenerated. -->\n"


def merge(existing: Optional[str], generated: str) -> str:
    """``existing`` with its generated part replaced by ``generated``; a new page gets an empty hand-written part."""
    if existing is None or MARKERS[0] not in existing or MARKERS[1] not in existing:
        return generated + HAND
    head, rest = existing.split(MARKERS[0], 1)
    _, tail = rest.split(MARKERS[1], 1)
    return head + generated + tail


def write_pages(pages: Dict[str, str], pages_dir: Path) -> List[Path]:
    """Writes each page into ``pages_dir`` (by its file name), keeping its hand-written part; returns the pages
    whose text changed."""
    changed = []
    for rel, generated in pages.items():
        path = Path(pages_dir) / Path(rel).name
        old = path.read_text() if path.is_file() else None
        new = merge(old, generated)
        if new != old:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new)
            changed.append(path)
    return changed


def glance(claims_json: Dict[str, Any], paired_times: Any, link: str = f"{PAGES}/") -> str:
    """The README's results at a glance: one row per paper and dataset, linked to its page."""
    rows = []
    for a in assessments(claims_json, paired_times):
        r, p = a["rule"], deciding(a)
        name = f"[{PAPERS[r['paper']][0]}]({link}{r['paper']}.md)"
        if p is None:
            rows.append([name, DATASETS[r["dataset"]], _verdict(None), "–", "–", "–"])
            continue
        c = _best(p)
        rows.append([name, DATASETS[r["dataset"]], _verdict(a["verdict"], a["provisional"]),
                     f"{_ms(c['candidate']['aa'])} / {_ms(p['base']['aa'])}", _time(c["cmp"], compact=True),
                     _cost(c["cmp"])])
    out = table(["paper", "dataset", "verdict", "AutoAttack % (method / baseline)", "time ratio", "cost ratio"], rows)
    return "\n".join(out + ["", "Where a claim has several baselines, its row shows the one it does worst against."])


def update_readme(md: str, readme: Path) -> bool:
    """Writes ``md`` between the README's results markers; False (nothing written) where it has none."""
    text = readme.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        return False
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: f"{start}\n{md}\n{end}", text, flags=re.S)
    if new != text:
        readme.write_text(new)
    return True
