"""The one training loop. Torch-only: Ray Train, the in-process path and the benchmarks all
call ``run_trial``; what differs is the ``Reporter`` and how the model is wrapped."""

import copy
import time
from typing import Any, Callable, Dict, List, Optional

import torch

from ..attacks import make_attack
from ..attacks.evaluate import accuracy_under
from ..data import TensorBatches, load_dataset
from ..methods import StepContext, Threat, get_method
from ..models import build_model
from ..hparams import build_params
from .dist import DistInfo, pick_device, synchronize
from .schedule import lr_at
from .seeds import summarise_seeds
from .spec import TrialSpec


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite: the trial fails (and may be retried)."""


class Reporter:
    """Receives one report per epoch. ``state`` is the checkpoint (rank 0 only, else None)."""

    def report(self, metrics: Dict[str, float], state: Optional[Dict[str, Any]]) -> None:
        raise NotImplementedError


class LocalReporter(Reporter):
    """Keeps reports in memory; used by tests, benchmarks and the single-process path."""

    def __init__(self, on_report: Optional[Callable] = None):
        self.history: List[Dict[str, float]] = []
        self.last_state = None
        self.on_report = on_report

    def report(self, metrics, state):
        self.history.append(dict(metrics))
        if state is not None:
            # the state holds live parameter tensors: snapshot it, as saving to disk would
            state = copy.deepcopy(state)
            self.last_state = state
        if self.on_report:
            self.on_report(metrics, state)


def build_method(spec: TrialSpec, num_classes: int):
    cls = get_method(spec.method)
    params, errors = build_params(cls.Params, spec.method_params, spec.threat.eps, keep_relative=True)
    if errors:
        raise ValueError("; ".join(f"{spec.method}.{k}: {m}" for k, m in errors))
    return cls(params, Threat(eps=spec.threat.eps, norm=spec.threat.norm), num_classes)


class TrialRun:
    """Everything one trial trains with. Methods and data policies get it in their hooks."""

    def __init__(self, spec: TrialSpec, dist: Optional[DistInfo] = None, device=None,
                 wrap_model: Optional[Callable] = None, data=None, launched_at: Optional[float] = None,
                 startup_marks: Optional[Dict[str, float]] = None):
        self.spec = spec
        # Wall-clock time the trial was launched (by the sweep); the first report then carries
        # ``startup_s``, the time until this process's first training step: what the executor costs,
        # and where it went (``startup_phases``), from the executor's own marks (``process``: when
        # this process was created, ``entered``: when the executor called into the loop).
        self.launched_at = launched_at
        self.first_step_at: Optional[float] = None
        self.marks = dict(startup_marks or {})
        self.marks.setdefault("entered", time.time())
        self.dist = dist or DistInfo()
        self.device = torch.device(device) if device is not None else pick_device(spec.device)
        ds = spec.dataset
        self.data = data if data is not None else load_dataset(
            ds.name, root=ds.root, val_size=ds.val_size, seed=ds.split_seed,
            train_size=ds.train_size, test_size=ds.test_size)
        # Keep the tensors where the model is: on a GPU, no host round trip per batch.
        self.data = self.data.to(self.device)
        # Same initial weights on every rank; per-rank randomness (random starts) after that.
        torch.manual_seed(spec.train.seed)
        self.raw_model = build_model(spec.model.name, self.data.num_classes, self.data.input_shape,
                                     mean=spec.model.mean, std=spec.model.std, width=spec.model.width).to(self.device)
        torch.manual_seed(spec.train.seed * 1000 + self.dist.rank)
        t = spec.train
        on_gpu = self.device.type == "cuda"
        # bf16 autocast for the training step only (attacks included); evaluation stays fp32.
        self.amp = t.amp == "bf16" or (t.amp == "auto" and on_gpu)
        self.channels_last = t.channels_last == "on" or (t.channels_last == "auto" and on_gpu)
        if self.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        if t.compile:
            self.raw_model.compile()  # in place: state_dict keys stay the same
        self.model = wrap_model(self.raw_model) if wrap_model else self.raw_model
        self.method = build_method(spec, self.data.num_classes)
        self.optimizer = self._make_optimizer()
        self.loader = TensorBatches(self.data.train, spec.train.batch_size, shuffle=True, seed=spec.train.seed,
                                    augment=self.data.augment, device=self.device, rank=self.dist.rank,
                                    world_size=self.dist.world_size)
        self.policy = None
        if spec.pruning is not None and spec.pruning.mode != "none":  # none: the unpruned baseline of a pruning sweep
            from .pruning import make_policy

            self.policy = make_policy(spec.pruning, self)
        self.epoch = 0  # next epoch to run
        self.stopped = False  # set by a catastrophic-overfitting stop
        self.best = None  # {"epoch", "val_robust_acc", "model"}: best-on-validation weights
        self._start = 0
        self.totals = {"train_time_s": 0.0, "cost": 0.0, "restarts": 0.0}
        self.history: List[Dict[str, float]] = []
        request = self.method.teacher_request()
        if request is not None:
            from .teacher import TeacherStage

            self.teacher = TeacherStage(self, request)  # trained or loaded before the first epoch
        else:
            self.teacher = None
        self.method.setup(self)
        self.marks["built"] = time.time()

    def startup_phases(self) -> Dict[str, float]:
        """``startup_s`` split at the marks: before this process existed (Ray: controller, placement
        group, worker start), the process's own start until the executor called the loop (imports,
        actor and backend set-up), building the trial (data, model, method), and built to first step."""
        if self.launched_at is None or self.first_step_at is None:
            return {}
        m = self.marks
        process = min(max(m.get("process", self.launched_at), self.launched_at), m["entered"])  # a reused process: 0
        return {"startup_s": self.first_step_at - self.launched_at,
                "startup_before_process_s": process - self.launched_at,
                "startup_process_s": m["entered"] - process,
                "startup_build_s": m["built"] - m["entered"],
                "startup_first_step_s": self.first_step_at - m["built"]}

    # ------------------------------------------------------------------
    def _make_optimizer(self):
        t = self.spec.train
        params = [p for p in self.raw_model.parameters() if p.requires_grad]
        if t.optimizer == "adam":
            return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)

    NAN_CHECK_EVERY = 16  # steps between checks for a non-finite loss (each check syncs the device)

    def _check_finite(self, loss_sum, epoch, step):
        if not torch.isfinite(loss_sum):
            raise NonFiniteLoss(f"non-finite training loss in epoch {epoch}, by step {step}")

    def train_eps(self, t: float) -> float:
        """The training ε at progress t: ramped over ``train.eps_warmup`` (a common aid on MNIST
        at ε=0.3, where adversarial training from step 0 can stall at chance)."""
        w = self.spec.train.eps_warmup
        eps = self.spec.threat.eps
        return eps if w <= 0 or t >= w else eps * max(t / w, 1e-3)

    def add_cost(self, time_s: float = 0.0, cost: float = 0.0):
        """Charge work done outside the step loop (subset selection, a teacher) to this trial."""
        self.totals["train_time_s"] += time_s
        self.totals["cost"] += cost

    def cost_units(self, passes_times_examples: float) -> float:
        """Passes·examples in units of clean epochs over the full training set."""
        return passes_times_examples / max(1, len(self.data.train))

    # ------------------------------------------------------------------
    def ensure_teacher(self) -> None:
        """Train or load the method's teacher, once (a resumed trial restores it instead)."""
        if self.teacher is not None and not self.teacher.ready:
            self.teacher.prepare()

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        spec = self.spec
        self.ensure_teacher()  # outside the epoch's timer: the stage charges its own time
        self.raw_model.train()
        self.loader.set_epoch(epoch)
        synchronize(self.device)
        t0 = time.perf_counter()
        self.method.on_epoch_start(epoch, self)
        if self.policy is not None:
            self.policy.on_epoch_start(epoch, self)
        n_steps = max(1, len(self.loader))
        # Running sums stay on the device: no host sync per step (it stalls a GPU).
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen = cost = 0.0
        for i, (x, y, idx, w) in enumerate(self.loader):
            if self.first_step_at is None:
                self.first_step_at = time.time()
            lr = lr_at(spec.train, (epoch + i / n_steps) / spec.train.epochs)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            self.method.threat.eps = self.train_eps((epoch + i / n_steps) / spec.train.epochs)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            ctx = StepContext(self.model, self.raw_model, epoch, self.data.num_classes, self.data.input_shape, w)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                res = self.method.step(ctx, x, y)
            res.loss.backward()
            self.method.after_backward(self)
            if spec.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), spec.train.grad_clip)
            self.optimizer.step()
            if self.policy is not None and res.per_example_loss is not None:
                self.policy.observe(epoch, idx, res.per_example_loss)
            b = len(y)
            loss_sum += res.loss.detach().double() * b
            correct += (res.logits.argmax(1) == y).sum()
            seen += b
            cost += res.cost * b
            if (i + 1) % self.NAN_CHECK_EVERY == 0 or i + 1 == n_steps:
                self._check_finite(loss_sum, epoch, i)
        if self.policy is not None:
            self.policy.on_epoch_end(epoch, self)
        synchronize(self.device)
        elapsed = time.perf_counter() - t0
        loss_sum, correct, seen, cost = self.dist.all_reduce_sum([loss_sum.item(), correct.item(), seen, cost], self.device)
        # Every rank measured the same wall time window; rank 0's is what we report.
        self.totals["train_time_s"] += elapsed
        self.totals["cost"] += self.cost_units(cost)
        return {"train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen),
                "epoch_time_s": elapsed, "examples_seen": seen, "lr": lr_at(spec.train, (epoch + 1) / spec.train.epochs)}

    def evaluate_val(self) -> Dict[str, float]:
        """Clean and PGD accuracy on the validation split (sharded across ranks)."""
        ev, th = self.spec.eval, self.spec.threat
        val = self.data.val
        n = len(val) if ev.val_n is None else min(ev.val_n, len(val))
        if n == 0:
            return {"val_clean_acc": float("nan"), "val_robust_acc": float("nan")}
        idx = torch.arange(self.dist.rank, n, self.dist.world_size, device=val.y.device)
        attacks = {"clean": make_attack("clean", th.eps, th.norm),
                   "robust": make_attack("pgd", th.eps, th.norm, steps=ev.val_pgd_steps, alpha=ev.val_pgd_alpha)}
        if ev.val_fgsm:
            attacks["fgsm"] = make_attack("fgsm", th.eps, th.norm)
        acc = accuracy_under(self.raw_model, val.x[idx], val.y[idx], attacks, ev.batch_size, self.device)
        k = len(idx)
        names = list(attacks)
        sums = self.dist.all_reduce_sum([acc[a] * k for a in names] + [k], self.device)
        total = sums[-1]
        return {f"val_{'robust' if a == 'robust' else a}_acc": v / total for a, v in zip(names, sums[:-1])}

    # ------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "epoch": self.epoch,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(),
            "policy": self.policy.state_dict() if self.policy is not None else {},
            "teacher": self.teacher.state_dict() if self.teacher is not None else {},
            "totals": dict(self.totals),
            "stopped": self.stopped,
            "best": self.best if self.best is not None else {},
            "history": list(self.history),
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: Dict[str, Any]):
        self.epoch = self._start = int(state["epoch"])
        self.stopped = bool(state.get("stopped", False))
        self.best = state.get("best") or None
        self.raw_model.load_state_dict(state["model"])
        if self.teacher is not None:
            # before the optimiser: installing the teacher may add a parameter group (a projection)
            self.teacher.load_state_dict(state.get("teacher") or {})
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state.get("method", {}))
        if self.policy is not None:
            self.policy.load_state_dict(state.get("policy", {}))
        self.totals.update(state.get("totals", {}))
        self.totals["restarts"] = self.totals.get("restarts", 0.0) + 1  # this run continues from a checkpoint
        self.history = list(state.get("history", []))
        if "rng" in state:
            torch.set_rng_state(state["rng"].cpu() if hasattr(state["rng"], "cpu") else state["rng"])

    # ------------------------------------------------------------------
    def collapsed(self, metrics: Dict[str, float]) -> bool:
        """Catastrophic overfitting (Wong et al.): validation PGD accuracy falls by more than
        ``co_drop`` from the previous epoch while FGSM accuracy rises."""
        ev = self.spec.eval
        if not ev.co_detect or not self.history or "val_fgsm_acc" not in metrics:
            return False
        prev = self.history[-1]
        return (prev["val_robust_acc"] - metrics["val_robust_acc"] > ev.co_drop
                and metrics["val_fgsm_acc"] > prev.get("val_fgsm_acc", 1.0))

    def run_epoch(self) -> Dict[str, Any]:
        """Train and validate one epoch; returns the report (the checkpoint is ``state_dict()``)."""
        epoch = self.epoch
        prev_model = copy.deepcopy(self.raw_model.state_dict()) if self.spec.eval.co_action == "rollback" else None
        tr = self.train_epoch(epoch)
        self.method.before_eval(self)
        ev = self.evaluate_val()
        metrics = {"epoch": epoch + 1, **tr, **ev,
                   "train_time_s": self.totals["train_time_s"], "cost": self.totals["cost"],
                   "restarts": self.totals.get("restarts", 0.0)}
        metrics.update(self.method.on_epoch_end(epoch, metrics, self) or {})
        if self.launched_at is not None and self.first_step_at is not None:
            metrics.update(self.startup_phases())
            self.launched_at = None  # once per process: a resumed trial reports its own start-up
        if self.policy is not None:
            metrics.update(self.policy.metrics())
        if self.teacher is not None:
            metrics.update(self.teacher.metrics())
        metrics = {k: float(v) for k, v in metrics.items()}
        collapsed = self.collapsed(metrics)
        if collapsed:
            self.totals["catastrophic_overfit"] = 1.0
            action = self.spec.eval.co_action
            if action in ("stop", "rollback"):
                self.stopped = True
            if action == "rollback" and prev_model is not None:
                # keep the previous epoch's weights and its validation numbers; the time and
                # cost of the collapsed epoch were spent, so they stay in the totals
                self.raw_model.load_state_dict(prev_model)
                prev = self.history[-1]
                metrics.update({k: v for k, v in prev.items() if k.startswith("val_")})
                metrics["rolled_back_to_epoch"] = prev["epoch"]
        metrics["catastrophic_overfit"] = self.totals.get("catastrophic_overfit", 0.0)
        report = dict(metrics)
        if epoch == self._start and self._start > 0:
            # first report after a restart: the epochs before the checkpoint, for any
            # listener that missed them (e.g. a sweep driver killed mid-trial)
            report["resumed_history"] = [dict(h) for h in self.history]
        self.epoch = epoch + 1
        self.history.append(metrics)
        if self.best is None or metrics["val_robust_acc"] > self.best["val_robust_acc"]:
            # best-on-validation weights, kept beside the last ones (AT numbers move several
            # points with the checkpoint choice; both are evaluated at the end)
            self.best = {"epoch": metrics["epoch"], "val_robust_acc": metrics["val_robust_acc"],
                         "model": copy.deepcopy(self.raw_model.state_dict())}
        metrics["best_epoch"] = report["best_epoch"] = float(self.best["epoch"])
        return report

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.spec.train.epochs

    def run(self, reporter: Reporter) -> List[Dict[str, float]]:
        if self.done and self._start > 0 and self.history:
            reporter.report(replayed(self.history, self.totals.get("restarts", 0.0)), None)
        while not self.done:
            report = self.run_epoch()
            reporter.report(report, self.state_dict() if self.dist.is_main else None)
        return self.history


class MultiSeedRun:
    """``repeats`` seeds of one configuration trained side by side (seed, seed+1, ...).

    Each report holds the mean over seeds of every metric (what the front uses), the standard
    deviation of the main ones (``<metric>_std``) and the per-seed values (``<metric>_seed<i>``)."""

    SPREAD = ("val_robust_acc", "val_clean_acc", "train_time_s", "cost")

    def __init__(self, spec: TrialSpec, launched_at: Optional[float] = None, **kw):
        self.runs = []
        for i in range(spec.repeats):
            s = copy.deepcopy(spec)
            s.train.seed = spec.train.seed + i
            self.runs.append(TrialRun(s, launched_at=launched_at if i == 0 else None, **kw))
        self.dist = self.runs[0].dist
        self.history: List[Dict[str, float]] = []

    def state_dict(self):
        return {"seeds": [r.state_dict() for r in self.runs], "history": list(self.history)}

    def load_state_dict(self, state):
        for r, st in zip(self.runs, state["seeds"]):
            r.load_state_dict(st)
        self.history = list(state.get("history", []))

    def run(self, reporter: Reporter):
        if all(r.done for r in self.runs) and self.runs[0]._start > 0 and self.history:
            reporter.report(replayed(self.history, self.runs[0].totals.get("restarts", 0.0)), None)
        while not all(r.done for r in self.runs):
            reports = [r.run_epoch() if not r.done else dict(r.history[-1]) for r in self.runs]
            keys = [k for k in reports[0] if all(isinstance(rep.get(k), float) for rep in reports)]
            agg: Dict[str, Any] = summarise_seeds(reports, spread=self.SPREAD.__contains__, keys=keys)
            agg["epoch"] = float(max(rep["epoch"] for rep in reports))
            agg["catastrophic_overfit"] = float(max(rep.get("catastrophic_overfit", 0.0) for rep in reports))
            agg["repeats"] = float(len(self.runs))
            agg.update({k: v for k, v in reports[0].items() if k.startswith("startup_")})  # the first seed's start-up
            if any("resumed_history" in rep for rep in reports) and self.history:
                agg["resumed_history"] = [dict(h) for h in self.history]
            self.history.append({k: v for k, v in agg.items() if k != "resumed_history"})
            reporter.report(agg, self.state_dict() if self.dist.is_main else None)
        return self.history


def replayed(history: List[Dict[str, Any]], restarts: float) -> Dict[str, Any]:
    """The last epoch's report again, for a run restored from a checkpoint with nothing left to train: the
    checkpoint is written before its report is sent, so a driver killed between the two never saw that
    epoch, and a trial that reported nothing would be recorded finished with an earlier epoch's numbers."""
    report = dict(history[-1], restarts=restarts)
    report["resumed_history"] = [dict(h) for h in history[:-1]]
    return report


def import_plugins(modules):
    """Import the modules a sweep names under ``imports`` (they register methods or models)."""
    import importlib

    for m in modules or ():
        importlib.import_module(m)


def run_trial(spec, reporter: Optional[Reporter] = None, resume_state: Optional[Dict[str, Any]] = None,
              dist: Optional[DistInfo] = None, device=None, wrap_model=None, data=None,
              launched_at: Optional[float] = None, startup_marks: Optional[Dict[str, float]] = None) -> List[Dict[str, float]]:
    """Train one configuration; returns the per-epoch metrics. ``spec`` may be a dict.

    ``launched_at`` (``time.time()`` when the sweep launched the trial) adds ``startup_s`` and its phases
    (``startup_marks``: see ``TrialRun``)."""
    marks = dict(startup_marks or {}, entered=(startup_marks or {}).get("entered", time.time()))
    if isinstance(spec, dict):
        spec = TrialSpec.from_dict(spec)
    import_plugins(spec.imports)
    kw = dict(dist=dist, device=device, wrap_model=wrap_model, data=data, launched_at=launched_at, startup_marks=marks)
    run = MultiSeedRun(spec, **kw) if spec.repeats > 1 else TrialRun(spec, **kw)
    if resume_state is not None:
        run.load_state_dict(resume_state)
    return run.run(reporter or LocalReporter())
