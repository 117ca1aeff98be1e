"""In-memory datasets with a seeded validation split carved from the training set."""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .registry import dataset_names, load_raw


@dataclass
class Split:
    x: torch.Tensor  # uint8 N x C x H x W (converted to float in [0,1] per batch)
    y: torch.Tensor  # int64 N

    def __len__(self):
        return len(self.y)

    def to(self, device):
        return Split(self.x.to(device), self.y.to(device))

    def floats(self, idx=None) -> torch.Tensor:
        x = self.x if idx is None else self.x[idx]
        return x.float().div_(255.0)


@dataclass
class DatasetBundle:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple
    augment: str
    source: str

    def to(self, device):
        return DatasetBundle(self.name, self.train.to(device), self.val.to(device), self.test.to(device),
                             self.num_classes, self.input_shape, self.augment, self.source)


def _subsample(x, y, n, rng):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(rng.permutation(len(y))[:n])
    return x[idx], y[idx]


def load_dataset(name: str, root: Optional[str] = None, val_size: int = 5000, seed: int = 0,
                 train_size: Optional[int] = None, test_size: Optional[int] = None,
                 augment: Optional[str] = None, **loader_kw) -> DatasetBundle:
    """Load ``name`` and split off ``val_size`` training examples (seeded) for model selection.

    The test split is returned untouched: only final evaluation may read it.
    ``train_size``/``test_size`` subsample (seeded) after the validation split is carved.
    """
    if name not in dataset_names():
        raise DataError(f"unknown dataset {name!r} (allowed: {', '.join(dataset_names())})")
    raw = load_raw(name, root=root, **loader_kw)
    n = len(raw.train_y)
    if not 0 <= val_size < n:
        raise DataError(f"dataset.val_size={val_size} must be in [0, {n - 1}] for {name} ({n} training examples)")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    val_idx, tr_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    trx, tr_y = _subsample(raw.train_x[tr_idx], raw.train_y[tr_idx], train_size, rng)
    tex, te_y = _subsample(raw.test_x, raw.test_y, test_size, rng)
    t = lambda a: torch.from_numpy(np.array(a, copy=True))
    return DatasetBundle(
        name=name,
        train=Split(t(trx), t(tr_y)),
        val=Split(t(raw.train_x[val_idx]), t(raw.train_y[val_idx])),
        test=Split(t(tex), t(te_y)),
        num_classes=raw.num_classes,
        input_shape=tuple(raw.train_x.shape[1:]),
        augment=augment or raw.augment,
        source=raw.source,
    )
