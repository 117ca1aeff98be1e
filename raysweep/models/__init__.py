"""Models: input normalisation inside, residual blocks skippable per call (``block_mask``)."""

from . import cifar, small  # noqa: F401  (register models)
from .base import ClassifierNet, SkippableBlock
from .registry import build_model, list_models, register_model

__all__ = ["ClassifierNet", "SkippableBlock", "build_model", "list_models", "register_model"]
