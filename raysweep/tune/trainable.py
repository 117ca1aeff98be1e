"""The Tune trial: a function that launches a Ray Train data-parallel run for one config.

(``Tuner(TorchTrainer)`` is not supported with Train V2; a function trainable that builds and
fits the trainer and forwards its reports to Tune is Ray's documented way; ``lean_train``
does it without Ray Train's per-trial extras.)
The ``inprocess`` executor runs the same loop inside the Tune trial process instead, which
skips Ray Train's per-trial start-up for single-worker trials.
"""

import os
import time

import torch
from ray import tune

from ..methods import get_method, list_methods
from ..train.loop import Reporter, run_trial
from ..train.ray_worker import CKPT_FILE, load_state, train_loop_per_worker
from .lean_train import fit_streaming


def _partial_network_methods():
    return [m for m in list_methods() if getattr(get_method(m), "partial_network", False)]


class InProcessReporter(Reporter):
    """Single-process trials keep their last checkpoint in the sweep's storage themselves
    (``<storage>/<train_run_name>/state.pt``, replaced atomically), so a resumed sweep finds
    it the same way a Ray Train run finds its own."""

    def __init__(self, ckpt_dir: str):
        self.ckpt_dir = ckpt_dir
        os.makedirs(ckpt_dir, exist_ok=True)

    def report(self, metrics, state):
        import ray

        metrics = dict(metrics, node_id=ray.get_runtime_context().get_node_id())
        if state is not None:
            tmp = os.path.join(self.ckpt_dir, CKPT_FILE + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, os.path.join(self.ckpt_dir, CKPT_FILE))
            metrics = dict(metrics, checkpoint_path=self.ckpt_dir)
        tune.report(metrics)


def make_trial_fn(storage_path: str, resources, use_gpu: bool, lean: bool = True):
    def trial_fn(config):
        launched_at = time.time()
        spec = config["spec"]
        run_name = config.get("train_run_name") or f"train-{tune.get_context().get_trial_id()}"
        if uses_inprocess(resources, use_gpu):
            torch.set_num_threads(max(1, int(resources.cpus_per_worker)))
            ckpt_dir = os.path.join(storage_path, run_name)
            resume = load_state(ckpt_dir) if os.path.isfile(os.path.join(ckpt_dir, CKPT_FILE)) else None
            run_trial(spec, InProcessReporter(ckpt_dir), resume_state=resume, launched_at=launched_at,
                      device="cuda" if use_gpu and torch.cuda.is_available() else "cpu")
            return
        import ray.train

        per_worker = {"CPU": resources.cpus_per_worker}
        if use_gpu:
            per_worker["GPU"] = resources.gpus_per_worker
        trainer_kwargs = dict(
            train_loop_per_worker=train_loop_per_worker,
            train_loop_config={"spec": spec, "cpus_per_worker": resources.cpus_per_worker,
                               "partial_network_methods": _partial_network_methods(), "launched_at": launched_at},
            scaling_config=ray.train.ScalingConfig(num_workers=resources.num_workers, use_gpu=use_gpu,
                                                   resources_per_worker=per_worker,
                                                   placement_strategy=resources.placement.upper()),
            # Same name on a retry or a resumed sweep: Train V2 restores the last checkpoint from storage.
            run_config=ray.train.RunConfig(name=run_name, storage_path=storage_path,
                                           failure_config=ray.train.FailureConfig(max_failures=0)),
        )
        fit_streaming(trainer_kwargs, key=f"{storage_path}/{run_name}", report=tune.report, lean=lean)

    return trial_fn


def uses_inprocess(resources, use_gpu: bool) -> bool:
    """``auto`` takes the in-process path for single-worker CPU trials (no DDP to set up)."""
    return resources.executor == "inprocess" or (resources.executor == "auto" and resources.num_workers == 1 and not use_gpu)


# A custom resource that a Ray Train trial's driver process reserves instead of CPU. raysweep's own
# local Ray has plenty of it; on a cluster the head can offer it too (cluster.yaml does).
TRIAL_DRIVER = "raysweep_trial_driver"
TRIAL_DRIVER_CAPACITY = 10_000


def trial_resources(resources, use_gpu: bool):
    """Resources Tune reserves for the trial process itself."""
    if uses_inprocess(resources, use_gpu):
        bundle = {"CPU": resources.cpus_per_worker}
        if use_gpu:
            bundle["GPU"] = resources.gpus_per_worker
        return tune.PlacementGroupFactory([bundle])
    # The trial process only drives the trainer; the workers reserve their own CPUs/GPUs. It must
    # not take CPU from them: with a CPU share, two 1-CPU trials need 2.02 CPUs and on a 2-core
    # machine the second trial's worker waits for the first trial to end (then times out), so
    # "2 at a time" runs one at a time.
    import ray

    if ray.is_initialized() and ray.cluster_resources().get(TRIAL_DRIVER, 0) > 0:
        return tune.PlacementGroupFactory([{TRIAL_DRIVER: 1}])
    return tune.PlacementGroupFactory([{"CPU": 0.01}])  # a cluster that does not offer the resource
