"""The Ray a sweep runs on (a cluster's, or raysweep's own local one) and the resources its trials
get there: GPU or not, the shape of one trial, how many at a time.

Everything here is decided before anything is written, so a request the cluster can never satisfy
is a one-line error (exit 2), not a sweep that waits forever."""

import atexit
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Set

from .._env import ray_temp_dir
from ..config import SweepConfig
from ..errors import UserError
from . import capacity as cap_mod
from .capacity import Capacity, TrialShape
from .placement import TRIAL_DRIVER, TRIAL_DRIVER_CAPACITY, trial_shape


def local_ray_env() -> None:
    """Ray Train settings for raysweep's embedded local Ray, set before it starts (its processes inherit them)."""
    # A local single-node Ray cannot be pre-empted: skip Ray Train's per-trial preemption
    # watcher and state reconciliation actors (a process each, ~200 MB; set them to 1 to keep them).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION", "0")
    # On a busy machine a trial's worker may wait for a CPU (a test-set evaluation, another
    # sweep): waiting is right, failing the trial after Ray Train's default 60 s is not.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "1800")


def init_ray(workdir: Path) -> None:
    """Join the cluster at ``$RAY_ADDRESS``, or start raysweep's own local Ray (stopped, with every
    process of its session, when this process exits)."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        return
    local_ray_env()
    tmp = ray_temp_dir(workdir)
    Path(tmp).mkdir(parents=True, exist_ok=True)
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=tmp,
             configure_logging=True, resources={TRIAL_DRIVER: TRIAL_DRIVER_CAPACITY})
    atexit.register(shutdown_local_ray, session_processes())


def session_processes() -> Set[int]:
    """PIDs of the local Ray's own processes (raylet, GCS, agents): ``ray.init`` starts them as
    children of this process. Its workers are children of the raylet while it lives, and carry
    ``RAY_RAYLET_PID`` after."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def shutdown_local_ray(own_pids: Set[int]) -> int:
    """Stop the local Ray, then any process of its session still alive: a worker whose raylet is
    gone normally exits by itself, but one seen after a test suite had outlived its Ray by minutes.
    A process is of the session if it is one of ``own_pids`` or a worker they started (its
    ``RAY_RAYLET_PID``). Returns how many had to be killed."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    return reap(own_pids)


def reap(own_pids: Set[int]) -> int:
    import psutil

    killed = 0
    raylets = {str(p) for p in own_pids}
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            ours = proc.pid in own_pids or proc.environ().get("RAY_RAYLET_PID") in raylets
            if ours:
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return killed


@dataclass
class ResourcePlan:
    """What a sweep asks of the cluster, decided once before it starts."""

    use_gpu: bool
    shape: TrialShape
    max_concurrent: int
    capacity: Capacity


def plan_resources(cfg: SweepConfig, capacity: Optional[Capacity] = None) -> ResourcePlan:
    """GPU or not, one trial's shape and the trials at a time, against what the cluster is now and,
    with an autoscaler, what its node types let it become. A trial that no node can ever hold is
    an error here (exit 2)."""
    cap = capacity if capacity is not None else cap_mod.read_capacity()
    use_gpu = resolve_gpu(cfg, cap)
    shape = trial_shape(cfg.resources, use_gpu)
    if cap_mod.trials_that_fit(cap.largest(), shape, limit=1) < 1:
        r = cfg.resources
        where = (f"no node of the Ray cluster can hold it, now or as its autoscaler grows it "
                 f"(node types: {cap.describe_types()})" if cap.autoscaling else
                 "no node of the Ray cluster can hold it and the cluster has no autoscaler that could add one")
        nodes = "; ".join(sorted({cap_mod.describe(n) for n in cap.nodes})) or "none"
        raise UserError(f"{cfg.file}: resources: one trial needs {shape.describe()} ({r.num_workers} worker(s), "
                        f"placement {r.placement}) but {where}; nodes up: {nodes}")
    conc = cfg.sweep.max_concurrent
    if conc == "auto":
        conc = cap_mod.auto_concurrency(cap, shape, cfg.sweep.sampler, cfg.sweep.num_samples, cfg.sweep.population_size)
    return ResourcePlan(use_gpu, shape, int(conc), cap)


def resolve_gpu(cfg: SweepConfig, cap: Capacity) -> bool:
    """``auto``: a GPU when the cluster has one or its autoscaler can add one."""
    has = cap.has_gpu()
    if cfg.resources.use_gpu == "auto":
        return has
    if cfg.resources.use_gpu and not has:
        why = (f"no node of the Ray cluster has a GPU and no node type of its autoscaler has one "
               f"(node types: {cap.describe_types()})" if cap.types else
               "the Ray cluster has no GPU and no autoscaler that could add one")
        raise UserError(f"{cfg.file}: resources.use_gpu: true, but {why} (use auto or false)")
    return bool(cfg.resources.use_gpu)
