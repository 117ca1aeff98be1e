"""The YAML's structural sections as pydantic models (sweep, resources, mlflow, objectives, constraints, final_eval)
and the top-level keys; the training sections are the torch core's own dataclasses (``raysweep.train.spec``)."""

from dataclasses import dataclass, field
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..evaluation.suite import DEFAULT_PGD_AA_GAP

BUDGET_METRICS = ("train_time_s", "cost")  # what a sweep spends: seconds of training, or passes
METRICS = ("train_time_s", "cost", "val_robust_acc", "val_clean_acc", "train_loss", "train_acc", "epoch_time_s")
# A metric key stays a plain ``str`` so parse.py can answer a typo with "did you mean"; ``enum`` (JSON Schema's word
# for allowed values) declares the same tuple for the schema and the configuration reference.
_METRIC = {"enum": list(METRICS)}
DEFAULT_OBJECTIVES = ({"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"})
MAX_CONCURRENT = 10_000
NAME_PUNCTUATION = "-_."  # besides letters and digits: the name becomes a directory and an MLflow experiment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    metric: str = Field(description="a reported metric to optimise", json_schema_extra=_METRIC)
    mode: Literal["min", "max"] = Field(description="min: lower is better; max: higher is better")


class Constraint(_Strict):
    """A bound a trial must meet to count (Optuna's constraint-aware sampling; off the front)."""

    metric: str = Field(description="the bounded metric", json_schema_extra=_METRIC)
    min: Optional[float] = Field(None, description="lowest value that counts (null: no lower bound)")
    max: Optional[float] = Field(None, description="highest value that counts (null: no upper bound)")

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

    scheduler: Literal["mo_asha", "asha", "hyperband"] = Field(
        "asha", description="mo_asha: ASHA promoting by Pareto rank on the objectives; asha, hyperband: Ray Tune's, on metric")
    metric: Optional[str] = Field(None, description="asha/hyperband only: the metric compared (null: val_robust_acc)",
                                  json_schema_extra=_METRIC)
    mode: Optional[Literal["min", "max"]] = Field(None, description="asha/hyperband only: direction of metric (null: max)")
    grace_period: int = Field(1, ge=1, description="epochs every trial gets before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1, description="1/reduction_factor of the trials reaching a rung go on to the next")


class SweepSection(_Strict):
    num_samples: int = Field(8, ge=1, le=100_000, description="trials (sampled configurations) in the sweep")
    max_concurrent: Union[Annotated[int, Field(ge=1, le=MAX_CONCURRENT)], Literal["auto"]] = Field(
        2, description="trials at a time; auto: as many as the cluster holds at its largest (its autoscaler's node "
                       "types included), at most 16 for tpe, the population for nsga2, 256 for random")
    sampler: Literal["tpe", "nsga2", "random"] = Field("tpe", description="Optuna sampler that proposes configurations")
    seed: int = Field(0, ge=0, description="sampler seed (a resumed sweep moves it on by the trials already run)")
    repeats: int = Field(1, ge=1, le=100, description="seeds per sampled config; the front uses their mean")
    front_includes_flagged: bool = Field(False, description="let trials flagged catastrophic_overfit onto the front")
    max_failures: int = Field(1, ge=0, le=100, description="retries of a failing trial before it is marked failed")
    population_size: Optional[int] = Field(None, ge=2, description="nsga2 population (default: min(num_samples, 8))")
    hypervolume_ref: Optional[Dict[str, float]] = Field(None, description="reference point of the front's hypervolume, "
                                                         "one value per objective (default: derived from the first finished trial)")
    enqueue: List[Dict[str, Any]] = Field(default_factory=list, description="points evaluated first (e.g. paper defaults); "
                                          "an optional label names the point on its run (tag label)")
    early_stopping: Optional[EarlyStopping] = Field(None, description="stop unpromising trials early (null: every trial "
                                                                      "trains all its epochs)")
    budget: Optional[Dict[str, float]] = Field(
        None, description="stop starting trials once the sweep's total train_time_s (seconds) or cost has reached "
                          "this, e.g. {cost: 200}; running trials finish (null: num_samples decides)",
        json_schema_extra={"allowed": "one key, train_time_s or cost, with a number > 0"})

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v):
        if v is None:
            return v
        ok = isinstance(v, dict) and len(v) == 1 and next(iter(v)) in BUDGET_METRICS
        val = next(iter(v.values())) if ok else None
        if not ok or isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val < float("inf"):
            raise ValueError(f"allowed: one key, {' or '.join(BUDGET_METRICS)}, with a number > 0 (e.g. {{cost: 200}})")
        return {next(iter(v)): float(val)}

    @field_validator("max_concurrent", mode="before")
    @classmethod
    def _concurrency(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_CONCURRENT):
            return v
        if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= MAX_CONCURRENT:
            return int(v)
        raise ValueError(f"allowed: a whole number from 1 to {MAX_CONCURRENT}, or auto")


class ResourcesSection(_Strict):
    num_workers: int = Field(1, ge=1, le=4096, description="DDP workers per trial")
    cpus_per_worker: float = Field(1.0, gt=0, le=1024, description="CPUs reserved per worker")
    gpus_per_worker: float = Field(1.0, ge=0, le=64, description="used when a GPU is in use; fractions allowed")
    use_gpu: Union[bool, Literal["auto"]] = Field(
        "auto", description="train on GPUs; auto: when the cluster has one or its autoscaler can add one")
    # auto: in the Tune trial's own process for single-worker CPU trials (no per-trial Ray Train start-up),
    # a Ray Train run for multi-worker and GPU trials (DDP, nccl, a GPU per worker); bench/overhead.py measures both.
    executor: Literal["train", "inprocess", "auto"] = Field(
        "auto", description="train: a Ray Train run per trial; inprocess: in the Tune trial's process (1 worker)")
    # How a multi-worker trial's workers are placed on nodes (Ray placement-group strategies):
    # pack fills a node first (fast intra-node DDP); spread puts them on different nodes.
    placement: Literal["pack", "spread", "strict_pack", "strict_spread"] = Field(
        "pack", description="Ray placement strategy of a multi-worker trial's workers")


class MlflowSection(_Strict):
    tracking_uri: Optional[str] = Field(None, description="MLflow tracking URI (null: $MLFLOW_TRACKING_URI, else a "
                                                          "sqlite store in the work directory)")
    experiment: Optional[str] = Field(None, description="MLflow experiment (null: the sweep's name)")


AttackName = Literal["clean", "fgsm", "pgd20", "pgd50x10", "cw20", "autoattack", "square"]


class FinalEvalSection(_Strict):
    enabled: bool = Field(True, description="evaluate the selected trials on the test set after the sweep")
    attacks: List[AttackName] = Field(["clean", "pgd20"], description="attacks run on the test set (clean: none)")
    n: Optional[int] = Field(None, ge=1, description="test examples (null: the whole test set)")
    # Expensive attacks on fewer images: the FIRST n test images, so every configuration (and
    # every seed) is attacked on the same images, e.g. {autoattack: 500}.
    # parse.py checks the values first (a whole number >= 1, the attack listed in attacks), in its own words.
    attack_n: Dict[AttackName, Annotated[int, Field(ge=1)]] = Field(default_factory=dict,
                                                                     description="per-attack number of test images")
    members: Literal["front", "most_robust", "all"] = Field(
        "front", description="trials evaluated: the Pareto front, its most robust member, or every finished trial")
    best: bool = Field(True, description="also evaluate the best-on-validation checkpoint (test_best_*) when it is not the last")
    pgd_aa_gap: float = Field(DEFAULT_PGD_AA_GAP, gt=0, le=1,
                              description="PGD above AutoAttack by more than this raises the masking flag")


REQUIRED = object()  # a top-level key's default: none, the key must be given


@dataclass(frozen=True)
class TopKey:
    """A top-level key the parser reads by hand (the sections have their own models); the reference renders it."""

    doc: str
    type: str = "mapping"
    default: Any = field(default_factory=dict)
    allowed: str = ""


_TOP = {
    "name": TopKey("names the sweep: its directory and, by default, its MLflow experiment", "str", REQUIRED,
                   "letters, digits, " + ", ".join(f"'{c}'" for c in NAME_PUNCTUATION)),
    "description": TopKey("free text", "str or null", None),
    "imports": TopKey("modules to import first (they register your own methods or models)", "list of str", []),
    "method": TopKey("the training method, or several to search over", "str or {choice: [...]}", REQUIRED),
    "dataset": TopKey("data and its validation split"),
    "model": TopKey("the network"),
    "threat": TopKey("the perturbation set trained and evaluated against"),
    "train": TopKey("optimisation and training-loop settings"),
    "eval": TopKey("per-epoch validation (the metrics the sweep optimises)"),
    "pruning": TopKey("data pruning, composable with any method (null: train on all data)", default=None),
    "params": TopKey("fixed method hyperparameters, keyed by method in a cross-method sweep"),
    "search": TopKey("swept keys and their distributions"),
    "objectives": TopKey("metrics the sweep optimises; the front is over these", "list of mappings",
                         list(DEFAULT_OBJECTIVES), "non-empty, metrics distinct"),
    "constraints": TopKey("bounds a trial must meet to count", "list of mappings", [], "min, max or both; min ≤ max"),
    "sweep": TopKey("search settings"),
    "resources": TopKey("per-trial resources"),
    "mlflow": TopKey("tracking settings"),
    "storage_path": TopKey("where the sweeps' state and checkpoints go (null: $RAYSWEEP_STORAGE_PATH, else "
                           "raysweep_runs in the work directory)", "str or null", None, "a path, or an s3:// or gs:// URI"),
    "final_eval": TopKey("test-set evaluation after the sweep"),
}
