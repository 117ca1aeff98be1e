"""An autoscaling Ray cluster and an S3 store on one machine, for the cluster tests.

``FakeAutoscalingCluster``: a head started the way a cluster's head is started (``ray start --head
--block --autoscaling-config=FILE``, dashboard and job API on 127.0.0.1) with Ray's fake multi-node
provider behind its autoscaler, so worker node types scale from zero as on a cloud; each "node" is a
raylet of its own on this machine. ``MotoS3``: moto's S3 server (what Ray's own tests use for S3) on
127.0.0.1, reached the way a MinIO user reaches theirs: ``AWS_ENDPOINT_URL``.

Both are stopped by their process group and, for the nodes the autoscaler started, by PID: never
``ray stop`` (it would end every Ray on the machine)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import yaml

from conftest import free_port

BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
HEAD_TYPE = "ray.head.default"
FAKE_HEAD_NODE_ID = "f" * 51 + "00000"  # the fake provider's fixed id for the head


class MotoS3:
    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout=60):
        import urllib.request

        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()[-2000:]
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("moto_server did not start")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def keys(self, bucket: str, prefix: str = ""):
        out, token = [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            r = self.client().list_objects_v2(**kw)
            out += [o["Key"] for o in r.get("Contents", [])]
            if not r.get("IsTruncated"):
                return out
            token = r["NextContinuationToken"]

    def read(self, bucket: str, key: str) -> Optional[bytes]:
        try:
            return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception:  # noqa: BLE001 - not there (yet)
            return None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.unlink(self.log.name)


def start_head(tmp: str, gcs_port: int, dash_port: int, env: Dict[str, str], args, timeout: float = 180):
    """``ray start --head --block`` on 127.0.0.1 (every port free, chosen here), in a session of its own so a test
    can kill its process group; returns (process, log file) once its job API answers."""
    ports = {"--node-manager-port": free_port(), "--object-manager-port": free_port(),
             "--ray-client-server-port": free_port(), "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(), "--metrics-export-port": free_port(),
             "--runtime-env-agent-port": free_port(), "--min-worker-port": "0", "--max-worker-port": "0"}
    cmd = [RAY, "start", "--head", "--block", f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", f"--temp-dir={tmp}", *args]
    log = open(Path(tmp) / "head.log", "w")
    proc = subprocess.Popen(cmd + [f"{k}={v}" for k, v in ports.items()], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, (Path(tmp) / "head.log").read_text()[-3000:]
        r = subprocess.run([RAY, "job", "list", "--address", f"http://127.0.0.1:{dash_port}"], env=env,
                           capture_output=True, text=True)
        if r.returncode == 0:
            return proc, log
        time.sleep(1)
    raise RuntimeError("the Ray head's job API did not come up")


class FakeAutoscalingCluster:
    """``worker_types``: autoscaler node types, e.g. ``{"cpu_worker": {"resources": {"CPU": 1},
    "min_workers": 0, "max_workers": 2}}``. The head offers no CPU for training (as cluster.yaml's)
    and the ``raysweep_trial_driver`` resource that Ray Train trials' drivers take."""

    def __init__(self, worker_types: Dict[str, dict], v2: bool = False, max_workers: int = 2,
                 idle_timeout_minutes: float = 1.0):
        # short: Unix socket paths under it must stay below ~107 bytes
        self.tmp = tempfile.mkdtemp(prefix="rsa", dir="/tmp")
        self.gcs_port, self.dash_port = free_port(), free_port()
        self.v2 = v2
        self.config_path = Path(self.tmp) / "autoscaling.yaml"
        types = {HEAD_TYPE: {"resources": {"CPU": 0, "raysweep_trial_driver": 10000}, "node_config": {}, "max_workers": 0}}
        for name, t in worker_types.items():
            types[name] = {"node_config": {}, **t}
        provider = {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                    "disable_launch_config_check": True, "gcs_address": f"127.0.0.1:{self.gcs_port}"}
        if v2:
            # v2 fills the config's defaults from the provider's example.yaml, which Ray's wheel does not ship;
            # as an "external" provider (the same class) it takes the minimal defaults instead
            provider.update(type="external", module="ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
                            launch_multiple=True, head_node_id=FAKE_HEAD_NODE_ID)
        conf = {"cluster_name": "raysweep-test", "max_workers": max_workers, "upscaling_speed": 1.0,
                "idle_timeout_minutes": idle_timeout_minutes, "provider": provider, "auth": {},
                "available_node_types": types, "head_node_type": HEAD_TYPE, "file_mounts": {},
                "cluster_synced_files": [], "file_mounts_sync_continuously": False, "initialization_commands": [],
                "setup_commands": [], "head_setup_commands": [], "worker_setup_commands": [],
                "head_start_ray_commands": [], "worker_start_ray_commands": []}
        self.config_path.write_text(yaml.safe_dump(conf))
        self.proc = None

    @property
    def address(self) -> str:
        """The job API (what ``ray job submit --address`` takes)."""
        return f"http://127.0.0.1:{self.dash_port}"

    def start(self, env: Dict[str, str], timeout: float = 180):
        env = dict(env, RAY_FAKE_CLUSTER="1", RAY_USAGE_STATS_ENABLED="0",
                   PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # `raysweep` in a job's entrypoint
        env.pop("RAY_ADDRESS", None)
        if self.v2:
            env.update(RAY_enable_autoscaler_v2="1", RAY_CLOUD_INSTANCE_ID=FAKE_HEAD_NODE_ID,
                       RAY_OVERRIDE_NODE_ID_FOR_TESTING=FAKE_HEAD_NODE_ID)
        self.proc, self.log = start_head(self.tmp, self.gcs_port, self.dash_port, env, [
            "--num-cpus=0", "--num-gpus=0", "--resources=" + json.dumps({"raysweep_trial_driver": 10000}),
            f"--autoscaling-config={self.config_path}"], timeout)
        return self

    def raylets(self) -> Dict[str, int]:
        """Node id -> raylet PID of every node of this cluster that is up (the head's included)."""
        import psutil

        out = {}
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = p.info.get("cmdline") or []
            if cmd and cmd[0].endswith("/raylet") and any(self.tmp in a for a in cmd):
                ids = [a.split("=", 1)[1] for a in cmd if a.startswith("--node_id=")]
                if ids:
                    out[ids[0]] = p.pid
        return out

    def lose_node(self, node_id: str) -> int:
        """What losing a machine does to its node: its raylet and every process under it (the
        trials' workers, the node's agents) killed at once, by PID. Returns how many."""
        import psutil

        raylet = psutil.Process(self.raylets()[node_id])
        procs = raylet.children(recursive=True) + [raylet]
        for p in procs:
            try:
                p.kill()
            except psutil.Error:
                pass
        return len(procs)

    def monitor_log(self) -> str:
        logs = sorted(Path(self.tmp).glob("session_*/logs/monitor*.log")) + \
            sorted(Path(self.tmp).glob("session_*/logs/monitor*.out"))
        return "\n".join(p.read_text(errors="replace") for p in logs)

    def launched(self) -> int:
        """Worker nodes the autoscaler launched so far, as its log says."""
        return sum(int(n) for n in re.findall(r"Launching (\d+) nodes?", self.monitor_log()))

    def processes(self):
        """Every process of this cluster still alive: started under its temp dir, or a worker of one of its raylets."""
        import psutil

        raylets = {str(p) for p in self.raylets().values()}
        out = []
        for p in psutil.process_iter(["pid", "cmdline", "status"]):
            if p.info["status"] == psutil.STATUS_ZOMBIE or p.pid == os.getpid():
                continue
            try:
                cmd = " ".join(p.info.get("cmdline") or [])
                if self.tmp in cmd or p.environ().get("RAY_RAYLET_PID") in raylets:
                    out.append(p)
            except psutil.Error:
                continue
        return out

    def stop(self):
        if self.proc is None:
            return
        # At once, not gracefully: nothing of a test cluster needs saving, and `ray start --block`'s own
        # teardown on SIGTERM takes ~30 s. Its process group, the nodes the autoscaler started (children of
        # the monitor, in that group too) and any worker that outlived its raylet.
        left = self.processes()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for p in left + self.processes():
            try:
                p.kill()
            except Exception:  # noqa: BLE001 - already gone
                pass
        import psutil

        psutil.wait_procs(left, timeout=10)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
