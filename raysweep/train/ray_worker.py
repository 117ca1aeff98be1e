"""Ray Train wiring: the per-worker function that runs the one training loop under DDP.

Imported only where Ray is installed; the loop itself (``raysweep.train.loop``) is torch-only."""

import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from .dist import DistInfo
from .loop import Reporter, run_trial

CKPT_FILE = "state.pt"


class RayTrainReporter(Reporter):
    """``ray.train.report`` on every rank (Ray requires it); rank 0 attaches the checkpoint.

    ``node_id`` is where rank 0 ran, ``worker_nodes`` every node the trial's ranks ran on."""

    def __init__(self, worker_nodes: str):
        import ray

        pg = ray.util.get_current_placement_group()  # lets the sweep release it if Tune kills the run
        self.where = {"node_id": ray.get_runtime_context().get_node_id(), "worker_nodes": worker_nodes,
                      "placement_group": pg.id.hex() if pg is not None else ""}

    def report(self, metrics, state):
        import ray.train

        metrics = dict(metrics, **self.where)
        if state is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, CKPT_FILE))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def _worker_nodes(world: int) -> str:
    import ray

    mine = ray.get_runtime_context().get_node_id()
    if world == 1 or not torch.distributed.is_initialized():
        return mine
    nodes = [None] * world
    torch.distributed.all_gather_object(nodes, mine)  # once per trial start, not per step
    return ",".join(sorted(set(nodes)))


def load_state(checkpoint_dir: str):
    # weights_only: a checkpoint is data, never code
    return torch.load(os.path.join(checkpoint_dir, CKPT_FILE), map_location="cpu", weights_only=True)


def process_started_at() -> Optional[float]:
    """Wall-clock time this process was created (Linux /proc, 10 ms ticks), or None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def train_loop_per_worker(config):
    marks = {"entered": time.time()}
    started = process_started_at()
    if started is not None:
        marks["process"] = started
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    torch.set_num_threads(max(1, int(config.get("cpus_per_worker", 1))))
    spec = config["spec"]
    if config.get("use_gpu"):
        from .dist import require_cuda

        # before anything is built: Ray Train would otherwise hand back the CPU and train there
        require_cuda(f"{ray.util.get_node_ip_address()} ({ray.get_runtime_context().get_node_id()})")
    device = ray.train.torch.get_device()
    resume = None
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            resume = load_state(d)
    world = ctx.get_world_size()
    find_unused = bool(spec.get("method") in config.get("partial_network_methods", ()))

    def wrap(model):
        if world == 1:
            return model
        return ray.train.torch.prepare_model(model, move_to_device=False,
                                             parallel_strategy_kwargs={"find_unused_parameters": find_unused})

    run_trial(spec, RayTrainReporter(_worker_nodes(world)), resume_state=resume, launched_at=config.get("launched_at"),
              dist=DistInfo(rank=ctx.get_world_rank(), world_size=world), device=device, wrap_model=wrap,
              startup_marks=marks)
