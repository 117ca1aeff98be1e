"""Where a sweep lives. One sweep on disk (``storage_path``, default ``./raysweep_runs``)::

    <storage>/<experiment>/<sweep-id>/optuna.journal  the Optuna study (a journal: resumable, dashboard-able)
                                      state.json      the sweep's own record (raysweep/sweep_state.py): a snapshot
                                      state.log       ... and what changed since it, replayed by read_state
                                      tune/           Ray Tune experiment state
                                      train/          each trial's runs and per-epoch checkpoints

With an object store as the storage (s3://, gs://), ``tune/`` and ``train/`` are there, and the
sweep's own files are copied there as it runs (``durable.py``)."""

import os
import time
from pathlib import Path
from typing import Optional

from ..config import SweepConfig
from ..evaluation.checkpoints import is_uri
from .storage import join as storage_join


def storage_setting(cfg: SweepConfig) -> Optional[str]:
    return cfg.storage_path or os.environ.get("RAYSWEEP_STORAGE_PATH")


def runs_root(setting: Optional[str], workdir: Path) -> Path:
    """The local directory that holds every experiment's sweeps for a storage setting (the YAML's
    ``storage_path``, ``$RAYSWEEP_STORAGE_PATH`` or ``--storage``): that path when it is local,
    ``<workdir>/raysweep_runs`` otherwise. With a URI storage (s3://, gs://) Ray's Tune/Train
    state and the checkpoints go there, so every node of a cluster can reach them, and the sweep's
    own files are copied there as it runs (``durable.py``)."""
    if setting and not is_uri(setting):
        base = Path(setting.replace("file://", "")).expanduser()
        return base if base.is_absolute() else workdir / base
    return workdir / "raysweep_runs"


def experiment_dir(cfg: SweepConfig, workdir: Path) -> Path:
    """Where the sweep's own state is written (Optuna study, state.json, Pareto files): always a
    local directory of the driver (copied to an object-store storage as the sweep runs)."""
    return runs_root(storage_setting(cfg), workdir) / cfg.name


def ray_storage(cfg: SweepConfig, sweep_dir: Path) -> str:
    setting = storage_setting(cfg)
    if is_uri(setting):
        return storage_join(setting, cfg.name, sweep_dir.name)
    return str(sweep_dir)


def absolute_input_paths(cfg: SweepConfig, workdir: Path):
    """Paths in the YAML are relative to where the sweep runs, not to where a worker does."""
    root = cfg.base["dataset"].get("root")
    if root and not Path(root).expanduser().is_absolute():
        cfg.base["dataset"]["root"] = str((workdir / Path(root).expanduser()).resolve())
    for params in cfg.params.values():
        ck = params.get("teacher_checkpoint")
        if isinstance(ck, str) and ck and not is_uri(ck) and not Path(ck).expanduser().is_absolute():
            params["teacher_checkpoint"] = str(workdir / Path(ck).expanduser())


def new_sweep_id() -> str:
    return time.strftime("sweep-%Y%m%d-%H%M%S")


def latest_sweep_dir(exp_dir: Path, setting: Optional[str] = None) -> Optional[Path]:
    """The newest sweep of an experiment with a ``state.json``. With an object-store ``setting``
    and no local copy (a new head), the newest copy there is fetched into ``exp_dir`` first."""
    from ..sweep_state import latest_sweep_dir as latest_local

    local = latest_local(exp_dir)
    if local is not None:
        return local
    if is_uri(setting):
        from .durable import fetch, latest_remote_sweep, remote_dir

        exp_uri = storage_join(setting, exp_dir.name)
        name = latest_remote_sweep(exp_uri)
        if name and fetch(remote_dir(storage_join(exp_uri, name)), exp_dir / name):
            return exp_dir / name
    return None
