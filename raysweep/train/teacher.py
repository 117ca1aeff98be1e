"""The teacher stage of a trial: a robust model trained (or loaded) before the student's first
epoch, for methods that learn from one (RRM). The method says what it needs
(``Method.teacher_request`` → ``TeacherRequest``) and gets a frozen model
(``Method.set_teacher``); training it is a stage of the trial, and lives here with the loop.

* ``source: train``: the teacher is trained on the trial's own training data by raysweep's
  loop (``TrialRun.run_epoch``, same validation split) with the requested method, model and
  schedule. It is **guarded**: each teacher epoch is validated (clean, PGD, FGSM) and a
  catastrophic-overfitting collapse (validation PGD accuracy falling by more than
  ``eval.co_drop`` while FGSM accuracy rises) stops it and rolls it back to the epoch before,
  exactly as for a trial. ``min_val_robust_acc`` makes a teacher that is still not robust
  enough a trial failure instead of a silently useless student.
* ``source: checkpoint``: weights from a file, a checkpoint directory, or an earlier trial's
  Ray Train run directory (its latest ``checkpoint_*``), loaded ``weights_only``.

Honest cost: the teacher's wall time and cost (in passes of the *student*: teacher passes
scaled by the teacher/student multiply-accumulate ratio) are reported on every epoch of the
trial (``teacher_time_s``, ``teacher_cost``) and added to its totals; a loaded teacher costs
nothing here (it was paid for elsewhere). Its validation accuracy is reported too
(``teacher_val_clean_acc``, ``teacher_val_robust_acc``, ``teacher_catastrophic_overfit``).
Under DDP every rank trains the same seeded teacher (charged once per rank) and rank 0's
weights are broadcast. The teacher's weights are part of the trial's checkpoint, so a resumed
trial does not train it again.
"""

import dataclasses
import os
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from ..methods.base import TeacherRequest
from ..models import build_model
from ..models.base import model_macs


class TeacherNotRobust(RuntimeError):
    """The in-trial teacher ended below the requested validation robust accuracy."""


class TeacherStage:
    def __init__(self, run, request: TeacherRequest):
        self.run = run
        self.request = request
        self.model: Optional[nn.Module] = None
        self.info: Dict[str, float] = {}

    @property
    def ready(self) -> bool:
        return self.model is not None

    # -- what the teacher is ---------------------------------------------------------------
    def model_spec(self):
        from .spec import ModelSpec

        ms, rq = self.run.spec.model, self.request
        name = rq.model or ms.name
        width = rq.width if rq.width is not None else (ms.width if name == ms.name else None)
        return ModelSpec(name=name, width=width, mean=ms.mean, std=ms.std)

    def _build(self) -> nn.Module:
        ms, data = self.model_spec(), self.run.data
        return build_model(ms.name, data.num_classes, data.input_shape, mean=ms.mean, std=ms.std,
                           width=ms.width).to(self.run.device)

    # -- making it ---------------------------------------------------------------------------
    def prepare(self) -> None:
        """Train or load the teacher, charge its cost to the trial, hand it to the method."""
        run, rq = self.run, self.request
        if rq.source == "train":
            # its training steps' time, as for the trial itself (its validation is evaluation)
            teacher, elapsed, units, info = self._train()
        elif rq.source == "checkpoint":
            teacher, elapsed, units, info = self._load(), 0.0, 0.0, {}
        else:
            raise ValueError(f"teacher source {rq.source!r} (allowed: train, checkpoint)")
        _freeze(teacher)
        _broadcast(run, teacher)
        shape = tuple(run.data.input_shape)
        mac_ratio = model_macs(teacher, shape) / max(1, model_macs(run.raw_model, shape))
        cost = units * mac_ratio * run.dist.world_size  # every rank trained one: charge all of it
        run.add_cost(elapsed, cost)
        self.info = {"teacher_time_s": elapsed, "teacher_cost": cost, **info}
        self._install(teacher)
        if rq.source == "train" and rq.min_val_robust_acc is not None \
                and info.get("teacher_val_robust_acc", 0.0) < rq.min_val_robust_acc:
            raise TeacherNotRobust(f"the in-trial teacher ({rq.method}, {info.get('teacher_epochs', 0):.0f} epochs) "
                                   f"reached validation robust accuracy {info.get('teacher_val_robust_acc', 0.0):.3f} "
                                   f"< teacher_min_val_robust_acc {rq.min_val_robust_acc}")

    def _train(self):
        from .loop import TrialRun

        run, rq = self.run, self.request
        spec = run.spec
        if rq.method == spec.method:
            raise ValueError(f"{spec.method}: the teacher must be trained by an adversarial-training method, not {rq.method!r}")
        train = dataclasses.replace(spec.train, epochs=int(rq.epochs or spec.train.epochs), lr=float(rq.lr or spec.train.lr))
        ev = dataclasses.replace(spec.eval, val_fgsm=True, co_detect=True, co_action="rollback") if rq.guard else spec.eval
        tspec = dataclasses.replace(spec, method=rq.method, method_params=dict(rq.method_params or {}),
                                    model=self.model_spec(), train=train, eval=ev, pruning=None, repeats=1,
                                    device=str(run.device))
        devices = [run.device.index or 0] if run.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # leave the student's RNG stream untouched
            trun = TrialRun(tspec, device=run.device, data=run.data)
            while not trun.done:
                trun.run_epoch()
        last = trun.history[-1] if trun.history else {}
        info = {"teacher_epochs": float(len(trun.history)),
                "teacher_val_clean_acc": float(last.get("val_clean_acc", float("nan"))),
                "teacher_val_robust_acc": float(last.get("val_robust_acc", float("nan"))),
                "teacher_catastrophic_overfit": float(trun.totals.get("catastrophic_overfit", 0.0))}
        return trun.raw_model, trun.totals["train_time_s"], trun.totals["cost"], info

    def _load(self) -> nn.Module:
        rq = self.request
        if not rq.checkpoint:
            raise ValueError(f"{self.run.spec.method}.teacher is 'checkpoint' but {self.run.spec.method}.teacher_checkpoint is not set")
        path = checkpoint_file(rq.checkpoint)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("seeds"), list):  # a trial run with repeats: seed 0
            state = state["seeds"][0]
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        model = self._build()
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            ms = self.model_spec()
            raise ValueError(f"{self.run.spec.method}.teacher_checkpoint {path!r} does not fit teacher model "
                             f"{ms.name!r} (width {ms.width}): {e}") from None
        return model

    def _install(self, teacher: nn.Module) -> None:
        self.model = teacher
        self.run.method.set_teacher(teacher, self.run)

    # -- what the trial reports and saves --------------------------------------------------
    def metrics(self) -> Dict[str, float]:
        return dict(self.info)

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "info": dict(self.info)} if self.ready else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a checkpointed teacher: no training, no cost charged again (the trial's
        restored totals already hold it)."""
        if not state or state.get("model") is None:
            return
        teacher = self._build()
        teacher.load_state_dict(state["model"])
        _freeze(teacher)
        self.info = dict(state.get("info", {}))
        self._install(teacher)


def _freeze(teacher: nn.Module) -> None:
    teacher.eval()
    teacher.zero_grad(set_to_none=True)  # drop the last training step's gradients
    teacher.requires_grad_(False)


def _broadcast(run, teacher: nn.Module) -> None:
    if run.dist.world_size <= 1:
        return
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        for t in list(teacher.parameters()) + list(teacher.buffers()):
            tdist.broadcast(t.data, src=0)


def checkpoint_file(path: str) -> str:
    """A file as given; a checkpoint directory's state.pt; or, for an earlier trial's Ray Train
    run directory (``<sweep>/train/train-0003``), the state.pt of its latest checkpoint. A glob
    pattern (``raysweep_runs/exp/sweep-*/train/train-0000``) takes its last match in name order:
    the latest sweep's run, so a YAML can name a teacher that another sweep trains."""
    if any(c in path for c in "*?["):
        import glob

        matches = sorted(glob.glob(os.path.expanduser(path)))
        if not matches:
            raise ValueError(f"teacher_checkpoint {path!r}: no file or directory matches (has the sweep that trains "
                             f"the teacher run?)")
        path = matches[-1]
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "state.pt")):
            return os.path.join(path, "state.pt")
        cks = sorted(d for d in os.listdir(path) if d.startswith("checkpoint_")
                     and os.path.isfile(os.path.join(path, d, "state.pt")))
        if cks:
            return os.path.join(path, cks[-1], "state.pt")
        raise ValueError(f"teacher_checkpoint {path!r}: no state.pt in it or in a checkpoint_* folder")
    return path
