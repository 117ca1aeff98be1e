"""Finding what a checkpoint needs to be evaluated: its weights, its trial spec, its MLflow run.

A trial's checkpoint (``state.pt``, written by ``raysweep.train.ray_worker``) holds weights and
optimiser state but not the configuration that built the model. That lives in the sweep's
``state.json`` (``SweepState``: per trial ``spec``, ``checkpoint_path``, ``run_id``), which sits
above the checkpoints in the standard layout (``<sweep>/train/<run>/checkpoint_*/state.pt``);
a checkpoint outside a sweep needs its spec passed explicitly (``--spec FILE``)."""

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..errors import UserError
from ..sweep_state import STATE_FILE, read_state

CKPT_FILE = "state.pt"  # as raysweep.train.ray_worker.CKPT_FILE


def is_uri(path: Optional[str]) -> bool:
    return bool(path) and "://" in str(path) and not str(path).startswith("file://")


def _local(path: str) -> Path:
    return Path(str(path).replace("file://", "", 1)).expanduser()


def load_checkpoint(path: str) -> Dict[str, Any]:
    """The saved state: a directory holding ``state.pt``, a ``.pt`` file, or a URI of a Ray
    checkpoint directory (downloaded through ``ray.train.Checkpoint``). ``weights_only``: a
    checkpoint is data, never code."""
    import torch

    if is_uri(path):
        from ray.train import Checkpoint

        with Checkpoint(path=str(path)).as_directory() as d:
            return load_checkpoint(d)
    p = _local(path)
    f = p / CKPT_FILE if p.is_dir() else p
    if not f.is_file():
        raise UserError(f"{path}: no checkpoint here (expected a directory with {CKPT_FILE} or a .pt file)")
    try:
        return torch.load(str(f), map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, or one holding pickled code
        raise UserError(f"{f}: cannot read as a raysweep checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def model_states(state: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The model weights in a saved state: one per seed for a multi-seed (``repeats``) trial,
    else one. A bare ``state_dict`` (only tensors) is accepted too."""
    if not isinstance(state, dict):
        raise UserError("checkpoint: expected a dict with key 'model' (a raysweep trial state) or a model state_dict")
    if "seeds" in state:
        return [s["model"] for s in state["seeds"]]
    if "model" in state:
        return [state["model"]]
    import torch

    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return [state]
    raise UserError(f"checkpoint: no 'model' in it (keys: {', '.join(map(str, list(state)[:10]))})")


def read_spec(path) -> Dict[str, Any]:
    """A TrialSpec dict from a YAML or JSON file, validated (UserError naming the file)."""
    from ..train.spec import TrialSpec

    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"--spec {path}: no such file")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".json":
            d = json.loads(text)
        else:
            import yaml

            d = yaml.safe_load(text)
    except Exception as e:
        raise UserError(f"{p}: not valid YAML/JSON ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if isinstance(d, dict) and isinstance(d.get("spec"), dict):  # a sweep's trial record
        d = d["spec"]
    if not isinstance(d, dict):
        raise UserError(f"{p}: expected a mapping of a trial spec (method, dataset, model, threat, ...)")
    try:
        return TrialSpec.from_dict(d).to_dict()
    except ValueError as e:
        raise UserError(f"{p}: not a valid trial spec: {e}") from None


def _same(a, b) -> bool:
    try:
        return os.path.realpath(str(_local(a))) == os.path.realpath(str(_local(b)))
    except (OSError, ValueError):
        return False


def find_sweep_state(start) -> Optional[Path]:
    """The nearest ``state.json`` in ``start`` or a directory above it."""
    p = _local(start).absolute()
    for d in [p] + list(p.parents):
        f = d / STATE_FILE
        if f.is_file():
            return f
    return None


def load_sweep_state(sweep_dir) -> Dict[str, Any]:
    return read_state(_local(sweep_dir))


def record_for_checkpoint(ckpt_path) -> Optional[Tuple[Path, Dict[str, Any], Dict[str, Any]]]:
    """(state.json path, sweep state, trial record) for a checkpoint inside a sweep directory.

    Matches the record whose ``checkpoint_path`` is this checkpoint; failing that, the one whose
    checkpoint lives in the same trial directory (an earlier epoch's checkpoint of that trial)."""
    if is_uri(ckpt_path):
        return None
    f = find_sweep_state(_local(ckpt_path).parent if _local(ckpt_path).is_file() else ckpt_path)
    if f is None:
        return None
    data = read_state(f)
    trials = list(data.get("trials", {}).values())
    ck = _local(ckpt_path)
    ck_dir = ck.parent if ck.is_file() else ck
    for rec in trials:
        if rec.get("checkpoint_path") and (_same(rec["checkpoint_path"], ck_dir) or _same(rec["checkpoint_path"], ck)):
            return f, data, rec
    for rec in trials:
        cp = rec.get("checkpoint_path")
        if cp and not is_uri(cp) and _same(_local(cp).parent, ck_dir.parent):
            return f, data, rec
    return None


def record_for_run(data: Dict[str, Any], run_id: str) -> Optional[Dict[str, Any]]:
    for rec in data.get("trials", {}).values():
        if rec.get("run_id") == run_id:
            return rec
    return None
