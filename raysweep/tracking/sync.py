"""The sweep's record pushed to MLflow, idempotently: a failed push leaves the record dirty and is retried, so an MLflow
outage delays logging but loses nothing."""

import json
import time
from typing import Any, Dict, List, Optional

from ..methods import get_method
from ..sweep_state import SweepState
from ..train.spec import flatten

class MlflowSync:
    """Pushes the sweep state to MLflow idempotently: creates missing child runs, logs the
    epochs not yet logged, sets tags and terminal status. A failed push leaves the state
    dirty and is retried at the next event, so an MLflow outage delays logging but loses
    nothing; ``flush`` at the end reports what could not be written."""

    def __init__(self, tracker, parent_id: str, state: SweepState):
        self.tracker = tracker
        self.parent_id = parent_id
        self.state = state
        self.errors: List[str] = []
        self.down_until = 0.0  # after a failure, wait before hammering the store again

    RETRY_AFTER_S = 10.0

    def _push(self, rec: Dict[str, Any]):
        if not rec.get("run_id"):
            self._create_child(rec)
        run_id = rec["run_id"]
        if not rec.get("params_logged", True):
            spec = rec["spec"]
            self.tracker.log_params(run_id, {"method": rec["method"], **flatten({k: v for k, v in spec.items() if k != "method"})})
            rec["params_logged"] = True
        logged = rec.setdefault("logged", [])
        for m in rec.get("history", []):
            ep = int(m.get("epoch", 0))
            if ep not in logged:
                self.tracker.log_metrics(run_id, m, ep)
                logged.append(ep)
        extra = rec.get("pending_metrics") or {}
        if extra:
            self.tracker.log_metrics(run_id, extra, int(rec.get("metrics", {}).get("epoch", 0)))
            rec["pending_metrics"] = {}
        pending = rec.get("pending_tags") or {}
        if pending:
            self.tracker.set_tags(run_id, pending)
            rec["pending_tags"] = {}
        if rec["status"] in ("FINISHED", "FAILED") and not rec.get("terminated"):
            self.tracker.end_run(run_id, rec["status"])
            rec["terminated"] = True

    def _create_child(self, rec: Dict[str, Any]):
        """One child run per trial, even across an outage: the run id is kept the moment the run
        exists (its params follow as a step of their own), and a create whose answer was lost
        (the client retries POSTs, the server may have made the run) adopts the run it made."""
        tags = {"method": rec["method"], "status": rec["status"], "optuna_trial": rec["trial"],
                "method_fidelity": get_method(rec["method"]).fidelity,
                "sampled": json.dumps(rec["sampled"], sort_keys=True)}
        if rec.get("label"):
            tags["label"] = rec["label"]
        run_id = None
        if rec.get("create_tried"):
            run_id = self.tracker.find_child(self.parent_id, "optuna_trial", str(rec["trial"]))
            if run_id:  # made by the lost create: its creation tags may be stale
                rec.setdefault("pending_tags", {}).setdefault("status", rec["status"])
        if run_id is None:
            rec["create_tried"] = True
            self._save(rec)
            run_id = self.tracker.create_child(self.parent_id, f"trial-{rec['trial']:03d}-{rec['method']}", tags)
        rec["run_id"] = run_id
        rec["params_logged"] = False
        rec.pop("create_tried", None)
        self._save(rec)

    def sync(self, rec: Dict[str, Any], force: bool = False) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            if not force and time.time() < self.down_until:
                return False
            self._push(rec)
            return True
        except (MlflowException, OSError) as e:  # tracking outage: keep training, retry later
            self.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            self.down_until = time.time() + self.RETRY_AFTER_S
            return False
        finally:
            self._save(rec)

    def _save(self, rec: Optional[Dict[str, Any]] = None, keys=()):
        """Saves what a push changed: the trial's record, the parent's counters (``keys``)."""
        self.state.save(trials=[rec] if rec is not None else (), keys=keys)

    def sync_all(self, force: bool = False) -> bool:
        ok = True
        for rec in self.state.trials.values():
            ok = self.sync(rec, force=force) and ok
            force = force and ok  # one failure is enough to know the store is down
        return self.sync_parent(force=force) and ok

    def sync_parent(self, force: bool = False) -> bool:
        """The parent run's hypervolume curve (one point per completed trial) and its
        reference point, logged once each, retried like the trials' metrics."""
        from mlflow.exceptions import MlflowException

        hv = self.state.data.get("hypervolume")
        if not hv or (not force and time.time() < self.down_until):
            return not hv or not self._parent_dirty(hv)
        try:
            if hv.get("ref") and not hv.get("ref_logged"):
                from ..tracking.hypervolume import format_ref

                self.tracker.log_params(self.parent_id, {"hypervolume_ref": format_ref(hv["ref"])})
                hv["ref_logged"] = True
            for n, spent, value in hv["curve"][hv.get("logged", 0):]:
                self.tracker.log_metrics(self.parent_id, {"front_hypervolume": value, "cumulative_train_time_s": spent}, int(n))
                hv["logged"] = hv.get("logged", 0) + 1
            return True
        except (MlflowException, OSError) as e:
            self.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            self.down_until = time.time() + self.RETRY_AFTER_S
            return False
        finally:
            self._save(keys=("hypervolume.logged", "hypervolume.ref_logged"))

    @staticmethod
    def _parent_dirty(hv) -> bool:
        return bool(hv) and (hv.get("logged", 0) < len(hv.get("curve", [])) or bool(hv.get("ref") and not hv.get("ref_logged")))

    def dirty(self) -> List[Dict[str, Any]]:
        parent = [{"parent": True}] if self._parent_dirty(self.state.data.get("hypervolume")) else []
        return parent + [r for r in self.state.trials.values()
                if not r.get("run_id") or any(int(h.get("epoch", 0)) not in r.get("logged", []) for h in r.get("history", []))
                or r.get("pending_tags") or r.get("pending_metrics") or (r["status"] in ("FINISHED", "FAILED") and not r.get("terminated"))]
