"""Launching a Ray Train run from a Tune trial without Ray Train's fixed per-trial costs.

Measured on the 2-core CI-class machine (``bench/overhead.py``), a default ``TorchTrainer``
inside a Tune trial starts six fresh processes per trial, one after the other in part:
a queue actor (``TuneReportCallback``), the controller, a placement-group cleaner, a
synchronisation actor, the workers and a dataset manager. The controller alone spent
~2.4 s starting, most of it importing torch only to unpickle ``TorchConfig``. This module
keeps the same Ray Train machinery (controller, worker group, placement group, DDP process
group, checkpoints in storage, failure handling) and removes what a raysweep trial never uses:

- ``LeanTorchConfig``: the torch backend configured from a module that does not import torch,
  so the controller stays torch-free; the worker-side steps are Ray's own functions, looked up
  on the worker. A single-worker trial gets no process group (nothing to synchronise).
- ``LeanTrainer``: no dataset manager (raysweep passes no Ray Datasets) and no placement-group
  cleaner (a detached actor per trial that needs the State API, absent from the minimal
  install, so it could not clean anything there). Instead the sweep releases its own trials'
  leftover placement groups when it ends (``release_placement_groups``).
- ``ReportHub``: one actor per sweep carries reports from each trial's controller to the Tune
  trial, instead of one queue actor per trial.

The private Ray names this needs are in ``ray_compat.py``, behind its version gate: on a Ray
release they were not tested with, or with ``RAYSWEEP_LEAN_TRAIN=0``, trials take Ray's
documented path, ``TorchTrainer`` + ``TuneReportCallback`` (the bench measures both).
"""

import asyncio
import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import ray
from ray.train import UserCallback
from ray.train.backend import Backend, BackendConfig

from . import ray_compat

HUB_NAME = "raysweep-report-hub"


class _DeviceContext:
    """Around the train function on each worker: select this worker's CUDA device."""

    def __enter__(self):
        return ray_compat.device_context().__enter__()

    def __exit__(self, *exc):
        return False


class _LeanTorchBackend(Backend):
    share_cuda_visible_devices = True  # as Ray's torch backend: ranks pick devices by local rank

    def on_start(self, worker_group, backend_config):
        n = len(worker_group)
        if n == 1:
            return
        backend = backend_config.backend
        if backend is None:
            backend = "nccl" if worker_group.get_resources_per_worker().get("GPU", 0) > 0 else "gloo"
        addr, port = worker_group.execute_single(0, ray_compat.address_and_port)
        worker_group.execute(_set_master, addr, port)
        worker_group.execute(ray_compat.set_torch_env_vars)
        ray.get([worker_group.execute_single_async(i, ray_compat.setup_process_group,
                                                   backend=backend, world_rank=i, world_size=n,
                                                   init_method="env://", timeout_s=backend_config.timeout_s)
                 for i in range(n)])

    def on_shutdown(self, worker_group, backend_config):
        try:
            ray.get(worker_group.execute_async(ray_compat.shutdown_torch,
                                               destroy_process_group=len(worker_group) > 1), timeout=30)
        except ray.exceptions.GetTimeoutError:
            pass  # a hung collective must not hang the trial's teardown


def _set_master(addr: str, port: int):
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)


@dataclass
class LeanTorchConfig(BackendConfig):
    """Ray's ``TorchConfig`` (gloo on CPU, nccl on GPU, ``env://`` rendezvous), torch-free here."""

    backend: Optional[str] = None
    timeout_s: int = 1800

    @property
    def backend_cls(self):
        return _LeanTorchBackend

    @property
    def train_func_context(self):
        return _DeviceContext

    @property
    def framework(self):
        return ray_compat.torch_framework()


def make_trainer(*args, lean: bool = True, **kwargs):
    """A Ray Train V2 data-parallel trainer: lean by default, Ray's ``TorchTrainer`` if not."""
    if not lean:
        from ray.train.torch import TorchTrainer

        return TorchTrainer(*args, **kwargs)
    return ray_compat.lean_trainer_class()(*args, backend_config=LeanTorchConfig(), **kwargs)


class ReportHub:
    """Per-sweep mailbox: controllers put each trial's reports, Tune trials take them in order.

    A trial that Tune stops early (ASHA) is marked here; its controller learns it at its next
    report and ends the run through Ray Train's normal failure path, which releases the
    workers and the placement group (killing the controller instead can leak the latter)."""

    def __init__(self):
        self._queues: Dict[str, asyncio.Queue] = {}
        self._stopped = set()
        self._placement_groups = set()

    def _q(self, key: str) -> asyncio.Queue:
        return self._queues.setdefault(key, asyncio.Queue())

    async def put(self, key: str, item: Dict[str, Any]) -> bool:
        """Returns whether the trial was stopped (the controller then ends the run)."""
        if item.get("placement_group"):
            self._placement_groups.add(item["placement_group"])
        if key in self._stopped:
            return True
        self._q(key).put_nowait(item)
        return False

    async def stop(self, key: str) -> None:
        self._stopped.add(key)

    async def get(self, key: str, timeout: float):
        try:
            return await asyncio.wait_for(self._q(key).get(), timeout) if timeout > 0 else self._q(key).get_nowait()
        except (asyncio.TimeoutError, asyncio.QueueEmpty):
            return None

    async def placement_groups(self) -> List[str]:
        return sorted(self._placement_groups)

    async def drop(self, key: str) -> None:
        self._queues.pop(key, None)
        self._stopped.discard(key)


def release_placement_groups(hub) -> int:
    """After the sweep: remove any of its trials' placement groups still held. Tune kills a
    trial's actor when it stops the last trials at the end of an experiment; a controller that
    dies mid-shutdown leaves its placement group (and its CPUs/GPUs) reserved otherwise."""
    from .placement import release_placement_groups as release

    return release(ray.get(hub.placement_groups.remote()))


class StoppedByTune(RuntimeError):
    """Raised in the controller to end a run whose trial Tune stopped."""


def start_hub():
    """The sweep's hub on the driver's node (no CPU reserved; it lives as long as the driver)."""
    return ray.remote(ReportHub).options(
        name=HUB_NAME, get_if_exists=True, num_cpus=0, max_concurrency=10_000,
        scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False),
    ).remote()


class HubReportCallback(UserCallback):
    """Controller side: forward rank 0's report (and the checkpoint's path) to the hub.

    The put is waited for, so when ``fit()`` returns every report is already in the hub."""

    def __init__(self, hub, key: str):
        self.hub, self.key = hub, key

    def after_report(self, run_context, metrics: List[Dict[str, Any]], checkpoint):
        item = dict(metrics[0])
        if checkpoint:
            item["checkpoint_path"] = checkpoint.path
        if ray.get(self.hub.put.remote(self.key, item)):
            raise StoppedByTune(f"{self.key}: stopped by the Tune scheduler")


def fit_streaming(trainer_kwargs: Dict[str, Any], key: str, report, lean: bool = True) -> None:
    """Builds the trainer, fits it, and calls ``report`` (``tune.report``) for each of its
    reports as it arrives. With the stock path, ``TuneReportCallback`` does the forwarding.

    ``fit()`` stays on the calling thread (the trial's training thread). When Tune stops the
    trial (e.g. ASHA), the run ends at its next report and this exits the training thread
    the way Tune's ``report`` would, so Tune can reuse the trial's actor for the next trial."""
    run_config = trainer_kwargs["run_config"]
    if not lean:
        from ray.tune.integration.ray_train import TuneReportCallback

        run_config.callbacks = list(run_config.callbacks or []) + [TuneReportCallback()]
        make_trainer(lean=False, **trainer_kwargs).fit()
        return
    hub = ray.get_actor(HUB_NAME)
    run_config.callbacks = list(run_config.callbacks or []) + [HubReportCallback(hub, key)]
    trainer = make_trainer(**trainer_kwargs)
    done, stopped = threading.Event(), threading.Event()
    failed: List[BaseException] = []
    stop_requested = ray_compat.tune_stop_event()  # set when Tune stops the trial (ASHA)

    def pump():
        try:
            while True:
                if stop_requested is not None and stop_requested.is_set():
                    raise SystemExit
                item = ray.get(hub.get.remote(key, 0.2))
                if item is not None:
                    report(item)
                elif done.is_set():
                    while (item := ray.get(hub.get.remote(key, 0))) is not None:
                        report(item)
                    return
        except SystemExit:  # Tune is stopping this trial: end the run at its next report
            stopped.set()
            ray.get(hub.stop.remote(key))
        except BaseException as e:  # noqa: BLE001 - re-raised on the training thread below
            failed.append(e)

    th = threading.Thread(target=pump, name="raysweep-report-pump", daemon=True)
    th.start()
    try:
        trainer.fit()
    except Exception:
        if not stopped.is_set():
            raise  # a stopped run ends with StoppedByTune from the controller: expected
    finally:
        done.set()
        th.join()
        hub.drop.remote(key)
    if failed:
        raise failed[0]
    if stopped.is_set():
        # What Tune's own ``report`` does on a stop: a clean exit of the training thread (a
        # normal return would make Tune's wrapper report once more into a queue no one reads).
        if stop_requested is not None:
            stop_requested.clear()
        raise SystemExit(0)
