import os
import socket
import sys
from pathlib import Path

import pytest

import torch

from raysweep._env import apply_quiet_env

REPO = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"
apply_quiet_env(REPO)
# Two cores are shared with Ray workers and subprocesses: one intra-op thread in the test
# process avoids oversubscription (it made RRM's teacher run ~25x slower under load).
torch.set_num_threads(1)
# Test-only methods (tests/plugins) must be importable here, in Ray workers and in subprocesses.
os.environ["PYTHONPATH"] = os.pathsep.join([str(PLUGINS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
sys.path.insert(0, str(PLUGINS))


def pytest_collection_modifyitems(config, items):
    """A test that starts Ray is marked `ray` (scripts/test.sh runs those one after another, apart from the rest)."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()) and item.get_closest_marker("ray") is None:
            raise pytest.UsageError(f"{item.nodeid} uses the session's Ray: mark it (or its module) `ray`")


@pytest.fixture(scope="session")
def ray_session():
    """One real local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    from raysweep._env import ray_temp_dir
    from raysweep.tune.ray_setup import session_processes, shutdown_local_ray

    tmp = ray_temp_dir(REPO)
    Path(tmp).mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        from raysweep.tune.ray_setup import local_ray_env
        from raysweep.tune.placement import TRIAL_DRIVER, TRIAL_DRIVER_CAPACITY

        local_ray_env()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=tmp,
                 resources={TRIAL_DRIVER: TRIAL_DRIVER_CAPACITY})  # as raysweep's own local Ray
    pids = session_processes()
    yield ray
    shutdown_local_ray(pids)  # with any of its workers that outlived its raylet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (sqlite store under ``work``) that a test can stop
    and start again on the same port."""

    def __init__(self, work: Path):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.procs = []

    def start(self, timeout: float = 240.0):  # generous: under load (a busy 2-core box) it has taken over 90 s
        import subprocess
        import time
        import urllib.request

        port = self.url.rsplit(":", 1)[1]
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.work / 's.db'}",
             "--host", "127.0.0.1", "--port", port, "--workers", "1"], cwd=self.work,
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=2).read().strip() == b"OK":
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def stop(self):
        import signal
        import subprocess

        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:  # a loaded machine: do not leave it behind, do not fail teardown
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path):
    srv = MlflowServer(tmp_path / "server").start()
    yield srv
    srv.stop()


TINY_YAML = """
name: {name}
method: {{choice: [fgsm_rs, pgd_at]}}
dataset: {{name: synthetic, val_size: 128}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: 2, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}}
eval: {{val_pgd_steps: 2}}
search:
  pgd_at.steps: {{int: [1, 3]}}
  lr: {{float: [0.001, 0.01], log: true}}
sweep: {{num_samples: {n}, max_concurrent: 2, sampler: random, seed: 0}}
final_eval: {{attacks: [clean, pgd20], n: 64}}
"""


@pytest.fixture
def tiny_yaml(tmp_path):
    def make(name="tiny", n=3, extra=""):
        p = tmp_path / f"{name}.yaml"
        p.write_text(TINY_YAML.format(name=name, n=n) + extra)
        return p

    return make


def run_cli(args, cwd, timeout=600):
    import subprocess

    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "raysweep.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


# Multi-objective early stopping with a deterministic outcome: trial 1 costs more per epoch than
# trial 0 (PGD-3 against PGD-1) and learns nothing (lr 1e-6), so at rung 1 it is dominated by
# trial 0 on (cost, robust accuracy) and stops. Trial 2, its exact copy, ties with it at rung 1's
# cut (2 of 3 go on) and continues, then is dominated at rung 2 and stops there; trial 0 runs on.
MO_ASHA_YAML = """
name: {name}
method: pgd_at
dataset: {{name: synthetic, val_size: 128}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: 3, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}}
eval: {{val_pgd_steps: 2}}
search:
  pgd_at.steps: {{int: [1, 3]}}
  lr: {{float: [0.000001, 0.01], log: true}}
objectives: [{{metric: cost, mode: min}}, {{metric: val_robust_acc, mode: max}}]
sweep:
  num_samples: 3
  max_concurrent: 1
  early_stopping: {{scheduler: mo_asha, grace_period: 1, reduction_factor: 2}}
  enqueue:
    - {{pgd_at.steps: 1, lr: 0.01}}
    - {{pgd_at.steps: 3, lr: 0.000001}}
    - {{pgd_at.steps: 3, lr: 0.000001}}
resources: {{num_workers: 1, cpus_per_worker: 1, executor: {executor}}}
final_eval: {{enabled: false}}
"""


def mo_asha_yaml(tmp_path, name, executor):
    p = tmp_path / f"{name}.yaml"
    p.write_text(MO_ASHA_YAML.format(name=name, executor=executor))
    return p


def check_mo_asha_sweep(summary, tmp_path, name):
    """Trial 0 ran all 3 epochs; the dominated trials stopped at rungs 1 and 2, tagged as such in
    MLflow with every epoch they ran; the rungs rebuild from state.json as a resume would."""
    from mlflow.tracking import MlflowClient

    from raysweep.config import load_config
    from raysweep.sweep_state import SweepState
    from raysweep.tune.schedulers import make_scheduler

    assert summary["finished"] == 3 and summary["failed"] == 0
    epochs = {int(r["trial"]): int(r["epoch"]) for r in summary["rows"]}
    assert epochs == {0: 3, 1: 1, 2: 2}, epochs
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    kids = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              filter_string="tags.`raysweep.kind` = 'trial'")
    tags = {int(k.data.tags["optuna_trial"]): k.data.tags for k in kids}
    assert tags[1]["stopped_early"] == tags[2]["stopped_early"] == "true" and "stopped_early" not in tags[0]
    for k in kids:
        n = int(k.data.metrics["epoch"])
        assert [h.step for h in client.get_metric_history(k.info.run_id, "cost")] == list(range(1, n + 1))
    state = SweepState(Path(summary["sweep_dir"]) / "state.json")
    rebuilt = make_scheduler(load_config(tmp_path / f"{name}.yaml"), state.trials)
    assert sorted(rebuilt.rungs[1]) == [0, 1, 2] and sorted(rebuilt.rungs[2]) == [0, 2]
