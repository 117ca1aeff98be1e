"""The sweep's record pushed to MLflow, idempotently: a failed push leaves the record dirty and is retried, so an MLflow
outage delays logging but loses nothing.

Writes are coalesced: an event marks its trial due and the due trials are pushed together at most every ``FLUSH_S``
seconds, each in as few calls as MLflow allows (its run made with its tags, then one batch of params, every unlogged
epoch and tags, then its end). Pushed one call per event, a 10,000-trial sweep of short trials spent ~35% of the
driver's main thread in SQLite commits (``bench/scale.py``); a trial now costs three writes however often it reports,
and the MLflow UI lags the sweep by at most ``FLUSH_S``.

The pushes run on a writer thread, off the path between one trial's end and the next one's start: the driver's
thread hands the writer a copy of what to push (never the records themselves, which it alone touches), and applies
what got there when the writer is done (the run id, the epochs logged, the tags set), saving it in the state. What a
push is about to log is marked in the state first, so a driver killed between the writer's push and that save
neither repeats an epoch nor makes a second run: the resumed driver looks both up. The start and end of a sweep (and
``force``) push on the calling thread."""

import json
import queue
import threading
import time
from typing import Any, Dict, List, Optional

from ..methods import get_method
from ..sweep_state import ENDED, SweepState
from ..train.spec import flatten

FLUSH_S = 1.0


class MlflowSync:
    """Pushes the sweep state to MLflow idempotently: creates missing child runs, logs the
    epochs not yet logged, sets tags and terminal status. A failed push leaves the state
    dirty and is retried at a later flush, so an MLflow outage delays logging but loses
    nothing; ``flush_or_fallback`` at the end reports what could not be written."""

    RETRY_AFTER_S = 10.0

    def __init__(self, tracker, parent_id: str, state: SweepState, flush_s: float = FLUSH_S, adopt: bool = True,
                 background: bool = True):
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
        # Records an earlier driver was pushing epochs of when it died: which of those got there is looked up.
        self._unsure = {r["trial"] for r in state.trials.values() if r.get("pushing")} if adopt else set()
        self._background = background
        self._writer = _Writer(self._run) if background else None
        self._inflight: Optional[Dict[str, Any]] = None  # the batch the writer has
        state.settled = self._settled  # an ended record MLflow has all of is packed in memory (sweep_state.py)

    def _settled(self, rec: Dict[str, Any]) -> bool:
        # a record in a batch still needs its push (its marks change only when the batch is applied): never packed
        return not self._needs_push(rec)

    def __getstate__(self):
        # Tune pickles its callbacks (this sync among the recorder's parts) with its experiment: the writer stays here
        return {k: v for k, v in self.__dict__.items() if k not in ("_writer", "_inflight")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._writer = _Writer(self._run) if state.get("_background", True) else None
        self._inflight = None

    # -- what callers use ------------------------------------------------------------------
    def sync(self, rec: Dict[str, Any], force: bool = False) -> bool:
        """Saves the trial's record (always, at once: the state is the record a resume reads) and pushes it to MLflow
        now with ``force`` or when a flush is due, else with the next flush. False: a push failed (retried later)."""
        self.state.save(trials=[rec])
        self._due[id(rec)] = rec
        ok = self._collect()
        if force or time.time() - self._last_flush >= self.flush_s:
            return self.flush(force=force) and ok
        return ok

    def tick(self) -> bool:
        """Called as the sweep runs (each Tune step): applies what the writer pushed, pushes what waited past
        ``flush_s``."""
        ok = self._collect()
        if (self._due or self._parent_dirty(self.state.data.get("hypervolume"))) \
                and time.time() - self._last_flush >= self.flush_s:
            return self.flush() and ok
        return ok

    def flush(self, force: bool = False) -> bool:
        """Pushes every due record and the parent's curve, on the writer's thread (``force``: on this one, after what
        the writer has); stops at the first failure (the store is down)."""
        ok = self._wait() if force or self._writer is None else self._collect()
        if self._inflight is not None:
            return ok  # the writer is busy: what is due goes with the next flush
        if not force and time.time() < self.down_until:
            return False
        self._last_flush = time.time()
        batch = self._prepare()
        if batch is None:
            return ok
        if force or self._writer is None:
            return self._apply(batch, self._run(batch)) and ok
        self._inflight = batch
        self._writer.submit(batch)
        return ok

    def sync_all(self, force: bool = False) -> bool:
        """Everything the state holds that MLflow lacks (a driver's start and end, the fallback store), on this
        thread."""
        for rec in self.dirty():
            if "parent" not in rec:
                self._due[id(rec)] = rec
        if not force and time.time() < self.down_until:
            return False
        return self.flush(force=True)

    # -- the batch: prepared and applied on the driver's thread, pushed on the writer's -----
    def _prepare(self) -> Optional[Dict[str, Any]]:
        """What to push, copied from the due records; marked in the state first (one save) so a driver killed
        during the push can tell what may have got there: a run about to be made, epochs about to be logged."""
        jobs, marks = [], []
        for rec in list(self._due.values()):
            job = self._job(rec)
            if job is None:
                self._due.pop(id(rec), None)
                continue
            jobs.append(job)
            key = str(rec["trial"])
            if self.state.trials.get(key) is not rec:
                continue  # not keyed by its number (no Optuna trial): pushed unmarked
            if job["create"] is not None and not rec.get("create_tried"):
                rec["create_tried"] = True
                marks.append(f"trials.{key}.create_tried")
            if job["epochs"]:
                rec["pushing"] = sorted(set(rec.get("pushing", [])) | set(job["epochs"]))
                marks.append(f"trials.{key}.pushing")
        hv = self.state.data.get("hypervolume")
        parent = None
        if self._parent_dirty(hv):
            parent = {"ref": hv.get("ref") if not hv.get("ref_logged") else None,
                      "points": [tuple(p) for p in hv["curve"][hv.get("logged", 0):]]}
        if not jobs and parent is None:
            return None
        if marks:
            self.state.save(keys=marks)
        return {"jobs": jobs, "parent": parent}

    @staticmethod
    def _needs_push(rec: Dict[str, Any]) -> bool:
        logged = set(rec.get("logged", []))
        return (not rec.get("run_id") or not rec.get("params_logged", True) or bool(rec.get("pending_tags"))
                or bool(rec.get("pending_metrics")) or any(int(h.get("epoch", 0)) not in logged for h in rec.get("history", []))
                or (rec["status"] in ENDED and not rec.get("terminated")))

    def _job(self, rec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        if not self._needs_push(rec):
            return None
        create = None
        if not rec.get("run_id"):
            tags = {"method": rec["method"], "status": rec["status"], "optuna_trial": rec["trial"],
                    "method_fidelity": get_method(rec["method"]).fidelity,
                    "sampled": json.dumps(rec["sampled"], sort_keys=True)}
            if rec.get("label"):
                tags["label"] = rec["label"]
            # a record marked by an earlier flush, or left by an earlier driver, may have its run already
            create = {"tags": tags, "name": f"trial-{rec['trial']:03d}-{rec['method']}",
                      "look": bool(rec.get("create_tried")) or rec["trial"] in self._inherited}
        params = None
        if not rec.get("params_logged", True) or create is not None:
            spec = rec["spec"]
            params = {"method": rec["method"], **flatten({k: v for k, v in spec.items() if k != "method"})}
        logged = set(rec.get("logged", []))
        epochs = [m for m in rec.get("history", []) if int(m.get("epoch", 0)) not in logged]
        extra = dict(rec.get("pending_metrics") or {})
        tags = dict(rec.get("pending_tags") or {})
        end = rec["status"] if rec["status"] in ENDED and not rec.get("terminated") else None
        # epochs a killed driver was pushing when it died (its mark survived, its bookkeeping did not)
        check = sorted(set(rec.get("pushing", [])) & {int(m.get("epoch", 0)) for m in epochs}) \
            if rec["trial"] in self._unsure else []
        return {"rec": rec, "trial": rec["trial"], "run_id": rec.get("run_id"), "create": create, "status": rec["status"],
                "params": params, "epochs": [int(m.get("epoch", 0)) for m in epochs],
                "metrics": [(dict(m), int(m.get("epoch", 0))) for m in epochs], "extra": extra,
                "extra_step": int(rec.get("metrics", {}).get("epoch", 0)), "tags": tags, "end": end, "check": check}

    def _run(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """The MLflow calls of a batch, in order; touches nothing but the batch (it may run on the writer)."""
        from mlflow.exceptions import MlflowException

        done: List[Dict[str, Any]] = []
        out = {"done": done, "parent": None, "error": None}
        try:
            for job in batch["jobs"]:
                res: Dict[str, Any] = {"run_id": job["run_id"], "created": False, "found": []}
                done.append(res)
                tags = dict(job["tags"])
                if res["run_id"] is None:
                    found = self.tracker.find_child(self.parent_id, "optuna_trial", str(job["trial"])) \
                        if job["create"]["look"] else None
                    if found:  # made by a create whose answer (or bookkeeping) was lost: its creation tags may be stale
                        tags.setdefault("status", job["status"])
                    else:
                        # the pending tags go in with the run: one store transaction fewer per trial (1.3 ms of
                        # the writer's CPU on SQLite in an A/B at 1,000 trials, bench/results/scale.json)
                        found = self.tracker.create_child(self.parent_id, job["create"]["name"],
                                                          {**job["create"]["tags"], **tags})
                        tags = {}
                    res["run_id"], res["created"] = found, True
                metrics = job["metrics"]
                if job["check"]:
                    key = next(iter(k for m, _ in metrics for k in m if k != "epoch"), None)
                    res["found"] = sorted(set(job["check"]) & self.tracker.logged_steps(res["run_id"], key)) if key else []
                    metrics = [(m, e) for m, e in metrics if e not in res["found"]]
                if job["extra"]:
                    metrics = metrics + [(job["extra"], job["extra_step"])]
                if job["params"] or metrics or tags:
                    self.tracker.log_batch(res["run_id"], params=job["params"], metrics=metrics, tags=tags)
                res["logged"] = True
                if job["end"]:
                    self.tracker.end_run(res["run_id"], job["end"])
                    res["ended"] = True
            parent = batch["parent"]
            if parent is not None:
                if parent["ref"]:
                    from ..tracking.hypervolume import format_ref

                    self.tracker.log_batch(self.parent_id, params={"hypervolume_ref": format_ref(parent["ref"])})
                    out["parent"] = {"ref": True, "points": 0}
                if parent["points"]:
                    self.tracker.log_batch(self.parent_id, metrics=[
                        ({"front_hypervolume": value, "cumulative_train_time_s": spent}, int(n))
                        for n, spent, value in parent["points"]])
                out["parent"] = {"ref": bool(parent["ref"]), "points": len(parent["points"])}
        except (MlflowException, OSError) as e:  # tracking outage: keep training, retry later
            out["error"] = e
        return out

    def _apply(self, batch: Dict[str, Any], out: Dict[str, Any]) -> bool:
        """What got to MLflow, into the records, saved in one line (driver's thread)."""
        for job, res in zip(batch["jobs"], out["done"]):
            rec = job["rec"]
            if res["created"] and not rec.get("run_id"):
                rec["run_id"] = res["run_id"]
                rec["params_logged"] = False
                rec.pop("create_tried", None)
                self._inherited.discard(rec["trial"])
            if not res.get("logged"):
                if rec.get("pushing"):  # its batch may have got there before the store failed: looked up next time
                    self._unsure.add(rec["trial"])
                break  # the store failed inside this job; what follows was not tried
            if job["params"] is not None:
                rec["params_logged"] = True
            rec["logged"] = sorted(set(rec.get("logged", [])) | set(job["epochs"]) | set(res["found"]))
            if job["extra"] and rec.get("pending_metrics") == job["extra"]:
                rec["pending_metrics"] = {}
            pending = rec.get("pending_tags") or {}
            for k, v in job["tags"].items():  # what was pushed; a tag set since (same key, new value) stays pending
                if pending.get(k) == v:
                    del pending[k]
            rec.pop("pushing", None)  # a push that failed keeps its mark (and is looked up when retried)
            self._unsure.discard(rec["trial"])
            if res.get("ended"):
                rec["terminated"] = True
            if not self._needs_push(rec):
                self._due.pop(id(rec), None)
        if batch["jobs"]:
            self.state.save(trials=[job["rec"] for job in batch["jobs"]])
        if out["parent"]:
            hv = self.state.data["hypervolume"]
            if out["parent"]["ref"]:
                hv["ref_logged"] = True
            hv["logged"] = hv.get("logged", 0) + out["parent"]["points"]
            self.state.save(keys=("hypervolume.logged", "hypervolume.ref_logged"))
        if out["error"] is not None:
            self._failed(out["error"])
            return False
        return True

    def _collect(self) -> bool:
        """Applies the writer's batch if it is done; False when its push failed."""
        if self._inflight is None or not self._writer.done():
            return True
        batch, self._inflight = self._inflight, None
        return self._apply(batch, self._writer.take())

    def _wait(self) -> bool:
        if self._inflight is None:
            return True
        batch, self._inflight = self._inflight, None
        return self._apply(batch, self._writer.wait())

    def _failed(self, e: Exception) -> None:
        self.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        self.down_until = time.time() + self.RETRY_AFTER_S

    @staticmethod
    def _parent_dirty(hv) -> bool:
        return bool(hv) and (hv.get("logged", 0) < len(hv.get("curve", [])) or bool(hv.get("ref") and not hv.get("ref_logged")))

    def dirty(self) -> List[Dict[str, Any]]:
        self._wait()
        parent = [{"parent": True}] if self._parent_dirty(self.state.data.get("hypervolume")) else []
        return parent + [r for r in self.state.trials.values() if self._needs_push(r)]


class _Writer:
    """One daemon thread that runs one batch at a time. An exception other than a store outage (a bug) is handed back
    and raised on the driver's thread."""

    def __init__(self, run):
        self._run = run
        self._jobs: "queue.Queue" = queue.Queue()
        self._result = None
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def submit(self, batch) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="raysweep-mlflow-writer", daemon=True)
            self._thread.start()
        self._done.clear()
        self._jobs.put(batch)

    def _loop(self) -> None:
        while True:
            batch = self._jobs.get()
            try:
                self._result = ("ok", self._run(batch))
            except BaseException as e:  # noqa: BLE001 - re-raised on the driver's thread
                self._result = ("raise", e)
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def take(self):
        kind, value = self._result
        self._result = None
        if kind == "raise":
            raise value
        return value

    def wait(self):
        self._done.wait()
        return self.take()
