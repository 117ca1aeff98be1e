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


@pytest.fixture(scope="session")
def ray_session():
    """One real local Ray for the whole session (starting Ray costs seconds)."""
    import ray

    from raysweep._env import ray_temp_dir

    tmp = ray_temp_dir(REPO)
    Path(tmp).mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        from raysweep.tune.trainable import TRIAL_DRIVER, TRIAL_DRIVER_CAPACITY

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING", _temp_dir=tmp,
                 resources={TRIAL_DRIVER: TRIAL_DRIVER_CAPACITY})  # as raysweep's own local Ray
    yield ray
    ray.shutdown()


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

    def start(self, timeout: float = 90.0):
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

        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
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
