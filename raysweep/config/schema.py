"""The YAML's structural sections as pydantic models (sweep, resources, mlflow, objectives, constraints, final_eval)
and the top-level keys; the training sections are the torch core's own dataclasses (``raysweep.train.spec``)."""

from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..evaluation.suite import DEFAULT_PGD_AA_GAP

METRICS = ("train_time_s", "cost", "val_robust_acc", "val_clean_acc", "train_loss", "train_acc", "epoch_time_s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    metric: str
    mode: Literal["min", "max"]


class Constraint(_Strict):
    """A bound a trial must meet to count (Optuna's constraint-aware sampling; off the front)."""

    metric: str
    min: Optional[float] = None
    max: Optional[float] = None

    def violation(self, metrics: Dict[str, Any]) -> float:
        """Optuna's convention: <= 0 is feasible; a missing or non-finite value is infeasible."""
        v = metrics.get(self.metric)
        if not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            return 1.0
        out = -1.0
        if self.min is not None:
            out = max(out, self.min - float(v))
        if self.max is not None:
            out = max(out, float(v) - self.max)
        return out


class EarlyStopping(_Strict):
    """``mo_asha``: ASHA's rungs, promotion by Pareto rank on the sweep's own objectives
    (raysweep/tune/mo_asha.py). ``asha`` / ``hyperband``: Ray Tune's, on ONE scalar proxy
    (``metric``). Optuna's pruners refuse multi-objective studies. A stopped trial keeps its
    last report: a cheaper, usually less robust point."""

    scheduler: Literal["mo_asha", "asha", "hyperband"] = "asha"
    metric: Optional[str] = Field(None, description="asha/hyperband only (default val_robust_acc)")
    mode: Optional[Literal["min", "max"]] = Field(None, description="asha/hyperband only (default max)")
    grace_period: int = Field(1, ge=1, description="epochs every trial gets before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class SweepSection(_Strict):
    num_samples: int = Field(8, ge=1, le=100_000)
    max_concurrent: Union[int, Literal["auto"]] = Field(
        2, description="trials at a time; auto: as many as the cluster holds at its largest (its autoscaler's node "
                       "types included), at most 16 for tpe, the population for nsga2, 256 for random")
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: int = Field(0, ge=0)
    repeats: int = Field(1, ge=1, le=100, description="seeds per sampled config; the front uses their mean")
    front_includes_flagged: bool = Field(False, description="let trials flagged catastrophic_overfit onto the front")
    max_failures: int = Field(1, ge=0, le=100, description="retries of a failing trial before it is marked failed")
    population_size: Optional[int] = Field(None, ge=2, description="nsga2 population (default: min(num_samples, 8))")
    hypervolume_ref: Optional[Dict[str, float]] = Field(None, description="reference point of the front's hypervolume, "
                                                         "one value per objective (default: derived from the first finished trial)")
    enqueue: List[Dict[str, Any]] = Field(default_factory=list, description="points evaluated first (e.g. paper defaults); "
                                          "an optional label names the point on its run (tag label)")
    early_stopping: Optional[EarlyStopping] = None


    @field_validator("max_concurrent", mode="before")
    @classmethod
    def _concurrency(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10_000):
            return v
        if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= 10_000:
            return int(v)
        raise ValueError("allowed: a whole number from 1 to 10000, or auto")


class ResourcesSection(_Strict):
    num_workers: int = Field(1, ge=1, le=4096)
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    gpus_per_worker: float = Field(1.0, ge=0, le=64, description="used when a GPU is in use; fractions allowed")
    use_gpu: Union[bool, Literal["auto"]] = "auto"
    # auto: in the Tune trial's own process for single-worker CPU trials (no per-trial Ray Train start-up),
    # a Ray Train run for multi-worker and GPU trials (DDP, nccl, a GPU per worker); bench/overhead.py measures both.
    executor: Literal["train", "inprocess", "auto"] = "auto"
    # How a multi-worker trial's workers are placed on nodes (Ray placement-group strategies):
    # pack fills a node first (fast intra-node DDP); spread puts them on different nodes.
    placement: Literal["pack", "spread", "strict_pack", "strict_spread"] = "pack"


class MlflowSection(_Strict):
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None


AttackName = Literal["clean", "fgsm", "pgd20", "pgd50x10", "cw20", "autoattack", "square"]


class FinalEvalSection(_Strict):
    enabled: bool = True
    attacks: List[AttackName] = ["clean", "pgd20"]
    n: Optional[int] = Field(None, ge=1, description="test examples (null: the whole test set)")
    # Expensive attacks on fewer images: the FIRST n test images, so every configuration (and
    # every seed) is attacked on the same images, e.g. {autoattack: 500}.
    attack_n: Dict[AttackName, int] = Field(default_factory=dict, description="per-attack number of test images")
    members: Literal["front", "most_robust", "all"] = "front"
    best: bool = Field(True, description="also evaluate the best-on-validation checkpoint (test_best_*) when it is not the last")
    pgd_aa_gap: float = Field(DEFAULT_PGD_AA_GAP, gt=0, le=1,
                              description="PGD above AutoAttack by more than this raises the masking flag")


_TOP = {
    "name": "experiment name (letters, digits, '-', '_', '.')",
    "method": "a method name or {choice: [...]}",
    "dataset": "DatasetSpec", "model": "ModelSpec", "threat": "ThreatSpec", "train": "TrainSpec",
    "eval": "EvalSpec", "pruning": "PruningSpec (optional)", "params": "fixed method hyperparameters",
    "search": "swept parameters", "objectives": "list of {metric, mode}", "sweep": "search settings",
    "constraints": "list of {metric, min, max}: bounds a trial must meet to count",
    "resources": "per-trial resources", "mlflow": "tracking settings", "storage_path": "where Ray and Optuna state go",
    "final_eval": "test-set evaluation of the front", "description": "free text",
    "imports": "modules to import first (they register your own methods or models)",
}
