"""SQLite stores (MLflow's default ``mlflow.db``, a sweep's SQLite study ``optuna.db``) in write-ahead-log mode.

In SQLite's default rollback-journal mode every commit syncs the journal and the database file; the sweep driver
commits several times per trial (MLflow's run, its batch and end; Optuna's ask, each sampled parameter, tell), and
SQLite's commits were the largest part of its main thread at 10,000 trials (``bench/scale.py``). In WAL mode a
commit appends to ``<file>-wal`` and syncs once, with the same durability (every commit is synced; a killed
driver loses nothing committed), and readers (``raysweep ui``, optuna-dashboard) are never blocked by the writer.
The mode is kept in the file, so it is set once; readers need nothing. WAL needs a local filesystem (shared memory
beside the file): ``RAYSWEEP_SQLITE_WAL=0`` keeps the rollback journal, for a store on NFS."""

import os
import sqlite3
from pathlib import Path
from typing import Optional


def sqlite_path(url: str) -> Optional[Path]:
    """The file of a ``sqlite:///`` URL, or None (another store, in memory, or a storage object)."""
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def write_ahead(url: str) -> bool:
    """Puts the SQLite file of ``url`` in WAL mode (made if missing); True when it is in WAL mode."""
    path = sqlite_path(url)
    if path is None or os.environ.get("RAYSWEEP_SQLITE_WAL", "1") == "0":
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=30)
    try:
        return con.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
    except sqlite3.OperationalError:  # a filesystem that cannot hold WAL: the store works as before
        return False
    finally:
        con.close()
