"""Batches straight from in-memory tensors: no DataLoader workers, no host round trips.

With DDP every rank draws the same global permutation (seeded by seed and epoch) and takes
its contiguous slice of each global batch, so W workers at global batch B see exactly the
examples one worker at batch B would see.
"""

from typing import Optional

import torch

from .augment import AUGMENTATIONS
from .bundle import Split


class TensorBatches:
    def __init__(self, split: Split, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 augment: str = "none", device=None, rank: int = 0, world_size: int = 1,
                 indices: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None):
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.augment = AUGMENTATIONS[augment]
        self.device = device if device is not None else split.x.device
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.set_subset(indices, weights)

    def set_subset(self, indices: Optional[torch.Tensor], weights: Optional[torch.Tensor] = None):
        """Train on ``indices`` only (data pruning), optionally with per-example ``weights``."""
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.long).cpu()
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32).cpu()

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    @property
    def num_examples(self) -> int:
        return len(self.split) if self.indices is None else len(self.indices)

    def __len__(self):
        n = self.num_examples
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest >= self.world_size else 0)

    def __iter__(self):
        n = self.num_examples
        order = torch.arange(n)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        for b in range(len(self)):
            pos = order[b * self.batch_size:(b + 1) * self.batch_size]
            pos = torch.tensor_split(pos, self.world_size)[self.rank]
            idx = pos if self.indices is None else self.indices[pos]
            x = self.split.x[idx.to(self.split.x.device)].to(self.device, non_blocking=True)
            x = x.float().div_(255.0)
            if self.augment is not None:
                x = self.augment(x)
            y = self.split.y[idx.to(self.split.y.device)].to(self.device, non_blocking=True)
            w = None if self.weights is None else self.weights[pos].to(self.device)
            yield x, y, idx, w
