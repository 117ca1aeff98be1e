"""The fully resolved configuration of one trial, as plain dataclasses with bounds.

This is what a Ray Train worker receives (as a dict) and what MLflow logs as a child run's
params. The YAML layer (``raysweep.config``) validates user files into these."""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..hparams import build_params, hp


@dataclass
class DatasetSpec:
    name: str = hp("mnist", doc="dataset registry key")
    root: Optional[str] = hp(None, doc="directory with the dataset files (standard layout)")
    val_size: int = hp(5000, low=0, doc="examples carved from the training set for model selection")
    train_size: Optional[int] = hp(None, low=1, doc="subsample the training set (after the validation split)")
    test_size: Optional[int] = hp(None, low=1, doc="subsample the test set used by final evaluation")
    split_seed: int = hp(0, low=0, doc="seed of the validation split and subsamples")


@dataclass
class ModelSpec:
    name: str = hp("small_cnn", doc="model registry key")
    width: Optional[int] = hp(None, low=1, doc="base width (model default when null)")
    mean: Optional[List[float]] = hp(None, doc="per-channel normalisation mean (inside the model)")
    std: Optional[List[float]] = hp(None, doc="per-channel normalisation std (inside the model)")


@dataclass
class ThreatSpec:
    norm: str = hp("linf", choices=("linf", "l2"), doc="threat-model norm")
    eps: float = hp(0.3, low=0.0, low_open=True, high=1.0, doc="perturbation budget in [0,1] pixel units")


@dataclass
class TrainSpec:
    epochs: int = hp(5, low=1, high=10_000, doc="passes over the training set")
    batch_size: int = hp(128, low=1, high=1_000_000, doc="examples per step, split across a trial's workers")
    lr: float = hp(0.1, low=0.0, low_open=True, high=10.0, doc="learning rate (the peak of the cyclic schedule)")
    optimizer: str = hp("sgd", choices=("sgd", "adam"), doc="optimiser of the model's weights")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="SGD momentum (unused by adam)")
    weight_decay: float = hp(5e-4, low=0.0, high=1.0, doc="L2 weight decay")
    schedule: str = hp("cyclic", choices=("constant", "cyclic", "multistep", "cosine", "cyclic_rungs"),
                       doc="LR schedule over training progress (cyclic: 0 → lr at cyclic_peak → 0; cyclic_rungs: "
                       "that cycle once per rung segment, epochs 0-1, 1-2, 2-4, … (early stopping's rungs at grace "
                       "period 1, reduction factor 2), back to 0 at each; pair it with eps_warmup ≤ 1/epochs)")
    cyclic_peak: float = hp(0.4, low=0.0, high=1.0, doc="cyclic: fraction of training at which the LR peaks "
                            "(Wong et al.'s MNIST code: 0.4; their CIFAR-10 code: 0.5)")
    milestones: List[float] = hp([0.5, 0.75], doc="multistep: fractions of training where the LR is multiplied by gamma")
    gamma: float = hp(0.1, low=0.0, low_open=True, high=1.0, doc="multistep: LR factor at each milestone")
    eps_warmup: float = hp(0.0, low=0.0, high=1.0, doc="fraction of training over which the training ε ramps linearly from 0 (0: off)")
    amp: str = hp("auto", choices=("auto", "bf16", "off"), doc="bf16 autocast of the training step (auto: on CUDA only); evaluation is always fp32")
    channels_last: str = hp("auto", choices=("auto", "on", "off"), doc="NHWC memory format (auto: on CUDA only)")
    compile: bool = hp(False, doc="torch.compile the model (first epoch pays the compilation)")
    grad_clip: Optional[float] = hp(None, low=0.0, low_open=True, doc="clip the gradient norm (null: off)")
    seed: int = hp(0, low=0, doc="seed of weight initialisation and batch order (repeat i uses seed + i)")


@dataclass
class EvalSpec:
    val_pgd_steps: int = hp(10, low=1, high=1000, doc="PGD steps for val_robust_acc")
    val_pgd_alpha: Optional[float] = hp(None, low=0.0, low_open=True, doc="PGD step size; null: 2.5·ε/steps")
    val_n: Optional[int] = hp(None, low=1, doc="evaluate on the first n validation examples (null: all)")
    batch_size: int = hp(500, low=1, doc="examples per validation batch")
    val_fgsm: bool = hp(True, doc="also report val_fgsm_acc (FGSM, no random start): the catastrophic-overfitting signal")
    co_detect: bool = hp(True, doc="detect catastrophic overfitting: val_robust_acc falls by more than co_drop while val_fgsm_acc rises")
    co_drop: float = hp(0.2, low=0.0, low_open=True, high=1.0, doc="fall of val_robust_acc (absolute) that counts as a collapse")
    co_action: str = hp("rollback", choices=("flag", "stop", "rollback"),
                        doc="flag and go on; stop; or stop and roll back to the previous epoch's weights")


@dataclass
class PruningSpec:
    """Data pruning policy, composable with any method (see raysweep.train.pruning)."""

    mode: str = hp("static", choices=("static", "dynamic", "none"),
                   doc="none: train on all data (the unpruned baseline inside a pruning sweep)")
    keep: float = hp(0.5, low=0.0, low_open=True, high=1.0, high_open=True, doc="fraction of training examples kept")
    rule: str = hp("low", choices=("high", "low", "both", "random", "loss", "gradmatch"),
                   doc="examples kept: low/high the lowest-loss, loss the highest, both the middle; random; gradmatch")
    warmup_epochs: int = hp(5, low=0, doc="epochs on all data before the first selection (Kaufmann et al.'s pruning_epoch default)")
    every: int = hp(5, low=1, doc="dynamic: re-select every this many epochs")
    stratified: bool = hp(True, doc="apply the rule per class, keeping class proportions")


SECTIONS = {"dataset": DatasetSpec, "model": ModelSpec, "threat": ThreatSpec, "train": TrainSpec, "eval": EvalSpec}


@dataclass
class TrialSpec:
    method: str = "fgsm_rs"
    method_params: Dict[str, Any] = field(default_factory=dict)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    threat: ThreatSpec = field(default_factory=ThreatSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    pruning: Optional[PruningSpec] = None
    device: str = "auto"
    imports: List[str] = field(default_factory=list)  # modules that register user methods/models
    repeats: int = 1  # seeds trained side by side for this config; reports carry their mean

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "TrialSpec":
        """Build from a plain dict (as shipped to Ray workers); raises ValueError on bad input."""
        d = dict(d)
        kw: Dict[str, Any] = {}
        errors: List[Tuple[str, str]] = []
        for name, sec_cls in list(SECTIONS.items()) + [("pruning", PruningSpec)]:
            if name in d and d[name] is not None:
                inst, errs = build_params(sec_cls, dict(d.pop(name)))
                errors += [(f"{name}.{k}", m) for k, m in errs]
                kw[name] = inst
            else:
                d.pop(name, None)
        for k in ("method", "method_params", "device", "imports", "repeats"):
            if k in d:
                kw[k] = d.pop(k)
        errors += [(k, "unknown key") for k in d]
        if errors:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in errors))
        return cls(**kw)


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists stay values."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
