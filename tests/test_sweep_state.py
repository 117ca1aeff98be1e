"""state.json, the sweep's own record: written whole with its format number, read only in a layout the
reader knows (an older or newer file is a one-line exit-2 error from every command that reads it)."""

import json

import pytest

from raysweep.errors import UserError
from raysweep.sweep_state import FORMAT, STATE_FILE, SweepState, latest_state, read_state

from conftest import run_cli


def test_written_with_its_format_and_read_back(tmp_path):
    s = SweepState(tmp_path / STATE_FILE)
    s.trials["0"] = {"trial": 0, "status": "FINISHED"}
    s.save()
    assert json.loads((tmp_path / STATE_FILE).read_text())["format"] == FORMAT
    assert read_state(tmp_path)["trials"]["0"]["status"] == "FINISHED"
    assert not (tmp_path / "state.tmp").exists()  # replaced whole


def test_a_state_from_before_the_number_reads_as_format_1(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"parent_run_id": "p", "trials": {}}))
    assert read_state(tmp_path / STATE_FILE)["parent_run_id"] == "p"
    s = SweepState(tmp_path / STATE_FILE)
    s.save()
    assert json.loads((tmp_path / STATE_FILE).read_text())["format"] == 1


@pytest.mark.parametrize("fmt,says", [(FORMAT + 1, "written by a newer raysweep"), (0, "written by an older raysweep")])
def test_an_unknown_format_is_a_clear_error(tmp_path, fmt, says):
    (tmp_path / STATE_FILE).write_text(json.dumps({"format": fmt, "trials": {}}))
    with pytest.raises(UserError, match=f"sweep state format {fmt}, this raysweep reads format {FORMAT}: {says}"):
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
