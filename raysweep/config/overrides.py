"""What the command line changes in a loaded YAML: ``--set KEY=VALUE`` (a searched key set on the command line stops
being searched, and says so) and ``--only LABEL``."""

import copy
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ..errors import ConfigError
from ..hparams import fields_of
from ..train.spec import SECTIONS

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
