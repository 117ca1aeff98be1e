"""Read a sweep back from MLflow: its finished trials and their Pareto front."""

import math
from typing import Dict, List, Optional, Tuple

from ..errors import UserError
from .pareto import front_rows
from .store import default_tracking_uri


def load_sweep_front(experiment: str, tracking_uri: Optional[str] = None, run_id: Optional[str] = None
                     ) -> Tuple[List[Dict], List[Tuple[str, str]], str]:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise UserError(f"no MLflow experiment {experiment!r} in {uri} (have: {', '.join(names) or 'none'})")
    if run_id is None:
        parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'",
                                     order_by=["attributes.start_time DESC"], max_results=1)
        if not parents:
            raise UserError(f"experiment {experiment!r} has no raysweep sweep run")
        parent = parents[0]
    else:
        parent = client.get_run(run_id)
    spec = parent.data.params.get("objectives", "train_time_s:min,val_robust_acc:max")
    objectives = [tuple(s.split(":")) for s in spec.split(",")]
    children = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  max_results=10_000)
    rows = []
    for c in children:
        if c.data.tags.get("status") != "FINISHED":
            continue
        flags = [k[len("masking_"):] for k, v in c.data.tags.items() if k.startswith("masking_") and v == "true"]
        if c.data.tags.get("catastrophic_overfit") == "true":
            flags.append("catastrophic_overfit")
        if c.data.tags.get("infeasible") == "true":
            flags.append("infeasible")
        rows.append({"trial": int(c.data.tags.get("optuna_trial", -1)), "method": c.data.tags.get("method", "?"),
                     "run_id": c.info.run_id, "flags": ",".join(flags) or "-", **c.data.metrics})
    # the front as the sweep built it (flagged collapses stay off unless the sweep let them on)
    for r in rows:
        tag = next(c for c in children if c.info.run_id == r["run_id"]).data.tags.get("pareto_optimal")
        r["pareto_optimal"] = tag == "true"
    if not any(r["pareto_optimal"] for r in rows):
        front_rows(rows, [{"metric": m, "mode": d} for m, d in objectives])
    rows.sort(key=lambda r: r["trial"])
    return rows, objectives, parent.info.run_id


def format_table(rows: List[Dict], cols: List[str]) -> str:
    def fmt(v):
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return "nan" if math.isnan(v) else (f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}")
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------


def sweep_hypervolume(parent_run_id: str, tracking_uri: Optional[str] = None) -> Optional[Tuple[float, str, int]]:
    """(final front hypervolume, its reference point, completed trials) of a sweep's parent
    run, or None when the sweep logged no hypervolume curve."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    hist = client.get_metric_history(parent_run_id, "front_hypervolume")
    if not hist:
        return None
    last = max(hist, key=lambda h: h.step)
    return last.value, client.get_run(parent_run_id).data.params.get("hypervolume_ref", "?"), last.step


def sweep_artifact_json(parent_run_id: str, name: str, tracking_uri: Optional[str] = None) -> Optional[Dict]:
    """A JSON artifact of a sweep's parent run (e.g. importance.json), or None."""
    import json
    import tempfile

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(parent_run_id, name, tmp)
        except (MlflowException, OSError):
            return None
        with open(path) as f:
            return json.load(f)
