"""Early stopping: the Ray Tune scheduler a sweep's ``sweep.early_stopping`` asks for."""

from typing import Any, Dict, Optional

from ..config import SweepConfig


def make_scheduler(cfg: SweepConfig, trials: Optional[Dict[str, Dict[str, Any]]] = None):
    """Early stopping with epochs as the time axis; None: off. ``mo_asha`` ranks on the sweep's
    objectives and rebuilds its rungs from ``trials`` (state.json) on a resumed sweep; ASHA /
    HyperBand rank on the YAML's scalar proxy."""
    es = cfg.sweep.early_stopping
    if es is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    max_t = int(cfg.base["train"]["epochs"])
    if es.scheduler == "mo_asha":
        from .mo_asha import MultiObjectiveASHA

        history = {int(r["trial"]): r.get("history", []) for r in (trials or {}).values()}
        return MultiObjectiveASHA([(o.metric, o.mode) for o in cfg.objectives], max_t=max_t,
                                  grace_period=es.grace_period, reduction_factor=es.reduction_factor, history=history)
    proxy, mode = es.metric or "val_robust_acc", es.mode or "max"
    if es.scheduler == "hyperband":
        return HyperBandScheduler(time_attr="epoch", metric=proxy, mode=mode, max_t=max_t,
                                  reduction_factor=es.reduction_factor)
    return ASHAScheduler(time_attr="epoch", metric=proxy, mode=mode, max_t=max_t,
                         grace_period=es.grace_period, reduction_factor=es.reduction_factor)
