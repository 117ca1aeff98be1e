"""RRM: Robust Representation Matching (Vaishnavi, Eykholt, Rahmati, "Transferring Adversarial
Robustness Through Robust Representation Matching", USENIX Security 2022, arXiv 2202.09994;
official code Ethos-lab/robust-representation-matching, l_inf/train_rrm.py, l_2/train_rrm.py).

The student is trained on CLEAN images only (no attack) with

    L = λ_CE · CE(S(x), y) + λ_f · D(φ_S(x), φ_T(x)),

φ = penultimate representation (``model.features``), T a robust teacher, frozen in eval mode
(requires_grad False, run under no_grad). D is −cos(φ_S, φ_T) (L∞ CIFAR-10 setting, the
default) or the relative L2 distance ‖φ_S − φ_T‖₂ / ‖φ_T‖₂ (L2 / Restricted-ImageNet
setting), averaged over the batch. Defaults from the official code: λ_CE = 0.005, cosine,
feature weight 1.

Follows the official code: clean-only student loss, the two distances, λ_CE and the feature
weight, the frozen eval-mode teacher, a learned Linear projection when the feature sizes
differ.

Differences and reconstructions:
* Teacher source. ``teacher: train`` (default) trains the teacher inside the trial, before
  the student, with a fast AT method (``teacher_method``, default ``fgsm_rs``; the paper used
  PGD-7 "fast SAT" for 40 epochs) for ``teacher_epochs`` (default: the student's epoch count)
  on the same data, with ``teacher_model`` (default: the student's architecture), by running
  raysweep's own loop (``TrialRun.train_epoch``, no validation) on a derived TrialSpec.
  ``teacher: checkpoint`` loads ``teacher_checkpoint`` (a raw state_dict, or a dict with key
  ``model`` as written by ``TrialRun.state_dict``) with ``torch.load(weights_only=True)``.
* Honest cost. The paper's speed-ups exclude teacher training. Here the teacher's wall time
  and cost are reported separately (``teacher_time_s``, ``teacher_cost``) AND added to the
  trial totals with ``run.add_cost``. Costs are in units of full passes of the STUDENT, so
  teacher passes are scaled by the teacher/student multiply-accumulate ratio (1 when they
  share the architecture). Per step: student forward+backward (1) + teacher forward
  (1/3 × MAC ratio). Under DDP every rank trains its own (identical, seeded) teacher and
  rank 0's weights are broadcast; the teacher cost is charged once per rank.
* Projection. The official ResNet-50 student puts a learned Linear(2048→512) before its
  classifier. Here the projection Linear(dim φ_S → dim φ_T) is a side head used only for
  the matching term, owned by the method (saved in the method's state, added to the
  optimizer with ``add_param_group``), so the student stays the registered architecture and
  its checkpoints load into ``build_model`` for final evaluation; its classifier reads φ_S.
  Under DDP its gradients are all-reduced by tensor hooks (it is not inside the DDP module).
* On resume the teacher is rebuilt in ``setup`` (retrained when ``teacher: train``, which
  costs that time again) and then replaced by the weights stored in the checkpoint.
"""

import dataclasses
import time
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..hparams import hp
from .base import FORWARD_ONLY, Method, StepResult
from .registry import register_method


@dataclass
class RRMParams:
    lambda_ce: float = hp(0.005, low=0.0, high=1000.0, doc="weight of the clean cross-entropy term")
    feat_weight: float = hp(1.0, low=0.0, high=1000.0, doc="weight of the representation-matching term")
    distance: str = hp("cosine", choices=("cosine", "relative_l2"), doc="D: −cos or ‖φ_S−φ_T‖/‖φ_T‖")
    teacher: str = hp("train", choices=("train", "checkpoint"), doc="train the teacher in the trial, or load one")
    teacher_checkpoint: Optional[str] = hp(None, doc="teacher: checkpoint — a state_dict file (or {'model': ...}), "
                                           "or an earlier trial's run: its checkpoint directory or its train-NNNN directory (latest checkpoint)")
    teacher_method: str = hp("fgsm_rs", doc="teacher: train — the AT method that trains the teacher")
    teacher_method_params: dict = hp({}, doc="teacher: train — that method's parameters")
    teacher_epochs: Optional[int] = hp(None, low=1, high=10_000, doc="teacher: train — epochs (null: the student's)")
    teacher_model: Optional[str] = hp(None, doc="teacher architecture (null: the student's)")
    teacher_width: Optional[int] = hp(None, low=1, doc="teacher width (null: the student's when same architecture)")
    teacher_lr: Optional[float] = hp(None, low=0.0, low_open=True, high=10.0, doc="teacher: train — peak LR (null: the student's)")


def _total_macs(model: nn.Module, input_shape) -> float:
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            macs.append(out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups))
        elif isinstance(mod, nn.Linear):
            macs.append(out.numel() * mod.in_features)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_shape), device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in hs:
            h.remove()
    return float(sum(macs)) or 1.0


def _dist_on(run) -> bool:
    if run.dist.world_size <= 1:
        return False
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


@register_method
class RRM(Method):
    name = "rrm"
    Params = RRMParams
    paper = "Vaishnavi, Eykholt, Rahmati, USENIX Security 2022 (arXiv 2202.09994)"
    fidelity = "faithful"
    needs_setup = True  # the teacher is built in setup(run)

    PROJ_SEED_SALT = 3_571

    def __init__(self, params, threat, num_classes):
        super().__init__(params, threat, num_classes)
        self.teacher: Optional[nn.Module] = None
        self.projection: Optional[nn.Linear] = None
        self.teacher_time_s = 0.0
        self.teacher_cost = 0.0
        self.mac_ratio = 1.0
        self._teacher_units = 0.0

    # -- teacher -------------------------------------------------------------------------
    def _teacher_model_spec(self, run):
        from ..train.spec import ModelSpec

        ms = run.spec.model
        name = self.p.teacher_model or ms.name
        width = self.p.teacher_width if self.p.teacher_width is not None else (ms.width if name == ms.name else None)
        return ModelSpec(name=name, width=width, mean=ms.mean, std=ms.std)

    def _train_teacher(self, run) -> nn.Module:
        from ..train.loop import TrialRun

        if self.p.teacher_method == self.name:
            raise ValueError("rrm.teacher_method cannot be rrm (the teacher must be trained adversarially)")
        spec = run.spec
        train = dataclasses.replace(spec.train, epochs=int(self.p.teacher_epochs or spec.train.epochs),
                                    lr=float(self.p.teacher_lr or spec.train.lr))
        # the student's spec with the teacher's method, model and schedule (imports etc. carried over)
        tspec = dataclasses.replace(spec, method=self.p.teacher_method,
                                    method_params=dict(self.p.teacher_method_params or {}),
                                    model=self._teacher_model_spec(run), train=train, pruning=None,
                                    device=str(run.device))
        devices = [run.device.index or 0] if run.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # leave the student's RNG stream untouched
            trun = TrialRun(tspec, device=run.device, data=run.data)
            for e in range(train.epochs):
                tr = trun.train_epoch(e)
                trun.epoch = e
                trun.method.before_eval(trun)
                trun.method.on_epoch_end(e, dict(tr), trun)
                trun.epoch = e + 1
        self._teacher_units = trun.totals["cost"]
        return trun.raw_model

    def _load_teacher(self, run) -> nn.Module:
        from ..models import build_model

        path = self.p.teacher_checkpoint
        if not path:
            raise ValueError("rrm.teacher is 'checkpoint' but rrm.teacher_checkpoint is not set")
        path = _checkpoint_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("seeds"), list):  # a trial run with repeats: seed 0
            state = state["seeds"][0]
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        ms = self._teacher_model_spec(run)
        model = build_model(ms.name, run.data.num_classes, run.data.input_shape, mean=ms.mean, std=ms.std,
                            width=ms.width).to(run.device)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"rrm.teacher_checkpoint {path!r} does not fit teacher model {ms.name!r} "
                             f"(width {ms.width}): {e}") from None
        self._teacher_units = 0.0
        return model

    # -- hooks ---------------------------------------------------------------------------
    def setup(self, run) -> None:
        if self.p.teacher == "train" and self.p.teacher_checkpoint:
            raise ValueError("rrm.teacher_checkpoint is set but rrm.teacher is 'train'; set teacher: checkpoint")
        t0 = time.perf_counter()
        teacher = self._train_teacher(run) if self.p.teacher == "train" else self._load_teacher(run)
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        self.teacher_time_s = time.perf_counter() - t0 if self.p.teacher == "train" else 0.0
        teacher.eval()
        teacher.zero_grad(set_to_none=True)  # drop the last training step's gradients
        teacher.requires_grad_(False)
        if _dist_on(run):
            import torch.distributed as tdist

            for t in list(teacher.parameters()) + list(teacher.buffers()):
                tdist.broadcast(t.data, src=0)
        self.teacher = teacher
        shape = tuple(run.data.input_shape)
        self.mac_ratio = _total_macs(teacher, shape) / _total_macs(run.raw_model, shape)
        # every rank trained a teacher: charge all of it, in student-pass units
        self.teacher_cost = self._teacher_units * self.mac_ratio * run.dist.world_size
        run.add_cost(self.teacher_time_s, self.teacher_cost)

        ds, dt = int(run.raw_model.feature_dim), int(teacher.feature_dim)
        if ds != dt:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(run.spec.train.seed * 1_000_003 + self.PROJ_SEED_SALT)
                proj = nn.Linear(ds, dt)  # same init on every rank
            self.projection = proj.to(run.device)
            run.optimizer.add_param_group({"params": list(self.projection.parameters())})
            if _dist_on(run):
                import torch.distributed as tdist

                world = run.dist.world_size

                def _avg(g):
                    g = g.clone()
                    tdist.all_reduce(g)
                    return g / world

                for prm in self.projection.parameters():
                    prm.register_hook(_avg)

    def on_epoch_end(self, epoch: int, metrics: Dict[str, float], run) -> Dict[str, float]:
        return {"teacher_time_s": self.teacher_time_s, "teacher_cost": self.teacher_cost}

    # -- the step ------------------------------------------------------------------------
    def distance(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-example D(φ_S, φ_T)."""
        if self.p.distance == "cosine":
            return -F.cosine_similarity(s, t, dim=1, eps=1e-8)
        return (s - t).norm(dim=1) / t.norm(dim=1).clamp_min(1e-12)

    def step(self, ctx, x, y):
        if self.teacher is None:
            raise RuntimeError("rrm needs setup(run) before step (it builds the teacher there)")
        with torch.no_grad():
            phi_t = self.teacher.features(x)
        captured = {}

        def grab(mod, inp):
            captured["phi"] = inp[0]

        # φ_S is what the classifier reads; a pre-hook catches it through a DDP wrapper
        h = ctx.raw_model.fc.register_forward_pre_hook(grab)
        try:
            logits = ctx.model(x)
        finally:
            h.remove()
        phi_s = captured["phi"]
        if self.projection is not None:
            phi_s = self.projection(phi_s)
        ce = F.cross_entropy(logits, y, reduction="none")
        per = self.p.lambda_ce * ce + self.p.feat_weight * self.distance(phi_s, phi_t)
        return StepResult(self.weighted_mean(per, ctx), logits.detach(), cost=1.0 + FORWARD_ONLY * self.mac_ratio,
                          x_adv=None, per_example_loss=per.detach())

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self):
        return {"teacher": None if self.teacher is None else self.teacher.state_dict(),
                "projection": None if self.projection is None else self.projection.state_dict(),
                "teacher_time_s": self.teacher_time_s, "teacher_cost": self.teacher_cost}

    def load_state_dict(self, state):
        if not state:
            return
        if state.get("teacher") is not None and self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        if state.get("projection") is not None and self.projection is not None:
            self.projection.load_state_dict(state["projection"])
        self.teacher_time_s = float(state.get("teacher_time_s", self.teacher_time_s))
        self.teacher_cost = float(state.get("teacher_cost", self.teacher_cost))


def _checkpoint_file(path: str) -> str:
    """A file as given; a checkpoint directory's state.pt; or, for an earlier trial's Ray Train
    run directory (``<sweep>/train/train-0003``), the state.pt of its latest checkpoint."""
    import os

    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "state.pt")):
            return os.path.join(path, "state.pt")
        cks = sorted(d for d in os.listdir(path) if d.startswith("checkpoint_")
                     and os.path.isfile(os.path.join(path, d, "state.pt")))
        if cks:
            return os.path.join(path, cks[-1], "state.pt")
        raise ValueError(f"rrm.teacher_checkpoint {path!r}: no state.pt in it or in a checkpoint_* folder")
    return path
