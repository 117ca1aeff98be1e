"""The driver's MLflow sync across an outage that falls between two calls: one child run per
trial, whatever the store answered. Real sqlite MLflow store; the outage is injected by a
tracker that fails a chosen call once."""

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

    def log_params(self, run_id, params):
        self._fail("params")
        super().log_params(run_id, params)

    def create_child(self, parent_id, run_name, tags):
        run_id = super().create_child(parent_id, run_name, tags)
        self._fail("create_answer")
        return run_id


def _record(trial):
    return {"trial": trial, "method": "pgd_at", "sampled": {"lr": 0.01}, "spec": {"method": "pgd_at", "train": {"lr": 0.01}},
            "status": "RUNNING", "metrics": {}, "history": [], "logged": [], "run_id": None, "pending_tags": {"status": "RUNNING"}}


def _sweep(tmp_path, where):
    uri = "sqlite:///" + str(tmp_path / "mlflow.db")
    tracker = _OutageOnce(uri, "outage", artifact_root=tmp_path / "art", where=where)
    parent = tracker.start_parent("sweep", {})
    state = SweepState(tmp_path / "state.json")
    sync = MlflowSync(tracker, parent, state)
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
