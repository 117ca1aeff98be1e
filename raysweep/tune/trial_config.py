"""What a Tune trial's config carries: the Optuna trial number, the sampled point, the Ray Train run name, an
enqueued point's label, and the trial's full spec as one JSON string.

The spec travels as a string, not as a nested dict, because Tune deep-copies, flattens and JSON-encodes a trial's
config many times over (the trial, every result it reports, its experiment state) and keeps the copies for the
experiment's life: with the spec's ~40 nested settings that was ~30% of what Tune held per trial (29.9 against
20.9 KB, ``bench/scale.py --memory``); a string is one atomic value to all of it. Readers take either form, so a
config made by hand (tests, tools) may still give a dict."""

import json
from typing import Any, Dict


def pack(spec: Dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def spec_of(config: Dict[str, Any]) -> Dict[str, Any]:
    """The trial spec a Tune trial's config carries, as a dict."""
    spec = config.get("spec")
    if isinstance(spec, str):
        return json.loads(spec)
    return dict(spec or {})
