"""The claims pages (docs/claims/, raysweep/repro/pages.py) and the per-epoch curves (raysweep/repro/curves.py):
the committed pages are what the committed JSON renders to, their tables are well formed and their links resolve,
the verdicts judged again from the committed rows are claims.json's, hand-written text survives regeneration, and
the curves CSV holds every seed's epochs."""

import csv
import io
import json
import re

import pytest

from raysweep.cli import main
from raysweep.repro import curves, pages

from conftest import REPO

REGENERATE = ".venv/bin/raysweep claims --pages-only"
CLAIMS = json.loads((REPO / "bench" / "results" / "claims.json").read_text())
PAIRED = json.loads((REPO / "bench" / "results" / "paired_times.json").read_text())
PAGE_FILES = sorted((REPO / "docs" / "claims").glob("*.md"))


@pytest.fixture(scope="module")
def rendered():
    return pages.render_pages(CLAIMS, PAIRED)


def test_the_committed_pages_are_what_the_committed_json_renders_to(rendered):
    assert {REPO / p for p in rendered} == set(PAGE_FILES), f"pages added or removed: run `{REGENERATE}`"
    for rel, generated in rendered.items():
        committed = (REPO / rel).read_text()
        assert pages.merge(committed, generated) == committed, \
            f"{rel} is stale (bench/results/claims.json, paired_times.json or the rules changed): run `{REGENERATE}`"


def test_the_pages_verdicts_judged_again_from_the_committed_rows_are_claims_json_s():
    assert pages.rejudge(CLAIMS, PAIRED) == CLAIMS["claims"]
    found = {(a["rule"]["paper"], a["rule"]["dataset"]): a for a in pages.assessments(CLAIMS, PAIRED)}
    for c in CLAIMS["claims"]:
        a = found[(c["paper"], c["dataset"])]
        assert (a["verdict"], a["provisional"]) == (c["verdict"], c["provisional"])
        assert [p["verdict"] for p in a["pairs"]] == [p["verdict"] for p in c["per_baseline"]]


def _cells(line):
    """A Markdown table row's cells: pipes escaped or inside a code span do not split."""
    body = line.strip()[1:-1]
    out, cur, code, i = [], "", False, 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur += body[i:i + 2]
            i += 2
            continue
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    return out + [cur.strip()]


def _tables(text):
    block = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            yield block
            block = []


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_every_table_row_has_as_many_cells_as_its_header_and_cells_are_short(path):
    text = path.read_text()
    tables = list(_tables(text))
    assert tables, f"{path.name}: no table"
    for block in tables:
        header = _cells(block[0])
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", block[1].replace(" ", "")), f"{path.name}: {block[1]!r}"
        assert len(_cells(block[1])) == len(header)
        for row in block[2:]:
            cells = _cells(row)
            assert len(cells) == len(header), f"{path.name}: {len(cells)} cells under {len(header)}: {row[:120]}"
            for c in cells:
                shown = re.sub(r"\]\([^)]*\)", "]", c)  # a link's target is not read
                assert len(shown) <= 80, f"{path.name}: a {len(shown)}-character cell: {c[:100]}"


def _slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_every_relative_link_resolves(path):
    text = path.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        dest = (path.parent / target).resolve() if target else path
        assert dest.exists(), f"{path.name}: {link} does not resolve"
        if anchor and dest.suffix == ".md":
            heads = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), flags=re.M)}
            assert anchor in heads, f"{path.name}: no heading #{anchor} in {target or path.name}"


def test_every_paper_and_dataset_has_one_row_in_the_index_and_in_its_page(rendered):
    index = rendered["docs/claims/README.md"]
    for c in CLAIMS["claims"]:
        name = pages.PAPERS[c["paper"]][0]
        ds = pages.DATASETS[c["dataset"]]
        rows = [ln for ln in index.splitlines() if ln.startswith(f"| [{name}]({c['paper']}.md) | {ds} |")]
        assert len(rows) == 1 and f"**{c['verdict']}**" in rows[0]
        page = rendered[f"docs/claims/{c['paper']}.md"]
        assert any(ln.startswith(f"| {ds} | ") and f"**{c['verdict']}**" in ln for ln in page.splitlines())
        assert c["claim"] in page
    every = sum(1 for r in CLAIMS["rows"] for p in rendered.values() if f"`{r['run_id']}`" in p)
    assert every >= len(CLAIMS["rows"]), "every configuration is listed on a page with its MLflow run"


def test_hand_written_text_survives_regeneration(tmp_path, rendered):
    rel = "docs/claims/rrm.md"
    page = "Above, by hand.\n\n" + rendered[rel] + "\n\nBelow, by hand: kept.\n"
    (tmp_path / "rrm.md").write_text(page.replace("AutoAttack", "AA-old", 3))  # a stale generated part
    pages.write_pages({rel: rendered[rel]}, tmp_path)
    assert (tmp_path / "rrm.md").read_text() == page
    assert pages.write_pages({rel: rendered[rel]}, tmp_path) == []  # nothing to change the second time
    pages.write_pages({"docs/claims/new.md": "<!-- generated:start -->\nx\n<!-- generated:end -->"}, tmp_path)
    new = (tmp_path / "new.md").read_text()
    assert new.startswith(pages.MARKERS[0]) and "Hand-written below" in new


def test_pages_only_regenerates_the_pages_from_the_committed_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "claims"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- results:start -->\nSTALE\n<!-- results:end -->\n\nrest\n")
    assert main(["claims", "--pages-only", "--pages", str(out), "--readme", str(readme)]) == 0
    for f in PAGE_FILES:
        generated = (out / f.name).read_text()
        assert pages.merge(f.read_text(), generated.split(pages.HAND)[0]) == f.read_text()
    text = readme.read_text()
    assert "STALE" not in text and text.endswith("<!-- results:end -->\n\nrest\n")
    assert "| [RRM](docs/claims/rrm.md) | MNIST | **does not hold** |" in text
    assert len([ln for ln in text.splitlines() if ln.startswith("| [")]) == len(CLAIMS["claims"])
    assert not (tmp_path / "claims.json").exists()  # reads the committed JSON, writes none
    capsys.readouterr()
    readme.write_text("# no markers\n")
    main(["claims", "--pages-only", "--pages", str(out), "--readme", str(readme)])
    assert readme.read_text() == "# no markers\n" and "has no results markers" in capsys.readouterr().out


def _trial(i, label, n, epochs, status="FINISHED", test=True):
    hist = []
    for e in range(1, epochs + 1):
        h = {"epoch": float(e), "val_robust_acc": 0.1 * e, "val_clean_acc": 0.9, "train_time_s": 10.0 * e,
             "cost": 2.0 * e}
        if n > 1:
            for s in range(n):
                h.update({f"val_robust_acc_seed{s}": 0.1 * e + 0.01 * s, f"val_clean_acc_seed{s}": 0.9 - 0.01 * s,
                          f"train_time_s_seed{s}": 10.0 * e + s, f"cost_seed{s}": 2.0 * e})
        hist.append(h)
    return {"trial": i, "label": label, "status": status, "run_id": f"run{i}", "spec": {"repeats": n},
            "history": hist, "metrics": hist[-1], "test": {"test_clean_acc": 0.9} if test else {}}


def _read(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_the_curves_csv_holds_every_seed_s_epochs_and_keeps_other_sweeps_labels(tmp_path):
    exp = "reproduce-rrm-mnist"
    state = {"experiment": exp, "_sweep_dir": str(tmp_path / "runs" / exp / "sweep-20261205-000000"),
             "trials": {"0": _trial(0, "PGD-AT", 3, 4), "1": _trial(1, "one seed", 1, 2),
                        "2": _trial(2, "still running", 3, 2, status="RUNNING"),
                        "3": _trial(3, "not evaluated", 3, 2, test=False)}}
    out = tmp_path / "curves"
    (out).mkdir()
    # a committed file: a label this state reports again is replaced, another sweep's label stays
    (out / f"{exp}.csv").write_text("sweep,trial,label,run_id,seed,epoch,val_robust_acc,val_clean_acc,train_time_s,cost\n"
                                    "sweep-old,0,PGD-AT,old,0,1,0.5,0.9,1,1\n"
                                    "sweep-old,5,RRM student (tuned),r5,0,1,0.0,0.98,3,1\n")
    assert curves.write_curves({exp: state, "reproduce-fp-better-mnist": None}, out) == [out / f"{exp}.csv"]
    lines = _read(out / f"{exp}.csv")
    assert list(lines[0]) == curves.FIELDS
    assert [ln["label"] for ln in lines].count("RRM student (tuned)") == 1 and lines[0]["sweep"] == "sweep-old"
    pgd = [ln for ln in lines if ln["label"] == "PGD-AT"]
    assert len(pgd) == 3 * 4 and {ln["sweep"] for ln in pgd} == {"sweep-20261205-000000"}
    s2e3 = next(ln for ln in pgd if ln["seed"] == "2" and ln["epoch"] == "3")
    assert (float(s2e3["val_robust_acc"]), float(s2e3["val_clean_acc"]), float(s2e3["train_time_s"]),
            float(s2e3["cost"]), s2e3["run_id"]) == (pytest.approx(0.32), 0.88, 32.0, 6.0, "run0")
    one = [ln for ln in lines if ln["label"] == "one seed"]
    assert [(ln["seed"], ln["epoch"]) for ln in one] == [("0", "1"), ("0", "2")]
    assert not [ln for ln in lines if ln["label"] in ("still running", "not evaluated")]
    # a multi-seed history that kept only the mean says so instead of calling it seed 0
    mean_only = _trial(0, "PGD-AT", 3, 1)
    mean_only["history"] = [{k: v for k, v in h.items() if "_seed" not in k} for h in mean_only["history"]]
    assert [ln["seed"] for ln in curves.curve_lines({"trials": {"0": mean_only}})] == ["mean"]
