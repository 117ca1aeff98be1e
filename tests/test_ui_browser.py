"""The MLflow UI as a user sees it: a real `raysweep ui` serving a finished tiny sweep, opened in
headless Chromium (scripts/browser.sh installs it). The link `raysweep ui` prints lands on the
sweep's training runs; the parent run's page lists its trials and describes the front; a trial's
page shows its metrics; the parent's artifacts hold pareto.png; no telemetry banner; stopping
`raysweep ui` with SIGTERM leaves no server behind; a taken port is a one-line error.
Screenshots are kept in tests/screenshots/ for a developer to open."""

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from raysweep.config import load_config
from raysweep.tune.runner import run_sweep

from conftest import REPO, free_port

pytestmark = pytest.mark.ray

SHOTS = REPO / "tests" / "screenshots"


def _chromium(tmp_path, url, screenshot=None):
    exe = shutil.which("chromium")
    assert exe, "headless Chromium is missing: scripts/browser.sh installs it (run the README's test command)"
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=20000", "--window-size=1600,1100"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    r = subprocess.run(args + [url], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _page(tmp_path, url, shot=None):
    """The rendered DOM of ``url`` (and a screenshot of it under tests/screenshots/ when ``shot``)."""
    if shot:
        SHOTS.mkdir(exist_ok=True)
        _chromium(tmp_path, url, screenshot=SHOTS / shot)
        assert (SHOTS / shot).stat().st_size > 10_000
    dom = _chromium(tmp_path, url)
    return dom + "\n" + " ".join(re.sub(r"<[^>]+>", " ", dom).split())  # markup and its visible text


def _group_of_children(pid):
    """Every process in the process groups of ``pid``'s children: the MLflow server and its worker."""
    rows = [ln.split() for ln in subprocess.run(["ps", "-eo", "pid=,ppid=,pgid="], capture_output=True,
                                                 text=True).stdout.splitlines()]
    groups = {int(g) for p, pp, g in rows if int(pp) == pid}
    return {int(p) for p, pp, g in rows if int(g) in groups}


def _alive(pids):
    out = []
    for p in pids:
        try:
            os.kill(p, 0)
            out.append(p)
        except ProcessLookupError:
            pass
    return out


def _start_ui(port, uri, cwd):
    return subprocess.Popen([sys.executable, "-m", "raysweep.cli", "ui", "--port", str(port), "--tracking-uri", uri],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _link(ui, timeout=120.0):
    """The link `raysweep ui` prints for experiment ui-demo (printed once its server answers /health)."""
    link, deadline = None, time.time() + timeout
    while link is None and time.time() < deadline:
        line = ui.stdout.readline()
        assert line, "raysweep ui exited before printing its links"
        m = re.search(r"experiment 'ui-demo': (\S+)", line)
        link = m.group(1) if m else None
    return link


@pytest.fixture(scope="module")
def finished_sweep(ray_session, tmp_path_factory):
    work = tmp_path_factory.mktemp("ui")
    from conftest import TINY_YAML

    p = work / "ui-demo.yaml"
    p.write_text(TINY_YAML.format(name="ui-demo", n=2))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        summary = run_sweep(load_config(p, ["resources.executor=inprocess", "train.epochs=1"]), workdir=work,
                            printer=lambda *a, **k: None)
    finally:
        os.chdir(cwd)
    assert summary["finished"] == 2
    return work, summary


def test_raysweep_ui_in_a_real_browser(finished_sweep, tmp_path):
    work, summary = finished_sweep
    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ui-demo")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "parent run" in exp.tags["mlflow.note.content"]
    parent = client.get_run(summary["parent_run_id"])
    note = parent.data.tags["mlflow.note.content"]
    assert "`train_time_s` (min)" in note and "PGD-2" in note and "`pgd20`" in note and "| trial |" in note
    kids = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(kids) == 2

    port = free_port()
    ui = _start_ui(port, uri, work)
    try:
        link = _link(ui)
        assert link == f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"

        # the printed link: the training-runs table with the sweep's parent run, no GenAI overview, no banner
        dom = _page(tmp_path, link, shot="experiment_runs.png")
        assert parent.info.run_name in dom
        assert "3 matching runs" in dom  # the parent and its two trials (folded under it)
        assert "Token usage" not in dom and "Sessions" not in dom
        assert "collects usage data" not in dom

        # the parent run: its trials by name, the front in its description
        base = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}/runs"
        dom = _page(tmp_path, f"{base}/{parent.info.run_id}?workflowType=machine_learning", shot="sweep_run.png")
        for k in kids:
            assert k.info.run_name in dom
        assert "Pareto front" in dom and "train_time_s" in dom

        # a trial's page shows its metrics
        dom = _page(tmp_path, f"{base}/{kids[0].info.run_id}?workflowType=machine_learning", shot="trial_run.png")
        assert "val_robust_acc" in dom and "val_clean_acc" in dom

        # the parent's artifacts
        dom = _page(tmp_path, f"{base}/{parent.info.run_id}/artifacts?workflowType=machine_learning",
                    shot="sweep_artifacts.png")
        assert "pareto.png" in dom and "hypervolume.png" in dom

        # a second `raysweep ui` on the same port: one line naming the port, exit 2
        again = subprocess.run([sys.executable, "-m", "raysweep.cli", "ui", "--port", str(port), "--tracking-uri", uri],
                               cwd=work, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and f"port {port}" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1

        # SIGTERM (a process manager, `kill`): raysweep ui goes and takes its server and worker with it
        server = _group_of_children(ui.pid)
        assert len(server) >= 2  # mlflow ui and its uvicorn worker
        browser = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a tab still open (keep-alive)
        browser.request("GET", "/health")
        assert browser.getresponse().read()
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=60) == 128 + signal.SIGTERM
        deadline = time.time() + 30
        while _alive(server) and time.time() < deadline:
            time.sleep(0.5)
        assert not _alive(server), "the MLflow server outlived raysweep ui"
        browser.close()
        # ... and the port is free again at once: restarting `raysweep ui` right away works (the connections the server
        # closed linger in TIME_WAIT on the port; the free-port check once took them for a server)
        ui = _start_ui(port, uri, work)
        assert f"127.0.0.1:{port}/#/experiments/{exp.experiment_id}" in _link(ui)
    finally:
        server = _group_of_children(ui.pid) if ui.poll() is None else set()
        if ui.poll() is None:
            ui.kill()
        for pid in _alive(server):
            os.kill(pid, signal.SIGKILL)
