"""The search-space language: ``{float: [lo, hi], log: true}``, ``{int: [...]}``, ``{choice: [...]}`` per key, the key
naming a training field (``lr``, ``train.epochs``), a method parameter (``pgd_at.steps``) or a pruning field, each
distribution checked against the bounds of the field it sets."""

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from ..errors import ConfigError, unknown_key
from ..hparams import as_written, check_value, describe_bounds, fields_of, parse_eps_relative
from ..methods import get_method
from ..train.spec import SECTIONS

@dataclass
class Dist:
    kind: str  # float | int | choice
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: Optional[list] = None

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice{self.choices}"
        return f"{self.kind}[{self.low}, {self.high}]" + (" log" if self.log else "") + (f" step {self.step}" if self.step else "")


@dataclass
class SearchParam:
    key: str  # as written in YAML and as named in Optuna
    target: Tuple[str, str]  # ("train", "lr") | ("params", "alpha") | ("pruning", "keep") ...
    methods: Optional[List[str]]  # None: applies to every trial; else only to these methods
    dist: Dist


def parse_dist(file, key, spec) -> Dist:
    if not isinstance(spec, dict):
        raise ConfigError(file, f"search.{key}", "must be {float: [lo, hi]}, {int: [lo, hi]} or {choice: [...]}")
    kinds = [k for k in ("float", "int", "choice") if k in spec]
    extra = set(spec) - {"float", "int", "choice", "log", "step"}
    if extra:
        raise unknown_key(file, sorted(extra)[0], ("float", "int", "choice", "log", "step"), where=f"search.{key}.")
    if len(kinds) != 1:
        raise ConfigError(file, f"search.{key}", "give exactly one of float: [lo, hi], int: [lo, hi], choice: [...]")
    kind = kinds[0]
    val = spec[kind]
    if kind == "choice":
        if not isinstance(val, list) or not val:
            raise ConfigError(file, f"search.{key}.choice", "must be a non-empty list")
        if "log" in spec or "step" in spec:
            raise ConfigError(file, f"search.{key}", "log/step apply to float and int ranges only")
        return Dist("choice", choices=list(val))
    if not (isinstance(val, list) and len(val) == 2):
        raise ConfigError(file, f"search.{key}.{kind}", "must be a list [low, high]")
    lo, hi = val
    num = (int,) if kind == "int" else (int, float)
    if any(isinstance(v, bool) or not isinstance(v, num) for v in (lo, hi)):
        raise ConfigError(file, f"search.{key}.{kind}", f"bounds {val} must be {'integers' if kind == 'int' else 'numbers'}")
    if any(isinstance(v, float) and not math.isfinite(v) for v in (lo, hi)):
        raise ConfigError(file, f"search.{key}.{kind}", "bounds must be finite")
    if not lo < hi:
        raise ConfigError(file, f"search.{key}.{kind}", f"low {lo} must be below high {hi}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(file, f"search.{key}.log", "must be true or false")
    if log and lo <= 0:
        raise ConfigError(file, f"search.{key}.{kind}", f"log scale needs low > 0, got {lo}")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, num) or step <= 0 or log):
        raise ConfigError(file, f"search.{key}.step", "must be a positive number, and not combined with log")
    return Dist(kind, lo, hi, log, step)


def resolve_target(file, key, methods, sections) -> Tuple[Tuple[str, str], Optional[List[str]], Any]:
    """Where a search key lands, for which methods, and its field (for bounds)."""
    if "." in key:
        head, name = key.split(".", 1)
        if head in sections:
            flds = fields_of(sections[head])
            if name not in flds:
                raise unknown_key(file, name, flds, where=f"search.{head}.")
            return (head, name), None, flds[name]
        if head in methods:
            flds = fields_of(get_method(head).Params)
            if name not in flds:
                raise unknown_key(file, name, flds, where=f"search.{head}.")
            return ("params", name), [head], flds[name]
        raise ConfigError(file, f"search.{key}", f"{head!r} is neither a section ({', '.join(sections)}) nor a method of this sweep ({', '.join(methods)})")
    train_fields = fields_of(SECTIONS["train"])
    having = [m for m in methods if key in fields_of(get_method(m).Params)]
    if key in train_fields and having:
        raise ConfigError(file, f"search.{key}", f"ambiguous: both train.{key} and {having[0]}.{key} exist; "
                          f"write train.{key} or {having[0]}.{key}")
    if key in train_fields:
        return ("train", key), None, train_fields[key]
    if not having:
        allowed = set(train_fields)
        for m in methods:
            allowed |= set(fields_of(get_method(m).Params))
        raise unknown_key(file, key, allowed, where="search.")
    return ("params", key), having, fields_of(get_method(having[0]).Params)[key]


def check_dist_against_field(file, key, dist: Dist, fld, eps):
    if dist.kind == "choice":
        dist.choices = [as_written(fld, c) for c in dist.choices]  # `choice: [on, off]`, unquoted
    vals = dist.choices if dist.kind == "choice" else [dist.low, dist.high]
    default = fld.default
    if dist.kind == "float" and isinstance(default, int) and not isinstance(default, bool):
        raise ConfigError(file, f"search.{key}", f"{fld.name} is an integer; use int: [lo, hi] or choice")
    for v in vals:
        v2 = parse_eps_relative(v, eps) if fld.metadata.get("scale_by_eps") else v
        msg = check_value(fld, v2)
        if msg:
            raise ConfigError(file, f"search.{key}", f"{msg} ({fld.name} must be {describe_bounds(fld)})")
