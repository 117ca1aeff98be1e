"""What the cluster can become: node types from the autoscaling config, placement as Ray does it,
``use_gpu: auto`` and ``max_concurrent: auto`` against the cluster at its largest, and the errors
for what no node can ever hold. Pure functions on hand-made clusters (the cluster test runs them
against a real autoscaler)."""

from pathlib import Path

import pytest

from raysweep.config import load_config
from raysweep.errors import UserError
from raysweep.tune.capacity import (AUTO_CONCURRENCY_CAP, AutoscalerWatch, Capacity, NodeType, TrialShape,
                                    auto_concurrency, node_types, trials_that_fit)
from raysweep.tune.ray_setup import plan_resources

REPO = Path(__file__).resolve().parents[1]
HEAD = {"node:__internal_head__": 1.0, "raysweep_trial_driver": 10000.0, "memory": 1e10}


def gpu_cluster(n=8, now=()):
    return Capacity([HEAD, *now], [NodeType("gpu_worker", {"CPU": 8, "GPU": 1}, n)], max_workers=n)


def test_the_repository_cluster_yaml_declares_gpu_workers_that_scale_from_zero():
    types, cap = node_types(REPO / "cluster.yaml")
    by = {t.name: t for t in types}
    assert by["gpu_worker"].resources["GPU"] == 1 and by["gpu_worker"].max_count == 8 and cap == 8
    assert by["head"].max_count == 0 and by["head"].resources.get("CPU") == 0  # the head trains nothing


def test_largest_counts_workers_up_now_against_their_type_and_the_autoscaler_cap():
    up = {"CPU": 8, "GPU": 1}
    cap = Capacity([HEAD, up, up], [NodeType("gpu_worker", {"CPU": 8, "GPU": 1}, 4),
                                    NodeType("cpu_worker", {"CPU": 16}, 4)], max_workers=5)
    nodes = cap.largest()
    assert sum(n.get("GPU", 0) for n in nodes) == 4  # 2 up + 2 more of the type
    assert len(nodes) == 1 + 5  # the head and at most max_workers workers (GPU types filled first)


@pytest.mark.parametrize("nodes,cpus,strategy,fits", [
    ([4, 4], [3, 3], "PACK", 1), ([4, 4], [3, 3], "SPREAD", 1), ([4, 4], [3, 3], "STRICT_PACK", 0),
    ([4, 4], [3, 3], "STRICT_SPREAD", 1), ([4], [1, 1], "PACK", 2), ([4], [1, 1], "STRICT_PACK", 2),
    ([4], [1, 1], "STRICT_SPREAD", 0)])
def test_placement_strategies_as_ray_places_bundles(nodes, cpus, strategy, fits):
    shape = TrialShape.of([{"CPU": c} for c in cpus], strategy)
    assert trials_that_fit([{"CPU": n} for n in nodes], shape) == fits


def test_strict_spread_needs_as_many_nodes_as_workers():
    shape = TrialShape.of([{"CPU": 1}] * 3, "strict_spread")
    assert trials_that_fit([{"CPU": 8}, {"CPU": 8}], shape) == 0
    assert trials_that_fit([{"CPU": 8}] * 3, shape) == 8


def test_auto_concurrency_is_what_the_cluster_holds_at_its_largest_within_the_sampler_cap():
    one_gpu = TrialShape.of([{"CPU": 4, "GPU": 1}])
    assert auto_concurrency(gpu_cluster(8), one_gpu, "tpe", 100) == 8
    assert auto_concurrency(gpu_cluster(64), one_gpu, "tpe", 100) == AUTO_CONCURRENCY_CAP["tpe"]
    assert auto_concurrency(gpu_cluster(64), one_gpu, "random", 100) == 64
    assert auto_concurrency(gpu_cluster(64), one_gpu, "nsga2", 100, population_size=12) == 12
    assert auto_concurrency(gpu_cluster(64), one_gpu, "random", 5) == 5  # never more than the sweep's trials
    half = TrialShape.of([{"CPU": 2, "GPU": 0.5}])
    assert auto_concurrency(gpu_cluster(3), half, "tpe", 100) == 6  # two trials per GPU


def _cfg(tmp_path, resources, sweep="{num_samples: 16, max_concurrent: auto}"):
    p = tmp_path / "c.yaml"
    p.write_text(f"""
name: c
method: fgsm_rs
dataset: {{name: synthetic, val_size: 64}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: 1}}
sweep: {sweep}
resources: {resources}
""")
    return load_config(p)


def test_a_head_without_gpus_and_autoscaled_gpu_workers_means_gpu_trials(tmp_path):
    """The cluster.yaml case: nothing but a CPU-less head is up; the node types say GPU."""
    plan = plan_resources(_cfg(tmp_path, "{use_gpu: auto, cpus_per_worker: 4}"), gpu_cluster(8))
    assert plan.use_gpu and plan.shape.total() == {"CPU": 4, "GPU": 1} and plan.max_concurrent == 8
    plan = plan_resources(_cfg(tmp_path, "{use_gpu: true, cpus_per_worker: 4}"), gpu_cluster(8))
    assert plan.use_gpu
    plan = plan_resources(_cfg(tmp_path, "{use_gpu: false, cpus_per_worker: 4}"), gpu_cluster(8))
    assert not plan.use_gpu and plan.shape.total() == {"CPU": 4}


def test_requests_no_node_can_ever_hold_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"c\.yaml: resources: one trial needs \{GPU: 2, CPU: 4\} .* no node .* "
                                        r"autoscaler grows it \(node types: gpu_worker \{GPU: 1, CPU: 8\} x8\)"):
        plan_resources(_cfg(tmp_path, "{use_gpu: true, cpus_per_worker: 4, gpus_per_worker: 2, executor: inprocess}"),
                       gpu_cluster(8))
    with pytest.raises(UserError, match=r"one trial needs \{CPU: 16\}"):
        plan_resources(_cfg(tmp_path, "{use_gpu: false, cpus_per_worker: 16}"), gpu_cluster(8))
    cpu_only = Capacity([HEAD, {"CPU": 2}])
    with pytest.raises(UserError, match=r"use_gpu: true, but the Ray cluster has no GPU and no autoscaler"):
        plan_resources(_cfg(tmp_path, "{use_gpu: true}"), cpu_only)
    with pytest.raises(UserError, match=r"no node type of its autoscaler has one"):
        plan_resources(_cfg(tmp_path, "{use_gpu: true}"), Capacity([HEAD], [NodeType("w", {"CPU": 4}, 2)], 2))


def test_without_an_autoscaler_only_the_nodes_up_count(tmp_path):
    local = Capacity([{"CPU": 2, **HEAD}])
    plan = plan_resources(_cfg(tmp_path, "{use_gpu: auto, cpus_per_worker: 1}"), local)
    assert not plan.use_gpu and plan.max_concurrent == 2
    with pytest.raises(UserError, match=r"the cluster has no autoscaler that could add one"):
        plan_resources(_cfg(tmp_path, "{cpus_per_worker: 4}"), local)


def test_the_wait_line_says_how_many_trials_wait_and_for_what(monkeypatch):
    from raysweep.tune import capacity

    lines, waiting, now = [], [2], [0.0]
    monkeypatch.setattr(capacity, "pending_shapes", lambda shape: waiting[0])
    w = AutoscalerWatch(TrialShape.of([{"CPU": 4, "GPU": 1}]), lambda s, **k: lines.append(s), every_s=2, clock=lambda: now[0])
    w.poll()
    now[0], waiting[0] = 1.0, 1
    w.poll()  # within every_s: not asked again
    now[0] = 3.0
    w.poll()
    now[0], waiting[0] = 9.0, 0
    w.poll()
    assert lines == ["raysweep: waiting for the autoscaler: 2 trials need {GPU: 1, CPU: 4}",
                     "raysweep: waiting for the autoscaler: 1 trial needs {GPU: 1, CPU: 4}",
                     "raysweep: the autoscaler's nodes are up (9 s)"]


def test_max_concurrent_accepts_a_number_or_auto_and_says_so_otherwise(tmp_path):
    assert _cfg(tmp_path, "{}", "{max_concurrent: auto}").sweep.max_concurrent == "auto"
    assert _cfg(tmp_path, "{}", "{max_concurrent: 3}").sweep.max_concurrent == 3
    for bad in ("0", "many", "true"):
        with pytest.raises(Exception, match=r"sweep\.max_concurrent: .*allowed: a whole number from 1 to 10000, or auto"):
            _cfg(tmp_path, "{}", f"{{max_concurrent: {bad}}}")
