"""The sweep's own record, ``<sweep dir>/state.json``: its one writer and its one reader.

Keyed by Optuna trial number, it holds each trial's config, per-epoch metrics, status,
checkpoint and MLflow run id, so that (1) a resumed sweep appends to the same MLflow runs
instead of duplicating them, (2) MLflow can be re-synced from it after an outage, and (3)
``resume``, ``pareto``, ``evaluate`` and the reproduction tooling read a sweep without MLflow.

``format`` numbers its layout. A reader meets only layouts it knows (``READABLE``); an older
or newer file is a one-line error saying which raysweep reads it, never a wrong reading.
Files written before the number existed have the layout of format 1 and no ``format`` key.
"""

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import UserError

STATE_FILE = "state.json"
FORMAT = 1
READABLE = (1,)


def check_format(data: Dict[str, Any], where) -> Dict[str, Any]:
    fmt = data.get("format", 1)
    if fmt not in READABLE:
        newer = isinstance(fmt, int) and fmt > FORMAT
        raise UserError(f"{where}: sweep state format {fmt!r}, this raysweep reads format "
                        f"{', '.join(map(str, READABLE))}: " + ("written by a newer raysweep; upgrade raysweep to read it"
                                                                  if newer else "written by an older raysweep; read it "
                                                                  "with that version, or start the sweep anew"))
    return data


def read_state(path) -> Dict[str, Any]:
    """A ``state.json`` (or the sweep directory holding it), format checked."""
    f = Path(path)
    if f.is_dir():
        f = f / STATE_FILE
    if not f.is_file():
        raise UserError(f"{f}: no sweep state here (moved or deleted?)")
    try:
        data = json.loads(f.read_text())
    except ValueError as e:
        raise UserError(f"{f}: not valid JSON ({e})") from None
    return check_format(data, f)


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


class SweepState:
    """The state of a running sweep, saved after every event (atomic replace)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: Dict[str, Any] = {"format": FORMAT, "parent_run_id": None, "trials": {}}
        if self.path.is_file():
            self.data = read_state(self.path)
            self.data["format"] = FORMAT  # a readable older layout is saved as this one
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

    def save(self):
        if self._clock is not None:
            self.data["sweep_wall_s"] = self._clock[0] + (time.time() - self._clock[1])
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a killed driver never leaves half a file

    @property
    def trials(self) -> Dict[str, Dict[str, Any]]:
        return self.data.setdefault("trials", {})

    def unfinished(self) -> List[Dict[str, Any]]:
        return [r for r in self.trials.values() if r["status"] not in ("FINISHED", "FAILED")]
