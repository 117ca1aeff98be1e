"""Adversarial-training methods, one per module, registered by their YAML name."""

import importlib

from .base import FORWARD_ONLY, Method, StepContext, StepResult, TeacherRequest, Threat
from .registry import get_method, list_methods, register_method

# Every module listed here registers one method; a method that fails to import is a bug.
_METHOD_MODULES = ["pgd_at", "fgsm_rs", "trades", "mart", "fp_better", "backward_smoothing", "local_ball", "rrm",
                  "standard"]
for _m in _METHOD_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_m}")
    except ModuleNotFoundError as e:  # modules not written yet
        if e.name != f"{__name__}.{_m}":
            raise

__all__ = ["Method", "StepContext", "StepResult", "TeacherRequest", "Threat", "FORWARD_ONLY", "get_method", "list_methods", "register_method"]
