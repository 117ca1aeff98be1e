"""What a trial needs from the Ray cluster, and what the cluster can give: the nodes up now and,
on an autoscaling cluster, every node its autoscaler may add.

``ray.cluster_resources()`` shows only the nodes that are up. On a cluster whose GPU workers scale
from zero (``cluster.yaml``) that is a head with no GPU, so deciding from it would run every trial
on CPU, or refuse ``use_gpu: true``. The autoscaler's node types say what the cluster can become;
both of Ray's autoscalers (v1 and v2) read them from the autoscaling config that the head was
started with (``ray start --head --autoscaling-config=FILE``; the cluster launcher writes it to
``~/ray_bootstrap_config.yaml`` on the head, the file Ray Tune itself checks for an autoscaling
cluster). Where no such file is found (a fixed cluster, a local Ray) only the nodes up now count.
"""

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

AUTOSCALING_CONFIG_ENV = "RAYSWEEP_AUTOSCALING_CONFIG"
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"
HEAD_MARKER = "node:__internal_head__"

# ``sweep.max_concurrent: auto`` runs as many trials as the cluster holds at its largest, at most
# this many per sampler. TPE (Optuna 5's ``constant_liar``, on by default) scores every running
# trial as the worst value seen, so its points move away from each other; with more trials in
# flight than finished ones its model is mostly those guesses, and past ~16 it samples little
# better than random while each guess still costs a full trial. NSGA-II breeds a generation from
# the finished parents: more than a population in flight only samples the same parents again, so
# its cap is the population size. Random search uses no history: the cluster is its only limit.
AUTO_CONCURRENCY_CAP = {"tpe": 16, "random": 256}


@dataclass(frozen=True)
class NodeType:
    """One worker type of the autoscaler: the resources of each node and how many it may add."""

    name: str
    resources: Dict[str, float]
    max_count: int


@dataclass(frozen=True)
class TrialShape:
    """The placement group of one trial: a bundle per training worker (or one for an in-process
    trial) and Ray's placement strategy for them."""

    bundles: Tuple[Tuple[Tuple[str, float], ...], ...]
    strategy: str = "PACK"

    @classmethod
    def of(cls, bundles: Sequence[Dict[str, float]], strategy: str = "PACK") -> "TrialShape":
        return cls(tuple(tuple(sorted((k, float(v)) for k, v in b.items() if v)) for b in bundles), strategy.upper())

    def bundle_dicts(self) -> List[Dict[str, float]]:
        return [dict(b) for b in self.bundles]

    def total(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for b in self.bundles:
            for k, v in b:
                out[k] = out.get(k, 0.0) + v
        return out

    def describe(self) -> str:
        return describe(self.total())


def describe(res: Dict[str, float]) -> str:
    """``{GPU: 1, CPU: 4}``: GPUs first, then CPUs, then anything else, without Ray's node:/memory keys."""
    order = sorted(res, key=lambda k: (k != "GPU", k != "CPU", k))
    return "{" + ", ".join(f"{k}: {res[k]:g}" for k in order if res[k] and _counted(k)) + "}"


def _counted(key: str) -> bool:
    return not key.startswith("node:") and key not in ("memory", "object_store_memory")


@dataclass
class Capacity:
    """The cluster now (``nodes``: each alive node's total resources) and what its autoscaler may
    add (``types``, empty without one; ``max_workers``: the autoscaler's cap on worker nodes)."""

    nodes: List[Dict[str, float]]
    types: List[NodeType] = field(default_factory=list)
    max_workers: Optional[int] = None
    source: Optional[str] = None  # the autoscaling config the types came from

    @property
    def autoscaling(self) -> bool:
        return any(t.max_count > 0 for t in self.types)

    def has_gpu(self) -> bool:
        return any(n.get("GPU", 0) > 0 for n in self.largest())

    def largest(self) -> List[Dict[str, float]]:
        """Every node the cluster can have at once: the nodes up now, plus for each node type the
        nodes the autoscaler may still add (a worker up now of a type's shape counts against its
        type), within the autoscaler's total."""
        nodes = [dict(n) for n in self.nodes]
        up = [n for n in self.nodes if HEAD_MARKER not in n]
        room = None if self.max_workers is None else max(0, self.max_workers - len(up))
        for t in sorted(self.types, key=lambda t: -t.resources.get("GPU", 0)):
            same = sum(1 for n in up if _same_shape(n, t.resources))
            add = max(0, t.max_count - same)
            if room is not None:
                add, room = min(add, room), room - min(add, room)
            nodes += [dict(t.resources) for _ in range(add)]
        return nodes

    def describe_types(self) -> str:
        return ", ".join(f"{t.name} {describe(t.resources)} x{t.max_count}" for t in self.types) or "none"


def _same_shape(node: Dict[str, float], shape: Dict[str, float]) -> bool:
    return all(abs(node.get(k, 0) - shape.get(k, 0)) < 1e-9 for k in ("CPU", "GPU"))


def _place(free: List[Dict[str, float]], shape: TrialShape) -> bool:
    """Place one trial's bundles on ``free`` (modified in place when they fit), as Ray would."""
    bundles = sorted(shape.bundle_dicts(), key=lambda b: (-b.get("GPU", 0), -b.get("CPU", 0)))
    trial = [dict(n) for n in free]
    if shape.strategy == "STRICT_PACK":
        total = shape.total()
        for i, n in enumerate(trial):
            if _fits(n, total):
                _take(trial[i], total)
                free[:] = trial
                return True
        return False
    used = set()
    for b in bundles:
        for i, n in enumerate(trial):
            if (shape.strategy == "STRICT_SPREAD" and i in used) or not _fits(n, b):
                continue
            _take(n, b)
            used.add(i)
            break
        else:
            return False
    free[:] = trial
    return True


def _fits(node: Dict[str, float], need: Dict[str, float]) -> bool:
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in need.items())


def _take(node: Dict[str, float], need: Dict[str, float]) -> None:
    for k, v in need.items():
        node[k] = node.get(k, 0.0) - v


def trials_that_fit(nodes: List[Dict[str, float]], shape: TrialShape, limit: int = 100_000) -> int:
    """How many trials of ``shape`` the nodes hold side by side."""
    free = [dict(n) for n in nodes]
    n = 0
    while n < limit and _place(free, shape):
        n += 1
    return n


def auto_concurrency(cap: Capacity, shape: TrialShape, sampler: str, num_samples: int,
                     population_size: Optional[int] = None) -> int:
    """``max_concurrent: auto``: the trials the cluster holds at its largest, within the sampler's
    cap (``AUTO_CONCURRENCY_CAP``; NSGA-II: its population) and the sweep's trial count."""
    room = trials_that_fit(cap.largest(), shape, limit=10_000)
    caps = [room, num_samples]
    if sampler == "nsga2":
        caps.append(population_size or max(2, min(num_samples, 8)))
    else:
        caps.append(AUTO_CONCURRENCY_CAP[sampler])
    return max(1, min(caps))


# --- reading the cluster ------------------------------------------------------------------


def read_capacity() -> Capacity:
    """The connected cluster's nodes, and its autoscaler's node types when they can be found."""
    import ray

    nodes = [{k: float(v) for k, v in n["Resources"].items()} for n in ray.nodes() if n.get("Alive")]
    path = autoscaling_config_path(ray.get_runtime_context().gcs_address)
    if path is None:
        return Capacity(nodes)
    types, max_workers = node_types(path)
    return Capacity(nodes, types, max_workers, source=str(path))


def autoscaling_config_path(gcs_address: Optional[str]) -> Optional[Path]:
    """The autoscaling config of this cluster's autoscaler, if the driver can see it:
    ``$RAYSWEEP_AUTOSCALING_CONFIG``; else the ``--autoscaling-config`` of the autoscaler monitor
    serving this GCS (the driver of a ``ray job submit`` runs on the head, beside it); else the
    cluster launcher's ``~/ray_bootstrap_config.yaml``."""
    env = os.environ.get(AUTOSCALING_CONFIG_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            from ..errors import UserError

            raise UserError(f"${AUTOSCALING_CONFIG_ENV}={env}: no such file (the autoscaling config of the cluster)")
        return p
    found = _monitor_config(gcs_address)
    if found is not None:
        return found
    boot = Path(BOOTSTRAP_CONFIG).expanduser()
    return boot if boot.is_file() else None


def _monitor_config(gcs_address: Optional[str]) -> Optional[Path]:
    if not gcs_address:
        return None
    import psutil

    port = gcs_address.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if not any(a.endswith(("autoscaler/_private/monitor.py", "autoscaler/v2/monitor.py")) for a in cmd):
            continue
        args = dict(a.split("=", 1) for a in cmd if a.startswith("--") and "=" in a)
        served = args.get("--gcs-address") or args.get("--redis-address") or ""
        conf = args.get("--autoscaling-config")
        if conf and served.rsplit(":", 1)[-1] == port and Path(conf).expanduser().is_file():
            return Path(conf).expanduser()
    return None


def node_types(path: Path) -> Tuple[List[NodeType], Optional[int]]:
    """The worker node types of an autoscaling config (the head's own type counts only for
    workers of that type), and the autoscaler's cap on worker nodes."""
    import yaml

    conf = yaml.safe_load(Path(path).read_text()) or {}
    head = conf.get("head_node_type")
    out = []
    for name, t in (conf.get("available_node_types") or {}).items():
        t = t or {}
        count = int(t.get("max_workers", 0 if name == head else conf.get("max_workers", 0)) or 0)
        res = {k: float(v) for k, v in (t.get("resources") or {}).items()}
        out.append(NodeType(name, res, count))
    cap = conf.get("max_workers")
    return out, (int(cap) if cap is not None else None)


def pending_shapes(shape: TrialShape) -> int:
    """Placement groups of ``shape`` that Ray has not placed yet: trials waiting for nodes."""
    from ray.util import placement_group_table

    want = sorted(shape.bundles)
    n = 0
    for pg in placement_group_table().values():
        if pg.get("state") not in ("PENDING", "RESCHEDULING"):
            continue
        bundles = sorted(tuple(sorted((k, float(v)) for k, v in b.items() if v and _counted(k)))
                         for b in (pg.get("bundles") or {}).values())
        if bundles == want:
            n += 1
    return n


class AutoscalerWatch:
    """While trials wait for nodes the autoscaler is bringing up, say so (and when they stop
    waiting): ``waiting for the autoscaler: 2 trials need {GPU: 1, CPU: 4}``. Polled from Tune's
    loop, at most every ``every_s``."""

    def __init__(self, shape: TrialShape, printer, every_s: float = 2.0, clock=time.monotonic):
        self.shape, self.printer, self.every_s, self.clock = shape, printer, every_s, clock
        self.last_check = -math.inf
        self.waiting = 0
        self.since = None

    def poll(self) -> None:
        now = self.clock()
        if now - self.last_check < self.every_s:
            return
        self.last_check = now
        try:
            n = pending_shapes(self.shape)
        except Exception:  # a GCS hiccup must not end the sweep; the next poll asks again
            return
        if n == self.waiting:
            return
        if n:
            self.printer(f"raysweep: waiting for the autoscaler: {n} {'trials need' if n != 1 else 'trial needs'} "
                         f"{self.shape.describe()}", flush=True)
            if self.since is None:
                self.since = now
        elif self.since is not None:
            self.printer(f"raysweep: the autoscaler's nodes are up ({now - self.since:.0f} s)", flush=True)
            self.since = None
        self.waiting = n
