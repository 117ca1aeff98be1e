"""The sweep's record pushed to MLflow, idempotently: a failed push leaves the record dirty and is retried, so an MLflow
outage delays logging but loses nothing.

Writes are coalesced: an event marks its trial due and the due trials are pushed together at most every ``FLUSH_S``
seconds, each in as few calls as MLflow allows (its run made with its tags, then one batch of params, every unlogged
epoch and tags, then its end). Pushed one call per event, a 10,000-trial sweep of short trials spent ~35% of the
driver's main thread in SQLite commits (``bench/scale.py``); a trial now costs three writes however often it reports,
and the MLflow UI lags the sweep by at most ``FLUSH_S``."""

import json
import time
from typing import Any, Dict, List

from ..methods import get_method
from ..sweep_state import SweepState
from ..train.spec import flatten

FLUSH_S = 1.0


class MlflowSync:
    """Pushes the sweep state to MLflow idempotently: creates missing child runs, logs the
    epochs not yet logged, sets tags and terminal status. A failed push leaves the state
    dirty and is retried at a later flush, so an MLflow outage delays logging but loses
    nothing; ``flush_or_fallback`` at the end reports what could not be written."""

    RETRY_AFTER_S = 10.0

    def __init__(self, tracker, parent_id: str, state: SweepState, flush_s: float = FLUSH_S, adopt: bool = True):
        self.tracker = tracker
        self.parent_id = parent_id
        self.state = state
        self.flush_s = flush_s
        self.errors: List[str] = []
        self.down_until = 0.0  # after a failure, wait before hammering the store again
        self._due: Dict[int, Dict[str, Any]] = {}  # records changed since their last push, by identity
        self._last_flush = 0.0
        # Records an earlier driver left without a run id: it may have made their run after the copy of the state
        # that this driver read was taken (a head's disk lost, the copy in object storage a flush behind), so
        # their first create looks for that run. ``adopt=False``: the store is new, there is nothing to find.
        self._inherited = {r["trial"] for r in state.trials.values() if not r.get("run_id")} if adopt else set()

    # -- what callers use ------------------------------------------------------------------
    def sync(self, rec: Dict[str, Any], force: bool = False) -> bool:
        """Saves the trial's record (always, at once: the state is the record a resume reads) and pushes it to MLflow
        now with ``force`` or when a flush is due, else with the next flush. False: a push failed (retried later)."""
        self.state.save(trials=[rec])
        self._due[id(rec)] = rec
        if force or time.time() - self._last_flush >= self.flush_s:
            return self.flush(force=force)
        return True

    def tick(self) -> bool:
        """Called as the sweep runs (each Tune step): pushes what waited past ``flush_s``."""
        if (self._due or self._parent_dirty(self.state.data.get("hypervolume"))) \
                and time.time() - self._last_flush >= self.flush_s:
            return self.flush()
        return True

    def flush(self, force: bool = False) -> bool:
        """Pushes every due record and the parent's curve; stops at the first failure (the store is down)."""
        from mlflow.exceptions import MlflowException

        if not force and time.time() < self.down_until:
            return False
        self._last_flush = time.time()
        recs = list(self._due.values())
        # A create whose answer is lost must be findable: mark every record about to be created, durably, in one save.
        marked = [r for r in recs if not r.get("run_id") and not r.get("create_tried")]
        for r in marked:
            r["create_tried"] = True
        if marked:
            self.state.save(trials=marked)
        marked_ids = {id(r) for r in marked if r["trial"] not in self._inherited}
        for rec in recs:
            try:
                self._push(rec, fresh=id(rec) in marked_ids)
                self._due.pop(id(rec), None)
            except (MlflowException, OSError) as e:  # tracking outage: keep training, retry later
                self._failed(e)
                return False
            finally:  # what reached MLflow is known at once: a driver killed now neither loses nor repeats it
                self.state.save(trials=[rec])
        return self.sync_parent(force=True)

    def sync_all(self, force: bool = False) -> bool:
        """Everything the state holds that MLflow lacks (a driver's start and end, the fallback store)."""
        for rec in self.dirty():
            if "parent" not in rec:
                self._due[id(rec)] = rec
        return self.flush(force=force)

    # -- pushes -----------------------------------------------------------------------------
    def _push(self, rec: Dict[str, Any], fresh: bool = False):
        if not rec.get("run_id"):
            self._create_child(rec, fresh)
        run_id = rec["run_id"]
        params = None
        if not rec.get("params_logged", True):
            spec = rec["spec"]
            params = {"method": rec["method"], **flatten({k: v for k, v in spec.items() if k != "method"})}
        logged = rec.setdefault("logged", [])
        epochs = [m for m in rec.get("history", []) if int(m.get("epoch", 0)) not in logged]
        metrics = [(m, int(m.get("epoch", 0))) for m in epochs]
        extra = rec.get("pending_metrics") or {}
        if extra:
            metrics.append((extra, int(rec.get("metrics", {}).get("epoch", 0))))
        tags = dict(rec.get("pending_tags") or {})
        if params or metrics or tags:
            self.tracker.log_batch(run_id, params=params, metrics=metrics, tags=tags)
        if params is not None:
            rec["params_logged"] = True
        logged.extend(int(m.get("epoch", 0)) for m in epochs)
        if extra:
            rec["pending_metrics"] = {}
        for k, v in tags.items():  # what was pushed; a tag set since (same key, new value) stays pending
            if rec["pending_tags"].get(k) == v:
                del rec["pending_tags"][k]
        if rec["status"] in ("FINISHED", "FAILED") and not rec.get("terminated"):
            self.tracker.end_run(run_id, rec["status"])
            rec["terminated"] = True

    def _create_child(self, rec: Dict[str, Any], fresh: bool):
        """One child run per trial, even across an outage: the run id is kept the moment the run exists, and a
        create whose answer was lost (the client retries POSTs, the server may have made the run) adopts the run it
        made. ``fresh``: marked for its first create by this flush, so there is nothing to adopt yet."""
        tags = {"method": rec["method"], "status": rec["status"], "optuna_trial": rec["trial"],
                "method_fidelity": get_method(rec["method"]).fidelity,
                "sampled": json.dumps(rec["sampled"], sort_keys=True)}
        if rec.get("label"):
            tags["label"] = rec["label"]
        run_id = None
        if not fresh:
            run_id = self.tracker.find_child(self.parent_id, "optuna_trial", str(rec["trial"]))
            if run_id:  # made by the lost create: its creation tags may be stale
                rec.setdefault("pending_tags", {}).setdefault("status", rec["status"])
        if run_id is None:
            rec["create_tried"] = True
            run_id = self.tracker.create_child(self.parent_id, f"trial-{rec['trial']:03d}-{rec['method']}", tags)
        rec["run_id"] = run_id
        rec["params_logged"] = False
        rec.pop("create_tried", None)
        self._inherited.discard(rec["trial"])

    def sync_parent(self, force: bool = False) -> bool:
        """The parent run's hypervolume curve (one point per completed trial, pushed in batches) and its reference
        point, logged once each, retried like the trials' metrics."""
        from mlflow.exceptions import MlflowException

        hv = self.state.data.get("hypervolume")
        if not hv or not self._parent_dirty(hv):
            return True
        if not force and time.time() < self.down_until:
            return False
        try:
            if hv.get("ref") and not hv.get("ref_logged"):
                from ..tracking.hypervolume import format_ref

                self.tracker.log_batch(self.parent_id, params={"hypervolume_ref": format_ref(hv["ref"])})
                hv["ref_logged"] = True
            points = hv["curve"][hv.get("logged", 0):]
            if points:
                self.tracker.log_batch(self.parent_id, metrics=[
                    ({"front_hypervolume": value, "cumulative_train_time_s": spent}, int(n)) for n, spent, value in points])
                hv["logged"] = hv.get("logged", 0) + len(points)
            return True
        except (MlflowException, OSError) as e:
            self._failed(e)
            return False
        finally:
            self.state.save(keys=("hypervolume.logged", "hypervolume.ref_logged"))

    def _failed(self, e: Exception) -> None:
        self.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        self.down_until = time.time() + self.RETRY_AFTER_S

    @staticmethod
    def _parent_dirty(hv) -> bool:
        return bool(hv) and (hv.get("logged", 0) < len(hv.get("curve", [])) or bool(hv.get("ref") and not hv.get("ref_logged")))

    def dirty(self) -> List[Dict[str, Any]]:
        parent = [{"parent": True}] if self._parent_dirty(self.state.data.get("hypervolume")) else []
        return parent + [r for r in self.state.trials.values()
                if not r.get("run_id") or any(int(h.get("epoch", 0)) not in r.get("logged", []) for h in r.get("history", []))
                or r.get("pending_tags") or r.get("pending_metrics") or (r["status"] in ("FINISHED", "FAILED") and not r.get("terminated"))]
