"""A sweep as a Ray job with an uploaded working directory (docs/cluster.md): a Ray head started as the head command starts
it (`ray start --head --block`, dashboard and job API on 127.0.0.1), a real `mlflow server`, and
sweeps submitted with `ray job submit --working-dir`. The sweep joins that cluster (not a new local
Ray), logs to the server, and keeps its state in a durable place ($RAYSWEEP_HOME) rather than in the
job's working-directory copy, which Ray deletes, where `raysweep resume` submitted as a job finds it,
without duplicating a run. Only the processes this test started are stopped, by PID or process group
(never `ray stop`)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY_YAML, MlflowServer, free_port
from fake_cluster import start_head

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RAY = str(Path(sys.executable).parent / "ray")


class RayHead:
    def __init__(self):
        # short: Unix socket paths under it must stay below ~107 bytes
        self.tmp = tempfile.mkdtemp(prefix="rsj", dir="/tmp")
        self.gcs_port, self.dash_port = free_port(), free_port()
        self.proc = None

    def start(self, env, timeout=180):
        self.proc, self.log = start_head(self.tmp, self.gcs_port, self.dash_port, env, ["--num-cpus=2", "--num-gpus=0"],
                                         timeout)
        return self

    @property
    def address(self):
        return f"http://127.0.0.1:{self.dash_port}"

    def stop(self):
        """At once (a graceful `ray start --block` teardown takes ~30 s): its process group, it was started in a
        session of its own, and any worker of its raylet that outlived it."""
        if self.proc is None:
            return
        import psutil

        raylets = {str(p.pid) for p in psutil.process_iter(["cmdline"])
                   if (p.info.get("cmdline") or [""])[0].endswith("/raylet") and any(self.tmp in a for a in p.info["cmdline"])}
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for p in psutil.process_iter():
            try:
                if p.environ().get("RAY_RAYLET_PID") in raylets:
                    p.kill()
            except psutil.Error:
                pass
        self.log.close()


def _job(head, env, args, work, runtime_env, submission_id=None, wait=True):
    cmd = [RAY, "job", "submit", "--address", head.address, "--working-dir", str(work),
           "--runtime-env-json", json.dumps(runtime_env)]
    if submission_id:
        cmd += ["--submission-id", submission_id]
    if not wait:
        cmd += ["--no-wait"]
    return subprocess.run(cmd + ["--", sys.executable, "-m", "raysweep.cli"] + args, env=env, capture_output=True,
                          text=True, timeout=900)


def _status(head, env, sid) -> str:
    """The job's state as `ray job status` says it, in upper case: SUCCEEDED, STOPPED, FAILED, RUNNING..."""
    r = subprocess.run([RAY, "job", "status", "--address", head.address, sid], env=env, capture_output=True, text=True)
    out = (r.stdout + r.stderr).lower()
    m = re.search(r"job '[^']+' (?:was |is |has )?(succeeded|stopped|failed|running|pending)", out)
    return m.group(1).upper() if m else out


def _runs(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'")
    kids = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'trial'")
    return parents, kids


def test_sweep_as_a_ray_job_keeps_its_state_and_resumes(tmp_path):
    """A sweep with an uploaded working directory writes its state to $RAYSWEEP_HOME, not to Ray's copy, and
    `raysweep resume` submitted as a job of its own finds it there (a driver killed mid-sweep and resumed as a
    job, with the state in object storage: tests/test_autoscaling_cluster.py)."""
    home = tmp_path / "raysweep-home"
    work = tmp_path / "job-src"
    work.mkdir()
    (work / "job-b.yaml").write_text(TINY_YAML.format(name="job-b", n=2))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    server = MlflowServer(tmp_path / "mlflow").start()
    head = RayHead()
    try:
        head.start(env)
        runtime_env = {"env_vars": {"MLFLOW_TRACKING_URI": server.url, "RAYSWEEP_HOME": str(home)}}
        client = MlflowClient(server.url)

        # 1. a sweep as a job, in Ray's temporary copy of the working directory
        r = _job(head, env, ["sweep", "job-b.yaml", "--set", "resources.executor=inprocess"], work, runtime_env,
                 submission_id="raysweep-job-b")
        assert r.returncode == 0 and _status(head, env, "raysweep-job-b") == "SUCCEEDED", r.stdout[-3000:] + r.stderr[-2000:]
        assert "is Ray's temporary copy" in r.stdout and str(home) in r.stdout

        # 2. `raysweep resume` as a job finds the state in the durable place: nothing left to run, nothing duplicated
        r = _job(head, env, ["resume", "job-b"], work, runtime_env, submission_id="raysweep-job-b-resume")
        assert r.returncode == 0 and _status(head, env, "raysweep-job-b-resume") == "SUCCEEDED", \
            r.stdout[-3000:] + r.stderr[-2000:]
        assert "resuming: 2 ended, 0 interrupted" in r.stdout, r.stdout[-3000:]
        parents, kids = _runs(client, "job-b")
        assert len(parents) == 1, "resume opened a second sweep run"
        # it ran on this head's cluster, not on a local Ray of its own
        assert parents[0].data.tags["raysweep.ray_gcs_address"].endswith(f":{head.gcs_port}")  # the head's GCS port
        assert Path(parents[0].data.tags["raysweep.sweep_dir"]).parent.parent == home / "raysweep_runs"
        assert not (home / "mlflow.db").exists()  # the tracking URI was the server's
        trials = sorted(int(k.data.tags["optuna_trial"]) for k in kids)
        assert trials == [0, 1], f"a trial was logged twice or lost: {trials}"
        assert all(k.data.tags["status"] == "FINISHED" for k in kids)
    finally:
        head.stop()
        server.stop()
        shutil.rmtree(head.tmp, ignore_errors=True)

    # after the head is gone, the sweeps' state is still where the last lines said
    sweep = next((home / "raysweep_runs" / "job-b").glob("sweep-*"))
    for f in ("state.json", "optuna.journal", "pareto.csv", "sweep.yaml"):
        assert (sweep / f).is_file(), f"{f} missing from {sweep}"
