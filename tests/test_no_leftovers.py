"""Nothing of a sweep outlives it: after `raysweep sweep` exits, no process of the Ray session it
started is left (raylet, GCS, agents, trial actors, Ray Train controllers and workers), with early
stopping stopping trials mid-run, for both executors. Processes are told apart from any other Ray
on the machine by the session's own temp dir and by the raylet that started them."""

import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil
import pytest

from conftest import mo_asha_yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _session_processes(tmp: str, raylets: set) -> dict:
    """(pid, start time) -> command of every live process of the Ray session under ``tmp``
    (``raylets`` grows as raylets are seen: their workers carry RAY_RAYLET_PID)."""
    out = {}
    for p in psutil.process_iter(["pid", "cmdline", "status", "name", "create_time"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmd = " ".join(p.info.get("cmdline") or [])
            if tmp in cmd:
                if "raylet" in (p.info.get("name") or ""):
                    raylets.add(str(p.pid))
                out[(p.pid, p.info["create_time"])] = cmd[:80]
            elif p.environ().get("RAY_RAYLET_PID") in raylets:
                out[(p.pid, p.info["create_time"])] = cmd[:80]
        except psutil.Error:
            continue
    return out


def _alive(pid: int, started: float) -> bool:
    try:
        p = psutil.Process(pid)
        return p.create_time() == started and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@pytest.mark.parametrize("executor", ["train", "inprocess"])
def test_no_process_of_the_sweeps_ray_outlives_it(tmp_path, executor):
    tmp = tempfile.mkdtemp(prefix="rsl", dir="/tmp")  # short: Ray's socket paths live under it
    env = dict(os.environ, RAYSWEEP_RAY_TMPDIR=tmp)
    env.pop("RAY_ADDRESS", None)
    y = mo_asha_yaml(tmp_path, "leftovers", executor)
    seen, raylets, done = {}, set(), threading.Event()

    def watch():  # every process the session ever had, sampled while the sweep runs
        while not done.is_set():
            seen.update(_session_processes(tmp, raylets))
            time.sleep(0.2)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    # two trials: the second, dominated at the first rung, is stopped there
    r = subprocess.run([sys.executable, "-m", "raysweep.cli", "sweep", str(y), "--set", "sweep.num_samples=2"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    done.set()
    th.join()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stopped_early" in (tmp_path / "raysweep_runs" / "leftovers").glob("sweep-*/state.json").__next__().read_text()
    assert any("ray::" in c for c in seen.values()), seen  # the watch saw the trials' processes
    time.sleep(1)
    left = {k: c for k, c in seen.items() if _alive(*k)}
    left.update(_session_processes(tmp, raylets))
    for pid, _ in left:  # do not leave them to the next test either
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    assert not left, f"processes of the sweep's Ray still alive after it exited: {left}"
