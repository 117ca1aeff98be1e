"""The parse pipeline: a loaded YAML (a mapping, after ``--set``) -> a validated ``SweepConfig``.

Every problem is a ``ConfigError`` naming the file, the dotted key and what is allowed, so ``raysweep`` prints one
line and exits 2 before anything is started or written. Parsing reads nothing but the mapping: the YAML's
``imports`` (modules that register a user's own methods or models) are imported by ``load_config`` before it
parses, and what needs the data, the model or the filesystem is checked by ``raysweep.preflight``."""

import importlib
from dataclasses import asdict
from typing import Any, Dict, List, Optional

from pydantic import ValidationError

from ..data import dataset_names
from ..errors import ConfigError, did_you_mean, unknown_key
from ..hparams import build_params, fields_of
from ..methods import get_method, list_methods
from ..models import list_models
from ..train.spec import SECTIONS, PruningSpec
from .loading import load_yaml
from .overrides import apply_overrides, drop_overridden_search, keep_only
from .schema import (_TOP, DEFAULT_OBJECTIVES, METRICS, NAME_PUNCTUATION, Constraint, FinalEvalSection, MlflowSection,
                     Objective, ResourcesSection, SweepSection)
from .space import SearchParam, check_dist_against_field, parse_dist, resolve_target
from .sweep_config import SweepConfig

# Keys whose allowed values are a registry's names (a module in `imports` can add its own), as the reference lists them.
REGISTRIES = {"method": list_methods, "dataset.name": dataset_names, "model.name": list_models}


def load_config(path, overrides: Optional[List[str]] = None, only: Optional[List[str]] = None) -> SweepConfig:
    """A YAML file with the command line's changes, its plugins imported, parsed."""
    raw = apply_overrides(load_yaml(path), overrides or [], path)
    notes = drop_overridden_search(raw, overrides or [])
    note = keep_only(raw, only or [], path)
    import_plugins(raw, path)
    cfg = parse_config(raw, path)
    cfg.notes = notes + [note] if note else notes
    return cfg


def import_plugins(raw: Dict[str, Any], file) -> List[str]:
    """Imports the YAML's ``imports`` (they register the user's own methods, models or datasets)."""
    mods = _plugin_modules(raw, str(file))
    for mod in mods:
        try:
            importlib.import_module(mod)
        except Exception as e:  # the user's module: report any import failure as a config error
            raise ConfigError(file, "imports", f"cannot import {mod!r}: {type(e).__name__}: {e}") from None
    return mods


def parse_config(raw: Dict[str, Any], file="<config>") -> SweepConfig:
    file = str(file)
    for k in raw:
        if k not in _TOP:
            raise unknown_key(file, k, _TOP)
    imports = _plugin_modules(raw, file)
    name = _parse_name(raw, file)
    methods = _parse_methods(raw, file)
    base, sections = _parse_sections(raw, file, imports)
    eps = base["threat"]["eps"]
    params = _parse_params(raw, file, methods, eps)
    search = _parse_search(raw, file, methods, sections, eps)
    objectives = _parse_objectives(raw, file)
    _check_sweep_against_objectives(raw, file, objectives)
    constraints = _parse_constraints(raw.get("constraints", []), file)
    _check_attack_n(raw, file)
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
    _check_enqueue(cfg)
    for mm in methods:  # a full trial spec for every method must build (catches cross-field problems early)
        try:
            cfg.trial_spec({"method": mm})
        except ValueError as e:
            raise ConfigError(file, f"params.{mm}", str(e)) from None
    return cfg


def _plugin_modules(raw, file: str) -> List[str]:
    imports = raw.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(file, "imports", "must be a list of module names")
    return list(imports)


def _parse_name(raw, file: str) -> str:
    name = raw.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in NAME_PUNCTUATION for c in name):
        raise ConfigError(file, "name", f"{name!r}: must be a non-empty string of letters, digits, "
                          f"{', '.join(repr(c) for c in NAME_PUNCTUATION)}")
    return name


def _parse_methods(raw, file: str) -> List[str]:
    m = raw.get("method")
    if isinstance(m, str):
        methods = [m]
    elif isinstance(m, dict) and set(m) == {"choice"} and isinstance(m["choice"], list) and m["choice"]:
        methods = list(m["choice"])
    else:
        raise ConfigError(file, "method", f"{m!r}: must be a method name or {{choice: [names]}} (allowed: {', '.join(list_methods())})")
    for mm in methods:
        if mm not in list_methods():
            raise ConfigError(file, "method", f"unknown method {mm!r} ({did_you_mean(str(mm), list_methods())}allowed: {', '.join(list_methods())})")
    if len(set(methods)) != len(methods):
        raise ConfigError(file, "method", "a method is listed twice")
    return methods


def _parse_sections(raw, file: str, imports: List[str]):
    """The training sections, checked against the torch core's dataclasses: (base trial sections, the section
    classes a search key may target)."""
    threat = _section(file, raw, "threat", SECTIONS["threat"], 0.0)
    eps = threat.eps
    base: Dict[str, Any] = {"threat": asdict(threat), "imports": list(imports)}
    for sec in ("dataset", "model", "train", "eval"):
        base[sec] = asdict(_section(file, raw, sec, SECTIONS[sec], eps))
    for key in ("dataset.name", "model.name"):
        sec, fld = key.split(".")
        names = REGISTRIES[key]()
        if base[sec][fld] not in names:
            raise ConfigError(file, key, f"unknown {sec} {base[sec][fld]!r} (allowed: {', '.join(names)})")
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
    return base, sections


def _parse_params(raw, file: str, methods: List[str], eps: float) -> Dict[str, Dict[str, Any]]:
    """The fixed method parameters, keyed by method in a cross-method sweep."""
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
                raise unknown_key(file, k, fields_of(cls), where=where[: -len(k)])
            raise ConfigError(file, where, msg)
        params[mm] = dict(pv)
    return params


def _parse_search(raw, file: str, methods: List[str], sections, eps: float) -> List[SearchParam]:
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
        dist = parse_dist(file, key, spec)
        target, only, fld = resolve_target(file, key, methods, sections)
        check_dist_against_field(file, key, dist, fld, eps)
        search.append(SearchParam(key, target, only, dist))
    return search


def _parse_objectives(raw, file: str) -> List[Objective]:
    objectives_raw = raw.get("objectives", list(DEFAULT_OBJECTIVES))
    if not isinstance(objectives_raw, list) or not objectives_raw:
        raise ConfigError(file, "objectives", "must be a non-empty list of {metric, mode}")
    objectives = []
    for i, o in enumerate(objectives_raw):
        obj = _pydantic(Objective, o, file, f"objectives[{i}]")
        if obj.metric not in METRICS:
            raise ConfigError(file, f"objectives[{i}].metric", f"unknown metric {obj.metric!r} ({did_you_mean(obj.metric, METRICS)}allowed: {', '.join(METRICS)})")
        objectives.append(obj)
    if len({o.metric for o in objectives}) != len(objectives):
        raise ConfigError(file, "objectives", "an objective is listed twice")
    return objectives


def _check_sweep_against_objectives(raw, file: str, objectives: List[Objective]) -> None:
    """Early stopping's metric and the hypervolume's reference point, as they relate to the objectives."""
    sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else {}
    es = sweep.get("early_stopping")
    if isinstance(es, dict) and es.get("scheduler") == "mo_asha" and ({"metric", "mode"} & set(es)):
        raise ConfigError(file, "sweep.early_stopping." + sorted({"metric", "mode"} & set(es))[0],
                          "mo_asha ranks trials on the sweep's objectives; drop metric/mode (they are for asha, hyperband)")
    if isinstance(es, dict) and es.get("metric", "val_robust_acc") not in METRICS:
        raise ConfigError(file, "sweep.early_stopping.metric", f"unknown metric {es.get('metric')!r} (allowed: {', '.join(METRICS)})")
    ref = sweep.get("hypervolume_ref")
    if isinstance(ref, dict) and set(ref) != {o.metric for o in objectives}:
        raise ConfigError(file, "sweep.hypervolume_ref", f"needs one value per objective, exactly: "
                          f"{', '.join(o.metric for o in objectives)} (got {', '.join(map(str, ref)) or 'none'})")


def _check_attack_n(raw, file: str) -> None:
    fe = raw.get("final_eval")
    if not (isinstance(fe, dict) and isinstance(fe.get("attack_n"), dict)):
        return
    listed = fe.get("attacks", FinalEvalSection().attacks)
    for a, k in fe["attack_n"].items():
        if isinstance(listed, list) and a not in listed:
            raise ConfigError(file, f"final_eval.attack_n.{a}", f"{a!r} is not in final_eval.attacks ({', '.join(map(str, listed))})")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(file, f"final_eval.attack_n.{a}", f"{k!r}: must be a whole number of test images >= 1")


def _check_enqueue(cfg: SweepConfig) -> None:
    """Each enqueued point names search keys only, a label at most once, and builds a trial spec."""
    file = cfg.file
    keys = {sp.key for sp in cfg.search} | ({"method"} if len(cfg.methods) > 1 else set())
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
            raise unknown_key(file, str(err["loc"][-1]), allowed, where=f"{section}.") from None
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
            raise unknown_key(file, k, fields, where=f"{name}.")
    inst, errors = build_params(cls, data, eps)
    if errors:
        k, msg = errors[0]
        raise ConfigError(file, f"{name}.{k}", msg)
    return inst



def _parse_constraints(raw: Any, file: str) -> List[Constraint]:
    if not isinstance(raw, list):
        raise ConfigError(file, "constraints", "must be a list of {metric, min, max}")
    out = []
    for i, c in enumerate(raw):
        con = _pydantic(Constraint, c, file, f"constraints[{i}]")
        if con.metric not in METRICS:
            raise ConfigError(file, f"constraints[{i}].metric", f"unknown metric {con.metric!r} "
                              f"({did_you_mean(con.metric, METRICS)}allowed: {', '.join(METRICS)})")
        if con.min is None and con.max is None:
            raise ConfigError(file, f"constraints[{i}]", "needs min, max or both")
        if con.min is not None and con.max is not None and con.min > con.max:
            raise ConfigError(file, f"constraints[{i}].min", f"min {con.min:g} > max {con.max:g}")
        out.append(con)
    return out


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
