"""Where a sweep's Optuna study is kept: an append-only journal beside the sweep (``optuna.journal``).

Optuna's journal storage appends one line per operation (a trial asked, each of its parameters, its values) and
keeps the study in memory, so the driver's ask + tell costs a few milliseconds instead of tens on SQLite, where every
operation is a transaction over several tables (``bench/optuna_cost.py``); at a trial every fraction of a second,
that was a third of the driver's CPU per trial (``bench/scale.py``). A resume replays the file; optuna-dashboard
opens it by its path.

Each append is one ``write`` to the file, not followed by ``fsync`` as Optuna's own file backend does: a killed
driver loses nothing (what was written is the kernel's), as with the sweep's ``state.log``; what a power cut may
lose is the last appends, which a resume treats as a driver killed a moment earlier. Optuna's fsync per operation
(~8 per trial) was a tenth of the driver's main thread at 10,000 trials.

A sweep that already has an SQLite study (``optuna.db``) keeps it, so it resumes as it began.

Optuna guards the file with a lock file per append; its stock locks are freed by a grace period when their holder
was killed (30 s of waiting for every resume after ``kill -9``), so the lock here is ``flock``, which the kernel
frees with its process."""

import fcntl
import json
import os
from pathlib import Path
from typing import Any, Dict, List

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


JOURNAL = "optuna.journal"
SQLITE = "optuna.db"


def study_storage(sweep_dir: Path) -> Any:
    """The storage of the sweep in ``sweep_dir``: its SQLite URL when it has ``optuna.db``, else its journal."""
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / SQLITE).is_file():
        return f"sqlite:///{sweep_dir / SQLITE}"
    path = sweep_dir / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    return JournalStorage(JournalFile(str(path)))


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend (it reads the file), appending under a ``FlockLock`` without an fsync per
    operation (see above)."""

    def __init__(self, path: str):
        self.path, self.lock = path, FlockLock(path)
        super().__init__(path, lock_obj=self.lock)

    def append_logs(self, logs: List[Dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self.lock.acquire()
        try:
            with open(self.path, "ab") as fh:
                fh.write(data)  # one write: a kill leaves at most a torn last line (cut by drop_torn_tail)
        finally:
            self.lock.release()


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
        if self._fd is None:  # opened once: the lock is taken for every append
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __getstate__(self):  # a storage pickled with its study (Ray) carries no open file
        return {"path": self.path, "_fd": None}
