"""DDP correctness of the one training loop: 2 workers at global batch B take the same first
step as 1 worker at batch B (gloo, real processes, no Ray needed)."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from raysweep.methods import StepContext
from raysweep.train.dist import DistInfo
from raysweep.train.loop import TrialRun
from raysweep.train.spec import TrialSpec

from conftest import free_port

SPEC = {
    # deterministic attack (no random start) and no BatchNorm: the two runs must agree exactly
    "method": "pgd_at", "method_params": {"steps": 2, "random_start": False},
    "dataset": {"name": "synthetic", "val_size": 64, "train_size": 256},
    "model": {"name": "small_cnn", "width": 4}, "threat": {"eps": 0.1},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "schedule": "constant"},
}


def first_step(rank, world, port, out):
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    run = TrialRun(TrialSpec.from_dict(SPEC), dist=DistInfo(rank, world), device="cpu",
                   wrap_model=(lambda m: DDP(m)) if world > 1 else None)
    x, y, idx, w = next(iter(run.loader))
    ctx = StepContext(run.model, run.raw_model, 0, run.data.num_classes, run.data.input_shape, w)
    res = run.method.step(ctx, x, y)
    res.loss.backward()
    loss = res.loss.detach().clone()
    if world > 1:
        dist.all_reduce(loss)
        loss /= world
    out[rank] = {"loss": loss.item(), "idx": idx.tolist(),
                 "grads": [p.grad.detach().clone() for p in run.raw_model.parameters()]}
    if world > 1:
        dist.destroy_process_group()


def test_two_workers_match_one_worker_first_step():
    single = {}
    first_step(0, 1, None, single)
    manager = mp.Manager()
    out = manager.dict()
    port = free_port()
    mp.spawn(first_step, args=(2, port, out), nprocs=2, join=True)
    r0, r1 = out[0], out[1]
    # the two ranks split the single worker's batch exactly
    assert sorted(r0["idx"] + r1["idx"]) == sorted(single[0]["idx"]) and not set(r0["idx"]) & set(r1["idx"])
    assert r0["loss"] == pytest.approx(single[0]["loss"], rel=1e-5)
    for g_ddp0, g_ddp1, g in zip(r0["grads"], r1["grads"], single[0]["grads"]):
        assert torch.allclose(g_ddp0, g_ddp1)  # DDP all-reduced: identical on both ranks
        assert torch.allclose(g_ddp0, g, rtol=1e-4, atol=1e-6)


def test_loader_reshuffles_each_epoch_identically_on_every_rank():
    from raysweep.data import TensorBatches, load_dataset

    data = load_dataset("synthetic", val_size=64)
    orders = {}
    for rank in (0, 1):
        ld = TensorBatches(data.train, 64, seed=3, rank=rank, world_size=2)
        for epoch in (0, 1):
            ld.set_epoch(epoch)
            orders[(rank, epoch)] = torch.cat([b[2] for b in ld]).tolist()
    assert orders[(0, 0)] != orders[(0, 1)]  # re-seeded per epoch
    full = TensorBatches(data.train, 64, seed=3)
    full.set_epoch(1)
    assert sorted(orders[(0, 1)] + orders[(1, 1)]) == sorted(torch.cat([b[2] for b in full]).tolist())
