"""The MLflow layer, written from the sweep driver only (one writer per store).

One parent run per sweep, one child run per trial (tagged ``mlflow.parentRunId``), run ids
kept in the sweep's state file so that a resumed sweep appends to the same runs instead of
opening duplicates (the MLflowLoggerCallback problems of ray #19978 / #30649 / mlflow #4248).
"""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

from .. import __version__


def default_tracking_uri(workdir=None) -> str:
    """sqlite in the working directory, as an absolute URI (Ray workers have other cwds)."""
    return "sqlite:///" + str((Path(workdir or os.getcwd()) / "mlflow.db").absolute())


def is_local_uri(uri: str) -> bool:
    return uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri


def git_commit(path=".") -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _tag_value(v) -> str:
    return str(v)[:5000]  # within MLflow's limit on a tag's value in every store


def _param_value(v) -> str:
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s[:6000]


SECRET_HINTS = ("password", "secret", "token", "api_key", "apikey", "credential")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # read by the MLflow 3 UI to pick the experiment's landing page
EXPERIMENT_NOTE = (
    "raysweep sweeps of `{experiment}`: each sweep is one parent run (tag `raysweep.kind = sweep`) whose child runs "
    "are its trials. A trial's metrics are per epoch (validation only: `val_clean_acc`, `val_robust_acc`, "
    "`train_time_s`, `cost`); `test_*` metrics come from the final evaluation after the front was fixed. The parent "
    "run's description holds the Pareto front; its artifacts hold `pareto.png`, `pareto.csv`, `hypervolume.png` "
    "and `importance.json`.")


def ui_url(base: str, experiment_id: str, run_id: Optional[str] = None) -> str:
    """A link into the MLflow UI that lands on the experiment's training runs (not the GenAI overview)."""
    base = base.rstrip("/")
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{base}/#/experiments/{experiment_id}/{page}?workflowType=machine_learning"


class SweepTracker:
    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Optional[Path] = None):
        from mlflow.tracking import MlflowClient

        from .sqlite_wal import write_ahead

        write_ahead(tracking_uri)  # before MLflow opens it: see sqlite_wal
        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            loc = None
            if is_local_uri(tracking_uri):
                root = Path(artifact_root or Path.cwd() / "mlartifacts").absolute()
                loc = (root / experiment).as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=loc)
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        self.experiment = experiment
        self._mark_as_training(exp)

    def _mark_as_training(self, exp) -> None:
        """MLflow 3 opens an experiment of unknown kind on its GenAI overview (traces, tokens): say that
        this one holds training runs, and what they are, unless the user already said otherwise."""
        tags = exp.tags if exp is not None else {}
        wanted = {EXPERIMENT_KIND_TAG: "custom_model_development",
                  "mlflow.note.content": EXPERIMENT_NOTE.format(experiment=self.experiment)}
        for k, v in wanted.items():
            if k not in tags:
                self.client.set_experiment_tag(self.experiment_id, k, v)

    # -- runs --------------------------------------------------------------------------
    def start_parent(self, run_name: str, tags: Dict[str, str], existing_run_id: Optional[str] = None) -> str:
        if existing_run_id:
            self.client.update_run(existing_run_id, status="RUNNING")
            return existing_run_id
        tags = {"raysweep.version": __version__, "raysweep.kind": "sweep", **tags}
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={k: _tag_value(v) for k, v in tags.items()})
        return run.info.run_id

    def start_child(self, parent_id: str, run_name: str, params: Dict[str, Any], tags: Dict[str, str]) -> str:
        run_id = self.create_child(parent_id, run_name, tags)
        self.log_params(run_id, params)
        return run_id

    def create_child(self, parent_id: str, run_name: str, tags: Dict[str, str]) -> str:
        tags = {"mlflow.parentRunId": parent_id, "raysweep.kind": "trial", **tags}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
        return run.info.run_id

    def find_child(self, parent_id: str, tag: str, value: str) -> Optional[str]:
        """The child run of ``parent_id`` tagged ``tag = value`` (the oldest, if several), or None."""
        runs = self.client.search_runs([self.experiment_id], max_results=10,
                                       filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.`{tag}` = '{value}'",
                                       order_by=["attributes.start_time ASC"])
        return runs[0].info.run_id if runs else None

    def logged_steps(self, run_id: str, key: str) -> set:
        """The steps at which metric ``key`` of the run was logged."""
        return {m.step for m in self.client.get_metric_history(run_id, key)}

    # MLflow's limits on one log_batch call (its REST API and every store enforce them)
    BATCH_PARAMS, BATCH_TAGS, BATCH_ENTITIES = 100, 100, 1000

    def log_batch(self, run_id: str, params: Optional[Dict[str, Any]] = None,
                  metrics: Iterable[Tuple[Dict[str, float], int]] = (), tags: Optional[Dict[str, Any]] = None):
        """Params, metrics (``(values, step)`` pairs) and tags of one run in as few calls as MLflow's limits allow:
        each call is one store transaction, and a sweep's driver makes thousands of them."""
        from mlflow.entities import Metric, Param, RunTag

        ts = int(time.time() * 1000)
        ps = [Param(k, _param_value(v)) for k, v in (params or {}).items()
              if not any(h in k.lower() for h in SECRET_HINTS)]
        ms = [Metric(k, float(v), ts, int(step)) for values, step in metrics for k, v in values.items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
        tg = [RunTag(k, _tag_value(v)) for k, v in (tags or {}).items()]
        while ps or ms or tg:
            p, t = ps[:self.BATCH_PARAMS], tg[:self.BATCH_TAGS]
            m = ms[:self.BATCH_ENTITIES - len(p) - len(t)]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)
            ps, ms, tg = ps[len(p):], ms[len(m):], tg[len(t):]

    def log_params(self, run_id: str, params: Dict[str, Any]):
        self.log_batch(run_id, params=params)

    def log_metrics(self, run_id: str, metrics: Dict[str, float], step: int):
        self.log_batch(run_id, metrics=[(metrics, step)])

    def set_tags(self, run_id: str, tags: Dict[str, Any]):
        self.log_batch(run_id, tags=tags)

    def end_run(self, run_id: str, status: str = "FINISHED"):
        self.client.set_terminated(run_id, status=status)

    # -- artifacts ---------------------------------------------------------------------
    def log_artifact(self, run_id: str, path, artifact_path: Optional[str] = None):
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_table(self, run_id: str, rows, artifact_file: str):
        import pandas as pd

        self.client.log_table(run_id, data=pd.DataFrame(rows), artifact_file=artifact_file)
