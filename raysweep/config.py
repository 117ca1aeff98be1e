"""Search-space YAML -> a validated ``SweepConfig``.

Every problem is a ``ConfigError`` naming the file, the dotted key and what is allowed, so
``raysweep`` can print one line and exit 2 before anything is started or written. The
structural sections (sweep, resources, mlflow, objectives, final_eval) are pydantic models;
the training sections are checked against the torch core's own dataclasses
(``raysweep.train.spec``) and each method's ``Params``, so the bounds live in one place.
"""

import copy
import difflib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .data import dataset_names
from .errors import ConfigError
from .evaluation.suite import DEFAULT_PGD_AA_GAP
from .hparams import as_written, build_params, check_value, describe_bounds, fields_of, parse_eps_relative
from .methods import get_method, list_methods
from .models import list_models
from .train.spec import SECTIONS, PruningSpec, TrialSpec

METRICS = ("train_time_s", "cost", "val_robust_acc", "val_clean_acc", "train_loss", "train_acc", "epoch_time_s")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    metric: str
    mode: Literal["min", "max"]


class Constraint(_Strict):
    """A bound a trial must meet to count (Optuna's constraint-aware sampling; off the front)."""

    metric: str
    min: Optional[float] = None
    max: Optional[float] = None

    def violation(self, metrics: Dict[str, Any]) -> float:
        """Optuna's convention: <= 0 is feasible; a missing or non-finite value is infeasible."""
        v = metrics.get(self.metric)
        if not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            return 1.0
        out = -1.0
        if self.min is not None:
            out = max(out, self.min - float(v))
        if self.max is not None:
            out = max(out, float(v) - self.max)
        return out


class EarlyStopping(_Strict):
    """``mo_asha``: ASHA's rungs, promotion by Pareto rank on the sweep's own objectives
    (raysweep/tune/mo_asha.py). ``asha`` / ``hyperband``: Ray Tune's, on ONE scalar proxy
    (``metric``). Optuna's pruners refuse multi-objective studies. A stopped trial keeps its
    last report: a cheaper, usually less robust point."""

    scheduler: Literal["mo_asha", "asha", "hyperband"] = "asha"
    metric: Optional[str] = Field(None, description="asha/hyperband only (default val_robust_acc)")
    mode: Optional[Literal["min", "max"]] = Field(None, description="asha/hyperband only (default max)")
    grace_period: int = Field(1, ge=1, description="epochs every trial gets before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class SweepSection(_Strict):
    num_samples: int = Field(8, ge=1, le=100_000)
    max_concurrent: Union[int, Literal["auto"]] = Field(
        2, description="trials at a time; auto: as many as the cluster holds at its largest (its autoscaler's node "
                       "types included), at most 16 for tpe, the population for nsga2, 256 for random")
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    seed: int = Field(0, ge=0)
    repeats: int = Field(1, ge=1, le=100, description="seeds per sampled config; the front uses their mean")
    front_includes_flagged: bool = Field(False, description="let trials flagged catastrophic_overfit onto the front")
    max_failures: int = Field(1, ge=0, le=100, description="retries of a failing trial before it is marked failed")
    population_size: Optional[int] = Field(None, ge=2, description="nsga2 population (default: min(num_samples, 8))")
    hypervolume_ref: Optional[Dict[str, float]] = Field(None, description="reference point of the front's hypervolume, "
                                                         "one value per objective (default: derived from the first finished trial)")
    enqueue: List[Dict[str, Any]] = Field(default_factory=list, description="points evaluated first (e.g. paper defaults); "
                                          "an optional label names the point on its run (tag label)")
    early_stopping: Optional[EarlyStopping] = None


    @field_validator("max_concurrent", mode="before")
    @classmethod
    def _concurrency(cls, v):
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10_000):
            return v
        if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= 10_000:
            return int(v)
        raise ValueError("allowed: a whole number from 1 to 10000, or auto")


class ResourcesSection(_Strict):
    num_workers: int = Field(1, ge=1, le=4096)
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    gpus_per_worker: float = Field(1.0, ge=0, le=64, description="used when a GPU is in use; fractions allowed")
    use_gpu: Union[bool, Literal["auto"]] = "auto"
    # auto: in the Tune trial's own process for single-worker CPU trials (no per-trial Ray Train start-up),
    # a Ray Train run for multi-worker and GPU trials (DDP, nccl, a GPU per worker); bench/overhead.py measures both.
    executor: Literal["train", "inprocess", "auto"] = "auto"
    # How a multi-worker trial's workers are placed on nodes (Ray placement-group strategies):
    # pack fills a node first (fast intra-node DDP); spread puts them on different nodes.
    placement: Literal["pack", "spread", "strict_pack", "strict_spread"] = "pack"


class MlflowSection(_Strict):
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None


AttackName = Literal["clean", "fgsm", "pgd20", "pgd50x10", "cw20", "autoattack", "square"]


class FinalEvalSection(_Strict):
    enabled: bool = True
    attacks: List[AttackName] = ["clean", "pgd20"]
    n: Optional[int] = Field(None, ge=1, description="test examples (null: the whole test set)")
    # Expensive attacks on fewer images: the FIRST n test images, so every configuration (and
    # every seed) is attacked on the same images, e.g. {autoattack: 500}.
    attack_n: Dict[AttackName, int] = Field(default_factory=dict, description="per-attack number of test images")
    members: Literal["front", "most_robust", "all"] = "front"
    best: bool = Field(True, description="also evaluate the best-on-validation checkpoint (test_best_*) when it is not the last")
    pgd_aa_gap: float = Field(DEFAULT_PGD_AA_GAP, gt=0, le=1,
                              description="PGD above AutoAttack by more than this raises the masking flag")


_TOP = {
    "name": "experiment name (letters, digits, '-', '_', '.')",
    "method": "a method name or {choice: [...]}",
    "dataset": "DatasetSpec", "model": "ModelSpec", "threat": "ThreatSpec", "train": "TrainSpec",
    "eval": "EvalSpec", "pruning": "PruningSpec (optional)", "params": "fixed method hyperparameters",
    "search": "swept parameters", "objectives": "list of {metric, mode}", "sweep": "search settings",
    "constraints": "list of {metric, min, max}: bounds a trial must meet to count",
    "resources": "per-trial resources", "mlflow": "tracking settings", "storage_path": "where Ray and Optuna state go",
    "final_eval": "test-set evaluation of the front", "description": "free text",
    "imports": "modules to import first (they register your own methods or models)",
}


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


@dataclass
class SweepConfig:
    file: str
    name: str
    methods: List[str]  # one entry: fixed method; several: a categorical choice
    base: Dict[str, Any]  # trial sections after validation: dataset/model/threat/train/eval/pruning
    params: Dict[str, Dict[str, Any]]  # fixed params per method
    search: List[SearchParam]
    objectives: List[Objective]
    sweep: SweepSection
    resources: ResourcesSection
    mlflow: MlflowSection
    final_eval: FinalEvalSection
    storage_path: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict)  # the YAML as loaded (after --set)
    constraints: List[Constraint] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # what loading changed on the user's behalf; the CLI prints them

    def infeasible(self, metrics: Dict[str, Any]) -> bool:
        return any(c.violation(metrics) > 0 for c in self.constraints)

    @property
    def is_cross_method(self) -> bool:
        return len(self.methods) > 1

    def trial_spec(self, sampled: Dict[str, Any]) -> TrialSpec:
        """The full trial config for one point of the search space (keys as in ``search``)."""
        method = sampled.get("method", self.methods[0])
        d = copy.deepcopy(self.base)
        d["method"] = method
        d["method_params"] = dict(self.params.get(method, {}))
        d["repeats"] = self.sweep.repeats
        for sp in self.search:
            if sp.key not in sampled:
                continue
            sec, name = sp.target
            if sec == "params":
                d["method_params"][name] = sampled[sp.key]
            else:
                d.setdefault(sec, {})[name] = sampled[sp.key]
        return TrialSpec.from_dict(d)

    def describe_space(self) -> List[str]:
        lines = []
        if self.is_cross_method:
            lines.append(f"method: choice{self.methods}")
        for sp in self.search:
            only = f"   (only for {', '.join(sp.methods)})" if sp.methods and self.is_cross_method else ""
            lines.append(f"{sp.key}: {sp.dist.describe()}{only}")
        return lines


# ---------------------------------------------------------------------------------------
def _did_you_mean(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown(file, key, allowed, where=""):
    full = f"{where}{key}"
    return ConfigError(file, full, f"unknown key ({_did_you_mean(key, allowed)}allowed: {', '.join(sorted(allowed))})")


def apply_overrides(raw: Dict[str, Any], overrides: List[str], file) -> Dict[str, Any]:
    """``--set a.b=value``: value parsed as YAML (so numbers, lists and booleans work)."""
    raw = copy.deepcopy(raw)
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(file, ov, "--set needs KEY=VALUE (e.g. --set sweep.num_samples=4)")
        key, val = ov.split("=", 1)
        try:
            value = yaml.safe_load(val)
        except yaml.YAMLError:
            value = val
        node = raw
        parts = key.strip().split(".")
        if parts[0] == "search" and len(parts) > 2:  # search keys themselves hold dots (search.pgd_at.steps)
            parts = ["search", ".".join(parts[1:])]
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return raw


def _search_target(key: str, train_fields) -> Tuple[str, str, Optional[str]]:
    """(section or "params", field, method or None) that a ``search`` key or a ``--set`` path names; the
    method is None where the key applies to every method that has the field."""
    parts = key.split(".")
    if parts[0] == "params":
        return ("params", parts[-1], parts[1] if len(parts) == 3 else None)
    if len(parts) == 1:
        return ("train", key, None) if key in train_fields else ("params", key, None)
    if parts[0] in SECTIONS or parts[0] == "pruning":
        return (parts[0], parts[1], None)
    return ("params", parts[1], parts[0])  # <method>.<param>


def _same_target(a, b) -> bool:
    return a[:2] == b[:2] and (a[2] is None or b[2] is None or a[2] == b[2])


def drop_overridden_search(raw: Dict[str, Any], overrides: List[str]) -> List[str]:
    """A ``--set`` of a value that ``search`` samples would do nothing (the sampled value wins in every
    trial), so the ``--set`` wins instead: the search key goes (and from ``sweep.enqueue`` points), and
    the returned line says so. A ``--set`` of the search key itself (``--set search.epochs=...``) is
    left alone. Mutates ``raw``."""
    search = raw.get("search")
    if not isinstance(search, dict) or not overrides:
        return []
    keys = [ov.split("=", 1)[0].strip() for ov in overrides if "=" in ov]
    set_search = {k[len("search."):] for k in keys if k.startswith("search.")}
    train_fields = fields_of(SECTIONS["train"])
    points = (raw.get("sweep") or {}).get("enqueue") if isinstance(raw.get("sweep"), dict) else None

    def unqueue(sk) -> str:  # an enqueued point may not name a key that is no longer searched
        n = sum(1 for pt in points or [] if isinstance(pt, dict) and pt.pop(sk, None) is not None)
        return f" and from {n} sweep.enqueue point{'s' if n != 1 else ''}" if n else ""

    notes = []
    for k in keys:
        if k.startswith(("search.", "sweep.", "resources.", "mlflow.", "final_eval.", "objectives", "constraints")):
            continue
        target = _search_target(k, train_fields)
        for sk in [sk for sk in list(search) if sk not in set_search]:
            if _same_target(target, _search_target(str(sk), train_fields)):
                del search[sk]
                notes.append(f"--set {k} fixes what search.{sk} sampled: search.{sk} removed{unqueue(sk)} "
                             f"(to sample it instead: --set search.{sk}=...)")
    for sk in sorted(set_search):
        if sk in search and search[sk] is None:
            also = unqueue(sk)
            if also:
                notes.append(f"--set search.{sk}=null: search.{sk} removed{also}")
    return notes


class _StrictLoader(yaml.SafeLoader):
    """safe_load (plain data only, never object construction from tags) that refuses a key given twice."""


class _DuplicateKey(Exception):
    def __init__(self, key, first, second):
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


def _mapping_without_duplicates(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen and key != "<<":
                raise _DuplicateKey(key, seen[key], key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: the mapping constructor reports it
            break
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_yaml(path) -> Dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, None, "file not found")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(p, None, f"not a UTF-8 text file (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "a search-space YAML is plain text") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as e:
        raise ConfigError(p, str(e.key), f"given twice in one mapping (lines {e.first} and {e.second}); "
                          "keep one") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(p, None, f"not a text file (character #x{e.character:04x} at offset {e.position})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ConfigError(p, None, f"{where}not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(p, None, "expected a mapping of sections at the top level")
    return raw


def _pydantic(model_cls, data, file, section):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(file, section, f"must be a mapping, got {type(data).__name__}")
    try:
        return model_cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{section}.{loc}" if loc else section
        if err["type"] == "extra_forbidden":
            allowed = model_cls.model_fields.keys()
            raise _unknown(file, str(err["loc"][-1]), allowed, where=f"{section}.") from None
        inp = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        raise ConfigError(file, key, f"{inp!r}: {msg}") from None


def _section(file, raw, name, cls, eps):
    data = raw.get(name) or {}
    if not isinstance(data, dict):
        raise ConfigError(file, name, f"must be a mapping, got {type(data).__name__}")
    fields = fields_of(cls)
    for k in data:
        if k not in fields:
            raise _unknown(file, k, fields, where=f"{name}.")
    inst, errors = build_params(cls, data, eps)
    if errors:
        k, msg = errors[0]
        raise ConfigError(file, f"{name}.{k}", msg)
    return inst


def _parse_dist(file, key, spec) -> Dist:
    if not isinstance(spec, dict):
        raise ConfigError(file, f"search.{key}", "must be {float: [lo, hi]}, {int: [lo, hi]} or {choice: [...]}")
    kinds = [k for k in ("float", "int", "choice") if k in spec]
    extra = set(spec) - {"float", "int", "choice", "log", "step"}
    if extra:
        raise _unknown(file, sorted(extra)[0], ("float", "int", "choice", "log", "step"), where=f"search.{key}.")
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


def _resolve_target(file, key, methods, sections) -> Tuple[Tuple[str, str], Optional[List[str]], Any]:
    """Where a search key lands, for which methods, and its field (for bounds)."""
    if "." in key:
        head, name = key.split(".", 1)
        if head in sections:
            flds = fields_of(sections[head])
            if name not in flds:
                raise _unknown(file, name, flds, where=f"search.{head}.")
            return (head, name), None, flds[name]
        if head in methods:
            flds = fields_of(get_method(head).Params)
            if name not in flds:
                raise _unknown(file, name, flds, where=f"search.{head}.")
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
        raise _unknown(file, key, allowed, where="search.")
    return ("params", key), having, fields_of(get_method(having[0]).Params)[key]


def _check_dist_against_field(file, key, dist: Dist, fld, eps):
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


def _parse_constraints(raw: Any, file: str) -> List[Constraint]:
    if not isinstance(raw, list):
        raise ConfigError(file, "constraints", "must be a list of {metric, min, max}")
    out = []
    for i, c in enumerate(raw):
        con = _pydantic(Constraint, c, file, f"constraints[{i}]")
        if con.metric not in METRICS:
            raise ConfigError(file, f"constraints[{i}].metric", f"unknown metric {con.metric!r} "
                              f"({_did_you_mean(con.metric, METRICS)}allowed: {', '.join(METRICS)})")
        if con.min is None and con.max is None:
            raise ConfigError(file, f"constraints[{i}]", "needs min, max or both")
        if con.min is not None and con.max is not None and con.min > con.max:
            raise ConfigError(file, f"constraints[{i}].min", f"min {con.min:g} > max {con.max:g}")
        out.append(con)
    return out


def parse_config(raw: Dict[str, Any], file="<config>") -> SweepConfig:
    file = str(file)
    for k in raw:
        if k not in _TOP:
            raise _unknown(file, k, _TOP)
    imports = raw.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(file, "imports", "must be a list of module names")
    import importlib

    for mod in imports:
        try:
            importlib.import_module(mod)
        except Exception as e:  # the user's module: report any import failure as a config error
            raise ConfigError(file, "imports", f"cannot import {mod!r}: {type(e).__name__}: {e}") from None
    name = raw.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(file, "name", f"{name!r}: must be a non-empty string of letters, digits, '-', '_', '.'")

    # methods
    m = raw.get("method")
    if isinstance(m, str):
        methods = [m]
    elif isinstance(m, dict) and set(m) == {"choice"} and isinstance(m["choice"], list) and m["choice"]:
        methods = list(m["choice"])
    else:
        raise ConfigError(file, "method", f"{m!r}: must be a method name or {{choice: [names]}} (allowed: {', '.join(list_methods())})")
    for mm in methods:
        if mm not in list_methods():
            raise ConfigError(file, "method", f"unknown method {mm!r} ({_did_you_mean(str(mm), list_methods())}allowed: {', '.join(list_methods())})")
    if len(set(methods)) != len(methods):
        raise ConfigError(file, "method", "a method is listed twice")

    # training sections, checked against the torch core's dataclasses
    threat = _section(file, raw, "threat", SECTIONS["threat"], 0.0)
    eps = threat.eps
    base: Dict[str, Any] = {"threat": asdict(threat), "imports": list(imports)}
    for sec in ("dataset", "model", "train", "eval"):
        base[sec] = asdict(_section(file, raw, sec, SECTIONS[sec], eps))
    if base["dataset"]["name"] not in dataset_names():
        raise ConfigError(file, "dataset.name", f"unknown dataset {base['dataset']['name']!r} (allowed: {', '.join(dataset_names())})")
    if base["model"]["name"] not in list_models():
        raise ConfigError(file, "model.name", f"unknown model {base['model']['name']!r} (allowed: {', '.join(list_models())})")
    root = base["dataset"].get("root")
    if root is not None and not Path(root).expanduser().is_dir():
        raise ConfigError(file, "dataset.root", f"directory {root} does not exist (expected the {base['dataset']['name']} files in their standard layout)")
    sections = dict(SECTIONS)
    if raw.get("pruning") is not None:
        base["pruning"] = asdict(_section(file, raw, "pruning", PruningSpec, eps))
        sections["pruning"] = PruningSpec

    pr, searched = base.get("pruning"), ({k for k, v in raw["search"].items() if v is not None}
                                      if isinstance(raw.get("search"), dict) else set())
    if pr and pr["mode"] != "none" and not searched & {"pruning.warmup_epochs", "epochs", "train.epochs"} \
            and pr["warmup_epochs"] >= base["train"]["epochs"]:
        raise ConfigError(file, "pruning.warmup_epochs", f"{pr['warmup_epochs']} is not below train.epochs "
                          f"({base['train']['epochs']}): no epoch would train on the pruned subset "
                          f"(the default 5 is Kaufmann et al.'s; set e.g. warmup_epochs: 1)")

    # fixed method params
    params_raw = raw.get("params") or {}
    if not isinstance(params_raw, dict):
        raise ConfigError(file, "params", "must be a mapping")
    params: Dict[str, Dict[str, Any]] = {mm: {} for mm in methods}
    if len(methods) == 1:
        params_raw = {methods[0]: params_raw} if not (set(params_raw) == {methods[0]}) else params_raw
    for mm, pv in params_raw.items():
        if mm not in methods:
            raise ConfigError(file, f"params.{mm}", f"in a cross-method sweep, params are keyed by method (one of: {', '.join(methods)})")
        if not isinstance(pv, dict):
            raise ConfigError(file, f"params.{mm}", "must be a mapping of parameter: value")
        cls = get_method(mm).Params
        _, errors = build_params(cls, pv, eps)
        if errors:
            k, msg = errors[0]
            where = f"params.{k}" if len(methods) == 1 else f"params.{mm}.{k}"
            if msg.startswith("unknown parameter"):
                raise _unknown(file, k, fields_of(cls), where=where[: -len(k)])
            raise ConfigError(file, where, msg)
        params[mm] = dict(pv)

    # search space
    search_raw = raw.get("search") or {}
    if not isinstance(search_raw, dict):
        raise ConfigError(file, "search", "must be a mapping of key: distribution")
    search: List[SearchParam] = []
    for key, spec in search_raw.items():
        key = str(key)
        if spec is None:  # `--set search.<key>=null` (or `key: null`): not searched, the fixed value applies
            continue
        if key == "method":
            raise ConfigError(file, "search.method", "choose methods with the top-level key  method: {choice: [...]}")
        dist = _parse_dist(file, key, spec)
        target, only, fld = _resolve_target(file, key, methods, sections)
        _check_dist_against_field(file, key, dist, fld, eps)
        search.append(SearchParam(key, target, only, dist))

    objectives_raw = raw.get("objectives", [{"metric": "train_time_s", "mode": "min"}, {"metric": "val_robust_acc", "mode": "max"}])
    if not isinstance(objectives_raw, list) or not objectives_raw:
        raise ConfigError(file, "objectives", "must be a non-empty list of {metric, mode}")
    objectives = []
    for i, o in enumerate(objectives_raw):
        obj = _pydantic(Objective, o, file, f"objectives[{i}]")
        if obj.metric not in METRICS:
            raise ConfigError(file, f"objectives[{i}].metric", f"unknown metric {obj.metric!r} ({_did_you_mean(obj.metric, METRICS)}allowed: {', '.join(METRICS)})")
        objectives.append(obj)
    es = (raw.get("sweep") or {}).get("early_stopping") if isinstance(raw.get("sweep"), dict) else None
    if isinstance(es, dict) and es.get("scheduler") == "mo_asha" and ({"metric", "mode"} & set(es)):
        raise ConfigError(file, "sweep.early_stopping." + sorted({"metric", "mode"} & set(es))[0],
                          "mo_asha ranks trials on the sweep's objectives; drop metric/mode (they are for asha, hyperband)")
    if isinstance(es, dict) and es.get("metric", "val_robust_acc") not in METRICS:
        raise ConfigError(file, "sweep.early_stopping.metric", f"unknown metric {es.get('metric')!r} (allowed: {', '.join(METRICS)})")
    ref = (raw.get("sweep") or {}).get("hypervolume_ref") if isinstance(raw.get("sweep"), dict) else None
    if isinstance(ref, dict) and set(ref) != {o.metric for o in objectives}:
        raise ConfigError(file, "sweep.hypervolume_ref", f"needs one value per objective, exactly: "
                          f"{', '.join(o.metric for o in objectives)} (got {', '.join(map(str, ref)) or 'none'})")
    if len({o.metric for o in objectives}) != len(objectives):
        raise ConfigError(file, "objectives", "an objective is listed twice")
    constraints = _parse_constraints(raw.get("constraints", []), file)
    fe = raw.get("final_eval")
    if isinstance(fe, dict) and isinstance(fe.get("attack_n"), dict):
        listed = fe.get("attacks", FinalEvalSection().attacks)
        for a, k in fe["attack_n"].items():
            if isinstance(listed, list) and a not in listed:
                raise ConfigError(file, f"final_eval.attack_n.{a}", f"{a!r} is not in final_eval.attacks ({', '.join(map(str, listed))})")
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(file, f"final_eval.attack_n.{a}", f"{k!r}: must be a whole number of test images >= 1")

    cfg = SweepConfig(
        file=file, name=name, methods=methods, base=base, params=params, search=search, objectives=objectives,
        sweep=_pydantic(SweepSection, raw.get("sweep"), file, "sweep"),
        resources=_pydantic(ResourcesSection, raw.get("resources"), file, "resources"),
        mlflow=_pydantic(MlflowSection, raw.get("mlflow"), file, "mlflow"),
        final_eval=_pydantic(FinalEvalSection, raw.get("final_eval"), file, "final_eval"),
        storage_path=raw.get("storage_path"), raw=raw, constraints=constraints,
    )
    if cfg.storage_path is not None and not isinstance(cfg.storage_path, str):
        raise ConfigError(file, "storage_path", "must be a path or URI string")
    _check_validation_split(cfg)
    keys = {sp.key for sp in search} | ({"method"} if len(methods) > 1 else set())
    labels = set()
    for i, point in enumerate(cfg.sweep.enqueue):
        unknown = set(point) - keys - {"label"}
        if unknown:
            raise ConfigError(file, f"sweep.enqueue[{i}]", f"unknown key {sorted(unknown)[0]!r} (allowed: label and the search keys {', '.join(sorted(keys))})")
        if "label" in point:
            if not isinstance(point["label"], str) or not point["label"].strip():
                raise ConfigError(file, f"sweep.enqueue[{i}].label", f"{point['label']!r}: must be a non-empty string")
            if point["label"] in labels:
                raise ConfigError(file, f"sweep.enqueue[{i}].label", f"{point['label']!r} is used twice")
            labels.add(point["label"])
        try:
            cfg.trial_spec({k: v for k, v in point.items() if k != "label"})
        except ValueError as e:
            raise ConfigError(file, f"sweep.enqueue[{i}]", str(e)) from None
    # A full trial spec for every method must build (catches cross-field problems early).
    for mm in methods:
        try:
            cfg.trial_spec({"method": mm})
        except ValueError as e:
            raise ConfigError(file, f"params.{mm}", str(e)) from None
    return cfg


def _check_validation_split(cfg: SweepConfig) -> None:
    """Objectives, constraints and early stopping on ``val_*`` metrics need a validation split: with
    ``dataset.val_size: 0`` every trial would train to the end and fail on a NaN."""
    if cfg.base["dataset"].get("val_size") != 0:
        return
    es = cfg.sweep.early_stopping
    uses = [o.metric for o in cfg.objectives] + [c.metric for c in cfg.constraints]
    uses += ([es.metric or "val_robust_acc"] if es is not None and es.scheduler != "mo_asha" else [])
    on_val = sorted({m for m in uses if m.startswith("val_")})
    if on_val:
        raise ConfigError(cfg.file, "dataset.val_size", f"0 leaves no validation split, but {', '.join(on_val)} "
                                                        "is measured on it; allowed: 1 or more")


def keep_only(raw: Dict[str, Any], labels: List[str], file) -> Optional[str]:
    """Run only the ``sweep.enqueue`` points with these labels (``raysweep sweep FILE --only LABEL``): one
    configuration added to a reproduction YAML can run without re-running the others. Done on the raw config, so
    the sweep's saved ``sweep.yaml`` (what ``raysweep resume`` reads) holds the same subset."""
    if not labels:
        return None
    sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else {}
    points = [p for p in (sweep.get("enqueue") or []) if isinstance(p, dict)]
    have = [p.get("label") for p in points if p.get("label")]
    for label in labels:
        if label not in have:
            raise ConfigError(file, "sweep.enqueue", f"--only {label!r}: no point has that label (labelled: "
                              f"{', '.join(repr(h) for h in have) or 'none'})")
    raw["sweep"] = dict(sweep, enqueue=[p for p in points if p.get("label") in labels], num_samples=len(set(labels)))
    return f"--only: {len(set(labels))} of the {len(points)} enqueued points ({', '.join(labels)})"


def load_config(path, overrides: Optional[List[str]] = None, only: Optional[List[str]] = None) -> SweepConfig:
    raw = apply_overrides(load_yaml(path), overrides or [], path)
    notes = drop_overridden_search(raw, overrides or [])
    note = keep_only(raw, only or [], path)
    notes = notes + [note] if note else notes
    cfg = parse_config(raw, path)
    cfg.notes = notes
    return cfg
