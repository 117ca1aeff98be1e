"""What a trial asks Ray for, and the placement groups a sweep may leave behind.

A trial is a Tune trial process (its own bundle) and, with the Ray Train executor, a placement
group of training workers that the trial's Ray Train controller reserves. ``trial_shape`` is that
group as the cluster must hold it (``capacity.py`` checks it against what the cluster can become)."""

from ray import tune

from .capacity import TrialShape


def uses_inprocess(resources, use_gpu: bool) -> bool:
    """``auto`` takes the in-process path for single-worker CPU trials (no DDP to set up)."""
    return resources.executor == "inprocess" or (resources.executor == "auto" and resources.num_workers == 1 and not use_gpu)


# A custom resource that a Ray Train trial's driver process reserves instead of CPU. raysweep's own
# local Ray has plenty of it; on a cluster the head can offer it too (cluster.yaml does).
TRIAL_DRIVER = "raysweep_trial_driver"
TRIAL_DRIVER_CAPACITY = 10_000


def trial_shape(resources, use_gpu: bool) -> TrialShape:
    """What one trial asks the cluster for, as Ray places it: a bundle per training worker
    (a Ray Train run's placement group) or one for an in-process trial."""
    bundle = {"CPU": resources.cpus_per_worker, "GPU": resources.gpus_per_worker if use_gpu else 0}
    if uses_inprocess(resources, use_gpu):
        return TrialShape.of([bundle])
    return TrialShape.of([bundle] * resources.num_workers, resources.placement)


def trial_resources(resources, use_gpu: bool):
    """Resources Tune reserves for the trial process itself."""
    if uses_inprocess(resources, use_gpu):
        bundle = {"CPU": resources.cpus_per_worker}
        if use_gpu:
            bundle["GPU"] = resources.gpus_per_worker
        return tune.PlacementGroupFactory([bundle])
    # The trial process only drives the trainer; the workers reserve their own CPUs/GPUs. It must
    # not take CPU from them: with a CPU share, two 1-CPU trials need 2.02 CPUs and on a 2-core
    # machine the second trial's worker waits for the first trial to end (then times out), so
    # "2 at a time" runs one at a time.
    import ray

    if ray.is_initialized() and ray.cluster_resources().get(TRIAL_DRIVER, 0) > 0:
        return tune.PlacementGroupFactory([{TRIAL_DRIVER: 1}])
    return tune.PlacementGroupFactory([{"CPU": 0.01}])  # a cluster that does not offer the resource


def driver_identity() -> dict:
    """This driver's Ray job and node, recorded in the sweep's state: a resume releases what an
    earlier driver of the same sweep left behind (``release_leftovers``)."""
    import ray

    ctx = ray.get_runtime_context()
    return {"job": ctx.get_job_id(), "node": ctx.get_node_id()}


def release_leftovers(earlier_drivers, recorded_pgs) -> int:
    """Release the placement groups an earlier driver of this sweep left reserved: the ones its
    trials reported, and any other of its job's (a trial killed with its driver before its first
    report). Only jobs of the same Ray session count (same driver node: job ids restart with a new
    head), and never this driver's own job."""
    from ray.util.placement_group import placement_group_table

    me = driver_identity()
    jobs = {d["job"] for d in earlier_drivers if d.get("node") == me["node"] and d.get("job") != me["job"]}
    # a placement group's id ends with its creator job's id (ray.PlacementGroupID.of(job) builds it so)
    of_jobs = [pg for pg in placement_group_table() if any(pg.endswith(j) for j in jobs)]
    return release_placement_groups(list(recorded_pgs) + of_jobs)


def release_placement_groups(pg_ids) -> int:
    """Remove those of these placement groups (hex ids) that still hold resources. A Ray Train run
    whose driver was killed can leave its workers' placement group reserved after the job is gone
    (seen on a cluster: a worker node's CPU held until the head restarted), so a resumed sweep would
    wait for nodes that never free up."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    table = placement_group_table()
    n = 0
    for pg_id in set(pg_ids):
        if table.get(pg_id, {}).get("state") in ("CREATED", "PENDING", "RESCHEDULING"):
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(pg_id))))
            n += 1
    return n
