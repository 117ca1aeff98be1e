"""Model registry: ``build_model(name, num_classes=..., input_shape=...)``."""

import fnmatch
from typing import Callable, Dict

_MODELS: Dict[str, Callable] = {}


def register_model(name: str):
    def deco(fn):
        _MODELS[name] = fn
        return fn

    return deco


def list_models(pattern: str = "*"):
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def build_model(name: str, num_classes: int, input_shape, mean=None, std=None, **kw):
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r} (allowed: {', '.join(list_models())})")
    in_ch = int(input_shape[0])
    mean = tuple(mean) if mean is not None else (0.0,) * in_ch
    std = tuple(std) if std is not None else (1.0,) * in_ch
    kw = {k: v for k, v in kw.items() if v is not None}
    return _MODELS[name](num_classes=num_classes, input_shape=tuple(input_shape), mean=mean, std=std, **kw)
