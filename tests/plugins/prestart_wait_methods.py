"""A training method whose first step waits until the sweep's hub has prestarted ``count`` worker
processes (the warm pool, raysweep/tune/warm_pool.py), so a test of the warm pool does not depend
on how long a trial trains compared with the prestart sequence. Loaded with
``imports: [prestart_wait_methods]`` (tests/plugins is on the PYTHONPATH)."""

import time
from dataclasses import dataclass

from raysweep.hparams import hp
from raysweep.methods import register_method
from waiting_fgsm import WaitsThenFGSM


@dataclass
class PrestartWaitParams:
    count: int = hp(6, low=0)
    timeout_s: float = hp(90.0, low=0.0)


@register_method
class PrestartWait(WaitsThenFGSM):
    name = "prestart_wait"
    Params = PrestartWaitParams
    paper = "test double: FGSM-RS whose first step waits for the warm pool's prestarted processes"
    fidelity = "test"

    def wait(self):
        import ray

        from raysweep.tune.lean_train import HUB_NAME

        hub, deadline = ray.get_actor(HUB_NAME), time.time() + self.p.timeout_s
        while ray.get(hub.prestarted.remote()) < self.p.count:
            if time.time() > deadline:
                raise RuntimeError(f"prestart_wait: the hub prestarted {ray.get(hub.prestarted.remote())} "
                                   f"of {self.p.count} processes in {self.p.timeout_s} s")
            time.sleep(0.2)
