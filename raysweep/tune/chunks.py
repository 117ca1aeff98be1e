"""A long sweep as consecutive Tune experiments, so that the driver's memory does not grow with the sweep.

Tune keeps every Trial object (its config, last result, cached JSON, storage context; ~21 KB each with raysweep's
trials, ``bench/scale.py --memory``) until its experiment ends, and offers no way to let ended trials go. raysweep
needs none of them once a trial has ended (its record is the sweep's state), so a sweep of more trials than
``chunk_size()`` runs as several experiments of at most that many trials, one after the other, with the same
searcher, callbacks and record, exactly as a resumed sweep starts a new experiment where the last one stopped.

The price is a drain at each boundary: the experiment's last trials finish while the slots they free stay empty
until the next experiment starts, about half a trial per slot per chunk. At the default size and two slots that is
0.05% of the slot time; a sweep with hundreds of slots and long trials may want larger chunks (memory is ~36 KB of
driver RSS per trial of a chunk)."""

import os
from typing import List

from ..errors import UserError

ENV = "RAYSWEEP_TUNE_CHUNK"
DEFAULT = 2000


def chunk_size() -> int:
    """Trials per Tune experiment: ``$RAYSWEEP_TUNE_CHUNK`` or the default; a one-line error for anything but a
    whole number >= 1 (checked before the sweep writes anything)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"${ENV}: {raw!r} is not a number of trials; allowed: a whole number >= 1 (default {DEFAULT})")
    return n


def plan_chunks(to_run: int, size: int) -> List[int]:
    """The number of trials each consecutive Tune experiment runs, ``to_run`` in all."""
    full, rest = divmod(max(0, to_run), size)
    return [size] * full + ([rest] if rest else [])
