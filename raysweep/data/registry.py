"""Dataset registry: a loader per name returning raw uint8 arrays in NCHW layout."""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np


@dataclass
class RawDataset:
    train_x: np.ndarray  # uint8, N x C x H x W
    train_y: np.ndarray  # int64, N
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    source: str  # where the bytes came from, for the run's params
    augment: str = "none"  # "crop_flip" for 32x32 natural images


_LOADERS: Dict[str, Callable[..., RawDataset]] = {}
_NEEDS_ROOT = set()


def register_dataset(name: str, needs_root: bool = False):
    def deco(fn):
        _LOADERS[name] = fn
        if needs_root:
            _NEEDS_ROOT.add(name)
        return fn

    return deco


def dataset_names():
    return sorted(_LOADERS)


def load_raw(name: str, root: Optional[str] = None, **kw) -> RawDataset:
    return _LOADERS[name](root=root, **kw)
