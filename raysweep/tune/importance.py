"""Which searched parameters mattered, one ranking per objective (Ray Tune has no such view).

Evaluator: Optuna's fANOVA (``FanovaImportanceEvaluator``, a seeded random forest, then the
share of the objective's variance each parameter explains). Chosen over PED-ANOVA because it
answers "what moves this objective across the whole space", which is what a cost/robustness
trade-off asks, and because it is deterministic for a given study; PED-ANOVA ranks what it takes
to reach the top quantile, which with a few dozen trials rests on two or three of them.

fANOVA only ranks parameters present in every trial it is given, so a cross-method sweep gets
two views: over all trials (``method`` is then a parameter, next to the shared ones such as
``lr``) and per method over that method's trials (its conditional parameters)."""

import random
from typing import Any, Dict, List, Sequence

import optuna

MIN_TRIALS = 4  # below this a forest of fANOVA has nothing to split on
# fANOVA's forest costs more than linearly in trials and parameters: on a synthetic 2-objective study with four
# parameters (eight rankings: all trials and three methods, per objective) it took 98 s over 1,000 trials on a
# 2-core machine, and a 1,000-trial sweep's end spent 10 s here with one parameter. On a seeded sample of 200 per
# ranking: 15 s at 1,000 trials and 12 s at 10,000, with the first two parameters of every ranking the same as
# fANOVA over all 1,000 (only parameters with near-zero shares swapped places). PED-ANOVA (Optuna 5's default)
# answers another question (see above); over all 10,000 trials of the quickstart's space it took 5.8 s against
# 18.5 s for this sampled fANOVA (bench/optuna_cost.py), a cost that no longer grows with the sweep.
MAX_TRIALS = 200
EVALUATOR = f"fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0) on at most {MAX_TRIALS} trials (seeded sample)"


def _bounded(trials: List[optuna.trial.FrozenTrial], limit: int) -> List[optuna.trial.FrozenTrial]:
    """At most ``limit`` of ``trials``: a seeded sample, so a ranking is the same each time it is computed."""
    if len(trials) <= limit:
        return trials
    return sorted(random.Random(0).sample(trials, limit), key=lambda t: t.number)


def _single_objective(trials: List[optuna.trial.FrozenTrial], i: int, direction: str) -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials([optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=t.values[i])
                      for t in trials])
    return study


def _rank(trials: List[optuna.trial.FrozenTrial], i: int, direction: str) -> Dict[str, Any]:
    if len(trials) < MIN_TRIALS:
        return {"skipped": f"{len(trials)} completed trials (fANOVA needs at least {MIN_TRIALS})"}
    trials = _bounded(trials, MAX_TRIALS)
    common = sorted(k for k in trials[0].params
                    if all(k in t.params for t in trials) and len({repr(t.params[k]) for t in trials}) > 1)
    if not common:
        return {"skipped": "no parameter that every one of these trials has takes more than one value"}
    try:
        imp = optuna.importance.get_param_importances(
            _single_objective(trials, i, direction), evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0),
            params=common)
    except (RuntimeError, ValueError) as e:  # e.g. every value of the objective is the same
        return {"skipped": f"{type(e).__name__}: {e}"}
    return {k: float(v) for k, v in imp.items()}


def param_importances(study: optuna.Study, objectives: Sequence) -> Dict[str, Any]:
    """``{"evaluator", "trials", "objectives": {metric: {"all": {param: share}, "per_method":
    {method: {param: share}}}}}``; a ranking that cannot be computed says why (``skipped``)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    methods = sorted({t.params["method"] for t in complete if "method" in t.params})
    out: Dict[str, Any] = {"evaluator": EVALUATOR, "trials": len(complete), "objectives": {}}
    for i, o in enumerate(objectives):
        direction = "minimize" if o.mode == "min" else "maximize"
        entry: Dict[str, Any] = {"all": _rank(complete, i, direction)}
        if methods:
            entry["per_method"] = {m: _rank([t for t in complete if t.params.get("method") == m], i, direction)
                                   for m in methods}
        out["objectives"][o.metric] = entry
    return out


def format_importances(imp: Dict[str, Any]) -> str:
    lines = [f"parameter importance ({imp['evaluator']}, {imp['trials']} completed trials)"]
    for metric, entry in imp["objectives"].items():
        for scope, ranking in [("all trials", entry["all"])] + [(f"method {m}", r) for m, r in entry.get("per_method", {}).items()]:
            if "skipped" in ranking:
                lines.append(f"  {metric}, {scope}: skipped ({ranking['skipped']})")
            else:
                lines.append(f"  {metric}, {scope}: " + ", ".join(f"{k} {v:.2f}" for k, v in ranking.items()))
    return "\n".join(lines)


def plot_importances(imp: Dict[str, Any], path):
    """One bar chart per objective (the all-trials ranking)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = list(imp["objectives"].items())
    fig, axes = plt.subplots(1, len(entries), figsize=(5 * len(entries), 3.4), dpi=120, squeeze=False)
    for ax, (metric, entry) in zip(axes[0], entries):
        ranking = entry["all"]
        if "skipped" in ranking:
            ax.text(0.5, 0.5, "skipped:\n" + ranking["skipped"], ha="center", va="center", wrap=True, fontsize=8)
            ax.set_axis_off()
        else:
            names = list(ranking)[::-1]
            ax.barh(names, [ranking[n] for n in names], color="steelblue")
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of variance (fANOVA)")
        ax.set_title(metric)
    fig.suptitle(f"parameter importance, {imp['trials']} completed trials")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
