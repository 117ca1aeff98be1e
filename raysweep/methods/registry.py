"""Registry of methods by YAML name."""

import fnmatch
from typing import Dict, Type

from .base import Method

_METHODS: Dict[str, Type[Method]] = {}


def register_method(cls: Type[Method]) -> Type[Method]:
    if not cls.name or cls.Params is None:
        raise TypeError(f"{cls.__name__} needs a name and a Params dataclass")
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _METHODS[cls.name] = cls
    return cls


def list_methods(pattern: str = "*"):
    return sorted(n for n in _METHODS if fnmatch.fnmatch(n, pattern))


def get_method(name: str) -> Type[Method]:
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r} (allowed: {', '.join(list_methods())})")
    return _METHODS[name]
