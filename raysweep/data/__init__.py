"""Datasets: registry of loaders, a seeded validation split, and in-memory batching."""

from . import mnist, synthetic  # noqa: F401  (register loaders)
from .bundle import DatasetBundle, Split, load_dataset
from .loader import TensorBatches
from .registry import dataset_names, register_dataset

try:  # natural-image datasets live in their own module; optional at import time
    from . import natural  # noqa: F401
except ImportError:  # pragma: no cover
    pass

__all__ = ["DatasetBundle", "Split", "TensorBatches", "load_dataset", "dataset_names", "register_dataset"]
