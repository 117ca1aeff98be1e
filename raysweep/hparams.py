"""Hyperparameter declarations with bounds, so configs and search ranges are checked
against what each method allows, without pulling a validation library into the torch core."""

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple


def hp(default, *, low=None, high=None, low_open=False, high_open=False, choices: Optional[Sequence] = None,
       doc: str = "", scale_by_eps: bool = False):
    """A method hyperparameter. ``scale_by_eps``: a value given as ``"1.25eps"`` in YAML (or
    left at a default of None) is resolved against the threat's ε."""
    meta = dict(low=low, high=high, low_open=low_open, high_open=high_open, choices=choices, doc=doc,
                scale_by_eps=scale_by_eps)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe_bounds(f: dataclasses.Field) -> str:
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(map(str, m["choices"]))
    lo, hi = m.get("low"), m.get("high")
    if lo is None and hi is None:
        return "any value"
    left = "(" if m.get("low_open") else "["
    right = ")" if m.get("high_open") else "]"
    return f"in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"


def _default_of(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def as_written(f: dataclasses.Field, value):
    """A switch's value as the user wrote it: YAML reads an unquoted ``on`` / ``off`` (``yes`` / ``no``)
    as a boolean, so for a field whose allowed values are words with ``off`` among them, a boolean is
    taken back to ``on`` / ``off`` (then checked like any other value)."""
    choices = f.metadata.get("choices") or ()
    if isinstance(value, bool) and "off" in choices:
        return "on" if value else "off"
    return value


def check_value(f: dataclasses.Field, value) -> Optional[str]:
    """None if ``value`` is allowed for ``f``, else why not."""
    m = f.metadata
    default = _default_of(f)
    if value is None:
        return None if default is None else f"must not be null; {describe_bounds(f)}"
    if m.get("choices"):
        return None if value in m["choices"] else f"{value!r} is not allowed; {describe_bounds(f)}"
    if isinstance(default, str) and not m.get("scale_by_eps") and not isinstance(value, str):
        return f"{value!r} must be a string"
    if isinstance(value, (list, tuple, dict)):
        if isinstance(default, (list, tuple, dict)) or default is None:
            return None
        return f"{value!r} must be a single value, not a {type(value).__name__}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(default, bool):
            return None if isinstance(value, bool) else f"{value!r} must be true or false"
        if isinstance(default, (int, float)) or m.get("low") is not None or m.get("high") is not None:
            return f"{value!r} must be a number {describe_bounds(f)}"
        return None
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and not float(value).is_integer():
        return f"{value!r} must be an integer {describe_bounds(f)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} must be finite"
    lo, hi = m.get("low"), m.get("high")
    if lo is not None and (value < lo or (m.get("low_open") and value == lo)):
        return f"{value!r} is out of range; must be {describe_bounds(f)}"
    if hi is not None and (value > hi or (m.get("high_open") and value == hi)):
        return f"{value!r} is out of range; must be {describe_bounds(f)}"
    return None


def fields_of(params_cls) -> Dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(params_cls)}


def parse_eps_relative(value, eps: float):
    """Accept ``"1.25eps"`` / ``"eps/4"`` style strings for ε-relative step sizes."""
    if isinstance(value, str):
        s = value.replace(" ", "").lower()
        if s.endswith("eps") and s[:-3].replace(".", "", 1).isdigit():
            return float(s[:-3]) * eps
        if s == "eps":
            return eps
        if s.startswith("eps/") and s[4:].replace(".", "", 1).isdigit():
            return eps / float(s[4:])
        if s.endswith("/255") and s[:-4].replace(".", "", 1).isdigit():
            return float(s[:-4]) / 255
    return value


def build_params(params_cls, values: Dict[str, Any], eps: float = 0.0, keep_relative: bool = False) -> Tuple[Any, List[Tuple[str, str]]]:
    """(instance, errors). Errors are (key, message) pairs; unknown keys are errors too."""
    fields = fields_of(params_cls)
    errors, kwargs = [], {}
    for k, v in values.items():
        if k not in fields:
            errors.append((k, f"unknown parameter (allowed: {', '.join(sorted(fields))})"))
            continue
        f = fields[k]
        v = as_written(f, v)
        given = v
        if f.metadata.get("scale_by_eps"):
            v = parse_eps_relative(v, eps)
        d = _default_of(f)
        if isinstance(d, int) and not isinstance(d, bool) and isinstance(v, float) and v.is_integer():
            v = int(v)
        msg = check_value(f, v)
        if msg:
            errors.append((k, msg))
        else:
            # keep_relative: "1.25eps" stays a string so the method resolves it against the
            # current training ε (which eps_warmup ramps), not the final one
            kwargs[k] = given if (keep_relative and isinstance(given, str)) else v
    if errors:
        return None, errors
    return params_cls(**kwargs), []
