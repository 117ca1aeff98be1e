"""The sweep's files in object storage, against a real S3 server (moto's, on 127.0.0.1) reached as a
MinIO user reaches theirs (``AWS_ENDPOINT_URL``): whole-object writes, the in-process executor's
checkpoints, the copy of a sweep's own files and the fetch a resume on a new head does."""

import json
import sqlite3

import pytest
import torch

from fake_cluster import MotoS3
from raysweep.tune import durable, storage
from raysweep.tune.storage import as_uri

BUCKET = "rs-store"


@pytest.fixture(scope="module")
def s3():
    srv = MotoS3()
    try:
        srv.start().client().create_bucket(Bucket=BUCKET)
        mp = pytest.MonkeyPatch()
        for k, v in srv.env.items():
            mp.setenv(k, v)
        yield srv
        mp.undo()
    finally:
        srv.stop()


def test_objects_are_written_whole_and_listed(s3):
    base = f"s3://{BUCKET}/runs/exp"
    storage.write_bytes(storage.join(base, "sweep-1", "a.txt"), b"one")
    storage.write_bytes(storage.join(base, "sweep-2", "a.txt"), b"two")
    assert storage.read_bytes(storage.join(base, "sweep-1", "a.txt")) == b"one"
    assert storage.read_bytes(storage.join(base, "nothing.txt")) is None
    assert storage.list_names(base) == ["sweep-1", "sweep-2"]
    assert storage.list_names(f"s3://{BUCKET}/no/such/prefix") == []


def test_a_uri_keeps_its_endpoint_options_when_joined_and_ray_paths_become_uris_again():
    base = "s3://b/p?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join(base, "x", "y") == "s3://b/p/x/y?endpoint_override=127.0.0.1:9000&scheme=http"
    # Ray reports an object-store checkpoint as the bucket path, without its scheme
    assert as_uri("b/p/train/train-0001/checkpoint_1", base) == \
        "s3://b/p/train/train-0001/checkpoint_1?endpoint_override=127.0.0.1:9000&scheme=http"
    assert as_uri("/local/ckpt", "/local") == "/local/ckpt"


def test_in_process_trials_checkpoint_to_the_bucket_and_resume_from_it(s3):
    from raysweep.tune.trainable import InProcessReporter

    reports = []
    ck = f"s3://{BUCKET}/runs/exp/sweep-1/train/train-0003"
    rep = InProcessReporter(ck, "n1", send=reports.append)
    assert rep.last_state() is None
    rep.report({"epoch": 1}, {"epoch": 1, "w": torch.ones(2)})
    assert reports[-1]["checkpoint_path"] == ck and reports[-1]["node_id"] == "n1"
    again = InProcessReporter(ck, "n2", send=reports.append)  # a retry on another node, or a resumed sweep
    st = again.last_state()
    assert st["epoch"] == 1 and torch.equal(st["w"], torch.ones(2))
    from raysweep.evaluation.checkpoints import load_checkpoint

    assert load_checkpoint(ck)["epoch"] == 1  # the final evaluation opens it the same way


def test_a_sweeps_files_are_copied_as_it_goes_and_fetched_by_a_new_head(s3, tmp_path):
    local = tmp_path / "head-a" / "exp" / "sweep-20261205-000000"
    local.mkdir(parents=True)
    (local / "state.json").write_text(json.dumps({"trials": {"0": {"status": "FINISHED"}}}))
    db = sqlite3.connect(str(local / "optuna.db"))
    db.execute("create table t (x int)")
    db.execute("insert into t values (7)")
    db.commit()
    (local / "notes.txt").write_text("not a sweep file")
    clock = [0.0]
    remote = durable.remote_dir(f"s3://{BUCKET}/runs/exp/{local.name}")
    m = durable.SweepMirror(local, remote, every_s=15, clock=lambda: clock[0])
    assert m.push() == 2 and m.errors == []  # state.json and a consistent snapshot of the study (db still open)
    (local / "state.json").write_text(json.dumps({"trials": {"0": {"status": "FINISHED"}, "1": {"status": "RUNNING"}}}))
    clock[0] = 5.0
    assert m.push() == 0  # throttled
    assert m.push(force=True) == 1  # only what changed
    db.close()

    assert durable.latest_remote_sweep(f"s3://{BUCKET}/runs/exp") == local.name
    new_head = tmp_path / "head-b" / "exp" / local.name
    assert durable.fetch(remote, new_head)
    assert json.loads((new_head / "state.json").read_text())["trials"]["1"]["status"] == "RUNNING"
    assert sqlite3.connect(str(new_head / "optuna.db")).execute("select x from t").fetchall() == [(7,)]
    assert not (new_head / "notes.txt").exists()
    assert not durable.fetch(f"s3://{BUCKET}/runs/none/sweep", tmp_path / "x")


def test_the_study_journal_is_copied_up_to_its_last_complete_line(s3, tmp_path):
    import optuna

    from raysweep.tune.study_store import JOURNAL, study_storage

    local = tmp_path / "head-a" / "exp" / "sweep-20261206-000000"
    local.mkdir(parents=True)
    (local / "state.json").write_text(json.dumps({"trials": {}}))
    study = optuna.create_study(study_name="s", storage=study_storage(local))
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    whole = (local / JOURNAL).read_bytes()
    with open(local / JOURNAL, "ab") as fh:
        fh.write(b'{"op_code":4,"wor')  # the driver is in the middle of an append
    remote = durable.remote_dir(f"s3://{BUCKET}/runs/exp/{local.name}")
    assert durable.SweepMirror(local, remote).push(force=True) == 2
    new_head = tmp_path / "head-b" / "exp" / local.name
    assert durable.fetch(remote, new_head)
    assert (new_head / JOURNAL).read_bytes() == whole
    again = optuna.load_study(study_name="s", storage=study_storage(new_head))
    assert [t.values for t in again.trials] == [[0.5]]


def test_a_store_that_refuses_delays_the_copy_and_never_stops_the_sweep(s3, tmp_path):
    (tmp_path / "state.json").write_text("{}")
    m = durable.SweepMirror(tmp_path, "s3://no-such-bucket/x/sweep")  # the store answers, with an error
    assert m.push(force=True) == 0
    assert len(m.errors) == 1 and m.errors[0].startswith("state.json: ")
    assert m.push(force=True) == 0 and len(m.errors) == 2  # tried again next time
    assert not m.healthy()  # trial starts now ask the mirror's thread instead of waiting on the store
    m.request(force=True)
    import pickle

    copy = pickle.loads(pickle.dumps(durable.MirrorToStorage(m)))  # Tune pickles its callbacks, thread and all
    assert copy is not None
    assert m.close() == 0 and len(m.errors) >= 3
