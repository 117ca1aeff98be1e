"""Checks that need the data or the model, run once on the driver before the first trial.

``parse_config`` validates a YAML against the spec's types and bounds without touching data. What
only the data can tell (a split larger than the dataset, a ``root`` whose files are malformed, a
model that cannot take the dataset's input shape) would otherwise surface as the same traceback
in every trial, each retried, the whole budget burnt. Here it is one ``ConfigError`` (exit 2)
before anything is started or written."""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import torch

from .config import SweepConfig
from .data.bundle import load_dataset
from .errors import ConfigError, DataError
from .methods import get_method
from .models import build_model


def _values(sp) -> List[Any]:
    """The values of a searched key worth checking: every choice, or both ends of a range."""
    if sp.dist.kind == "choice":
        return list(sp.dist.choices)
    return [sp.dist.low, sp.dist.high]


def _candidate_specs(cfg: SweepConfig) -> Iterable[Tuple[str, Dict[str, Any]]]:
    """(the key to blame, trial spec) for each method at its fixed values, then each searched dataset or
    model value alone: one value at a time keeps this linear in the number of keys."""
    for m in cfg.methods:
        yield "", cfg.trial_spec({"method": m})
    for sp in cfg.search:
        if sp.target[0] not in ("dataset", "model"):
            continue
        for v in _values(sp):
            for m in (sp.methods or cfg.methods):
                yield f"search.{sp.key}", cfg.trial_spec({"method": m, sp.key: v})


def _data_key(spec, err: str) -> str:
    if "val_size" in err:
        return "dataset.val_size"
    return "dataset.root" if spec.dataset.root else "dataset.name"


def check_paths(cfg: SweepConfig) -> None:
    """The filesystem paths a sweep reads: a dataset root that does not exist is one line, not a loader's error."""
    root = cfg.base["dataset"].get("root")
    if root is not None and not Path(root).expanduser().is_dir():
        raise ConfigError(cfg.file, "dataset.root", f"directory {root} does not exist (expected the "
                                                    f"{cfg.base['dataset']['name']} files in their standard layout)")


def check_against_data(cfg: SweepConfig) -> None:
    """Raise ``ConfigError`` naming the file and key for what the filesystem, the data or the model refuses (and
    for a final evaluation whose attacks need a package that is not installed)."""
    check_paths(cfg)
    _check_attack_packages(cfg)
    datasets: Dict[tuple, Any] = {}
    models: Dict[tuple, Any] = {}  # (name, width, shape, classes) -> the built model
    for blame, spec in _candidate_specs(cfg):
        ds = spec.dataset
        dkey = (ds.name, ds.root, ds.val_size, ds.split_seed)
        if dkey not in datasets:
            try:
                # train/test subsampling cannot fail (a size above the split's keeps it whole): not needed here
                data = load_dataset(ds.name, root=ds.root, val_size=ds.val_size, seed=ds.split_seed)
            except DataError as e:
                key = blame or _data_key(spec, str(e))
                msg = str(e)[len(key) + 1:] if str(e).startswith(f"{key}=") else str(e)
                raise ConfigError(cfg.file, key, msg) from None
            datasets[dkey] = (data.input_shape, data.num_classes)
        shape, classes = datasets[dkey]
        archs = [(spec.model.name, spec.model.width, "model")]
        teacher = getattr(spec, "method_params", {}).get("teacher_model")
        if teacher:
            archs.append((teacher, spec.method_params.get("teacher_width"), f"params.{spec.method}.teacher_model"))
        for name, width, key in archs:
            if (name, width, shape, classes) not in models:
                models[(name, width, shape, classes)] = _check_model(cfg.file, blame or key, name, width, shape,
                                                                     classes, spec.model)
        _check_pairing(cfg.file, blame or "model", spec.method, models[(spec.model.name, spec.model.width, shape,
                                                                        classes)])


def _check_attack_packages(cfg: SweepConfig) -> None:
    """AutoAttack and Square run after training, on the test set: a missing package must fail now."""
    from .evaluation.autoattack import TORCHATTACKS_INSTALL
    from .evaluation.suite import TORCHATTACKS_ATTACKS

    needs = [a for a in cfg.final_eval.attacks if a in TORCHATTACKS_ATTACKS] if cfg.final_eval.enabled else []
    if not needs:
        return
    try:
        import torchattacks  # noqa: F401
    except ImportError:
        raise ConfigError(cfg.file, "final_eval.attacks", f"{', '.join(needs)} need torchattacks, which is not "
                                                         f"installed: {TORCHATTACKS_INSTALL}") from None


def _check_model(file, key, name, width, shape, classes, model_spec) -> None:
    try:
        net = build_model(name, classes, shape, mean=model_spec.mean, std=model_spec.std, width=width).eval()
        with torch.no_grad():
            out = net(torch.zeros(1, *shape))
    except Exception as e:  # the model's own complaint, whatever it is, is what the user needs to read
        msg = " ".join(f"{type(e).__name__}: {e}".split())
        raise ConfigError(file, key, f"{name} cannot take this dataset's {tuple(shape)} inputs ({msg})") from None
    if tuple(out.shape) != (1, classes):
        raise ConfigError(file, key, f"{name} gives {tuple(out.shape[1:])} outputs for {classes} classes")
    return net


def _check_pairing(file, key, method, net) -> None:
    """A method that cannot train this model (FP-Better on a network without skippable blocks) fails here, not
    in its first trial."""
    try:
        get_method(method).check_model(net)
    except ValueError as e:
        raise ConfigError(file, key, f"{type(net).__name__} cannot be trained by {method}: {e}") from None
