"""Quiet, offline-safe defaults for Ray, MLflow and matplotlib, set before they are imported.

Each is a ``setdefault``: a user who exports a different value wins."""

import os
from pathlib import Path

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage reporter
    "RAY_AUTH_MODE": "disabled",  # Ray >= 2.59 would write ~/.ray/auth_token and warn on every start
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no experiment tables / TensorBoard hints
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",  # controller poll; default 2 s adds seconds per trial
    "RAY_DEDUP_LOGS": "0",
    # Tune waits this long for a stopped trial's function to return before reusing its actor;
    # past it, the *next* trial fails. A Ray Train trial stopped by ASHA ends at its next report
    # (up to one epoch later), so the wait must cover an epoch.
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "86400",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",  # keep relative paths (datasets, stores) relative to the user's cwd
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # no INFO lines about database migrations
    # An unreachable tracking server must cost seconds, not minutes of retries per call:
    # raysweep buffers what it could not log and retries itself.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "DO_NOT_TRACK": "true",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "100",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
}


def apply_quiet_env(workdir: Path = None) -> None:
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    # matplotlib would otherwise write its font cache under ~/.cache
    quiet_loggers()
    wd = Path(workdir or os.getcwd())
    os.environ.setdefault("MPLCONFIGDIR", str(wd / ".raysweep" / "matplotlib"))


def quiet_loggers() -> None:
    """MLflow logs INFO lines (database migrations) through the root handler; keep WARNING+."""
    import logging

    for name in ("mlflow", "alembic", "optuna", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Tune's end-of-experiment ResultGrid warns about every trial without CSV/JSON result files, which raysweep
    # does not write (tune/runner.py): one line per trial, and raysweep reads no ResultGrid
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def ray_temp_dir(workdir: Path = None) -> str:
    """Where Ray writes session logs and sockets: inside the working directory when the path
    is short enough for Unix socket names (~107 bytes), else a per-user folder under /tmp."""
    if os.environ.get("RAYSWEEP_RAY_TMPDIR"):
        return os.environ["RAYSWEEP_RAY_TMPDIR"]
    local = Path(workdir or os.getcwd()).absolute() / ".raysweep" / "ray"
    if len(str(local)) <= 40:
        return str(local)
    return f"/tmp/raysweep-ray-{os.getuid()}"
