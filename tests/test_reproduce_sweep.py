"""One whole reproduction as a sweep end to end (Ray, MLflow, the final evaluation of every member), then
`raysweep claims` turns it into rows and a verdict. A module of its own: its test starts Ray, and the suite runs Ray
tests apart (tests/conftest.py)."""

import csv
import json
import subprocess
import sys

import pytest

from raysweep.config import load_yaml, parse_config

from conftest import REPO

pytestmark = pytest.mark.ray


def test_a_reproduction_runs_end_to_end_and_gets_a_verdict(ray_session, tmp_path, monkeypatch):
    """backward_smoothing.yaml as a real sweep (2 configurations x 2 seeds, small data), every member evaluated
    with clean, PGD-20 and AutoAttack, then `raysweep claims`: rows with mean/std and a verdict with a why."""
    from raysweep.tune.runner import run_sweep

    monkeypatch.chdir(tmp_path)
    path = REPO / "search_spaces" / "reproduce" / "mnist" / "backward_smoothing.yaml"
    raw = load_yaml(path)
    raw["dataset"].update(val_size=64, train_size=512, test_size=64)
    raw["train"].update(epochs=1, batch_size=128)
    raw["eval"] = {"val_pgd_steps": 2}
    raw["sweep"]["repeats"] = 2
    raw["sweep"]["enqueue"] = raw["sweep"]["enqueue"][:2]  # TRADES-10 and the paper defaults: enough for a verdict
    raw["sweep"]["num_samples"] = 2
    raw["final_eval"]["attack_n"] = {"autoattack": 16}
    raw["resources"]["executor"] = "inprocess"
    cfg = parse_config(raw, path)
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 2 and summary["failed"] == 0
    # members: all needs no selection: the first trial to finish is evaluated while the other trains
    assert summary["evaluated_early"] >= 1
    for r in summary["rows"]:
        assert r["label"] in {"TRADES-10", "Backward Smoothing (paper defaults, beta 1)"}
        assert {"test_clean_acc", "test_pgd20_acc", "test_autoattack_acc", "test_autoattack_acc_std",
                "test_autoattack_acc_seed1"} <= set(r)
        assert r["test_n_all"] == 64 and r["test_n_16"] == 16
    out = tmp_path / "claims"
    res = subprocess.run([sys.executable, "-m", "raysweep.cli", "claims", "--runs", str(tmp_path / "raysweep_runs"),
                          "--out", str(out), "--no-readme", "--figures", str(out), "--pages", str(out / "pages")],
                         # the repo's docs/ stay untouched
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "figures: " + str(out) in res.stdout, res.stdout[-500:]  # drawn where asked, not into docs/
    data = json.loads((out / "claims.json").read_text())
    assert (out / "pages" / "backward_smoothing.md").is_file() and (out / "pages" / "README.md").is_file()
    with open(out / "curves" / "reproduce-backward-smoothing-mnist.csv") as f:
        curve = list(csv.DictReader(f))
    assert len(curve) == 2 * 2 * 1  # 2 configurations x 2 seeds x 1 epoch
    assert {ln["seed"] for ln in curve} == {"0", "1"} and all(float(ln["val_robust_acc"]) >= 0 for ln in curve)
    rows = {r["label"]: r for r in data["rows"]}
    assert set(rows) == {"TRADES-10", "Backward Smoothing (paper defaults, beta 1)"}
    for r in rows.values():
        assert r["seeds"] == 2 and len(r["aa"]["seeds"]) == 2 and r["aa_images"] == 16 and r["run_id"]
        assert set(r) >= {"label", "paper", "method", "pruning", "dataset", "eps", "model", "epochs", "seeds", "clean",
                          "pgd20", "aa", "train_time_s", "cost"}
        assert r["paper"] == "backward_smoothing"
    (claim,) = [c for c in data["claims"] if c["paper"] == "backward_smoothing"]
    assert claim["dataset"] == "mnist" and claim["baseline"].startswith("TRADES-10") and claim["why"]
    assert "TRADES-10, beta 6: not run yet" in claim["why"]  # the tuned point's own baseline did not run here: said so
    assert claim["verdict"] in (None, "holds", "partly", "does not hold")
