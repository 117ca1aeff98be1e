"""A resumed sweep whose YAML changed its search space: rebuild the Optuna study for the new space.

Optuna refuses to change a categorical's choices inside a study ("CategoricalDistribution does
not support dynamic value space"), so a reproduction that gains a labelled configuration with a
new value (epochs 8 where the choices were [3, 4]) or a sweep that gains a method would die at
its first new trial, after Ray had started. Instead, before anything starts, the study is
rebuilt under the same name with every earlier trial (same numbers, states, values and
attributes) re-expressed in the new space, so the sampler keeps its history and the trial
numbers that name Ray Train runs and checkpoints stay valid. A parameter value that the new
space no longer holds is left out of that trial's history (its objective values stay).

Crash safety: the old study is first copied whole to ``<name>@space-<k>`` (kept, for the record
and for optuna-dashboard) and marked complete; only then is the original deleted and rebuilt,
and the rebuilt study names the backup it came from. A driver killed anywhere in between leaves
a complete backup that no study names, and the next open rebuilds from it.
"""

import copy
from typing import Dict, List, Optional

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution,
                                  check_distribution_compatibility)

from ..config import SearchParam, SweepConfig

BACKUP_DONE = "raysweep.backup_complete"
REBUILT_FROM = "raysweep.rebuilt_from"


def distribution(sp: SearchParam) -> BaseDistribution:
    """The Optuna distribution ``searcher.suggest`` samples ``sp`` from."""
    d = sp.dist
    if d.kind == "choice":
        return CategoricalDistribution(d.choices)
    if d.kind == "int":
        return IntDistribution(d.low, d.high, log=d.log, step=d.step or 1)
    return FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)


def space(cfg: SweepConfig) -> Dict[str, BaseDistribution]:
    out: Dict[str, BaseDistribution] = {}
    if cfg.is_cross_method:
        out["method"] = CategoricalDistribution(cfg.methods)
    for sp in cfg.search:
        out[sp.key] = distribution(sp)
    return out


def _compatible(old: BaseDistribution, new: BaseDistribution) -> bool:
    try:
        check_distribution_compatibility(old, new)
        return True
    except ValueError:
        return False


def changed_params(study: optuna.Study, wanted: Dict[str, BaseDistribution]) -> Dict[str, str]:
    """Parameter -> 'old -> new', for each one whose stored distribution Optuna would refuse."""
    out: Dict[str, str] = {}
    for t in study.get_trials(deepcopy=False):
        for name, old in t.distributions.items():
            new = wanted.get(name)
            if new is not None and name not in out and not _compatible(old, new):
                shown = _show(new)
                if isinstance(old, CategoricalDistribution) and isinstance(new, CategoricalDistribution):
                    shown = str(list(new.choices))
                out[name] = f"{_show(old)} -> {shown}"
    return out


def _show(d: BaseDistribution) -> str:
    if isinstance(d, CategoricalDistribution):
        return f"choices {list(d.choices)}"
    return f"{type(d).__name__}({d.low}, {d.high})"


def _remap(trial: optuna.trial.FrozenTrial, wanted: Dict[str, BaseDistribution]) -> optuna.trial.FrozenTrial:
    t = copy.deepcopy(trial)
    params, dists = {}, {}
    for name, value in trial.params.items():
        old, new = trial.distributions[name], wanted.get(name)
        if new is not None and _holds(new, value):
            params[name], dists[name] = value, new
        elif new is None or _compatible(old, new):
            params[name], dists[name] = value, old  # what Optuna itself would keep
        # else: the value left the space; the trial keeps its values, not this parameter
    t.params, t.distributions = params, dists
    return t


def _holds(d: BaseDistribution, value) -> bool:
    try:
        return d._contains(d.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _backups(storage: str, name: str) -> List[optuna.study.StudySummary]:
    return sorted((s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
                   if s.study_name.startswith(f"{name}@space-")),
                  key=lambda s: int(s.study_name.rsplit("-", 1)[1]))


def _rebuild(storage: str, name: str, backup: str, wanted: Dict[str, BaseDistribution]) -> None:
    src = optuna.load_study(study_name=backup, storage=storage)
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass  # a killed earlier rebuild had deleted it already
    dst = optuna.create_study(study_name=name, storage=storage, directions=src.directions)
    for key, value in src._storage.get_study_system_attrs(src._study_id).items():
        dst._storage.set_study_system_attr(dst._study_id, key, value)
    for key, value in src.user_attrs.items():
        if key not in (BACKUP_DONE, REBUILT_FROM):
            dst.set_user_attr(key, value)
    for t in src.get_trials(deepcopy=False):  # in number order: numbers come out the same
        dst._storage.create_new_trial(dst._study_id, template_trial=_remap(t, wanted))
    dst.set_user_attr(REBUILT_FROM, backup)  # last: the rebuild is complete


def reconcile(cfg: SweepConfig, storage: str, name: str) -> Optional[str]:
    """Make study ``name`` accept the YAML's search space; returns a line for the user when it
    had to be rebuilt (None when nothing changed or there is no study yet)."""
    wanted = space(cfg)
    backups = _backups(storage, name)
    for b in backups:  # a copy a killed driver left half-made holds nothing the original lacks
        if not b.user_attrs.get(BACKUP_DONE):
            optuna.delete_study(study_name=b.study_name, storage=storage)
    done = [b for b in backups if b.user_attrs.get(BACKUP_DONE)]
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        study = None
    if done and (study is None or study.user_attrs.get(REBUILT_FROM) != done[-1].study_name):
        _rebuild(storage, name, done[-1].study_name, wanted)  # a rebuild a killed driver left unfinished
        study = optuna.load_study(study_name=name, storage=storage)
    if study is None:
        return None
    changes = changed_params(study, wanted)
    if not changes:
        return None
    n_trials, backup = len(study.trials), f"{name}@space-{len(done) + 1}"
    optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage, to_study_name=backup)
    optuna.load_study(study_name=backup, storage=storage).set_user_attr(BACKUP_DONE, True)
    _rebuild(storage, name, backup, wanted)
    what = "; ".join(f"{k}: {v}" for k, v in sorted(changes.items()))
    return (f"search space changed since the study began ({what}): the Optuna study was rebuilt for the new "
            f"space with its {n_trials} trials as history; the old one is kept as '{backup}'")
