"""A training method whose first step waits until ``parties`` trials have all reached theirs.

Used to check that trials the sweep runs "2 at a time" really train at the same time: if one
trial's worker cannot start until the other trial ends, the rendezvous times out and the trial
fails. Loaded with ``imports: [rendezvous_methods]`` (tests/plugins is on the PYTHONPATH)."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from raysweep.hparams import hp
from raysweep.methods import register_method
from waiting_fgsm import WaitsThenFGSM


@dataclass
class RendezvousParams:
    meeting_dir: str = hp("", doc="shared directory where each trial's first step leaves a file")
    parties: int = hp(2, low=1)
    timeout_s: float = hp(120.0, low=0.0)


@register_method
class Rendezvous(WaitsThenFGSM):
    name = "rendezvous"
    Params = RendezvousParams
    paper = "test double: FGSM-RS whose first step waits for the other trials' first steps"
    fidelity = "test"

    def wait(self):
        d = Path(self.p.meeting_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"arrived-{os.getpid()}").write_text(str(time.time()))
        deadline = time.time() + self.p.timeout_s
        while len(list(d.glob("arrived-*"))) < self.p.parties:
            if time.time() > deadline:
                raise RuntimeError(f"rendezvous: only {len(list(d.glob('arrived-*')))} of {self.p.parties} "
                                   f"trials were training at the same time")
            time.sleep(0.2)
