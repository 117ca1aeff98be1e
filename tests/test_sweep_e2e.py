"""A real tiny sweep: local Ray, real Optuna (its journal), real MLflow (sqlite store and a real
``mlflow server`` on 127.0.0.1). Asserts the parent/child structure, metrics and Pareto artifacts."""

import csv
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config
from raysweep.tune.runner import run_sweep
from raysweep.tune.study_store import study_storage

from conftest import check_mo_asha_sweep, mo_asha_yaml, run_cli

pytestmark = pytest.mark.ray


def _check_mlflow(client, experiment, n_trials, epochs=2):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["raysweep.version"]
    kids = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(kids) == n_trials
    for k in kids:
        assert k.data.tags["status"] == "FINISHED" and k.info.status == "FINISHED"
        assert k.data.tags["method"] in ("fgsm_rs", "pgd_at")
        assert k.data.tags["pareto_optimal"] in ("true", "false")
        assert k.data.params["method"] == k.data.tags["method"]
        assert "train.lr" in k.data.params and "threat.eps" in k.data.params
        for m in ("train_time_s", "cost", "val_clean_acc", "val_robust_acc", "train_loss", "epoch"):
            hist = client.get_metric_history(k.info.run_id, m)
            assert [h.step for h in hist] == list(range(1, epochs + 1)), m
    front = [k for k in kids if k.data.tags["pareto_optimal"] == "true"]
    assert front
    for k in front:  # the front's members were evaluated on the test set after selection
        assert "test_pgd20_acc" in k.data.metrics and "test_clean_acc" in k.data.metrics
        assert "test_best_pgd20_acc" in k.data.metrics and "best_epoch" in k.data.metrics  # best-on-validation too
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.png", "pareto_front.json", "sweep.yaml", "hypervolume.png"} <= arts
    # the search's progress: one hypervolume point per completed trial, against a fixed reference
    hv = sorted(client.get_metric_history(parent.info.run_id, "front_hypervolume"), key=lambda h: h.step)
    assert [h.step for h in hv] == list(range(1, n_trials + 1))
    assert all(a.value <= b.value for a, b in zip(hv, hv[1:])) and hv[-1].value > 0
    assert parent.data.params["hypervolume_ref"].startswith("train_time_s=")
    return parent, kids


def test_tiny_sweep_sqlite_end_to_end(ray_session, tiny_yaml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = []
    cfg = load_config(tiny_yaml("e2e", n=3))
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert summary["finished"] == 3 and summary["failed"] == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, kids = _check_mlflow(client, "e2e", 3)
    # the optuna study sits beside the experiment and every trial ended COMPLETE
    study = optuna.load_study(study_name="e2e", storage=study_storage(summary["sweep_dir"]))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len(study.best_trials) == len(summary["front"])
    # Tune's per-trial result files are not written (only its ResultGrid, which raysweep never reads, reads them)
    tune_dir = Path(summary["sweep_dir"]) / "tune"
    assert tune_dir.is_dir() and not [p for p in tune_dir.rglob("*")
                                      if p.name in ("progress.csv", "result.json") or p.name.startswith("events.out")]
    # concise progress, and the CSV has a row per finished trial
    assert any("3/3 done" in ln for ln in lines)
    csv_lines = open(summary["pareto_csv"]).read().strip().splitlines()
    assert len(csv_lines) == 4 and "pareto_optimal" in csv_lines[0]
    with open(summary["pareto_csv"]) as fh:  # every row names its MLflow run, the last trials' included
        assert sorted(row["run_id"] for row in csv.DictReader(fh)) == sorted(k.info.run_id for k in kids)
    # `raysweep pareto` reads the same front back from MLflow
    r = run_cli(["pareto", "e2e"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "front hypervolume" in r.stdout and "reference point train_time_s=" in r.stdout
    assert {"importance.json", "importance.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    r = run_cli(["pareto", "e2e", "--importance"], cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "parameter importance (fANOVA" in r.stdout, r.stdout + r.stderr
    assert "train_time_s, all trials: skipped (3 completed trials" in r.stdout  # too few to rank: said so
    for k in kids:
        if k.data.tags["pareto_optimal"] == "true":
            assert k.info.run_id in r.stdout


def test_a_sweep_longer_than_a_tune_chunk_runs_as_consecutive_experiments(ray_session, tiny_yaml, tmp_path, monkeypatch):
    """Tune holds every trial of an experiment until it ends; a sweep of more trials than $RAYSWEEP_TUNE_CHUNK runs as
    several experiments, one after the other, with one study, one record and one MLflow parent: nothing repeated,
    nothing missing."""
    import gc
    import warnings

    from ray import tune
    from ray.tune.experiment import Trial

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAYSWEEP_TUNE_CHUNK", "2")
    held, fit = [], tune.Tuner.fit

    def counting_fit(self, *a, **k):  # the earlier experiments' trials, still alive as the next one starts
        gc.collect()
        with warnings.catch_warnings():  # isinstance on every object touches torch's deprecated aliases
            warnings.simplefilter("ignore", FutureWarning)
            held.append(sum(isinstance(o, Trial) for o in gc.get_objects()))
        return fit(self, *a, **k)

    monkeypatch.setattr(tune.Tuner, "fit", counting_fit)
    lines = []
    cfg = load_config(tiny_yaml("chunks", n=5), ["resources.executor=inprocess"])
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert summary["finished"] == 5 and summary["failed"] == 0
    assert held == [0, 0, 0]  # nothing keeps an ended experiment's trials (Tune's own callbacks once did)
    experiments = sorted(p.name for p in (Path(summary["sweep_dir"]) / "tune").iterdir() if p.is_dir())
    assert len(experiments) == 3 and experiments[0] + "-1" in experiments and experiments[0] + "-2" in experiments
    _check_mlflow(MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), "chunks", 5)  # one child per trial, 5 curve points
    study = optuna.load_study(study_name="chunks", storage=study_storage(summary["sweep_dir"]))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert sorted(int(r["trial"]) for r in summary["rows"]) == [0, 1, 2, 3, 4]
    assert any("5/5 done" in ln for ln in lines)


def test_tiny_sweep_against_real_mlflow_server(ray_session, tiny_yaml, tmp_path, monkeypatch, mlflow_server):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(tiny_yaml("server", n=2), [f"mlflow.tracking_uri={mlflow_server.url}"])
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 2
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the server
    _check_mlflow(MlflowClient(mlflow_server.url), "server", 2)


def test_resources_that_cannot_fit_are_an_error_not_a_hang(ray_session, tiny_yaml, tmp_path, monkeypatch):
    from raysweep.errors import UserError

    monkeypatch.chdir(tmp_path)
    cpus = int(ray_session.cluster_resources()["CPU"])
    cfg = load_config(tiny_yaml("toolarge"), [f"resources.num_workers={cpus + 1}"])
    with pytest.raises(UserError, match=rf"resources: one trial needs {{CPU: {cpus + 1}}} \({cpus + 1} worker\(s\), "
                                        r"placement pack\) but no node of the Ray cluster can hold it and the cluster "
                                        r"has no autoscaler that could add one; nodes up: \{CPU: \d+"):
        run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert not (tmp_path / "raysweep_runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_mo_asha_stops_dominated_trials_in_process(ray_session, tmp_path, monkeypatch):
    """mo_asha on the in-process executor (the Ray Train executor: test_lean_train.py), with a
    constraint: trial 1 (PGD-3 for 1 epoch: cost 4 clean epochs) would be the cheap end of the
    front, but `cost >= 5` (a bound chosen to hit exactly it) makes it infeasible: tagged, off
    the front, out of the hypervolume."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(mo_asha_yaml(tmp_path, "moasha", "inprocess"), ["constraints=[{metric: cost, min: 5}]"])
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    check_mo_asha_sweep(summary, tmp_path, "moasha")
    rows = {int(r["trial"]): r for r in summary["rows"]}
    assert [rows[t]["cost"] for t in (0, 1, 2)] == pytest.approx([6.0, 4.0, 8.0])
    assert [r["trial"] for r in summary["front"]] == [0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs([client.get_experiment_by_name("moasha").experiment_id],
                              filter_string="tags.`raysweep.kind` = 'trial'")
    tags = {int(k.data.tags["optuna_trial"]): k.data.tags for k in kids}
    assert tags[1].get("infeasible") == "true" and tags[1]["pareto_optimal"] == "false"
    assert "infeasible" not in tags[0] and tags[0]["pareto_optimal"] == "true"
    parent = client.get_run(summary["parent_run_id"])
    hv = sorted(client.get_metric_history(parent.info.run_id, "front_hypervolume"), key=lambda h: h.step)
    assert hv[0].value == hv[1].value  # trial 1 completed second and added nothing


def test_asha_early_stopping_with_multi_objective_search(ray_session, tiny_yaml, tmp_path, monkeypatch):
    """ASHA stops trials on one scalar proxy while Optuna keeps the two-objective search;
    a stopped trial enters the front with what it reached (a cheaper point)."""
    monkeypatch.chdir(tmp_path)
    extra = ["sweep.early_stopping={scheduler: asha, metric: val_robust_acc, mode: max, grace_period: 1, reduction_factor: 2}",
             "train.epochs=3", "resources.executor=inprocess", "sweep.max_concurrent=1"]
    cfg = load_config(tiny_yaml("asha", n=4), extra)
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 4
    epochs = sorted(int(r["epoch"]) for r in summary["rows"])
    assert epochs[0] < 3 and epochs[-1] == 3  # some stopped early, the best ran to the end
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs([client.get_experiment_by_name("asha").experiment_id],
                              filter_string="tags.`raysweep.kind` = 'trial'")
    assert any(k.data.tags.get("stopped_early") == "true" for k in kids)


def test_resuming_an_edited_yaml_runs_only_the_added_configuration(ray_session, tmp_path, monkeypatch):
    """How a "(tuned)" row joins a finished reproduction: add a labelled point to the YAML's enqueue (and its key to
    the search), `raysweep sweep FILE --resume`: only the new point trains, into the same parent run, whose tags say
    what runs now (MLflow params are write-once) and whose artifacts keep both YAMLs."""
    monkeypatch.chdir(tmp_path)
    base = """
name: edited
method: {choice: [fgsm_rs, pgd_at]}
dataset: {name: synthetic, val_size: 64}
model: {name: small_cnn, width: 4}
threat: {norm: linf, eps: 0.1}
train: {epochs: 1, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}
eval: {val_pgd_steps: 2}
search:
  pgd_at.steps: {int: [1, 3]}
sweep:
  num_samples: %d
  max_concurrent: 2
  enqueue:
    - {label: "FGSM-RS", method: fgsm_rs}
    - {label: "PGD-1", method: pgd_at, pgd_at.steps: 1}
%sresources: {executor: inprocess}
final_eval: {enabled: false}
"""
    y = tmp_path / "edited.yaml"
    y.write_text(base % (2, ""))
    first = run_sweep(load_config(y), workdir=tmp_path, printer=lambda *a, **k: None)
    assert first["finished"] == 2
    # the added point uses a method the first run's space lacked: Optuna refuses a changed categorical, so the
    # study is rebuilt for the new space before anything starts
    y.write_text((base % (3, '    - {label: "TRADES (tuned)", method: trades}\n')).replace(
        "  pgd_at.steps: {int: [1, 3]}", "  pgd_at.steps: {int: [1, 3]}\n  lr: {float: [0.001, 0.01], log: true}").replace(
        "[fgsm_rs, pgd_at]", "[fgsm_rs, pgd_at, trades]"))
    r = run_cli(["sweep", str(y), "--resume"], cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "resuming: 2 ended" in r.stdout and "start trial 2" in r.stdout and "start trial 0" not in r.stdout
    assert "the Optuna study was rebuilt" in r.stdout and "'edited@space-1'" in r.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = client.get_run(first["parent_run_id"])
    kids = client.search_runs([parent.info.experiment_id], filter_string="tags.`raysweep.kind` = 'trial'")
    assert sorted(k.data.tags.get("label") for k in kids) == ["FGSM-RS", "PGD-1", "TRADES (tuned)"]
    assert "method: choices ['fgsm_rs', 'pgd_at'] -> ['fgsm_rs', 'pgd_at', 'trades']" in parent.data.tags["raysweep.study_rebuilt"]
    assert parent.data.params["sweep.num_samples"] == "2"  # the first run's, write-once
    assert parent.data.tags["raysweep.resumed_num_samples"] == "3" and "lr: float" in parent.data.tags["raysweep.resumed_search_space"]
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "sweep.yaml" in arts and parent.data.tags["raysweep.resumed_yaml"] in arts
    assert "3 finished trials" in parent.data.tags["mlflow.note.content"]
