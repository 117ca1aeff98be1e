"""Optuna multi-objective search behind Ray Tune's ``Searcher`` interface, via ask/tell.

Why not ``OptunaSearch``: it keeps NaN/failed trials RUNNING forever in the study, hides the
study, needs every report to carry every objective (or aborts the whole fit), and cannot
express a method choice with per-method conditional parameters. Here the study lives beside the
sweep (``study_store.py``), so a resumed sweep and optuna-dashboard both see it, and
every Tune trial ends as COMPLETE (with all objectives) or FAIL in Optuna.
"""

import math
import pickle
import warnings
from typing import Any, Dict, Optional

import optuna
from ray.tune.search import Searcher

from ..config import SearchParam, SweepConfig
from .budget import budget_of
from .budget import describe as budget_line
from .study_space import distribution, reconcile
from .trial_config import pack


def make_sampler(cfg: SweepConfig, resumed_at: int = 0):
    """``resumed_at``: the trials a resumed study already holds. A sampler seeded as at the start
    would replay its sequence from the beginning, so a resumed sweep's random start-up trials
    would repeat its first ones; the seed moves on by that count instead (still reproducible)."""
    s = cfg.sweep
    seed = s.seed + 7919 * resumed_at if (s.seed is not None and resumed_at) else s.seed
    if s.sampler == "nsga2":
        pop = s.population_size or max(2, min(s.num_samples, 8))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, s.num_samples // 2)))


TPE_MANY_TRIALS = 2000


def sampler_cost_note(cfg: SweepConfig) -> Optional[str]:
    """A line for a sweep whose sampler costs the driver more per trial as the study grows: TPE fits its densities to
    every finished trial on each ask (an ask + tell took 28 ms at 1,000 trials and 0.34 s at 10,000 in
    ``bench/results/optuna_cost.json``), so a sweep of thousands of short trials can wait on it. None otherwise."""
    s = cfg.sweep
    if s.sampler != "tpe" or s.num_samples <= TPE_MANY_TRIALS:
        return None
    return (f"sampler tpe over {s.num_samples} trials: its cost per trial grows with the study (~0.03 s at 1,000 "
            f"trials, ~0.3 s at 10,000); nsga2 or random keep it flat (docs/performance.md#driver-scale)")


def constraint_key(i: int, metric: str) -> str:
    return f"{i}:{metric}"


def suggest(trial: optuna.Trial, sp: SearchParam):
    d = distribution(sp)  # the one study_space compares a resumed study against
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(sp.key, d.choices)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(sp.key, d.low, d.high, log=d.log, step=d.step)
    return trial.suggest_float(sp.key, d.low, d.high, log=d.log, step=d.step)


def sample_point(trial: optuna.Trial, cfg: SweepConfig) -> Dict[str, Any]:
    """Define-by-run: the method first, then only the parameters that method uses."""
    sampled: Dict[str, Any] = {}
    if cfg.is_cross_method:
        sampled["method"] = trial.suggest_categorical("method", cfg.methods)
    method = sampled.get("method", cfg.methods[0])
    for sp in cfg.search:
        if sp.methods is None or method in sp.methods:
            sampled[sp.key] = suggest(trial, sp)
    return sampled


def open_study(cfg: SweepConfig, storage, study_name: str, notes: Optional[list] = None,
               started: Optional[set] = None) -> optuna.Study:
    """``notes`` receives a line for the user when a resumed study had to be rebuilt for an
    edited search space (study_space.reconcile). ``started``: the trial numbers the sweep's
    state records; a labelled point asked by a driver that died before Tune started it is not
    one of them, and is queued again (the orphan itself ends FAIL)."""
    from ..tracking.sqlite_wal import write_ahead

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write_ahead(storage)
    note = reconcile(cfg, storage, study_name)
    if note and notes is not None:
        notes.append(note)
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True, sampler=make_sampler(cfg),
        directions=["minimize" if o.mode == "min" else "maximize" for o in cfg.objectives],
    )
    if study.metric_names is None:  # optuna-dashboard labels the objectives with these
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in cfg.objectives])
    # A new study: the YAML's enqueued points come first. A resumed one: labelled points the YAML
    # gained since (e.g. a tuned configuration added to a reproduction) are queued, nothing twice.
    resumed = bool(study.trials)  # taken before the loop: each enqueue adds a (waiting) trial
    if resumed:
        study.sampler = make_sampler(cfg, resumed_at=len(study.trials))
    known = {t.user_attrs.get("label") for t in study.trials
             if started is None or t.number in started or t.state == optuna.trial.TrialState.WAITING}
    for point in cfg.sweep.enqueue:
        label = point.get("label")
        if resumed and (not label or label in known):
            continue
        study.enqueue_trial({k: v for k, v in point.items() if k != "label"},
                            user_attrs={"label": label} if label else None)
    return study


class OptunaMultiObjectiveSearch(Searcher):
    def __init__(self, cfg: SweepConfig, study: optuna.Study, resume_points=(), spent=None, notify=None):
        """``resume_points``: (optuna number, sampled params) of trials a killed driver left
        unfinished; they are issued again first, under the same number, and their Ray Train
        run (named after the number) restores from its last checkpoint. ``spent(metric)``: what the
        sweep has spent of ``sweep.budget`` so far; ``notify``: told once, in a line, when it is reached."""
        super().__init__(metric=None, mode=None)
        self.cfg = cfg
        self.study = study
        self.live: Dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self.pending = list(resume_points)
        self.suggested = 0
        self.budget = budget_of(cfg.sweep.budget)
        self.spent, self.notify = spent, notify
        self.budget_reached: Optional[str] = None

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # objectives come from the YAML, not from TuneConfig

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        label = None
        if self.pending:  # started under the budget by an earlier driver: they finish whatever it says now
            number, sampled = self.pending.pop(0)
        elif self._over_budget():
            return Searcher.FINISHED
        else:
            ot = self.study.ask()
            number, sampled = ot.number, sample_point(ot, self.cfg)
            label = ot.user_attrs.get("label")  # an enqueued point's name
        spec = self.cfg.trial_spec(sampled)
        self.live[trial_id] = number
        self.suggested += 1
        return {"sampled": sampled, "spec": pack(spec.to_dict()), "optuna_trial": number,
                "train_run_name": train_run_name(number), "label": label}

    def _over_budget(self) -> bool:
        """Asked before each new trial: the budget is what has been spent, running trials included, so the
        last trials started may take the sweep past it by what they spend after starting."""
        if self.budget is None or self.spent is None:
            return False
        if self.budget_reached is None:
            metric, bound = self.budget
            used = self.spent(metric)
            if used < bound:
                return False
            self.budget_reached = budget_line(metric, bound, used)
            if self.notify:
                self.notify(f"raysweep: budget reached ({self.budget_reached}): no new trial starts; running ones finish")
        return True

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        number = self.live.pop(trial_id, None)
        if number is None:
            return
        values = objective_values(self.cfg, result) if (result and not error) else None
        if values is None:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
            return
        if self.cfg.constraints:
            # Optuna 5's TPE and NSGA-II read a trial's constraints (<= 0: met) from what
            # Trial.set_constraint stored; random search ignores them. The Trial handle of a
            # number comes from the storage (ask() handles do not survive a resumed driver).
            storage = self.study._storage
            trial = optuna.Trial(self.study, storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number))
            for i, c in enumerate(self.cfg.constraints):
                trial.set_constraint(constraint_key(i, c.metric), c.violation(result))
        self.study.tell(number, values)

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"live": self.live, "suggested": self.suggested, "pending": self.pending}, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            st = pickle.load(f)
        self.live, self.suggested, self.pending = st["live"], st["suggested"], st.get("pending", [])


def train_run_name(number: int) -> str:
    """Ray Train run (and checkpoint folder) of an Optuna trial: stable across restarts."""
    return f"train-{number:04d}"


def objective_values(cfg: SweepConfig, result: Dict) -> Optional[list]:
    """The objective values of a finished trial, or None when any is missing or not finite."""
    vals = []
    for o in cfg.objectives:
        v = result.get(o.metric)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        vals.append(float(v))
    return vals
