"""docs/configuration.md is rendered from the declarations the parser checks against (raysweep/config/reference.py):
it is up to date, every key has a doc line, its tables are well formed, and what it says is allowed is what
``parse_config`` accepts."""

import copy
import dataclasses
import re
import subprocess
import sys

import pytest

from raysweep.config import ConfigError, parse_config
from raysweep.config import reference as ref
from raysweep.config.schema import _TOP, METRICS

from conftest import REPO

DOC = REPO / "docs" / "configuration.md"
BASE = {
    "name": "t", "method": "fgsm_rs", "dataset": {"name": "synthetic", "val_size": 64},
    "model": {"name": "small_cnn"}, "threat": {"eps": 0.1}, "train": {"epochs": 10},  # above pruning's warm-up
}
# What a list section's entry holds besides the key under test.
LIST_ENTRY = {"objectives": {"metric": "cost", "mode": "min"}, "constraints": {"metric": "cost", "max": 1.0}}
# Keys whose bounds also depend on another key (checked by their own tests in test_config_errors.py).
CROSS_FIELD = {"pruning.warmup_epochs", "dataset.val_size"}

_PIPE = re.compile(r"(?<!\\)\|")


def _cells(line: str):
    return [c.strip() for c in _PIPE.split(line.strip())[1:-1]]


def _tables(text: str):
    """Each Markdown table as a list of its lines' cells (header first, separator second)."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cur.append(_cells(line))
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def _rows():
    """{key: {column: cell}} of the committed reference's key tables."""
    out = {}
    for t in _tables(DOC.read_text(encoding="utf-8")):
        if tuple(t[0]) != ref.COLUMNS:
            continue
        for cells in t[2:]:
            row = dict(zip(ref.COLUMNS, cells))
            out[row["key"].strip("`")] = row
    return out


ROWS = _rows()


def _raw(key: str, value):
    """BASE with ``key`` (as the reference names it) set to ``value``; (raw, the key a ConfigError names)."""
    raw = copy.deepcopy(BASE)
    head, *rest = key.split(".")
    if not rest:
        raw[key] = value
        return raw, key
    if head in ref.builtin_methods():
        raw["method"] = head
        raw["params"] = {rest[0]: value}
        return raw, f"params.{rest[0]}"
    if head.endswith("[]"):
        sec = head[:-2]
        raw[sec] = [{**LIST_ENTRY[sec], rest[0]: value}]
        return raw, f"{sec}[0].{rest[0]}"
    node = raw.setdefault(head, {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    node[rest[-1]] = value
    return raw, key


def _accepts(key, value) -> bool:
    raw, where = _raw(key, value)
    try:
        parse_config(raw, "x.yaml")
    except ConfigError as e:
        assert where in str(e), str(e)
        return False
    return True


def test_committed_reference_is_current():
    r = subprocess.run([sys.executable, "-m", "raysweep.config.reference", "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (f"docs/configuration.md differs from what the code declares; regenerate it with "
                               f"`python -m raysweep.config.reference`\n{r.stdout}{r.stderr}")


def test_check_reports_a_stale_file_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ref, "OUTPUT", tmp_path / "configuration.md")
    assert ref.main(["--check"]) == 1
    assert ref.main([]) == 0
    assert ref.main(["--check"]) == 0
    (tmp_path / "configuration.md").write_text(ref.render() + "edited by hand\n", encoding="utf-8")
    assert ref.main(["--check"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("regenerate it with: python -m raysweep.config.reference")


def test_rendering_is_deterministic():
    assert ref.render() == ref.render()


def test_every_key_has_one_line_of_doc():
    missing = [r.key for s in ref.sections() for r in s.rows if not r.doc.strip() or "\n" in r.doc]
    assert not missing, f"keys without a one-line doc (add doc= / description=): {missing}"


def test_every_key_of_every_section_is_in_the_reference():
    keys = {r.key for s in ref.sections() for r in s.rows}
    expected = set(_TOP)
    for sec, cls in ref.DATACLASS_SECTIONS.items():
        expected |= {f"{sec}.{f.name}" for f in dataclasses.fields(cls)}
    for sec, model in ref.MODEL_SECTIONS.items():
        prefix = f"{sec}[]" if sec in ref.LIST_SECTIONS else sec
        expected |= {f"{prefix}.{n}" for n in model.model_fields}
    for m in ref.builtin_methods():
        from raysweep.methods import get_method
        expected |= {f"{m}.{f.name}" for f in dataclasses.fields(get_method(m).Params)}
    assert expected <= keys, sorted(expected - keys)
    assert {"sweep.early_stopping.scheduler", "sweep.early_stopping.grace_period"} <= keys
    assert set(ROWS) == keys, "the committed reference has other keys than the code declares"


def test_every_table_row_has_as_many_cells_as_its_header():
    tables = _tables(DOC.read_text(encoding="utf-8"))
    assert len(tables) > 10
    for t in tables:
        for cells in t[1:]:
            assert len(cells) == len(t[0]), f"{cells} under {t[0]}"
    assert sum(tuple(t[0]) == ref.COLUMNS for t in tables) >= len(ref.DATACLASS_SECTIONS) + len(ref.MODEL_SECTIONS)


def test_escaped_pipes_stay_in_their_cell():
    row = ref.Row("k", "a|b", "`1`", "", "x | y")
    (line,) = ref.table([row])[2:]
    assert len(_cells(line)) == len(ref.COLUMNS)


def test_spot_checks():
    assert ROWS["sweep.sampler"]["allowed"] == "`tpe`, `nsga2`, `random`"
    assert ROWS["threat.eps"]["allowed"] == "(0, 1]"
    assert ROWS["threat.eps"]["default"] == "`0.3`"
    assert ROWS["sweep.max_concurrent"]["type"] == "int or auto"
    assert ROWS["name"]["default"] == "required"
    for m in METRICS:
        assert f"`{m}`" in ROWS["objectives[].metric"]["allowed"]
    assert not _accepts("threat.eps", 1.5)
    assert not _accepts("sweep.sampler", "grid")
    assert not _accepts("objectives[].metric", "val_robust")
    assert _accepts("sweep.max_concurrent", "auto")


# -- what the reference says is allowed is what the parser accepts --------------------------------------------------
_INTERVAL = re.compile(r"^([\[(])(-?[\d.]+), (-?[\d.]+)([\])])$")
_HALF = re.compile(r"^(≥|>|≤|<) (-?[\d.]+)$")


def _bounds(allowed: str):
    """[(bound, is_low, is_open)] from an ``allowed`` cell, or []."""
    for part in allowed.split("; "):
        m = _INTERVAL.match(part)
        if m:
            return [(float(m[2]), True, m[1] == "("), (float(m[3]), False, m[4] == ")")]
        m = _HALF.match(part)
        if m:
            return [(float(m[2]), m[1] in "≥>", m[1] in "<>")]
    return []


def _num(x: float, is_int: bool):
    return int(x) if is_int else x


NUMERIC = sorted(k for k, r in ROWS.items() if _bounds(r["allowed"]) and k not in CROSS_FIELD
                 and not r["type"].startswith("mapping") and "[]" not in k)
CHOICES = sorted(k for k, r in ROWS.items() if r["type"].startswith("str") and r["allowed"].startswith("`"))


@pytest.mark.parametrize("key", NUMERIC)
def test_bounds_in_the_reference_are_the_parsers(key):
    row = ROWS[key]
    is_int = row["type"].startswith("int")
    for bound, is_low, is_open in _bounds(row["allowed"]):
        step = 1 if is_int else 1e-3 * max(1.0, abs(bound))
        outside = bound if is_open else bound - step if is_low else bound + step
        assert not _accepts(key, _num(outside, is_int)), f"{key}: {outside} is accepted, the reference says {row['allowed']}"
        if not is_open:
            assert _accepts(key, _num(bound, is_int)), f"{key}: {bound} is refused, the reference says {row['allowed']}"
    assert len(NUMERIC) > 40


@pytest.mark.parametrize("key", CHOICES)
def test_choices_in_the_reference_are_the_parsers(key):
    values = re.findall(r"`([^`]+)`", ROWS[key]["allowed"])
    assert values
    for v in values:
        assert _accepts(key, v), f"{key}: {v!r} is listed but refused"
    assert not _accepts(key, "not_listed")


def test_registered_names_in_the_reference_are_the_parsers():
    for key in ("dataset.name", "model.name"):
        assert ROWS[key]["allowed"].startswith("registered: ")
        for v in re.findall(r"`([^`]+)`", ROWS[key]["allowed"]):
            assert _accepts(key, v), f"{key}: {v!r}"
        assert not _accepts(key, "not_registered")
    for v in re.findall(r"`([^`]+)`", ROWS["method"]["allowed"]):
        assert _accepts("method", v), v
    assert not _accepts("method", "not_registered")
