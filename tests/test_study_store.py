"""The sweep's Optuna study in a journal beside it: reopened by a resume, a torn last line cut, the lock freed by a
killed holder, an older sweep's SQLite study kept. Real Optuna, real files, real processes."""

import os
import signal
import subprocess
import sys
import threading
import time

import optuna

from raysweep.tune.study_store import JOURNAL, FlockLock, complete_lines, study_storage


def _study(storage):
    return optuna.create_study(study_name="s", storage=storage, load_if_exists=True, directions=["minimize", "maximize"],
                               sampler=optuna.samplers.RandomSampler(seed=0))


def _tell(study, n):
    for _ in range(n):
        t = study.ask()
        study.tell(t, [t.suggest_float("lr", 1e-3, 1e-1, log=True), t.suggest_int("epochs", 1, 4)])


def test_a_new_sweep_keeps_its_study_in_a_journal_that_a_resume_reads(tmp_path):
    _tell(_study(study_storage(tmp_path)), 3)
    assert (tmp_path / JOURNAL).is_file() and not (tmp_path / "optuna.db").exists()
    again = _study(study_storage(tmp_path))  # a resumed driver: a new storage replays the file
    assert [t.state for t in again.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    _tell(again, 1)
    assert [t.number for t in _study(study_storage(tmp_path)).trials] == [0, 1, 2, 3]
    # Optuna's own file backend (what optuna-dashboard opens for a path) reads it too
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    stock = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(tmp_path / JOURNAL))))
    assert [t.values for t in stock.trials] == [t.values for t in again.trials]


def test_a_sweep_that_began_on_sqlite_keeps_its_study_there(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _tell(_study(url), 2)
    assert study_storage(tmp_path) == url
    assert len(_study(study_storage(tmp_path)).trials) == 2 and not (tmp_path / JOURNAL).exists()


def test_a_torn_last_line_is_cut_before_the_next_append(tmp_path):
    _tell(_study(study_storage(tmp_path)), 2)
    path = tmp_path / JOURNAL
    whole = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"op_code":4,"worker_id":"x","study_id":0,"datetime_start":"20')  # an append cut short
    assert complete_lines(path) == whole
    storage = study_storage(tmp_path)
    assert path.read_bytes() == whole
    _tell(_study(storage), 1)  # appends after the cut: the journal stays readable
    assert [t.state for t in _study(study_storage(tmp_path)).trials] == [optuna.trial.TrialState.COMPLETE] * 3


def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path):
    journal = str(tmp_path / JOURNAL)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from raysweep.tune.study_store import FlockLock; "
        f"FlockLock({journal!r}).acquire(); print('held', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FlockLock(journal)
        got = threading.Event()
        t = threading.Thread(target=lambda: lock.acquire() and got.set(), daemon=True)
        t.start()
        assert not got.wait(0.5), "the lock is exclusive while its holder lives"
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(10)
        t0 = time.monotonic()
        assert got.wait(5), "the kernel frees a killed holder's lock"
        assert time.monotonic() - t0 < 5
        lock.release()
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait(10)
