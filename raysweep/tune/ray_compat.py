"""Every private Ray name raysweep uses, behind one version gate (and one, ``release_trial_statistics``, that
does nothing where its names are missing).

Ray Train offers no public way to do three things the lean launch (``lean_train.py``) does to
save seconds per trial: configure the torch backend without importing torch in the controller,
leave out default callbacks a run never uses, and see Tune's stop request for a trial before
the trial's next report. The names for them live here and nowhere else in the package.

``lean_supported()`` is the gate: on a Ray release these names were tested with
(``TESTED_RAY``) and with every name present, the lean launch; on any other release, or when
a name is gone, Ray's documented path (``TorchTrainer`` with ``TuneReportCallback`` inside a
function trainable) by itself, with one line saying why. ``tests/test_lean_train.py`` runs both.
"""

import functools
import importlib
import os
import sys
from typing import Optional, Tuple

import ray

TESTED_RAY = ((2, 60),)  # major, minor

TORCH_CONFIG = "ray.train.torch.config"  # worker side: Ray's own torch-backend steps
ADDRESS_AND_PORT = ("ray.train._internal.utils", "get_address_and_port")
WORKER_STEPS = ("_set_torch_distributed_env_vars", "_setup_torch_process_group", "_shutdown_torch",
                "TorchConfigContextManager")
_DRIVER_NAMES = (
    ("ray.train.v2._internal.util", "TrainingFramework"),
    ("ray.train.v2._internal.callbacks", "DatasetsCallback"),
    ("ray.train.v2._internal.callbacks.placement_group_callback", "PlacementGroupCleanerCallback"),
    ("ray.train.v2.api.data_parallel_trainer", "DataParallelTrainer"),
    ("ray.train._internal.session", "get_session"),
)


def _version(text: str) -> Tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def unsupported_reason(version: Optional[str] = None) -> Optional[str]:
    """Why the lean launch cannot be used with this Ray, or None when it can."""
    version = version or ray.__version__
    try:
        if _version(version) not in TESTED_RAY:
            return f"Ray {version} is not a release the lean launch was tested with ({_tested()})"
    except ValueError:
        return f"Ray's version {version!r} is not major.minor.patch"
    names = _DRIVER_NAMES + (ADDRESS_AND_PORT,) + tuple((TORCH_CONFIG, n) for n in WORKER_STEPS)
    for module, name in names:
        try:
            if not hasattr(importlib.import_module(module), name):
                return f"{module}.{name} is gone"
        except ImportError:
            return f"{module} is gone"
    if not hasattr(_name("ray.train.v2.api.data_parallel_trainer", "DataParallelTrainer"), "_create_default_callbacks"):
        return "DataParallelTrainer._create_default_callbacks is gone"
    return None


def _tested() -> str:
    return ", ".join(f"{a}.{b}" for a, b in TESTED_RAY)


@functools.lru_cache(maxsize=None)
def lean_supported() -> bool:
    reason = unsupported_reason()
    if reason is not None:
        print(f"raysweep: Ray Train trials use Ray's TorchTrainer: {reason}", file=sys.stderr, flush=True)
    return reason is None


def lean_enabled() -> bool:
    """Read by the sweep driver (not by trial processes, whose environment is Ray's).
    ``RAYSWEEP_LEAN_TRAIN=0`` asks for Ray's documented path on any release."""
    return os.environ.get("RAYSWEEP_LEAN_TRAIN", "1") != "0" and lean_supported()


def _name(module: str, name: str):
    return getattr(importlib.import_module(module), name)


def torch_framework():
    """What Ray Train reports as the run's framework (usage tags, device placement)."""
    return _name("ray.train.v2._internal.util", "TrainingFramework").TORCH


def lean_trainer_class():
    """Ray Train V2's data-parallel trainer (the base of ``TorchTrainer``, whose module imports no
    torch) without the default callbacks a raysweep run never uses: the per-run placement-group
    cleaner and, without Ray Datasets, the dataset manager."""
    base = _name("ray.train.v2.api.data_parallel_trainer", "DataParallelTrainer")
    cleaner = _name("ray.train.v2._internal.callbacks.placement_group_callback", "PlacementGroupCleanerCallback")
    datasets = _name("ray.train.v2._internal.callbacks", "DatasetsCallback")

    class LeanTrainer(base):
        def _create_default_callbacks(self):
            drop = (cleaner,) + (() if self.datasets else (datasets,))
            return [c for c in super()._create_default_callbacks() if not isinstance(c, drop)]

    return LeanTrainer


# Worker side: Ray's own torch-backend steps, called on each Ray Train worker (this module imports
# no torch, so the controller that pickles these by name stays torch-free).
def address_and_port():
    return _name(*ADDRESS_AND_PORT)()


def set_torch_env_vars():
    return _name(TORCH_CONFIG, "_set_torch_distributed_env_vars")()


def setup_process_group(**kwargs):
    return _name(TORCH_CONFIG, "_setup_torch_process_group")(**kwargs)


def shutdown_torch(**kwargs):
    return _name(TORCH_CONFIG, "_shutdown_torch")(**kwargs)


def device_context():
    """Selects this worker's CUDA device around the train function."""
    return _name(TORCH_CONFIG, "TorchConfigContextManager")()


def tune_stop_event():
    """The event Tune sets when it stops this trial (its public signal, ``report`` raising
    ``SystemExit``, comes only with the trial's next report), or None."""
    return getattr(_name("ray.train._internal.session", "get_session")(), "stop_event", None)


# Driver side: Tune's per-trial running statistics.
TRIAL_STATISTICS = ("metric_analysis", "metric_n_steps", "invalidate_cache")  # ray.tune.trainable.metadata


def release_trial_statistics(trial) -> bool:
    """Let an ended trial's running statistics go. Tune keeps, for every number a trial ever reported, its min, max,
    mean and the last 5 and 10 values (and a JSON copy of them), for every trial until the experiment ends: with the
    ~25 numbers a raysweep epoch reports, most of what Tune holds per trial (peak driver memory at 10,000 trials
    2.6 GB with them, 1.9 GB without: ``bench/scale.py``). Only
    Tune's best-trial queries on a ResultGrid read them; raysweep asks none (its record is state.json), and the
    trial's last result stays. On a Ray whose trial metadata lacks these names nothing is released (False)."""
    meta = getattr(trial, "run_metadata", None)
    if meta is None or not all(hasattr(meta, n) for n in TRIAL_STATISTICS):
        return False
    meta.metric_analysis = {}
    meta.metric_n_steps = {}
    meta.invalidate_cache()
    return True
