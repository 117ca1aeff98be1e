"""Warm worker processes for the next Ray Train trial, on raysweep's embedded local Ray.

Under the sweep's real concurrency (two trials at a time on two cores), a ``train`` trial's
start-up was mostly process creation on a busy machine: the Ray Train controller, its
synchronisation actor and each training worker are fresh Ray worker processes (Python, Ray's
core worker, then torch and raysweep imported before the first step), started one after the
other while the other trial trains. Ray starts an actor on a *prestarted* idle worker process
when one with the actor's runtime environment is waiting (a process that once ran a task is
never reused for an actor), and its raylet can preload modules into every worker it starts. So:

* with ``preload``, the local Ray starts with ``preload_python_modules`` (torch and raysweep's
  training modules);
* when a trial's rank-0 worker enters its training function, all of that trial's processes are
  up; if the sweep's hub hands it a ticket (one per launch still to come beyond the ones
  already covered), it sends the hub its runtime environment, which the next trial's controller,
  synchronisation actor and workers will ask for too, and the hub asks the raylet (its
  ``PrestartWorkers`` RPC; there is no public Python API) for that many processes, one by one.
  The hub, not the trial, runs that sequence: a trial shorter than it would cut it off (seen in
  CI). Prestarting from the driver at launch time was tried first: the launching trial's own
  late process requests took the set.

Ray Train's controller, worker group, placement group and failure handling are untouched: they
just find their processes started. If trials do not take the warm processes (another Ray
version), their first reports say so (``startup_before_process_s`` > 0: the worker process
started after the launch) and the sweep stops handing out tickets, with one line. A cluster
(``RAY_ADDRESS``) keeps Ray's own behaviour.

**Off by default** (``RAYSWEEP_WARM_POOL=prestart`` or ``preload`` turns it on): measured on the
quickstart, two trials at a time on two cores (bench/results/warm_pool_2026-12-03.md), ``preload``
cuts the median ``startup_s`` from 10.6 s to 4.0 s but the trials phase gets *longer* (150-164 s
against 140-146 s off): every prestarted process imports torch, the controller and the
synchronisation actor too, and that CPU comes out of the other trial's training (Σ training time
203-225 s against 169-175 s). ``prestart`` alone changes neither (10.4 s, 137 s): the imports
move after the launch. Start-up latency is not the cost on a machine with no idle core; on one
with spare cores ``preload`` can pay.
"""

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

from ray.tune import Callback

# Imported by every worker process the local Ray starts: what a Ray Train worker imports before its
# first step (torch, raysweep's loop, methods and data) and what its controller unpickles.
PRELOAD = ("torch", "raysweep.train.ray_worker", "raysweep.tune.lean_train",
           "ray.train.v2._internal.execution.controller.controller")
KEEP_ALIVE_S = 900  # a prestarted process waits this long for its trial before Ray may reap it
DELAY_S = 1.0  # let the trial that prestarts load its data first
# The raylet starts at most min(cores, CPUs) processes at a time and drops a prestart past that, so the
# processes are asked for one by one, this far apart (a process with torch preloaded takes ~2-4 s to start).
SPACING_S = 2.5
COLD_TO_STOP = 3  # launches that could have been warm, none was: stop prestarting


MODES = ("off", "prestart", "preload")
DEFAULT_MODE = "off"


def mode() -> str:
    """``RAYSWEEP_WARM_POOL``: ``off``; ``prestart`` (the next trial's processes are started while the
    current ones train); ``preload`` (prestart, and every worker process imports torch and raysweep's
    training modules when it starts). ``0``/``1`` are ``off``/``preload``."""
    raw = os.environ.get("RAYSWEEP_WARM_POOL", DEFAULT_MODE).strip().lower()
    value = {"0": "off", "1": "preload", "": DEFAULT_MODE}.get(raw, raw)
    if value not in MODES:
        from ..errors import UserError

        raise UserError(f"environment variable RAYSWEEP_WARM_POOL={raw!r}: allowed values: {', '.join(MODES)}, 0, 1")
    return value


def enabled() -> bool:
    return mode() != "off" and not os.environ.get("RAY_ADDRESS")


def system_config() -> Dict[str, object]:
    """For ``ray.init(_system_config=...)`` of the embedded local Ray."""
    preload = mode() == "preload" and not os.environ.get("RAY_ADDRESS")
    return {"preload_python_modules": list(PRELOAD)} if preload else {}


def raylet_address() -> str:
    """This node's raylet (driver side)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == node_id)
    return f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}"


def prestart(address: str, serialized_runtime_env: str, job_id: str, n: int) -> None:
    """Ask the raylet at ``address`` for ``n`` idle worker processes of this job with this runtime
    environment (the string a Ray Train worker of the sweep reports: the next trial's processes have it)."""
    import grpc
    from ray._private.utils import get_runtime_env_info
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc
    from ray.runtime_env import RuntimeEnv

    info = get_runtime_env_info(RuntimeEnv.deserialize(serialized_runtime_env), serialize=False)
    info.serialized_runtime_env = serialized_runtime_env  # the exact string the raylet hashes
    req = node_manager_pb2.PrestartWorkersRequest(language=common_pb2.PYTHON, job_id=bytes.fromhex(job_id),
                                                  num_workers=n, keep_alive_duration_secs=KEEP_ALIVE_S,
                                                  runtime_env_info=info)
    with grpc.insecure_channel(address) as channel:
        node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(req, timeout=10)


_one_at_a_time = threading.Lock()  # two trials' requests at once would pass the raylet's start-up concurrency


def prestart_soon(address: str, serialized_runtime_env: str, job_id: str, n: int, delay_s: float = DELAY_S,
                  on_each: Callable[[], None] = lambda: None) -> None:
    """In a background thread of the sweep's hub actor, so the sequence outlives a short trial that
    asked for it; ``on_each`` after each process the raylet started. An optimisation: a failure is
    a line on stderr, never the trial's."""
    def run():
        time.sleep(delay_s)
        with _one_at_a_time:
            try:
                for i in range(n):
                    if i:
                        time.sleep(SPACING_S)
                    prestart(address, serialized_runtime_env, job_id, 1)
                    on_each()
            except Exception as e:  # noqa: BLE001
                print(f"raysweep: could not prestart worker processes: {type(e).__name__}: {e}", file=sys.stderr)

    threading.Thread(target=run, name="raysweep-prestart", daemon=True).start()


def prestarting(config: Dict[str, Any]):
    """A Ray Train loop whose rank 0 first asks the hub for the next trial's processes (every process
    of this trial is up by now, and the trial's runtime environment is known), then runs the loop
    in ``config["loop"]``."""
    import ray
    import ray.train

    if ray.train.get_context().get_world_rank() == 0:
        from .lean_train import HUB_NAME

        ctx = ray.get_runtime_context()
        ray.get_actor(HUB_NAME).prestart.remote(ctx.get_runtime_env_string(), ctx.get_job_id(), config["prestart"]["n"])
    return config["loop"](config)


class WarmPoolCallback(Callback):
    """Driver side: gives the hub one ticket per launch that has a later launch ``ahead`` places after
    it (with ``ahead`` trials at a time, the one that will take its slot), and stops if none is warm."""

    def __init__(self, hub, to_launch: int, ahead: int, printer: Callable = print):
        import ray

        self.hub, self.ahead, self.printer = hub, ahead, printer
        self.launches = 0
        self.warm = self.cold = 0
        self.could_be_warm: Dict[str, bool] = {}
        self.active = True
        ray.get(hub.set_prestart.remote(raylet_address(), max(0, to_launch - ahead)))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.launches += 1
        self.could_be_warm[trial.trial_id] = self.launches > self.ahead

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "startup_before_process_s" not in result or not self.could_be_warm.pop(trial.trial_id, False):
            return
        if float(result["startup_before_process_s"]) <= 0.0:
            self.warm += 1
        else:
            self.cold += 1
        if self.active and self.warm == 0 and self.cold >= COLD_TO_STOP:
            import ray

            self.active = False
            ray.get(self.hub.set_prestart.remote(None, 0))
            self.printer("raysweep: warm worker pool off: the trials did not take the prestarted worker processes "
                         "(their runtime environment differs); trials start their processes cold", flush=True)

    def __getstate__(self):
        # Tune pickles its callbacks with its experiment state; raysweep's resume builds new ones
        return {k: v for k, v in self.__dict__.items() if k != "printer"}


def start(hub, to_launch: int, ahead: int, printer: Callable = print) -> Optional[WarmPoolCallback]:
    """The pool's Tune callback for a sweep of ``to_launch`` Ray Train trials, or None where it does not apply."""
    if not enabled() or to_launch <= ahead:
        return None
    import ray

    if sum(1 for n in ray.nodes() if n["Alive"]) != 1:  # a cluster: Ray places trials, and its own behaviour stays
        return None
    try:
        return WarmPoolCallback(hub, to_launch, ahead, printer)
    except Exception as e:  # noqa: BLE001 - an optimisation: never fails the sweep
        printer(f"raysweep: warm worker pool off: {type(e).__name__}: {str(e).splitlines()[0][:120]}", flush=True)
        return None


def ticket_config(ticket: bool, num_workers: int) -> Optional[Dict[str, Any]]:
    """What a trial's rank-0 worker gets in its config: how many processes to ask for (the
    controller, its synchronisation actor, the workers)."""
    return {"n": 2 + num_workers} if ticket else None
