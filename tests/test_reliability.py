"""What a sweep survives. Each test asserts that nothing already logged was lost.

Real local Ray, real Optuna, real MLflow (sqlite, and a real ``mlflow server`` that is
stopped mid-sweep); faults come from the test-only method in tests/plugins/faulty_methods.py."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config
from raysweep.errors import UserError
from raysweep.sweep_state import read_state
from raysweep.tune.runner import run_sweep
from raysweep.tune.study_store import study_storage


pytestmark = pytest.mark.ray

FAULTY = """
name: {name}
imports: [faulty_methods]
method: faulty
dataset: {{name: synthetic, val_size: 128}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: {epochs}, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}}
eval: {{val_pgd_steps: 2}}
params: {{at_epoch: 1, marker_dir: "{marker}"}}
search:
  fault: {{choice: [none, raise, nan, kill_worker_once, raise_once, wait_release]}}
  lr: {{float: [0.005, 0.02], log: true}}
sweep: {{num_samples: {n}, max_concurrent: 2, sampler: random, seed: 0, max_failures: 1,
        enqueue: {enqueue}}}
final_eval: {{attacks: [clean], n: 64}}
"""


def _yaml(tmp_path, name, faults, epochs=2, n=None):
    p = tmp_path / f"{name}.yaml"
    enq = "[" + ", ".join("{fault: %s}" % f for f in faults) + "]"
    p.write_text(FAULTY.format(name=name, epochs=epochs, marker=tmp_path / "markers", n=n or len(faults), enqueue=enq))
    return p


def _children(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'")
    assert len(parents) == 1
    kids = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    trials = [int(k.data.tags["optuna_trial"]) for k in kids]
    assert len(trials) == len(set(trials)), f"a trial has two child runs: {sorted(trials)}"
    return parents[0], {int(k.data.tags["optuna_trial"]): k for k in kids}


def _epochs(client, run_id, metric="val_robust_acc"):
    return [h.step for h in sorted(client.get_metric_history(run_id, metric), key=lambda h: h.step)]


def test_raising_nan_and_killed_worker_trials(ray_session, tmp_path, monkeypatch):
    """A trial that raises and one whose loss turns NaN are retried (max_failures=1) and then
    marked FAILED with the error as a tag, their epoch-1 metrics kept; a trial whose worker
    process is SIGKILLed is retried and resumes from its checkpoint; the sweep goes on and the
    front is computed from the rest; Optuna keeps no trial RUNNING."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_yaml(tmp_path, "faults", ["raise", "nan", "kill_worker_once", "none"], epochs=3))
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    assert summary["finished"] == 2 and summary["failed"] == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, kids = _children(client, "faults")
    assert sorted(kids) == [0, 1, 2, 3]  # exactly one child run per trial, retries included
    raised, nan, killed, ok = kids[0], kids[1], kids[2], kids[3]
    for run, needle in ((raised, "injected failure"), (nan, "non-finite")):
        assert run.info.status == "FAILED" and run.data.tags["status"] == "FAILED"
        assert needle in run.data.tags["error"]
        assert _epochs(client, run.info.run_id) == [1]  # the epoch logged before the failure survives
    assert killed.data.tags["status"] == "FINISHED" and int(killed.data.tags["retries"]) >= 1
    assert _epochs(client, killed.info.run_id) == [1, 2, 3]  # no duplicate epochs after the restart
    assert killed.data.metrics["restarts"] >= 1  # it continued from its checkpoint, not from scratch
    assert ok.data.tags["status"] == "FINISHED"
    front = {k for k, r in kids.items() if r.data.tags.get("pareto_optimal") == "true"}
    assert front and front <= {2, 3}
    study = optuna.load_study(study_name="faults", storage=study_storage(summary["sweep_dir"]))
    states = [t.state for t in sorted(study.trials, key=lambda t: t.number)]
    F, C = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE
    assert states == [F, F, C, C]


def _wait_for(pred, timeout, what, proc=None, log=None):
    """Poll ``pred``; with ``proc``, fail at once (with its log) if the process it waits on has died, instead of
    waiting out the whole timeout (a driver that could not start its Ray under load cost 15 idle minutes)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text()[-3000:] if log else ""
            pytest.fail(f"the process exited (rc {proc.returncode}) before {what}:\n{tail}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _state(tmp_path, name):
    """The sweep's record as a resume reads it: the snapshot with the log's changes since (the snapshot alone lags
    the log by a few seconds, and a test that judged a kill by it once took a finished trial for an interrupted one)."""
    files = sorted((tmp_path / "raysweep_runs" / name).glob("sweep-*/state.json"))
    if not files:
        return None
    try:
        return read_state(files[-1])
    except UserError:  # replaced while read
        return None


def _kill_group_at_teardown(request, pid):
    """What a SIGKILLed driver's Ray left behind (its dashboard and runtime-env agents linger a minute or
    more) is stopped with the test, by the driver's process group."""
    def kill():
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    request.addfinalizer(kill)


def test_kill_driver_with_sigkill_then_resume(tmp_path, request):
    """SIGKILL the sweep driver mid-trial; `raysweep resume` finishes the sweep: finished
    trials are not re-run, the interrupted one restarts from its last checkpoint, the Optuna
    study continues, and MLflow keeps the same parent and one child per trial."""
    y = _yaml(tmp_path, "killdrv", ["none", "none", "none"], epochs=6)
    # in-process trials: the driver's death takes the trial with it, and the resumed trial
    # restarts from the checkpoint it wrote itself (the Ray Train path of restarting is
    # covered by the killed-worker case above)
    text = y.read_text().replace("max_concurrent: 2", "max_concurrent: 1").replace(
        "dataset: {name: synthetic, val_size: 128}", "dataset: {name: mnist, val_size: 200, train_size: 4000}")
    y.write_text(text + "resources: {num_workers: 1, cpus_per_worker: 1, executor: inprocess}\n")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "raysweep.cli"]
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen(cmd + ["sweep", str(y)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    _kill_group_at_teardown(request, proc.pid)
    try:
        def mid_second_trial():
            st = _state(tmp_path, "killdrv")
            if not st:
                return None
            t = st["trials"]
            done = [r for r in t.values() if r["status"] == "FINISHED"]
            running = [r for r in t.values() if r["status"] == "RUNNING" and 1 <= len(r["history"]) < 5]
            return st if done and running else None

        _wait_for(mid_second_trial, 900, "one finished trial and one mid-way",  # ~60 s on a quiet 2-core box
                  proc=proc, log=tmp_path / "driver.log")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the killed driver's Ray processes may linger a moment; give them time to notice
    time.sleep(3)
    st = _state(tmp_path, "killdrv")
    finished_before = {k: r["run_id"] for k, r in st["trials"].items() if r["status"] == "FINISHED"}
    interrupted = {k: r for k, r in st["trials"].items() if r["status"] == "RUNNING"}
    assert finished_before and interrupted
    # the trials' wall so far survives the kill (it is saved with every event, not at the end)
    # (one trial at a time: the finished trial's training lies inside it)
    done_train = max(st["trials"][k]["metrics"]["train_time_s"] for k in finished_before)
    assert st.get("sweep_wall_s", 0) >= done_train > 0
    epochs_at_kill = {k: len(r["history"]) for k, r in interrupted.items()}

    r = subprocess.run(cmd + ["resume", "killdrv"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming" in r.stdout
    # the resumed trial's first report carries its history for the recorder; Tune's own
    # loggers must not trip over it (its TensorBoard logger printed the whole list as a warning)
    assert "resumed_history" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    after = _state(tmp_path, "killdrv")
    assert after["parent_run_id"] == st["parent_run_id"]
    assert after["sweep_wall_s"] > st["sweep_wall_s"]
    assert sorted(after["trials"]) == ["0", "1", "2"]
    for k, run_id in finished_before.items():  # not re-run: same run, same single history
        assert after["trials"][k]["run_id"] == run_id and after["trials"][k]["metrics"].get("restarts", 0) == 0
    for k, r0 in interrupted.items():
        r1 = after["trials"][k]
        # MLflow is written behind the sweep, so the state may not hold the run id at the kill: the resume then
        # finds the run the killed driver made (or makes it); either way one child run per trial (below)
        assert r1["status"] == "FINISHED" and r1["run_id"] and r0["run_id"] in (None, r1["run_id"])
        assert r1["metrics"]["restarts"] == 1 and r1["metrics"]["epoch"] == 6
        assert epochs_at_kill[k] >= 1
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, kids = _children(client, "killdrv")
    assert parent.info.run_id == st["parent_run_id"] and sorted(kids) == [0, 1, 2]
    for k in kids.values():
        assert _epochs(client, k.info.run_id) == [1, 2, 3, 4, 5, 6]
    assert {str(t): k.info.run_id for t, k in kids.items()} == {t: r["run_id"] for t, r in after["trials"].items()}
    sweep_dir = sorted((tmp_path / "raysweep_runs" / "killdrv").glob("sweep-*"))[-1]
    study = optuna.load_study(study_name="killdrv", storage=study_storage(sweep_dir))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3


def test_mlflow_server_down_mid_sweep_then_back(ray_session, tmp_path, monkeypatch, mlflow_server):
    """The tracking server dies after the first trial and comes back a few seconds later,
    while later trials train: training goes on, and every metric of every trial reaches the
    server in the end, once each (one child run per trial). The last trial holds until the
    server is back: on a loaded machine its restart can outlast the other trials."""
    url, start, stop = mlflow_server.url, mlflow_server.start, mlflow_server.stop
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_yaml(tmp_path, "down", ["none"] * 4 + ["wait_release"], epochs=6),
                      [f"mlflow.tracking_uri={url}", "sweep.max_concurrent=1", "resources.executor=inprocess"])
    events = []

    def chaos():
        _wait_for(lambda: (_state(tmp_path, "down") or {}).get("trials", {}).get("0", {}).get("status") == "FINISHED",
                  300, "first trial")
        stop()
        events.append("stopped")
        time.sleep(2)
        start()
        events.append("started")
        (tmp_path / "markers").mkdir(exist_ok=True)
        (tmp_path / "markers" / "release").write_text("")

    th = threading.Thread(target=chaos, daemon=True)
    th.start()
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: None)
    th.join(timeout=120)
    assert events == ["stopped", "started"]
    st = _state(tmp_path, "down")
    assert summary["finished"] == 5 and summary["mlflow_fallback"] is None
    assert summary["mlflow_failed_calls"] > 0  # the outage was hit, and recovered from
    client = MlflowClient(url)
    parent, kids = _children(client, "down")
    assert sorted(kids) == [0, 1, 2, 3, 4]
    for k in kids.values():
        assert k.data.tags["status"] == "FINISHED" and _epochs(client, k.info.run_id) == [1, 2, 3, 4, 5, 6]
    assert st["parent_run_id"] == parent.info.run_id


def test_mlflow_server_down_until_the_end_falls_back_locally(ray_session, tmp_path, monkeypatch, mlflow_server):
    """The tracking server dies and never returns: the sweep finishes, says so, and writes
    the complete record to a local store beside the sweep."""
    url, stop = mlflow_server.url, mlflow_server.stop
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_yaml(tmp_path, "gone", ["none", "none"], epochs=2), [f"mlflow.tracking_uri={url}", "sweep.max_concurrent=1",
                                                                                    "resources.executor=inprocess"])

    def chaos():
        _wait_for(lambda: len((_state(tmp_path, "gone") or {}).get("trials", {}).get("0", {}).get("history", [])) >= 1,
                  300, "first epoch")
        stop()

    th = threading.Thread(target=chaos, daemon=True)
    th.start()
    lines = []
    summary = run_sweep(cfg, workdir=tmp_path, printer=lambda *a, **k: lines.append(" ".join(map(str, a))))
    th.join(timeout=10)
    assert summary["finished"] == 2 and summary["mlflow_fallback"]
    assert any("unreachable" in ln and "mlflow-fallback.db" in ln for ln in lines)
    client = MlflowClient(summary["mlflow_fallback"])
    parent, kids = _children(client, "gone")
    assert sorted(kids) == [0, 1]
    for k in kids.values():
        assert k.data.tags["status"] == "FINISHED" and _epochs(client, k.info.run_id) == [1, 2]
