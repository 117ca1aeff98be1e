"""The Tune trial: a function that launches a Ray Train data-parallel run for one config.

(``Tuner(TorchTrainer)`` is not supported with Train V2; a function trainable that builds and
fits the trainer and forwards its reports to Tune is Ray's documented way; ``lean_train``
does it without Ray Train's per-trial extras.)
The ``inprocess`` executor runs the same loop inside the Tune trial process instead, which
skips Ray Train's per-trial start-up for single-worker trials.
"""

import io
import os
import time

import torch
from ray import tune

from ..evaluation.checkpoints import is_uri
from ..methods import get_method, list_methods
from ..train.loop import Reporter, import_plugins, run_trial
from ..train.ray_worker import CKPT_FILE, train_loop_per_worker
from . import storage
from .lean_train import fit_streaming
from .placement import uses_inprocess
from .trial_config import spec_of


def _partial_network_methods(spec):
    # The trial process has not imported the YAML's plugins (its workers do, in run_trial): a plugin method that
    # runs part of the network must be in this list too, or DDP is not told to expect unused parameters.
    import_plugins(spec.get("imports"))
    return [m for m in list_methods() if getattr(get_method(m), "partial_network", False)]


def node_label() -> str:
    """This process's node, for error lines: its IP and Ray node id."""
    import ray

    ctx = ray.get_runtime_context()
    return f"{ray.util.get_node_ip_address()} ({ctx.get_node_id()})"


def trial_device(use_gpu: bool) -> str:
    """The device of a trial process: CUDA when Ray gave it a GPU (and an error where torch sees
    none), else the CPU."""
    if not use_gpu:
        return "cpu"
    from ..train.dist import require_cuda

    return str(require_cuda(node_label()))


class InProcessReporter(Reporter):
    """Single-process trials keep their last checkpoint in the sweep's storage themselves
    (``<storage>/<train_run_name>/state.pt``, replaced whole: a local file by rename, an object in
    an object store by its single PUT), so a resumed sweep, or a retry on another node, finds it
    the same way a Ray Train run finds its own."""

    def __init__(self, ckpt_dir: str, node_id: str, send=None):
        self.ckpt_dir, self.node_id = ckpt_dir, node_id
        self.send = send or tune.report
        if not is_uri(ckpt_dir):
            os.makedirs(ckpt_dir, exist_ok=True)

    def report(self, metrics, state):
        metrics = dict(metrics, node_id=self.node_id)
        if state is not None:
            buf = io.BytesIO()
            torch.save(state, buf)
            storage.write_bytes(storage.join(self.ckpt_dir, CKPT_FILE), buf.getvalue())
            metrics = dict(metrics, checkpoint_path=self.ckpt_dir)
        self.send(metrics)

    def last_state(self):
        data = storage.read_bytes(storage.join(self.ckpt_dir, CKPT_FILE))
        # weights_only: a checkpoint is data, never code
        return None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def make_trial_fn(storage_path: str, resources, use_gpu: bool, lean: bool = True):
    def trial_fn(config):
        launched_at = time.time()
        spec = spec_of(config)
        run_name = config.get("train_run_name") or f"train-{tune.get_context().get_trial_id()}"
        if uses_inprocess(resources, use_gpu):
            device = trial_device(use_gpu)  # before anything is built: a GPU node without CUDA fails at once
            torch.set_num_threads(max(1, int(resources.cpus_per_worker)))
            import ray

            reporter = InProcessReporter(storage.join(storage_path, run_name), ray.get_runtime_context().get_node_id())
            run_trial(spec, reporter, resume_state=reporter.last_state(), launched_at=launched_at, device=device)
            return
        import ray.train

        per_worker = {"CPU": resources.cpus_per_worker}
        if use_gpu:
            per_worker["GPU"] = resources.gpus_per_worker
        trainer_kwargs = dict(
            train_loop_per_worker=train_loop_per_worker,
            train_loop_config={"spec": spec, "cpus_per_worker": resources.cpus_per_worker, "use_gpu": use_gpu,
                               "partial_network_methods": _partial_network_methods(spec), "launched_at": launched_at},
            scaling_config=ray.train.ScalingConfig(num_workers=resources.num_workers, use_gpu=use_gpu,
                                                   resources_per_worker=per_worker,
                                                   placement_strategy=resources.placement.upper()),
            # Same name on a retry or a resumed sweep: Train V2 restores the last checkpoint from storage.
            run_config=ray.train.RunConfig(name=run_name, storage_path=storage_path,
                                           failure_config=ray.train.FailureConfig(max_failures=0)),
        )
        fit_streaming(trainer_kwargs, key=f"{storage_path}/{run_name}", report=tune.report, lean=lean)

    return trial_fn
