"""`raysweep ui`: an MLflow UI server that raysweep owns, with links that land on the sweeps.

The server runs in its own process group, so that however `raysweep ui` is stopped (Ctrl-C,
SIGTERM from a process manager or `kill`, SIGHUP from a closed terminal) the whole group goes
with it: `mlflow ui` forks a uvicorn worker that would otherwise outlive it and keep the port."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Callable, List, Tuple

from ..errors import UserError
from .store import ui_url

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as s:
        # As the server binds (uvicorn sets SO_REUSEADDR): connections of a just-stopped UI linger in TIME_WAIT on
        # the port, and without it a restarted `raysweep ui` was told the port is in use; a live listener still is.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise UserError(f"port {port} on {host} is already in use (another `raysweep ui` or MLflow server?); "
                            f"pick another with --port") from None


def experiment_links(uri: str, base: str, limit: int = 10) -> List[Tuple[str, str]]:
    """(experiment name, link to its training runs), most recently updated first; the empty Default
    experiment is left out."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e for e in client.search_experiments(max_results=1000)
            if not (e.name == "Default" and not client.search_runs([e.experiment_id], max_results=1))]
    exps.sort(key=lambda e: e.last_update_time or 0, reverse=True)
    return [(e.name, ui_url(base, e.experiment_id)) for e in exps[:limit]]


def server_env() -> dict:
    # MLFLOW_DISABLE_TELEMETRY also turns off what the UI would send (its /ui-telemetry config says disabled)
    return dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true",
                DO_NOT_TRACK="true")


def _wait_ready(base: str, proc, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def serve(uri: str, host: str, port: int, printer: Callable = print) -> int:
    check_port_free(host, port)
    base = f"http://{host}:{port}"
    links = experiment_links(uri, base)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", "1"]
    proc = subprocess.Popen(cmd, env=server_env(), start_new_session=True)
    previous = {s: signal.signal(s, _raise_stop) for s in STOP_SIGNALS}
    try:
        printer(f"raysweep: MLflow UI for {uri} at {base} (Ctrl-C to stop)")
        if _wait_ready(base, proc):
            for name, link in links:
                printer(f"raysweep: experiment {name!r}: {link}")
            if not links:
                printer("raysweep: no experiments in this store yet (run a sweep first)")
        return proc.wait()
    except _Stop as e:
        return 128 + e.signum
    finally:
        # Cleanup runs here, never inside the handler: a handler that waited on the server while the
        # interrupted wait still held Popen's lock would deadlock.
        for s, h in previous.items():
            signal.signal(s, h)
        _stop_group(proc)


class _Stop(Exception):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, frame):
    raise _Stop(signum)


def _stop_group(proc, grace: float = 15.0) -> None:
    """SIGTERM to the server's whole process group (the server may be gone and its worker not),
    SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        proc.poll()  # reap the server itself, or the group stays alive as a zombie
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.poll()
