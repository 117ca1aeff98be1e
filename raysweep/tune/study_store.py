"""Where a sweep's Optuna study is kept: an append-only journal beside the sweep (``optuna.journal``).

Optuna's journal storage appends one line per operation (a trial asked, its parameters, its values) and keeps the
study in memory, so the driver's ask + tell costs ~4 ms instead of ~35 ms on SQLite, where every operation is a
transaction over several tables (``bench/optuna_cost.py``); at a trial every fraction of a second, that was a third
of the driver's CPU per trial (``bench/scale.py``). Every append is synced, so a killed driver loses nothing told;
a resume replays the file. optuna-dashboard opens it by its path.

A sweep that already has an SQLite study (``optuna.db``) keeps it, so it resumes as it began.

Optuna guards the file with a lock file per append; its stock locks are freed by a grace period when their holder
was killed (30 s of waiting for every resume after ``kill -9``), so the lock here is ``flock``, which the kernel
frees with its process."""

import fcntl
import os
from pathlib import Path
from typing import Any


JOURNAL = "optuna.journal"
SQLITE = "optuna.db"


def study_storage(sweep_dir: Path) -> Any:
    """The storage of the sweep in ``sweep_dir``: its SQLite URL when it has ``optuna.db``, else its journal."""
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / SQLITE).is_file():
        return f"sqlite:///{sweep_dir / SQLITE}"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = sweep_dir / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=FlockLock(str(path))))


def complete_lines(path: Path) -> bytes:
    """The journal up to its last complete line: what a copy may hold while the driver appends."""
    data = Path(path).read_bytes()
    return data[:data.rfind(b"\n") + 1]


def drop_torn_tail(path: Path) -> None:
    """Cuts a last line without its newline (an append cut short by a crash or a full disk): Optuna skips such a
    line when it is last, but the next append would glue onto it and make the journal unreadable."""
    if not path.is_file():
        return
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        keep = len(complete_lines(path))
        fh.truncate(keep)


class FlockLock:
    """Optuna's journal lock (it calls ``acquire`` and ``release``) as an exclusive ``flock`` on ``<journal>.lock``:
    freed by the kernel when its holder dies; across processes on one machine, and on NFS clients that map it to
    POSIX locks."""

    def __init__(self, journal_path: str):
        self.path = journal_path + ".lock"
        self._fd = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __getstate__(self):  # a storage pickled with its study (Ray) carries no open file
        return {"path": self.path, "_fd": None}
