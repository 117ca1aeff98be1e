"""MLflow that is down: the parent run's extras recorded as errors instead of raised (``safe_call``), and at
the end of the sweep, what MLflow still lacks written to a local sqlite store beside the sweep."""

from pathlib import Path
from typing import List, Optional

from ..tracking.store import SweepTracker


def safe_call(errors: List[str], fn, *args, **kw):
    """Call into MLflow for the parent run's extras; an outage is recorded, never raised."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kw)
    except (MlflowException, OSError) as e:
        errors.append(f"{getattr(fn, '__name__', fn)}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        return None


def flush_or_fallback(cfg, sync, sweep_dir: Path, errors: List[str], printer, workdir) -> Optional[str]:
    """Last try to push everything; if MLflow is still unreachable, write the whole sweep to a
    local sqlite store beside it, so nothing is lost, and say so."""
    if not sync.dirty() and not errors:
        return None
    if sync.sync_all(force=True) and not errors:
        return None
    fallback_uri = "sqlite:///" + str(sweep_dir / "mlflow-fallback.db")
    from ..tracking.sync import MlflowSync

    local = SweepTracker(fallback_uri, sync.tracker.experiment, artifact_root=sweep_dir / "mlflow-fallback-artifacts")
    parent = local.start_parent(sweep_dir.name, {"raysweep.fallback_for": sync.tracker.uri})
    copy = {**sync.state.data, "trials": {k: {**r, "run_id": None, "logged": [], "terminated": False, "create_tried": False,
                                              "pending_tags": {"status": r["status"], "pareto_optimal": str(r.get("pareto_optimal", ""))}}
                                          for k, r in sync.state.trials.items()}}
    if copy.get("hypervolume"):
        copy["hypervolume"] = {**copy["hypervolume"], "logged": 0, "ref_logged": False}

    class _Mem:
        data = copy
        trials = copy["trials"]

        def save(self, trials=(), keys=(), extended=None):  # SweepState's signature; nothing on disk to keep up
            pass

    fb = MlflowSync(local, parent, _Mem(), adopt=False, background=False)
    fb.sync_all()
    for name in ("pareto.csv", "pareto.png", "hypervolume.png", "importance.json", "importance.png", "sweep.yaml"):
        if (sweep_dir / name).is_file():
            local.log_artifact(parent, sweep_dir / name)
    local.end_run(parent)
    printer(f"raysweep: warning: MLflow at {sync.tracker.uri} was unreachable ({(sync.errors + errors)[-1]}); "
            f"the complete sweep was written to {fallback_uri} (open it with: raysweep ui --tracking-uri {fallback_uri}); "
            f"`raysweep resume {cfg.name}` pushes it to the original store once it is back", flush=True)
    return fallback_uri
