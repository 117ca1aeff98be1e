"""A training method that fails on purpose, for the reliability tests.

Loaded by sweeps through the YAML key ``imports: [faulty_methods]`` (tests/plugins is on the
PYTHONPATH of the test session and of its Ray workers)."""

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from raysweep.attacks import fgsm
from raysweep.hparams import hp
from raysweep.methods import Method, StepResult, register_method


@dataclass
class FaultyParams:
    fault: str = hp("none", choices=("none", "raise", "nan", "kill_worker_once", "raise_once",
                                                   "wait_release"))
    at_epoch: int = hp(1, low=0, doc="0-based epoch in which the fault happens (at its 10th step)")
    marker_dir: str = hp("", doc="where *_once faults leave a marker so the retry succeeds; wait_release waits "
                                 "for a file 'release' there (a test's outage is over)")


@register_method
class Faulty(Method):
    name = "faulty"
    Params = FaultyParams
    paper = "test double: FGSM-RS with injected faults"
    fidelity = "test"

    def _marker(self):
        return Path(self.p.marker_dir) / "fault-fired"

    def on_epoch_start(self, epoch, run):
        self.steps_this_epoch = 0

    def step(self, ctx, x, y):
        self.steps_this_epoch = getattr(self, "steps_this_epoch", 0) + 1
        # Mid-epoch (10th step), as a real crash would be: the previous epoch's checkpoint is
        # safely registered by then.
        if ctx.epoch == self.p.at_epoch and self.steps_this_epoch == 10:
            f = self.p.fault
            if f == "wait_release":  # holds the sweep open until the test says so (up to 10 minutes)
                deadline = time.time() + 600
                while not (Path(self.p.marker_dir) / "release").exists() and time.time() < deadline:
                    time.sleep(0.2)
            if f == "raise":
                raise RuntimeError("injected failure: this trial always raises")
            if f in ("raise_once", "kill_worker_once") and not self._marker().exists():
                self._marker().parent.mkdir(parents=True, exist_ok=True)
                self._marker().write_text(str(os.getpid()))
                if f == "raise_once":
                    raise RuntimeError("injected failure: raises once")
                # A real crash comes long after the previous epoch's report; these synthetic
                # epochs take 0.1 s, so give Ray Train's controller (polling every 0.25 s) the
                # time it would have had to register that epoch's checkpoint.
                time.sleep(2.0)
                os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-epoch
        x_adv = fgsm(ctx.raw_model, x, y, self.threat.eps, alpha=1.25 * self.threat.eps)
        logits = ctx.model(x_adv)
        loss = F.cross_entropy(logits, y)
        if self.p.fault == "nan" and ctx.epoch == self.p.at_epoch:
            loss = loss * torch.tensor(float("nan"))
        return StepResult(loss, logits.detach(), cost=2.0, x_adv=x_adv)
