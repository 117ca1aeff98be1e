"""raysweep's way of launching Ray Train from a Tune trial (``raysweep/tune/lean_train.py``):
the controller side stays torch-free, reports reach Tune in order, a trial that Tune stops
early gives its resources back, and Ray's documented trainer path takes over on other Ray releases."""

import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config
from raysweep.tune.runner import run_sweep

from conftest import check_mo_asha_sweep, mo_asha_yaml

pytestmark = pytest.mark.ray


def test_controller_side_imports_no_torch():
    # The controller unpickles the backend config and the report callback: if either pulled
    # in torch, each trial would pay ~1.2 s more before its first step (bench/overhead.py).
    code = ("import sys, raysweep.tune.lean_train as m; m.LeanTorchConfig(); m.HubReportCallback(None, 'k');"
            "bad = sorted(n for n in sys.modules if n == 'torch' or n.startswith('ray.tune'));"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def _wait_all_cpus_free(ray, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ray.available_resources().get("CPU", 0) >= ray.cluster_resources()["CPU"]:
            return True
        time.sleep(0.5)
    return False


def test_early_stopping_stops_ray_train_trials_and_their_workers(ray_session, tmp_path, monkeypatch):
    """Tune stopping a Ray Train trial mid-run (here mo_asha, the multi-objective scheduler; ASHA
    stops a trial the same way) tears down its controller and workers (the placement group is
    released) and later trials still run and report every epoch."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(mo_asha_yaml(tmp_path, "moasha-train", "train"))
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    check_mo_asha_sweep(summary, tmp_path, "moasha-train")
    assert _wait_all_cpus_free(ray_session), ray_session.available_resources()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs([client.get_experiment_by_name("moasha-train").experiment_id],
                              filter_string="tags.`raysweep.kind` = 'trial'")
    for k in kids:
        n = int(k.data.metrics["epoch"])
        assert [h.step for h in client.get_metric_history(k.info.run_id, "val_robust_acc")] == list(range(1, n + 1))
        startup = client.get_metric_history(k.info.run_id, "startup_s")
        assert len(startup) == 1 and 0 < startup[0].value < 120
        # where it went
        m = k.data.metrics
        phases = [m[p] for p in ("startup_before_process_s", "startup_process_s", "startup_build_s", "startup_first_step_s")]
        assert sum(phases) == pytest.approx(startup[0].value, abs=1e-3) and min(phases) >= 0


def test_other_ray_releases_take_rays_documented_path(ray_session, tiny_yaml, tmp_path, monkeypatch):
    """On a Ray release the private names were not tested with, trials go through Ray's ``TorchTrainer``
    with ``TuneReportCallback`` by themselves (no report hub), and train and report as on the lean launch."""
    from raysweep.tune import ray_compat

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ray_compat, "TESTED_RAY", ((1, 0),))
    ray_compat.lean_supported.cache_clear()
    lines = []
    try:
        cfg = load_config(tiny_yaml("stock", n=1), ["resources.executor=train", "train.epochs=1", "final_eval.enabled=false"])
        summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    finally:
        ray_compat.lean_supported.cache_clear()
    assert summary["finished"] == 1 and summary["failed"] == 0
    assert all(int(r["epoch"]) == 1 and r.get("startup_s", 0) > 0 for r in summary["rows"])
    with pytest.raises(ValueError):
        ray_session.get_actor("raysweep-report-hub")  # the lean launch's actor was never started


def test_two_ray_train_trials_train_at_the_same_time_on_two_cpus(ray_session, tmp_path, monkeypatch):
    """'2 at a time' on a 2-CPU Ray: each trial's worker takes one CPU and its driver takes none
    (a custom resource), so both workers run at once. The method's first step waits until both
    trials are training; a worker left waiting for a CPU would make it time out."""
    from raysweep.tune.placement import TRIAL_DRIVER, trial_resources

    monkeypatch.chdir(tmp_path)
    f = tmp_path / "meet.yaml"
    f.write_text(f"""
name: meet
imports: [rendezvous_methods]
method: rendezvous
dataset: {{name: synthetic, val_size: 64, train_size: 256}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: 1, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}}
eval: {{val_pgd_steps: 1}}
params: {{meeting_dir: {tmp_path / 'meeting'}, parties: 2, timeout_s: 90}}
sweep: {{num_samples: 2, max_concurrent: 2, sampler: random, seed: 0, max_failures: 0}}
resources: {{num_workers: 1, cpus_per_worker: 1, executor: train}}
final_eval: {{enabled: false}}
""")
    cfg = load_config(f)
    bundle = trial_resources(cfg.resources, use_gpu=False).bundles[0]
    assert bundle == {TRIAL_DRIVER: 1}, bundle  # no CPU share for the driver
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 2 and summary["failed"] == 0, [r.get("error") for r in summary["rows"]]
    assert len(list((tmp_path / "meeting").glob("arrived-*"))) == 2
    assert _wait_all_cpus_free(ray_session), ray_session.available_resources()
