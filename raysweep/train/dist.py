"""The little that the loop needs to know about distributed training, torch-only."""

from dataclasses import dataclass

import torch
import torch.distributed as tdist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values, device):
        """Sum a list of floats across ranks (a no-op on one process)."""
        if self.world_size == 1 or not tdist.is_available() or not tdist.is_initialized():
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=device)
        tdist.all_reduce(t)
        return t.tolist()


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class NoCudaDevice(RuntimeError):
    """Ray gave this process a GPU, but torch sees none: the node's driver or image does not match."""


def require_cuda(where: str) -> torch.device:
    """The CUDA device a process that Ray gave a GPU must train on. Never a silent CPU fallback:
    a trial that should use a GPU and trains on CPU instead looks fine and costs 10-50x the time.
    ``where`` names the node for the one-line error."""
    import os

    if torch.cuda.is_available():
        return torch.device("cuda")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    raise NoCudaDevice(
        f"Ray gave this trial a GPU on node {where} (CUDA_VISIBLE_DEVICES={visible if visible is not None else 'unset'}) "
        f"but torch {torch.__version__} sees no CUDA device there (built for CUDA {torch.version.cuda or 'none'}): "
        "a driver or image mismatch on that node")
