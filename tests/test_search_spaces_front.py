"""The cross-method YAML (search_spaces/all_methods.yaml) as a real sweep: every method on one front, in MLflow.
A module of its own: its test starts Ray, and the suite runs Ray tests apart (tests/conftest.py)."""

import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config

from conftest import REPO
from test_search_spaces_run import _small

pytestmark = pytest.mark.ray


def test_all_methods_on_one_front(ray_session, tmp_path, monkeypatch):
    from raysweep.tune.runner import run_sweep

    monkeypatch.chdir(tmp_path)
    cfg = load_config(REPO / "search_spaces" / "all_methods.yaml",
                      _small(REPO / "search_spaces" / "all_methods.yaml") + ["sweep.num_samples=8", "resources.executor=inprocess", "final_eval.n=32",
                               "params.rrm.teacher_epochs=1"])
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 8 and summary["failed"] == 0
    methods = {r["method"] for r in summary["rows"]}
    assert methods == set(cfg.methods)
    assert summary["front"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs([client.get_experiment_by_name("all-methods-mnist").experiment_id],
                              filter_string="tags.`raysweep.kind` = 'trial'")
    assert {k.data.tags["method"] for k in kids} == methods
    assert {k.data.tags["method_fidelity"] for k in kids if k.data.tags["method"] == "local_ball"} == {"reconstruction"}
