"""A sweep's own files in object storage, so that the sweep outlives the disk of the node that ran
its driver (a cluster's head).

With ``storage_path`` / ``$RAYSWEEP_STORAGE_PATH`` an object-store URI, Ray already keeps the
trials' checkpoints and Tune's experiment state there. The sweep's own record (``state.json`` and
``state.log``: MLflow run ids and every trial's metrics; ``optuna.journal``: the study; the YAML that ran; the front and its
plots) is written on the driver's local disk, where SQLite and atomic renames work, and copied to
``<storage>/<experiment>/<sweep-id>/sweep/`` as the sweep goes: when a trial starts (its Optuna
trial exists by then; before the trial can report) and when it ends, at most every ``every_s`` seconds while trials
report, and once more at the end. A trial's MLflow run is made at the next MLflow flush, so a copy may lack
its id: the resumed driver then finds the run by the trial's number before making one (``tracking/sync.py``).
``raysweep resume`` on a machine that has no local copy (a new head) fetches it from there first.

What a copy can miss: the epochs reported in the last ``every_s`` seconds before a head is lost. Their
trials restart from their last checkpoint (in the bucket, always current), under the same Optuna trial
and MLflow run; epochs the lost head had already logged to MLflow may then be logged a second time at
the same step."""

import fnmatch
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

from ray.tune import Callback

from ..sweep_state import STATE_FILE, log_path
from . import storage
from .study_store import JOURNAL, SQLITE, complete_lines

STATE_LOG = log_path(STATE_FILE).name

MIRRORED = ("state.json", "state.log", JOURNAL, SQLITE, "sweep.yaml", "sweep-resumed-*.yaml", "pareto.csv", "pareto.png",
            "hypervolume.png", "importance.json", "importance.png")
REMOTE_DIR = "sweep"


def remote_dir(ray_storage_uri: str) -> str:
    """Where a sweep whose Ray storage is ``ray_storage_uri`` keeps its own files."""
    return storage.join(ray_storage_uri, REMOTE_DIR)


class SweepMirror:
    """Copies the sweep directory's files to ``remote``. Never raises: an object store that does
    not answer delays the copy (the error is kept in ``errors``), it does not stop the sweep.

    ``push`` copies now, on the caller's thread; ``request`` asks a background thread to, so the
    sweep's event loop never waits on the store (an unreachable endpoint costs the S3 client ~13 s
    of retries per object)."""

    def __init__(self, local_dir: Path, remote: str, every_s: float = 15.0, clock=time.monotonic):
        self.local_dir, self.remote, self.every_s, self.clock = Path(local_dir), remote, every_s, clock
        self.last_push = -float("inf")
        self.sent = {}  # name -> (size, mtime_ns) of the copy last sent
        self.errors: List[str] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self.last_error = -float("inf")

    RETRY_AFTER_S = 60.0

    def __getstate__(self):
        # Tune pickles its callbacks with its experiment state: the thread and its locks stay here
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_wake", "_thread")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._wake, self._thread = threading.Lock(), threading.Event(), None

    def healthy(self) -> bool:
        """No copy failed in the last ``RETRY_AFTER_S`` seconds."""
        return self.clock() - self.last_error >= self.RETRY_AFTER_S

    def request(self, force: bool = False) -> None:
        """A copy soon, on the mirror's thread (throttled to ``every_s`` unless ``force``)."""
        if not force and self.clock() - self.last_push < self.every_s:
            return
        self.last_push = self.clock()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="raysweep-storage-copy", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait()
            self._wake.clear()
            if not self._closing:
                self.push(force=True)

    def close(self) -> int:
        """Stop the thread (after the copy it is making) and copy what is left, on this thread."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        return self.push(force=True)

    def push(self, force: bool = False) -> int:
        """Send the files that changed since the last push; returns how many went."""
        with self._lock:
            if not force and self.clock() - self.last_push < self.every_s:
                return 0
            self.last_push = self.clock()
            return self._send_changed()

    def _send_changed(self) -> int:
        # The state's log is read before its snapshot and sent only after the snapshot got there: the
        # copy then pairs a snapshot with a log no newer than it was, which replays without a gap even
        # if the driver folded the log into a new snapshot in between (sweep_state.py).
        log = self.local_dir / STATE_LOG
        log_copy = (_stat_key(log), log.read_bytes()) if log.is_file() else None
        sent, failed = 0, set()
        for path in self._files():
            if path.name == STATE_LOG:
                continue
            if self._send(path.name, _stat_key(path), lambda: _snapshot(path)):
                sent += 1
            elif self.sent.get(path.name) != _stat_key(path):
                failed.add(path.name)
        if log_copy is not None and STATE_FILE not in failed and self._send(STATE_LOG, log_copy[0], lambda: log_copy[1]):
            sent += 1
        return sent

    def _send(self, name: str, key, read) -> bool:
        """Copies one file unless the copy sent last has the same size and mtime; True when it went."""
        if self.sent.get(name) == key:
            return False
        try:
            storage.write_bytes(storage.join(self.remote, name), read())
        except Exception as e:  # noqa: BLE001 - any store error: keep going, retry at the next push
            self.errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            self.last_error = self.clock()
            return False
        self.sent[name] = key
        return True

    def _files(self) -> List[Path]:
        if not self.local_dir.is_dir():
            return []
        return sorted(p for p in self.local_dir.iterdir()
                      if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in MIRRORED))


def _stat_key(path: Path):
    """What says a file changed; for a SQLite file in WAL mode its log too (commits land there first)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (st.st_size, st.st_mtime_ns)
    if path.suffix == ".db":
        try:
            wal = path.with_name(path.name + "-wal").stat()
            key += (wal.st_size, wal.st_mtime_ns)
        except FileNotFoundError:
            pass
    return key


def _snapshot(path: Path) -> bytes:
    """The file's bytes, consistent while the driver writes: the study's journal up to its last complete line, an
    SQLite study through SQLite's backup API."""
    if path.name == JOURNAL:
        return complete_lines(path)
    if path.suffix != ".db":
        return path.read_bytes()
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / path.name
        src, dst = sqlite3.connect(str(path)), sqlite3.connect(str(copy))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return copy.read_bytes()


def fetch(remote: str, local_dir: Path) -> bool:
    """Copy a sweep's files from ``remote`` into ``local_dir`` (created); False when there is no
    ``state.json`` there."""
    names = [n for n in storage.list_names(remote) if any(fnmatch.fnmatch(n, pat) for pat in MIRRORED)]
    if "state.json" not in names:
        return False
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = storage.read_bytes(storage.join(remote, name))
        if data is not None:
            for side in ("-wal", "-shm"):  # a WAL left beside an older copy would be replayed into this one
                (local_dir / (name + side)).unlink(missing_ok=True)
            storage.write_bytes(str(local_dir / name), data)
    return True


def latest_remote_sweep(experiment_uri: str) -> Optional[str]:
    """The newest ``sweep-*`` under an experiment's prefix that holds a copied ``state.json``."""
    for name in reversed(storage.list_names(experiment_uri)):
        if name.startswith("sweep-") and storage.read_bytes(storage.join(experiment_uri, name, REMOTE_DIR, "state.json")):
            return name
    return None


class MirrorToStorage(Callback):
    """A Tune callback that copies when a trial starts or ends and, throttled, while trials report. It
    must come after the callback that records trials (the recorder), so each copy holds the event."""

    def __init__(self, mirror: SweepMirror):
        self.mirror = mirror

    def on_trial_start(self, iteration, trials, trial, **info):
        # on this thread, before Tune goes on: the copy holds the trial's Optuna number before the trial
        # can report, so a head lost now never leaves an MLflow run whose trial the copy does not know
        # (unless the store was failing: then on the mirror's thread, not to stall the sweep)
        if self.mirror.healthy():
            self.mirror.push(force=True)
        else:
            self.mirror.request(force=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.mirror.request(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.mirror.request(force=True)

    def on_step_end(self, iteration, trials, **info):
        self.mirror.request()

