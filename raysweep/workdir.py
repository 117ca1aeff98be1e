"""Where a sweep writes its state and the default MLflow store.

Normally the working directory. Under `ray job submit --working-dir`, though, the working
directory is a copy Ray unpacks into its session directory
(``…/session_*/runtime_resources/working_dir_files/_ray_pkg_*``) and deletes with the session:
a sweep written there (Optuna study, ``state.json``, ``pareto.csv``, ``mlflow.db``) would be gone
after the job, and ``raysweep resume`` would have nothing to resume. There, raysweep writes to
``$RAYSWEEP_HOME`` (default ``~/raysweep`` on the node that runs the driver: the head for a job)
instead, and says so. Inputs (the YAML, a relative ``dataset.root``) are still read relative to the
working directory."""

import os
from pathlib import Path
from typing import Optional, Tuple

HOME_ENV = "RAYSWEEP_HOME"
DEFAULT_HOME = "~/raysweep"
_EPHEMERAL_MARKS = ("/runtime_resources/working_dir_files/", "/runtime_resources/py_modules_files/")


def is_ephemeral(path) -> bool:
    """Is ``path`` inside a copy that Ray deletes with its session?"""
    p = str(Path(path).absolute()) + "/"
    return any(m in p for m in _EPHEMERAL_MARKS)


def output_dir(cwd=None) -> Tuple[Path, Optional[str]]:
    """(directory to write to, a line saying why it is not the working directory, or None)."""
    cwd = Path(cwd or os.getcwd()).absolute()
    if not is_ephemeral(cwd):
        return cwd, None
    home = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().absolute()
    home.mkdir(parents=True, exist_ok=True)
    return home, (f"the working directory {cwd} is Ray's temporary copy (deleted with the session): sweep state "
                  f"and the default MLflow store go to {home} (set {HOME_ENV} to change it)")
