"""state.json (+ state.log), the sweep's own record: a snapshot with its format number and a log of what changed
since, read only in a layout the reader knows (an older or newer file is a one-line exit-2 error from every command
that reads it), whole after a SIGKILL at any point of a save."""

import json
import os
import shutil

import pytest

from raysweep import sweep_state
from raysweep.errors import UserError
from raysweep.sweep_state import FORMAT, STATE_FILE, SweepState, latest_state, log_path, read_state

from conftest import run_cli


def test_written_with_its_format_and_read_back(tmp_path):
    s = SweepState(tmp_path / STATE_FILE)
    s.trials["0"] = {"trial": 0, "status": "FINISHED"}
    s.save()
    assert json.loads((tmp_path / STATE_FILE).read_text())["format"] == FORMAT
    assert read_state(tmp_path)["trials"]["0"]["status"] == "FINISHED"
    assert not (tmp_path / "state.tmp").exists()  # replaced whole
    s.trials["0"]["status"] = "FAILED"
    s.save(trials=["0"])  # later saves: a line in the log
    assert read_state(tmp_path)["trials"]["0"]["status"] == "FAILED"


def test_a_state_from_before_the_number_reads_as_format_1(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"parent_run_id": "p", "trials": {}}))
    assert read_state(tmp_path / STATE_FILE)["parent_run_id"] == "p"
    s = SweepState(tmp_path / STATE_FILE)
    s.save(keys=["parent_run_id"])  # a writer's first save rewrites the older layout whole, as this one
    assert json.loads((tmp_path / STATE_FILE).read_text())["format"] == FORMAT
    assert read_state(tmp_path)["parent_run_id"] == "p"


def test_a_format_1_state_with_trials_reads_and_resumes_as_format_2(tmp_path):
    old = {"parent_run_id": "p", "sweep_wall_s": 5.0, "trials": {str(n): _rec(n) for n in range(3)}}
    (tmp_path / STATE_FILE).write_text(json.dumps(old, indent=1, sort_keys=True))  # as format 1 wrote it
    assert read_state(tmp_path) == old
    s = SweepState(tmp_path / STATE_FILE)
    s.trials["1"]["status"] = "FINISHED"
    s.save(trials=["1"])
    s.trials["2"]["status"] = "FINISHED"
    s.save(trials=["2"])
    got = read_state(tmp_path)
    assert got["format"] == FORMAT and [got["trials"][k]["status"] for k in "012"] == ["RUNNING", "FINISHED", "FINISHED"]


@pytest.mark.parametrize("fmt,says", [(FORMAT + 1, "written by a newer raysweep"), (0, "written by an older raysweep")])
def test_an_unknown_format_is_a_clear_error(tmp_path, fmt, says):
    (tmp_path / STATE_FILE).write_text(json.dumps({"format": fmt, "trials": {}}))
    with pytest.raises(UserError, match=f"sweep state format {fmt}, this raysweep reads format 1, {FORMAT}: {says}"):
        read_state(tmp_path)
    with pytest.raises(UserError):
        SweepState(tmp_path / STATE_FILE)  # a sweep is never resumed over it


def test_latest_state_is_the_newest_sweep_with_a_state(tmp_path):
    for name, n in (("sweep-20260101-000000", 1), ("sweep-20260102-000000", 2), ("sweep-20260103-000000", None)):
        (tmp_path / "exp" / name).mkdir(parents=True)
        if n:
            (tmp_path / "exp" / name / STATE_FILE).write_text(json.dumps({"trials": {}, "n": n}))
    got = latest_state(tmp_path, "exp")
    assert got["n"] == 2 and got["_sweep_dir"].endswith("sweep-20260102-000000")
    assert latest_state(tmp_path, "nothing") is None


def test_resume_of_a_newer_state_exits_2_before_anything_starts(tmp_path):
    d = tmp_path / "raysweep_runs" / "exp" / "sweep-20260101-000000"
    d.mkdir(parents=True)
    (d / STATE_FILE).write_text(json.dumps({"format": FORMAT + 1, "trials": {}}))
    before = sorted(p.name for p in d.iterdir())
    r = run_cli(["resume", "exp"], cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "written by a newer raysweep" in lines[0] and STATE_FILE in lines[0], r.stderr
    assert sorted(p.name for p in d.iterdir()) == before


def _rec(n, epochs=3):
    return {"trial": n, "method": "pgd_at", "status": "RUNNING", "sampled": {"lr": 0.01 * (n + 1)},
            "spec": {"method": "pgd_at", "train": {"lr": 0.01 * (n + 1), "epochs": epochs}},
            "metrics": {"epoch": epochs, "val_robust_acc": 0.5}, "logged": list(range(1, epochs + 1)),
            "history": [{"epoch": e, "val_robust_acc": 0.1 * e, "train_time_s": 1.0 * e} for e in range(1, epochs + 1)],
            "run_id": f"run{n}", "pending_tags": {}}


def _events(s, n_trials, n_events, start=0):
    """A sweep's events: trials starting, reporting and ending, each saved with what it changed."""
    for i in range(start, start + n_events):
        key = str(i % n_trials)
        rec = s.trials.setdefault(key, _rec(int(key), epochs=0))
        rec["history"].append({"epoch": len(rec["history"]) + 1, "val_robust_acc": i / 1000})
        rec["status"] = "FINISHED" if i % 3 == 2 else "RUNNING"
        s.save(trials=[rec])
        if i % 3 == 2:
            hv = s.data.setdefault("hypervolume", {"curve": [], "logged": 0})
            hv["curve"].append([i, float(i), i / 10])
            s.save(extended={"hypervolume.curve": [hv["curve"][-1]]})
            hv["logged"] += 1
            s.save(keys=["hypervolume.logged"])


def test_a_save_appends_what_changed_and_read_state_replays_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_state, "STALE_S", 1e9)
    s = SweepState(tmp_path / STATE_FILE)
    s.data["parent_run_id"] = "p"
    s.save(keys=["parent_run_id"])  # the first save: a snapshot
    _events(s, 4, 30)
    assert log_path(tmp_path / STATE_FILE).stat().st_size > 0  # the events went to the log
    assert read_state(tmp_path) == s.data
    assert SweepState(tmp_path / STATE_FILE).data == s.data  # what a resumed driver starts from
    before = read_state(tmp_path)
    s.snapshot()  # folded: the snapshot alone holds the same
    assert log_path(tmp_path / STATE_FILE).stat().st_size == 0
    assert json.loads((tmp_path / STATE_FILE).read_text())["trials"] == before["trials"]
    assert read_state(tmp_path) == before


def test_the_log_is_folded_into_the_snapshot_once_it_outgrows_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_state, "STALE_S", 1e9)
    monkeypatch.setattr(sweep_state, "LOG_MIN_BYTES", 0)
    s = SweepState(tmp_path / STATE_FILE)
    _events(s, 2, 200)
    assert log_path(tmp_path / STATE_FILE).stat().st_size <= (tmp_path / STATE_FILE).stat().st_size + 4096
    assert read_state(tmp_path) == s.data


def test_a_torn_last_line_is_ignored_and_folded_away_by_the_next_writer(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_state, "STALE_S", 1e9)
    s = SweepState(tmp_path / STATE_FILE)
    _events(s, 3, 10)
    whole = read_state(tmp_path)
    s.trials["0"]["status"] = "KILLED MID-WRITE"
    line = json.dumps({"seq": s._seq + 1, "trials": {"0": s.trials["0"]}}).encode()
    with open(log_path(tmp_path / STATE_FILE), "ab") as fh:
        fh.write(line[: len(line) // 2])  # SIGKILL during the write: no newline
    assert read_state(tmp_path) == whole
    again = SweepState(tmp_path / STATE_FILE)  # the resumed driver
    assert again.data == whole
    _events(again, 3, 5, start=10)  # its first save folds the torn line away, then it appends
    assert read_state(tmp_path) == again.data and again.trials["0"]["status"] != "KILLED MID-WRITE"


def test_a_sigkill_at_any_point_of_folding_the_log_leaves_a_whole_state(tmp_path, monkeypatch):
    """The fold is: write state.tmp, rename it over state.json, truncate state.log. Each state the files
    can be left in by a kill between (or during) those steps reads as the whole state."""
    monkeypatch.setattr(sweep_state, "STALE_S", 1e9)
    live = tmp_path / "live"
    live.mkdir()
    s = SweepState(live / STATE_FILE)
    _events(s, 5, 40)
    whole = read_state(live)
    before = tmp_path / "before"
    shutil.copytree(live, before)
    s.snapshot()
    new_snapshot = (live / STATE_FILE).read_bytes()
    log = log_path(before / STATE_FILE).read_bytes()
    assert log and not log_path(live / STATE_FILE).read_bytes()

    def left(name, snapshot, log_bytes, tmp=None):
        d = tmp_path / name
        d.mkdir()
        (d / STATE_FILE).write_bytes(snapshot)
        log_path(d / STATE_FILE).write_bytes(log_bytes)
        if tmp is not None:
            (d / "state.tmp").write_bytes(tmp)
        return d

    old_snapshot = (before / STATE_FILE).read_bytes()
    for d in (left("tmp-half-written", old_snapshot, log, tmp=new_snapshot[: len(new_snapshot) // 2]),
              left("tmp-written", old_snapshot, log, tmp=new_snapshot),
              left("renamed-log-not-truncated", new_snapshot, log),
              left("log-truncated", new_snapshot, b"")):
        assert read_state(d) == whole, d.name
        resumed = SweepState(d / STATE_FILE)
        _events(resumed, 5, 4, start=40)  # and a resumed driver carries on from it
        assert read_state(d) == resumed.data, d.name


def test_the_bytes_a_save_writes_do_not_grow_with_the_sweep(tmp_path, monkeypatch):
    """Amortised over the folds, an event writes about its own line: the same with 10 trials as with
    2,000 (format 1 rewrote every trial's record on every event)."""
    monkeypatch.setattr(sweep_state, "STALE_S", 1e9)
    per_event = {}
    for n in (10, 2000):
        s = SweepState(tmp_path / f"s{n}.json")
        s.data["trials"] = {str(k): _rec(k, epochs=5) for k in range(n)}
        s.save()
        start, lines = s.bytes_written, []
        for i in range(600):
            rec = s.trials[str(i % n)]
            rec["metrics"]["val_robust_acc"] = i / 600
            before = s.bytes_written
            s.save(trials=[rec])
            lines.append(s.bytes_written - before)
        per_event[n] = (s.bytes_written - start) / 600
        assert per_event[n] <= 3 * min(lines), (n, per_event[n], min(lines))
    snapshot_2000 = (tmp_path / "s2000.json").stat().st_size
    assert per_event[2000] < snapshot_2000 / 100


def test_an_ended_record_its_owner_calls_settled_is_packed_and_reads_back_whole(tmp_path):
    s = SweepState(tmp_path / STATE_FILE)
    recs = {str(n): _rec(n) for n in range(200)}
    for n, r in enumerate(recs.values()):
        r["status"] = "FINISHED" if n < 150 else "RUNNING"
        s.trials[str(n)] = r
    s.settled = lambda rec: rec["trial"] != 7  # trial 7: still owed to MLflow, say
    s.save()
    assert s.trials.packed() == 149  # ended and settled: packed; 7 (not settled) and the running ones stay dicts
    assert s.trials.holds("7", recs["7"]) and s.trials.holds("150", recs["150"]) and not s.trials.holds("3", recs["3"])
    packed = [v for v in s.trials._recs.values() if isinstance(v, bytes)]
    assert sum(map(len, packed)) < sum(len(json.dumps(recs[str(n)])) for n in range(150) if n != 7) / 4
    assert dict(s.trials.items()) == recs and list(s.trials.values()) == list(recs.values()) and s.trials == recs
    assert [r["trial"] for r in s.unfinished()] == list(range(150, 200))
    assert read_state(tmp_path)["trials"] == recs  # the snapshot holds every record, packed or not
    # a change made through records[key] unpacks the record for good, and is saved
    s.trials["3"]["pending_tags"]["pareto_optimal"] = "true"
    s.save(trials=["3"])
    assert read_state(tmp_path)["trials"]["3"]["pending_tags"] == {"pareto_optimal": "true"}
    s.save()  # the next snapshot packs it again, with its change
    assert not s.trials.holds("3", recs["3"]) and s.trials.view("3")["pending_tags"] == {"pareto_optimal": "true"}
    again = SweepState(tmp_path / STATE_FILE)  # a resumed driver
    assert again.trials == s.trials and again.trials.packed() == 0  # packed again once its MLflow sync says so


def test_a_packed_record_saved_by_its_old_dict_is_not_taken_for_another(tmp_path):
    s = SweepState(tmp_path / STATE_FILE)
    old = s.trials["0"] = dict(_rec(0), status="FINISHED")
    s.settled = lambda rec: True
    s.save()
    assert s.trials.packed() == 1 and s._key(old) is None  # a stale copy names no record: nothing is saved for it
    assert s._key(s.trials["0"]) == "0"
