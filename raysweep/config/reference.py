"""The configuration reference (``docs/configuration.md``), rendered from the declarations the parser validates
against: ``schema._TOP`` and the pydantic sections, the torch core's dataclass sections (``train.spec``), the
method registry and the registries of names (``parse.REGISTRIES``). Rendering from them means the reference cannot
disagree with the parser; ``--check`` (and tests/test_config_reference.py) catches a committed file left behind.

    python -m raysweep.config.reference           # writes docs/configuration.md
    python -m raysweep.config.reference --check   # exit 1 if the committed file is out of date
"""

import argparse
import dataclasses
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ..methods import get_method, list_methods
from ..train.pruning import POLICIES
from ..train.spec import SECTIONS, PruningSpec
from .parse import REGISTRIES
from .schema import (_TOP, REQUIRED, Constraint, FinalEvalSection, MlflowSection, Objective, ResourcesSection,
                     SweepSection)

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "configuration.md"
COMMAND = "python -m raysweep.config.reference"
COLUMNS = ("key", "type", "default", "allowed", "description")

# The top-level keys that are sections, by the class that declares their keys. Lists of mappings get ``[]`` in
# their rows' keys (``objectives[].metric``).
DATACLASS_SECTIONS = {**SECTIONS, "pruning": PruningSpec}
MODEL_SECTIONS = {"objectives": Objective, "constraints": Constraint, "sweep": SweepSection,
                  "resources": ResourcesSection, "mlflow": MlflowSection, "final_eval": FinalEvalSection}
LIST_SECTIONS = ("objectives", "constraints")


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    allowed: str
    doc: str

    def cells(self) -> Tuple[str, ...]:
        return (f"`{self.key}`", self.type, self.default, self.allowed or "—", self.doc)


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    rows: Tuple[Row, ...]
    level: int = 2  # Markdown heading level: the methods are subsections of "Methods"


# -- values --------------------------------------------------------------------------------------------------------
def _num(x) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return repr(x)


def _yaml(v) -> str:
    """A value as it would be written in the YAML (flow style)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml(x)}" for k, x in v.items()) + "}"
    return str(v)


def _default(v) -> str:
    return "required" if v is REQUIRED else f"`{_yaml(v)}`"


def _values(vs: Sequence) -> str:
    return ", ".join(f"`{_yaml(v)}`" for v in vs)


def interval(low=None, high=None, low_open=False, high_open=False) -> str:
    """``[1, 200]``, ``(0, 1]``, ``≥ 0``, ``> 0``: the notation the reference uses for bounds."""
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '≤'} {_num(high)}"
    return ""


def _registered(key: str) -> str:
    return "registered: " + _values(REGISTRIES[key]())


# -- dataclass sections (the torch core's ``hp`` declarations) -----------------------------------------------------
def _dc_default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _dc_type(tp, f: dataclasses.Field) -> str:
    if f.metadata.get("scale_by_eps"):
        return "float or ε-relative" + (" or null" if _dc_default(f) is None else "")
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join([_dc_type(a, f) for a in rest] + ["null"])
    if typing.get_origin(tp) in (list, tuple):
        return f"list of {_dc_type(args[0], f)}" if args else "list"
    if tp is dict or typing.get_origin(tp) is dict:
        return "mapping"
    if tp is object or tp is typing.Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def dataclass_rows(prefix: str, cls) -> List[Row]:
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        key = f"{prefix}.{f.name}"
        if key in REGISTRIES:
            allowed = _registered(key)
        elif m.get("choices"):
            allowed = _values(m["choices"])
        else:
            allowed = interval(m.get("low"), m.get("high"), m.get("low_open", False), m.get("high_open", False))
        rows.append(Row(key, _dc_type(hints[f.name], f), _default(_dc_default(f)), allowed, m.get("doc", "")))
    return rows


# -- pydantic sections -------------------------------------------------------------------------------------------
def _bounds(meta) -> str:
    lo = hi = None
    lo_open = hi_open = False
    for c in meta:
        if isinstance(c, FieldInfo):  # an Annotated[..., Field(ge=...)] inside a union or a mapping
            return _bounds(c.metadata)
        for attr, is_low, is_open in (("ge", True, False), ("gt", True, True), ("le", False, False), ("lt", False, True)):
            if getattr(c, attr, None) is not None:
                if is_low:
                    lo, lo_open = getattr(c, attr), is_open
                else:
                    hi, hi_open = getattr(c, attr), is_open
    return interval(lo, hi, lo_open, hi_open)


def _describe(tp) -> Tuple[str, str]:
    """(type, allowed) of an annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        t, a = _describe(args[0])
        return t, "; ".join(x for x in (a, _bounds(args[1:])) if x)
    if origin is typing.Literal:
        return "str", _values(args)
    if origin in (typing.Union, types.UnionType):
        null = type(None) in args
        rest = [a for a in args if a is not type(None)]
        words = [v for a in rest if typing.get_origin(a) is typing.Literal for v in typing.get_args(a)]
        others = [_describe(a) for a in rest if typing.get_origin(a) is not typing.Literal]
        if others:  # the literals are words next to a type: ``int or auto``
            t = " or ".join([o[0] for o in others] + [str(w) for w in words])
            allowed = "; ".join(o[1] for o in others if o[1])
        else:
            t, allowed = "str", _values(words)
        return t + (" or null" if null else ""), allowed
    if origin is list:
        t, a = _describe(args[0])
        return ("list of mappings" if t == "mapping" else f"list of {t}"), (f"each: {a}" if a else "")
    if origin is dict:
        _, ka = _describe(args[0])
        vt, va = _describe(args[1])
        allowed = "; ".join(x for x in (f"keys: {ka}" if ka else "", f"values {va}" if va else "") if x)
        return ("mapping" if args[1] is Any else f"mapping of {vt}"), allowed
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping", ""
    if tp is Any:
        return "any", ""
    return getattr(tp, "__name__", str(tp)), ""


def _nested_model(tp) -> Optional[type]:
    for a in (tp, *typing.get_args(tp)):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def model_rows(prefix: str, model: type) -> List[Row]:
    rows = []
    for name, fi in model.model_fields.items():
        key = f"{prefix}.{name}"
        t, allowed = _describe(fi.annotation)
        extra = fi.json_schema_extra if isinstance(fi.json_schema_extra, dict) else {}
        enum = extra.get("enum")
        # a rule a validator checks and no type or bound can say (e.g. sweep.budget's one key), written beside it
        allowed = extra.get("allowed") or allowed
        allowed = "; ".join(x for x in (_values(enum) if enum else allowed, _bounds(fi.metadata)) if x)
        default = REQUIRED if fi.is_required() else fi.get_default(call_default_factory=True)
        rows.append(Row(key, t, _default(default), allowed, fi.description or ""))
        nested = _nested_model(fi.annotation)
        if nested is not None:
            rows += model_rows(key, nested)
    return rows


# -- top level, methods, pruning ----------------------------------------------------------------------------------
def _anchor(title: str) -> str:
    """GitHub's heading anchor."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def top_rows() -> List[Row]:
    rows = []
    for key, tk in _TOP.items():
        allowed = tk.allowed
        if key in REGISTRIES:
            allowed = "; ".join(x for x in (_registered(key), allowed) if x)
        elif key in DATACLASS_SECTIONS or key in MODEL_SECTIONS:
            # No link: tests/test_docs.py's anchor rule drops the underscore GitHub keeps in `#final_eval`.
            allowed = "; ".join(x for x in (f"keys: section {key}", allowed) if x)
        elif key == "params":
            allowed = f"see [Methods](#{_anchor('Methods')})"
        elif key == "search":
            allowed = f"see [Search-space language](#{_anchor('Search-space language')})"
        rows.append(Row(key, tk.type, _default(tk.default), allowed, tk.doc))
    return rows


def builtin_methods() -> List[str]:
    """The methods raysweep ships (a test or a YAML's ``imports`` may have registered more in this process)."""
    return [n for n in list_methods() if get_method(n).__module__.startswith("raysweep.methods.")]


_PRUNING_INTRO = ("Data pruning composes with every method; without this section every trial trains on all data. "
                  "`mode` picks the policy:\n\n")

_METHODS_INTRO = """\
A method's hyperparameters go under `params:` (fixed) or `search:` (swept). In a one-method sweep `params` holds
them directly (`params: {steps: 20}`); in a cross-method sweep (`method: {choice: [...]}`) they are keyed by method
(`params: {pgd_at: {steps: 20}}`). In `search:`, `<method>.<param>` (the keys below) applies to that method's
trials only; a bare `<param>` applies to every method of the sweep that has it. Types `float or ε-relative` take a
number or an expression resolved against `threat.eps` (see [Search-space language](#search-space-language))."""

SEARCH_LANGUAGE = """\
`search:` maps a key to a distribution; Optuna samples one value per key and trial.

| form | meaning |
|---|---|
| `{float: [lo, hi]}` | a real number in [lo, hi]; `lo` < `hi`, both numbers |
| `{float: [lo, hi], log: true}` | the same, sampled on a log scale (`lo` > 0) |
| `{float: [lo, hi], step: s}` | the same, on the grid lo, lo + s, ...; `step` and `log` exclude each other |
| `{int: [lo, hi]}` | an integer; takes `log: true` or `step: s` as above; an integer key needs `int` or `choice` |
| `{choice: [a, b, ...]}` | one of the listed values (any types the key allows) |
| `key: null` | not searched: the fixed value applies (what `--set search.<key>=null` writes) |

Keys:

- `<section>.<field>`: a training field, e.g. `train.lr`, `threat.eps`, `eval.val_pgd_steps`; `pruning.<field>` when
  the sweep has a `pruning` section. A bare training field (`lr`, `epochs`) means `train.<field>`.
- `<method>.<param>`: a method hyperparameter, sampled only in trials of that method (a method of this sweep).
- `<param>`: a method hyperparameter of every method of the sweep that has it; a name that is also a `train` field
  is refused as ambiguous.
- The methods themselves are searched with the top-level `method: {choice: [...]}`, never under `search`.

Both ends of a range, and every choice, are checked against the bounds of the field they set (the tables above).

ε-relative values: a field of type `float or ε-relative` (the attack step sizes) takes a number, or a string
resolved against `threat.eps`: `eps`, `1.25eps`, `eps/4`, or `8/255` (an absolute value in 1/255 units). These
strings go in `params:` and in `choice` lists; `float` and `int` ranges take plain numbers.

`sweep.enqueue` points (evaluated first) name search keys (and `method` in a cross-method sweep), plus an optional
`label`."""


def sections() -> List[Section]:
    out = [Section("Top-level keys", "", tuple(top_rows()))]
    for key, tk in _TOP.items():
        intro = tk.doc[0].upper() + tk.doc[1:] + "."
        if key in DATACLASS_SECTIONS:
            if key == "pruning":
                intro = _PRUNING_INTRO + "\n".join(
                    f"- `{mode}`{'' if fid == 'faithful' else f' ({fid})'}: {paper}" for mode, (fid, paper) in POLICIES.items()
                ) + "\n- `none`: train on all data (the unpruned baseline inside a pruning sweep)"
            out.append(Section(key, intro, tuple(dataclass_rows(key, DATACLASS_SECTIONS[key]))))
        elif key in MODEL_SECTIONS:
            prefix = f"{key}[]" if key in LIST_SECTIONS else key
            out.append(Section(key, intro, tuple(model_rows(prefix, MODEL_SECTIONS[key]))))
    out.append(Section("Methods", _METHODS_INTRO, ()))
    for name in builtin_methods():
        cls = get_method(name)
        tag = "" if cls.fidelity == "faithful" else f" ({cls.fidelity})"
        rows = tuple(dataclass_rows(name, cls.Params))
        paper = cls.paper[:1].upper() + cls.paper[1:]
        out.append(Section(name, f"{paper}{tag}." + ("" if rows else " No hyperparameters."), rows, level=3))
    out.append(Section("Search-space language", SEARCH_LANGUAGE, ()))
    return out


# -- Markdown ----------------------------------------------------------------------------------------------------
def escape(cell: str) -> str:
    return " ".join(str(cell).split()).replace("|", "\\|")


def table(rows: Sequence[Row]) -> List[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(escape(c) for c in r.cells()) + " |" for r in rows]
    return lines


def render() -> str:
    lines = ["# Configuration reference", "",
             f"> Generated from the code by `{COMMAND}`; do not edit by hand.", "",
             "Every key a sweep YAML (e.g. `search_spaces/quickstart.yaml`) can hold, with its type, default and "
             "allowed values as the parser checks them. `—`: no restriction beyond the type.", ""]
    for s in sections():
        lines += [f"{'#' * s.level} {s.title}", ""]
        if s.intro:
            lines += [s.intro, ""]
        if s.rows:
            lines += table(s.rows) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    rel = OUTPUT.relative_to(REPO) if OUTPUT.is_relative_to(REPO) else OUTPUT
    ap = argparse.ArgumentParser(prog=COMMAND, description=f"Write {rel} from the schema.")
    ap.add_argument("--check", action="store_true", help="exit 1 if the committed file differs from the generated one")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else None
        if current != text:
            print(f"{rel} is out of date; regenerate it with: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
