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
* Teacher source (the teacher is a stage of the trial, owned by ``raysweep.train.teacher``;
  this module only says what it needs, ``teacher_request``, and consumes it, ``set_teacher``).
  ``teacher: train`` (default) trains the teacher inside the trial, before the student, on
  the same data, with ``teacher_method`` (default ``pgd_at`` with 7 steps: the paper's
  teacher is PGD-7 "fast SAT"), for ``teacher_epochs`` (default: the student's epoch count),
  with ``teacher_model`` (default: the student's architecture). The in-trial teacher is
  guarded against catastrophic overfitting (validated every epoch, rolled back on a
  collapse) and its validation accuracy is reported on the trial
  (``teacher_val_robust_acc``); ``teacher_min_val_robust_acc`` fails a trial whose teacher is
  not robust enough. ``teacher: checkpoint`` loads ``teacher_checkpoint`` (a raw state_dict,
  a dict with key ``model`` as written by ``TrialRun.state_dict``, a checkpoint directory or
  an earlier trial's run directory) with ``torch.load(weights_only=True)``.
* Honest cost. The paper's speed-ups exclude teacher training. Here the teacher's training
  time and cost are reported separately (``teacher_time_s``, ``teacher_cost``) AND added to
  the trial totals. Costs are in units of full passes of the STUDENT, so teacher passes are
  scaled by the teacher/student multiply-accumulate ratio (1 when they share the
  architecture). Per step: student forward+backward (1) + teacher forward to its features
  (1/3 × their MAC ratio: the teacher's classifier is not run).
* Projection. The official ResNet-50 student puts a learned Linear(2048→512) before its
  classifier. Here the projection Linear(dim φ_S → dim φ_T) is a side head used only for
  the matching term, owned by the method (saved in the method's state, added to the
  optimizer with ``add_param_group``), so the student stays the registered architecture and
  its checkpoints load into ``build_model`` for final evaluation; its classifier reads φ_S.
  Under DDP its gradients are all-reduced by tensor hooks (it is not inside the DDP module).
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..hparams import hp
from ..models.base import model_macs
from .base import FORWARD_ONLY, Method, StepResult, TeacherRequest
from .registry import register_method


@dataclass
class RRMParams:
    lambda_ce: float = hp(0.005, low=0.0, high=1000.0, doc="weight of the clean cross-entropy term")
    feat_weight: float = hp(1.0, low=0.0, high=1000.0, doc="weight of the representation-matching term")
    distance: str = hp("cosine", choices=("cosine", "relative_l2"), doc="D: −cos or ‖φ_S−φ_T‖/‖φ_T‖")
    teacher: str = hp("train", choices=("train", "checkpoint"), doc="train the teacher in the trial, or load one")
    teacher_checkpoint: Optional[str] = hp(None, doc="teacher: checkpoint — a state_dict file (or {'model': ...}), "
                                           "or an earlier trial's run: its checkpoint directory or its train-NNNN directory (latest checkpoint)")
    teacher_method: str = hp("pgd_at", doc="teacher: train — the AT method that trains the teacher (paper: PGD-7)")
    teacher_method_params: Optional[dict] = hp(None, doc="teacher: train — that method's parameters "
                                               "(null: {steps: 7} for pgd_at, the paper's PGD-7; else the method's defaults)")
    teacher_epochs: Optional[int] = hp(None, low=1, high=10_000, doc="teacher: train — epochs (null: the student's)")
    teacher_model: Optional[str] = hp(None, doc="teacher architecture (null: the student's)")
    teacher_width: Optional[int] = hp(None, low=1, doc="teacher width (null: the student's when same architecture)")
    teacher_lr: Optional[float] = hp(None, low=0.0, low_open=True, high=10.0, doc="teacher: train — peak LR (null: the student's)")
    teacher_guard: bool = hp(True, doc="teacher: train — validate every teacher epoch and roll back a catastrophic-overfitting collapse")
    teacher_min_val_robust_acc: Optional[float] = hp(None, low=0.0, high=1.0,
                                                     doc="teacher: train — fail the trial if the teacher's validation robust accuracy ends below this")


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

    PROJ_SEED_SALT = 3_571

    def __init__(self, params, threat, num_classes):
        super().__init__(params, threat, num_classes)
        self.teacher: Optional[nn.Module] = None
        self.projection: Optional[nn.Linear] = None
        self.mac_ratio = 1.0

    # -- teacher -------------------------------------------------------------------------
    def teacher_request(self) -> TeacherRequest:
        p = self.p
        if p.teacher == "train" and p.teacher_checkpoint:
            raise ValueError("rrm.teacher_checkpoint is set but rrm.teacher is 'train'; set teacher: checkpoint")
        if p.teacher_method == self.name:
            raise ValueError("rrm.teacher_method cannot be rrm (the teacher must be trained adversarially)")
        params = p.teacher_method_params
        if params is None:
            params = {"steps": 7} if p.teacher_method == "pgd_at" else {}
        return TeacherRequest(source=p.teacher, method=p.teacher_method, method_params=dict(params),
                              epochs=p.teacher_epochs, lr=p.teacher_lr, model=p.teacher_model, width=p.teacher_width,
                              checkpoint=p.teacher_checkpoint, guard=p.teacher_guard,
                              min_val_robust_acc=p.teacher_min_val_robust_acc)

    def set_teacher(self, teacher: nn.Module, run) -> None:
        self.teacher = teacher
        shape = tuple(run.data.input_shape)
        # the step runs the teacher up to its features only (its classifier is never used)
        teacher_feature_macs = model_macs(teacher, shape) - teacher.fc.in_features * teacher.fc.out_features
        self.mac_ratio = teacher_feature_macs / max(1, model_macs(run.raw_model, shape))
        ds, dt = int(run.raw_model.feature_dim), int(teacher.feature_dim)
        if ds == dt or self.projection is not None:
            return
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

    # -- the step ------------------------------------------------------------------------
    def distance(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-example D(φ_S, φ_T)."""
        if self.p.distance == "cosine":
            return -F.cosine_similarity(s, t, dim=1, eps=1e-8)
        return (s - t).norm(dim=1) / t.norm(dim=1).clamp_min(1e-12)

    def step(self, ctx, x, y):
        if self.teacher is None:
            raise RuntimeError("rrm has no teacher yet: the trial's teacher stage provides it before the first step")
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

    # -- checkpoints (the teacher's weights are saved by the trial's teacher stage) ------
    def state_dict(self):
        return {"projection": None if self.projection is None else self.projection.state_dict()}

    def load_state_dict(self, state):
        if state and state.get("projection") is not None and self.projection is not None:
            self.projection.load_state_dict(state["projection"])
