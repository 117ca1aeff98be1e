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
