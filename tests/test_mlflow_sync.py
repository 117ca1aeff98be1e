"""The driver's MLflow sync across an outage that falls between two calls: one child run per
trial, whatever the store answered. Real sqlite MLflow store; the outage is injected by a
tracker that fails a chosen call once."""

import functools

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from raysweep.tracking.store import SweepTracker
from raysweep.sweep_state import SweepState
from raysweep.tracking.sync import MlflowSync


class _OutageOnce(SweepTracker):
    """Fails ``where`` once: 'params' (the store went down right after the run was made) or
    'create_answer' (the run was made, its answer lost, as when a retried POST meets a restart)."""

    def __init__(self, *a, where, **k):
        super().__init__(*a, **k)
        self.where = where
        self.failed = False

    def _fail(self, where):
        if self.where == where and not self.failed:
            self.failed = True
            raise MlflowException("injected outage")

    def log_batch(self, run_id, params=None, metrics=(), tags=None):  # a child's params go in its first batch
        if params:
            self._fail("params")
        super().log_batch(run_id, params=params, metrics=metrics, tags=tags)

    def create_child(self, parent_id, run_name, tags):
        run_id = super().create_child(parent_id, run_name, tags)
        self._fail("create_answer")
        return run_id


def _record(trial):
    return {"trial": trial, "method": "pgd_at", "sampled": {"lr": 0.01}, "spec": {"method": "pgd_at", "train": {"lr": 0.01}},
            "status": "RUNNING", "metrics": {}, "history": [], "logged": [], "run_id": None, "pending_tags": {"status": "RUNNING"}}


def _sweep(tmp_path, where=None, tracker_cls=None, **sync_kw):
    """A real sqlite store behind a tracker that fails where asked (``where``) or counts its writes (``tracker_cls``)."""
    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    tracker = (tracker_cls or functools.partial(_OutageOnce, where=where))(uri, "sync", artifact_root=tmp_path / "art")
    parent = tracker.start_parent("sweep", {})
    state = SweepState(tmp_path / "state.json")
    sync = MlflowSync(tracker, parent, state, **sync_kw)
    return uri, tracker, parent, state, sync


def _finish(sync, state, rec):
    rec["history"] = [{"epoch": 1, "val_robust_acc": 0.5}]
    rec["status"] = "FINISHED"
    rec["pending_tags"]["status"] = "FINISHED"
    assert sync.sync(rec, force=True)
    assert not sync.dirty()


def _kids(uri, tracker, parent):
    return MlflowClient(uri).search_runs([tracker.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'")


def test_outage_between_create_and_params_leaves_one_child_with_its_params(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, "params")
    rec = state.trials.setdefault("0", _record(0))
    assert not sync.sync(rec, force=True)  # the run exists, its params did not get there
    assert rec["run_id"] and not rec["params_logged"]
    assert SweepState(tmp_path / "state.json").trials["0"]["run_id"] == rec["run_id"]  # a killed driver knows it too
    _finish(sync, state, rec)
    kids = _kids(uri, tracker, parent)
    assert len(kids) == 1
    k = kids[0]
    assert k.info.run_id == rec["run_id"] and k.info.status == "FINISHED" and k.data.tags["status"] == "FINISHED"
    assert k.data.params["method"] == "pgd_at" and k.data.params["train.lr"] == "0.01"


def test_a_create_whose_answer_was_lost_adopts_the_run_it_made(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, "create_answer")
    other = state.trials.setdefault("1", _record(1))
    assert sync.sync(other, force=True) is False  # trial 1's create is the one that loses its answer
    rec = state.trials.setdefault("0", _record(0))
    assert sync.sync(rec, force=True)  # a neighbour is never adopted by mistake
    assert sync.sync(other, force=True)
    _finish(sync, state, rec)
    _finish(sync, state, other)
    kids = _kids(uri, tracker, parent)
    assert sorted(k.data.tags["optuna_trial"] for k in kids) == ["0", "1"]  # no orphan left RUNNING
    for k in kids:
        assert k.info.status == "FINISHED" and k.data.tags["status"] == "FINISHED" and k.data.params["method"] == "pgd_at"


class _Counting(SweepTracker):
    """Counts the calls that reach the store (each one transaction)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.calls, self.tags = [], []  # the tags each call carried

    def create_child(self, parent_id, run_name, tags):
        self.calls.append("create")
        self.tags.append(dict(tags))
        return super().create_child(parent_id, run_name, tags)

    def log_batch(self, run_id, params=None, metrics=(), tags=None):
        self.calls.append("batch")
        self.tags.append(dict(tags or {}))
        super().log_batch(run_id, params=params, metrics=metrics, tags=tags)

    def end_run(self, run_id, status="FINISHED"):
        self.calls.append("end")
        super().end_run(run_id, status)


def test_a_trials_events_inside_a_flush_window_reach_mlflow_in_three_writes(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=3600)
    sync.flush()  # the window opens now
    rec = state.trials.setdefault("0", _record(0))
    assert sync.sync(rec)  # start: recorded in the state at once, MLflow later
    assert SweepState(tmp_path / "state.json").trials["0"]["status"] == "RUNNING"
    for ep in (1, 2, 3):  # three reports
        rec["history"] = rec["history"] + [{"epoch": ep, "val_robust_acc": 0.1 * ep}]
        rec["pending_tags"]["node_id"] = f"n{ep}"
        sync.sync(rec)
    rec["status"], rec["pending_tags"]["status"] = "FINISHED", "FINISHED"
    sync.sync(rec)
    assert tracker.calls == [] and sync.tick() and tracker.calls == []  # nothing due yet
    assert not _kids(uri, tracker, parent)
    assert sync.flush()  # handed to the writer thread: this thread goes on at once
    _settle(sync)
    assert tracker.calls == ["create", "batch", "end"]
    # the trial's pending tags went in with its run (one transaction fewer), its batch carried none
    assert tracker.tags[0]["status"] == "FINISHED" and tracker.tags[0]["node_id"] == "n3" and tracker.tags[1] == {}
    assert rec["pending_tags"] == {}
    k, = _kids(uri, tracker, parent)
    assert k.info.status == "FINISHED" and k.data.tags["status"] == "FINISHED" and k.data.tags["node_id"] == "n3"
    assert k.data.params["method"] == "pgd_at"
    hist = MlflowClient(uri).get_metric_history(k.info.run_id, "val_robust_acc")
    assert sorted((m.step, round(m.value, 3)) for m in hist) == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert not sync.dirty()
    assert SweepState(tmp_path / "state.json").trials["0"]["terminated"]  # the bookkeeping is durable too


def test_tick_pushes_what_waited_past_the_window(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=0.2)
    sync.flush()
    rec = state.trials.setdefault("0", _record(0))
    sync.sync(rec)
    assert tracker.calls == []
    import time

    time.sleep(0.25)
    assert sync.tick()
    _settle(sync)
    assert tracker.calls == ["create", "batch"] and len(_kids(uri, tracker, parent)) == 1
    assert SweepState(tmp_path / "state.json").trials["0"]["run_id"] == rec["run_id"]  # applied and saved


def _settle(sync, timeout=30.0):
    """Until the writer's batch is pushed and applied (by ticks, as the sweep's steps apply it)."""
    import time

    t0 = time.monotonic()
    while sync._inflight is not None:
        assert time.monotonic() - t0 < timeout, "the writer never finished its batch"
        time.sleep(0.01)
        sync.tick()


def test_the_writer_pushes_a_copy_while_the_record_moves_on(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=3600)
    sync.flush()
    rec = state.trials.setdefault("0", _record(0))
    rec["history"] = [{"epoch": 1, "val_robust_acc": 0.1}]
    sync.sync(rec)
    assert sync.flush() and sync._inflight is not None
    rec["history"] = rec["history"] + [{"epoch": 2, "val_robust_acc": 0.2}]  # a report while the writer pushes
    rec["pending_tags"]["node_id"] = "n2"
    sync.sync(rec)
    _settle(sync)
    assert rec["logged"] == [1] and rec["pending_tags"] == {"node_id": "n2"} and sync.dirty() == [rec]
    rec["status"], rec["pending_tags"]["status"] = "FINISHED", "FINISHED"
    assert sync.sync(rec, force=True) and not sync.dirty()
    k, = _kids(uri, tracker, parent)
    hist = MlflowClient(uri).get_metric_history(k.info.run_id, "val_robust_acc")
    assert sorted(m.step for m in hist) == [1, 2] and k.data.tags["node_id"] == "n2" and k.info.status == "FINISHED"


def test_a_driver_killed_after_the_writers_push_neither_repeats_an_epoch_nor_makes_a_second_run(tmp_path):
    """SIGKILL between the writer's push and the save of what it pushed: only the marks made before the push are in
    the state; the resumed driver looks the run and the epochs up."""
    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=3600)
    sync.flush()  # the window opens now
    rec = state.trials.setdefault("0", _record(0))
    rec["history"] = [{"epoch": 1, "val_robust_acc": 0.1}, {"epoch": 2, "val_robust_acc": 0.2}]
    sync.sync(rec)
    batch = sync._prepare()  # marked and saved
    sync._run(batch)  # pushed; the driver dies before it applies and saves it
    resumed = SweepState(tmp_path / "state.json")
    old = resumed.trials["0"]
    assert not old.get("run_id") and old["create_tried"] and old["pushing"] == [1, 2] and old["logged"] == []
    old["history"].append({"epoch": 3, "val_robust_acc": 0.3})  # the trial goes on after the resume
    old["status"], old["pending_tags"]["status"] = "FINISHED", "FINISHED"
    again = MlflowSync(tracker, parent, resumed)
    assert again.sync_all(force=True) and not again.dirty()
    k, = _kids(uri, tracker, parent)
    hist = MlflowClient(uri).get_metric_history(k.info.run_id, "val_robust_acc")
    assert sorted(m.step for m in hist) == [1, 2, 3]
    assert old["run_id"] == k.info.run_id and "pushing" not in SweepState(tmp_path / "state.json").trials["0"]


def test_sqlite_stores_are_written_ahead_and_readable_by_a_plain_reader(tmp_path, monkeypatch):
    import sqlite3

    from raysweep.tracking.sqlite_wal import write_ahead

    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    tracker = SweepTracker(uri, "wal", artifact_root=tmp_path / "art")
    parent = tracker.start_parent("sweep", {})
    tracker.log_metrics(parent, {"x": 1.0}, 0)
    con = sqlite3.connect(str(tmp_path / "mlflow.db"))
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    assert MlflowClient(uri).get_run(parent).data.metrics["x"] == 1.0  # a second reader sees the commit
    monkeypatch.setenv("RAYSWEEP_SQLITE_WAL", "0")  # a store on NFS keeps the rollback journal
    assert not write_ahead("sqlite:///" + str(tmp_path / "other.db"))
    assert not write_ahead("postgresql://host/db") and not write_ahead("sqlite:///:memory:")


def test_a_resume_from_a_copy_taken_before_the_create_adopts_the_run_the_lost_driver_made(tmp_path):
    """A head's disk lost: the resumed driver reads the object-store copy of the state, taken when the trial started
    and before the flush that made its run (no run id, not even marked), and must not make a second run."""
    import shutil

    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=3600)
    sync.flush()
    rec = state.trials.setdefault("0", _record(0))
    assert sync.sync(rec)  # the trial starts: the state holds it, MLflow not yet
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tmp_path.glob("state.*"):  # the copy in object storage, taken at the trial's start
        shutil.copy(f, copy / f.name)
    assert sync.flush(force=True) and rec["run_id"]  # the lost driver's flush made the run; the copy never heard of it
    lost_run = rec["run_id"]

    resumed = SweepState(copy / "state.json")
    old = resumed.trials["0"]
    assert not old.get("run_id") and not old.get("create_tried")
    again = MlflowSync(tracker, parent, resumed)
    assert again.sync_all(force=True)
    assert old["run_id"] == lost_run
    _finish(again, resumed, old)
    k, = _kids(uri, tracker, parent)
    assert k.info.run_id == lost_run and k.info.status == "FINISHED" and k.data.params["method"] == "pgd_at"
    # a record this driver starts is new: created without a search
    tracker.calls.clear()
    new = resumed.trials.setdefault("1", _record(1))
    assert again.sync(new, force=True) and tracker.calls[0] == "create"


def test_the_sync_pickles_with_its_writer_busy(tmp_path):
    """Tune pickles its callbacks (the recorder and this sync) with its experiment state, while the writer works."""
    import pickle

    uri, tracker, parent, state, sync = _sweep(tmp_path, tracker_cls=_Counting, flush_s=3600)
    sync.flush()
    rec = state.trials.setdefault("0", _record(0))
    sync.sync(rec)
    assert sync.flush() and sync._inflight is not None
    copy = pickle.loads(pickle.dumps(sync))
    assert copy._inflight is None and copy._writer is not None
    _settle(sync)
    assert rec["run_id"]


def test_a_trial_mlflow_has_whole_is_packed_and_a_later_change_still_reaches_mlflow(tmp_path):
    uri, tracker, parent, state, sync = _sweep(tmp_path, flush_s=3600)
    rec = state.trials.setdefault("0", _record(0))
    _finish(sync, state, rec)
    running = state.trials.setdefault("1", _record(1))
    owed = state.trials.setdefault("2", dict(_record(2), status="FINISHED"))  # ended, nothing of it in MLflow yet
    state.snapshot()
    assert state.trials.packed() == 1 and not state.trials.holds("0", rec)  # MLflow has all of it: packed
    assert state.trials.holds("1", running) and state.trials.holds("2", owed)
    # the sweep's end tags its front: through records[key], which unpacks it for good
    state.trials["0"]["pending_tags"]["pareto_optimal"] = "true"
    assert sync.sync(state.trials["0"], force=True) and sync.dirty() == [running, owed]
    k, = [r for r in _kids(uri, tracker, parent) if r.data.tags.get("optuna_trial") == "0"]
    assert k.data.tags["pareto_optimal"] == "true" and k.info.status == "FINISHED"
    assert SweepState(tmp_path / "state.json").trials["0"] == state.trials["0"]
