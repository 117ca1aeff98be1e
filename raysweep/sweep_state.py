"""The sweep's own record, ``<sweep dir>/state.json`` (+ ``state.log``): its one writer and its one reader.

Keyed by Optuna trial number, it holds each trial's config, per-epoch metrics, status,
checkpoint and MLflow run id, so that (1) a resumed sweep appends to the same MLflow runs
instead of duplicating them, (2) MLflow can be re-synced from it after an outage, and (3)
``resume``, ``pareto``, ``evaluate`` and the reproduction tooling read a sweep without MLflow.

``format`` numbers its layout. A reader meets only layouts it knows (``READABLE``); an older
or newer file is a one-line error saying which raysweep reads it, never a wrong reading.
Files written before the number existed have the layout of format 1 and no ``format`` key.

Format 2 (incremental): ``state.json`` is a snapshot, and ``state.log`` holds JSON lines of what
changed since it (whole trial records, top-level keys, items appended to a list), each numbered
(``seq``); ``read_state`` replays the lines numbered after the snapshot's ``log_seq``. Format 1
rewrote the whole file on every event: at 1,000 trials 3 MB per event, 40% of the driver. A save
now costs the records it names; the log is folded into a new snapshot (write ``.tmp``, rename,
then truncate the log: a SIGKILL at any point leaves either the old snapshot with the whole log,
or the new one with lines it already holds, which replay skips) once the log outgrows the
snapshot (so a snapshot's cost is paid for by as many bytes of log: amortised O(change)) or,
when the log is not empty, every ``STALE_S`` seconds stretched to keep snapshots under ~2% of
the driver, so the plain ``state.json`` that scripts and tests read is never far behind. A line
torn by a kill is ignored on read and folded away by the next writer's first save.

In a running driver an ended trial's record, once nothing is left to do with it (``SweepState.settled``: MLflow
has all of it), is held as its JSON compressed against the first such record (``TrialRecords``): the record took
0.6 KB of the driver's memory per trial instead of 6.8 KB at 1,000 trials (``bench/scale.py --memory``), and a
snapshot copies a packed record's bytes instead of encoding it again.

Why not one file per trial: a sweep's top-level keys (clock, hypervolume curve, drivers) change
with trials, so it would still need a shared file and a rule for which is newer, and 10,000 files
per sweep are slow to list and copy to object storage. Why not MLflow as the record: the record
must survive an MLflow outage (it is what re-syncs MLflow afterwards) and be read without a
server.
"""

import json
import os
import time
import zlib
from collections.abc import ItemsView, Mapping, MutableMapping, ValuesView
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .errors import UserError

STATE_FILE = "state.json"
LOG_SUFFIX = ".log"
FORMAT = 2
READABLE = (1, 2)
LOG_MIN_BYTES = 64 * 1024  # below this the log is never folded for its size (small sweeps: by time only)
STALE_S = 2.0  # the snapshot may lag the log by this long, at least
SNAPSHOT_SHARE = 0.02  # ...or by 1/SHARE times what the last snapshot cost, so snapshots take ~2% of the driver
_MISSING = object()
ENDED = ("FINISHED", "FAILED")


def check_format(data: Dict[str, Any], where) -> Dict[str, Any]:
    fmt = data.get("format", 1)
    if fmt not in READABLE:
        newer = isinstance(fmt, int) and fmt > FORMAT
        raise UserError(f"{where}: sweep state format {fmt!r}, this raysweep reads format "
                        f"{', '.join(map(str, READABLE))}: " + ("written by a newer raysweep; upgrade raysweep to read it"
                                                                  if newer else "written by an older raysweep; read it "
                                                                  "with that version, or start the sweep anew"))
    return data


def log_path(snapshot) -> Path:
    """The log beside a snapshot: ``state.json`` -> ``state.log``."""
    return Path(snapshot).with_suffix(LOG_SUFFIX)


def read_state(path) -> Dict[str, Any]:
    """A sweep's state (its ``state.json``, or the sweep directory holding it), format checked, with
    the changes logged since its snapshot applied."""
    f = Path(path)
    if f.is_dir():
        f = f / STATE_FILE
    return _read(f)[0]


def _read(f: Path) -> Tuple[Dict[str, Any], int]:
    """(state, number of the last log line in it)."""
    log = log_path(f)
    try:
        # the log before the snapshot: a snapshot read later is at least as new as the log's first
        # line, so a writer folding the log in between never opens a gap
        lines = log.read_bytes() if log.is_file() else b""
    except OSError:
        lines = b""
    if not f.is_file():
        raise UserError(f"{f}: no sweep state here (moved or deleted?)")
    try:
        data = json.loads(f.read_text())
    except ValueError as e:
        raise UserError(f"{f}: not valid JSON ({e})") from None
    check_format(data, f)
    seq = int(data.pop("log_seq", 0) or 0)
    if data.get("format", 1) >= 2:
        seq = _replay(data, lines, seq)
    return data, seq


def _replay(data: Dict[str, Any], lines: bytes, seq: int) -> int:
    for line in lines.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # torn by a kill mid-write: never acted on
        try:
            entry = json.loads(line)
        except ValueError:
            break
        n = entry.get("seq")
        if not isinstance(n, int) or n <= seq:
            continue  # already in the snapshot (a kill between its rename and the log's truncation)
        if n != seq + 1:
            break  # a gap (a copy mixing two generations): what follows cannot be applied in order
        _apply(data, entry)
        seq = n
    return seq


def _apply(data: Dict[str, Any], entry: Dict[str, Any]) -> None:
    data.setdefault("trials", {}).update(entry.get("trials", {}))
    for path, value in entry.get("set", {}).items():
        parent, key = _parent(data, path)
        parent[key] = value
    for path, items in entry.get("extend", {}).items():
        parent, key = _parent(data, path)
        parent.setdefault(key, []).extend(items)


def _parent(data: Dict[str, Any], path: str) -> Tuple[Dict[str, Any], str]:
    *up, key = path.split(".")
    for k in up:
        data = data.setdefault(k, {})
    return data, key


def _get(data: Dict[str, Any], path: str):
    for k in path.split("."):
        if not isinstance(data, Mapping) or k not in data:
            return _MISSING
        data = data[k]
    return data


def sweep_dirs(exp_dir) -> List[Path]:
    """An experiment's sweeps that have a state, oldest first (sweep ids sort by start time)."""
    exp_dir = Path(exp_dir)
    return sorted(p for p in exp_dir.glob("sweep-*") if (p / STATE_FILE).is_file()) if exp_dir.is_dir() else []


def latest_sweep_dir(exp_dir) -> Optional[Path]:
    dirs = sweep_dirs(exp_dir)
    return dirs[-1] if dirs else None


def latest_state(runs_root, experiment: str) -> Optional[Dict[str, Any]]:
    """The newest sweep's state of ``experiment`` under ``runs_root``, with ``_sweep_dir`` added."""
    d = latest_sweep_dir(Path(runs_root) / experiment)
    if d is None:
        return None
    return dict(read_state(d), _sweep_dir=str(d))


def _never(rec: Dict[str, Any]) -> bool:
    return False


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class TrialRecords(MutableMapping):
    """A running sweep's trial records by key: each a dict, or, once a snapshot has packed it (``json_of`` with the
    record ``settled``), its JSON compressed against the first record packed (records of one sweep share most of
    their text: ~0.3 KB of bytes for the ~2.3 KB of JSON of a one-epoch trial).
    ``records[key]`` (and ``get``) unpacks a record for good, so a change made through it is kept; iterating
    (``values``, ``items``) reads a packed record as a fresh copy, so change a record only through ``records[key]``."""

    def __init__(self, recs=None):
        self._recs: Dict[str, Any] = dict(recs or {})  # a dict, or bytes (packed)
        self._zdict: Optional[bytes] = None

    def __getitem__(self, key):
        rec = self._recs[key]
        if isinstance(rec, bytes):
            rec = self._recs[key] = self._unpack(rec)
        return rec

    def __setitem__(self, key, rec) -> None:
        self._recs[key] = rec

    def __delitem__(self, key) -> None:
        del self._recs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._recs)

    def __len__(self) -> int:
        return len(self._recs)

    def values(self):
        return _Values(self)

    def items(self):
        return _Items(self)

    def view(self, key) -> Optional[Dict[str, Any]]:
        """The record without unpacking it for good: the dict itself, or a copy of a packed one; None if absent."""
        rec = self._recs.get(key)
        return self._unpack(rec) if isinstance(rec, bytes) else rec

    def holds(self, key, rec) -> bool:
        """Whether ``rec`` (a dict) is the record kept under ``key``."""
        return self._recs.get(key) is rec

    def live(self) -> Dict[str, Dict[str, Any]]:
        """The records held as dicts (every record not packed), by key."""
        return {k: r for k, r in self._recs.items() if not isinstance(r, bytes)}

    def packed(self) -> int:
        return sum(isinstance(r, bytes) for r in self._recs.values())

    def json_of(self, key, settled: Callable[[Dict[str, Any]], bool] = _never) -> bytes:
        """The record's JSON; a dict record that is ``settled`` is packed on the way."""
        rec = self._recs[key]
        if isinstance(rec, bytes):
            return self._inflate(rec)
        body = _dumps(rec)
        if settled(rec):
            if self._zdict is None:
                self._zdict = body
            c = zlib.compressobj(1, zdict=self._zdict)
            self._recs[key] = c.compress(body) + c.flush()
        return body

    def _inflate(self, blob: bytes) -> bytes:
        d = zlib.decompressobj(zdict=self._zdict)
        return d.decompress(blob) + d.flush()

    def _unpack(self, blob: bytes) -> Dict[str, Any]:
        return json.loads(self._inflate(blob))


class _Values(ValuesView):
    def __iter__(self):
        for key in self._mapping:
            yield self._mapping.view(key)


class _Items(ItemsView):
    def __iter__(self):
        for key in self._mapping:
            yield key, self._mapping.view(key)


class SweepState:
    """The state of a running sweep, saved after every event: a line of what changed (``save`` with
    what changed named), folded into a whole snapshot (atomic replace) from time to time."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.log = log_path(self.path)
        self.data: Dict[str, Any] = {"format": FORMAT, "parent_run_id": None, "trials": {}}
        self._seq = 0
        if self.path.is_file():
            self.data, self._seq = _read(self.path)
            self.data["format"] = FORMAT  # a readable older layout is saved as this one
        self.trials  # noqa: B018 - held as TrialRecords from here on
        # which ended records may be packed (TrialRecords) from the next snapshot on; the MLflow sync sets it
        self.settled: Callable[[Dict[str, Any]], bool] = _never
        # this writer's first save is a snapshot: it folds in a log another writer left (maybe torn at
        # its end, which an append would glue to its own line) and rewrites an older layout as this one
        self._snapshot_due = True
        self._log_bytes = 0
        self._snapshot_bytes = 0
        self._snapshot_at = time.monotonic()
        self._snapshot_cost_s = 0.0
        self.bytes_written = 0  # by this writer, snapshots and log lines (what a benchmark or test reads)
        self._clock = None  # (sweep_wall_s before this run, its start)

    def start_clock(self) -> None:
        """From now on every save brings ``sweep_wall_s`` (trials' wall over all runs of the sweep)
        up to date, so a driver killed mid-sweep loses at most the time since its last event."""
        self._clock = (float(self.data.get("sweep_wall_s", 0.0)), time.time())

    def stop_clock(self) -> float:
        """Ends this run's share of ``sweep_wall_s`` (and saves); returns that share."""
        base, t0 = self._clock
        self.data["sweep_wall_s"] = base + (time.time() - t0)
        self._clock = None
        self.save()
        return self.data["sweep_wall_s"] - base

    def _tick(self) -> None:
        if self._clock is not None:
            self.data["sweep_wall_s"] = self._clock[0] + (time.time() - self._clock[1])

    def save(self, trials: Iterable = (), keys: Iterable[str] = (), extended: Optional[Dict[str, list]] = None) -> None:
        """Records a change, costing what changed: ``trials``, the records (or their keys) that changed;
        ``keys``, top-level keys (dotted for nested ones, e.g. ``hypervolume.logged``) set; ``extended``,
        ``{dotted key: the items just appended to that list}``. With nothing named, a whole snapshot
        (a driver's start and end)."""
        trials, keys = list(trials), list(keys)
        self._tick()
        if self._snapshot_due or not (trials or keys or extended):
            self.snapshot()
            return
        entry: Dict[str, Any] = {"seq": self._seq + 1}
        if trials:
            entry["trials"] = {k: self.trials[k] for k in map(self._key, trials) if k is not None}
        values = {k: _get(self.data, k) for k in keys}
        if self._clock is not None:
            values["sweep_wall_s"] = self.data["sweep_wall_s"]
        values = {k: v for k, v in values.items() if v is not _MISSING}
        if values:
            entry["set"] = values
        if extended:
            entry["extend"] = {k: list(v) for k, v in extended.items()}
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        with open(self.log, "ab") as fh:
            fh.write(line)  # one write: a kill leaves at most a torn last line
        self._seq += 1
        self._log_bytes += len(line)
        self.bytes_written += len(line)
        if self._fold_due():
            self.snapshot()

    def _fold_due(self) -> bool:
        if self._log_bytes > max(LOG_MIN_BYTES, self._snapshot_bytes):
            return True  # the log outgrew the snapshot: rewriting it costs no more than the log already did
        return time.monotonic() - self._snapshot_at > max(STALE_S, self._snapshot_cost_s / SNAPSHOT_SHARE)

    def snapshot(self) -> None:
        """The whole state to ``state.json`` (atomic replace), then the log emptied: see the module's
        docstring for why that order is safe under SIGKILL."""
        t0 = time.monotonic()
        self._tick()
        recs = self.trials
        top = json.dumps({**{k: v for k, v in self.data.items() if k != "trials"}, "format": FORMAT, "log_seq": self._seq},
                         separators=(",", ":"), sort_keys=True).encode()
        settled = lambda rec: rec.get("status") in ENDED and self.settled(rec)  # noqa: E731 - packs only ended ones
        trials = b",".join(_dumps(k) + b":" + recs.json_of(k, settled) for k in list(recs))
        body = top[:-1] + b',"trials":{' + trials + b"}}"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, self.path)  # atomic: a killed driver never leaves half a file
        if self.log.exists():
            os.truncate(self.log, 0)  # its lines are all numbered <= log_seq now: replay would skip them
        self._snapshot_due = False
        self._log_bytes = 0
        self._snapshot_bytes = len(body)
        self.bytes_written += len(body)
        self._snapshot_at = time.monotonic()
        self._snapshot_cost_s = self._snapshot_at - t0

    def _key(self, trial) -> Optional[str]:
        """A trial's key from its key or its record (whose ``trial`` number is its key but for a trial
        Tune ran without an Optuna number); None for a record that is not in the state."""
        if not isinstance(trial, dict):
            return str(trial) if str(trial) in self.trials else None
        key = str(trial.get("trial"))
        if self.trials.holds(key, trial):
            return key
        return next((k for k, r in self.trials.live().items() if r is trial), None)

    @property
    def trials(self) -> TrialRecords:
        recs = self.data.get("trials")
        if not isinstance(recs, TrialRecords):  # loaded, or set whole (a test, a tool)
            recs = self.data["trials"] = TrialRecords(recs)
        return recs

    def unfinished(self) -> List[Dict[str, Any]]:
        return [r for r in self.trials.live().values() if r["status"] not in ENDED]  # a packed record has ended
