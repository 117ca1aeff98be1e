"""A sweep on a real multi-node Ray cluster (head + two worker nodes on this machine), with
2-worker DDP trials, logging through a real `mlflow server` on 127.0.0.1."""

import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY_YAML, MlflowServer

pytestmark = pytest.mark.ray

DRIVER = r"""
import sys, json
from pathlib import Path
from raysweep.config import load_config
from raysweep.tune.runner import run_sweep
cfg = load_config(sys.argv[1], sys.argv[2:])
s = run_sweep(cfg, workdir=Path.cwd(), printer=lambda *a, **k: print(*a, flush=True))
print("SUMMARY", json.dumps({"finished": s["finished"], "failed": s["failed"]}))
"""

CLUSTER = r"""
import sys, time, os
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
c.add_node(num_cpus=2)
c.add_node(num_cpus=2)
c.wait_for_nodes()
print("ADDRESS", c.address, flush=True)
sys.stdin.read()  # until the test closes stdin
c.shutdown()
"""


def test_sweep_on_three_node_cluster_with_mlflow_server(tmp_path, ray_session):
    # Ray allows one cluster per process; the test's own Ray stays untouched: the cluster and
    # the sweep driver run in their own processes.
    env = dict(os.environ, RAYSWEEP_RAY_TMPDIR="")
    env.pop("RAY_ADDRESS", None)
    cl = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    srv = MlflowServer(tmp_path / "server").start()
    try:
        address = None
        deadline = time.time() + 180
        while time.time() < deadline and address is None:
            line = cl.stdout.readline()
            if line.startswith("ADDRESS"):
                address = line.split()[1]
            elif not line and cl.poll() is not None:
                break
        assert address, "the test cluster did not start"
        y = tmp_path / "multi.yaml"
        y.write_text(TINY_YAML.format(name="multi", n=2))
        url = srv.url
        r = subprocess.run([sys.executable, "-c", DRIVER, str(y), f"mlflow.tracking_uri={url}", "resources.num_workers=2",
                            "resources.placement=strict_spread", "sweep.max_concurrent=2"],
                           cwd=tmp_path, env=dict(env, RAY_ADDRESS=address), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert 'SUMMARY {"finished": 2, "failed": 0}' in r.stdout
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("multi")
        kids = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'trial'")
        assert len(kids) == 2
        # strict_spread: each 2-worker DDP trial ran its ranks on both CPU nodes (never the 0-CPU head)
        for k in kids:
            nodes = k.data.tags["worker_nodes"].split(",")
            assert len(nodes) == 2 and k.data.tags["node_id"] in nodes
        for k in kids:
            assert k.data.params["train.epochs"] == "2"
            assert [h.step for h in client.get_metric_history(k.info.run_id, "val_robust_acc")] == [1, 2]
    finally:
        if cl.poll() is None:
            cl.stdin.close()
            try:
                cl.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cl.kill()
        srv.stop()
