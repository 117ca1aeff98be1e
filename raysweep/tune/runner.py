"""The sweep, as a pipeline of stages: YAML config -> Ray Tune (Optuna ask/tell) -> trials (in-process or Ray
Train) -> MLflow and the Pareto front. Each stage is a function below; where a sweep lives is ``layout.py``,
what a trial asks Ray for ``placement.py``, the end of a sweep ``summary.py``."""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .._env import apply_quiet_env
from ..config import SweepConfig
from ..sweep_state import ENDED, STATE_FILE, SweepState
from ..tracking.store import SweepTracker, default_tracking_uri
from .layout import absolute_input_paths, experiment_dir, new_sweep_id, ray_storage
from .mlflow_fallback import safe_call
from .placement import driver_identity, release_leftovers
from .ray_setup import ResourcePlan, init_ray, plan_resources


@dataclass
class Sweep:
    """One run of a sweep's driver: what the stages hand on to each other."""

    cfg: SweepConfig
    workdir: Path
    printer: Callable
    plan: ResourcePlan
    sweep_dir: Path
    state: SweepState
    resuming: bool
    errors: List[str] = field(default_factory=list)  # MLflow calls that failed (the fallback writes what they lost)
    tracker: Optional[SweepTracker] = None
    parent_id: Optional[str] = None
    tracking_uri: str = ""
    experiment: str = ""
    resumed: tuple = (0, 0)  # trials ended and interrupted before this run of the driver
    wall_s: float = 0.0  # this run's share of the sweep's wall time
    spent: Any = None  # budget.SpentTally: what the sweep has spent of sweep.budget
    chunk: int = 0  # trials per Tune experiment (tune/chunks.py)


def run_sweep(cfg: SweepConfig, *, workdir: Optional[Path] = None, resume_dir: Optional[Path] = None,
              printer: Callable = print) -> Dict[str, Any]:
    """Run (or resume) one sweep; returns a summary with the rows and the front."""
    sweep = _prepare(cfg, Path(workdir or os.getcwd()).absolute(), resume_dir, printer)
    _open_parent_run(sweep)
    study, searcher, to_run = _open_search(sweep)
    parts = _callbacks(sweep, to_run)
    _announce(sweep, to_run)
    _fit(sweep, searcher, parts, to_run)
    from .summary import close_sweep

    return close_sweep(sweep, study, parts)


def _prepare(cfg: SweepConfig, workdir: Path, resume_dir: Optional[Path], printer) -> Sweep:
    """What only the data, the model or the cluster can refuse, then the sweep's directory and state: every error
    before anything is written."""
    from ..preflight import check_against_data
    from .chunks import chunk_size

    chunk = chunk_size()  # a bad $RAYSWEEP_TUNE_CHUNK is refused before anything starts
    apply_quiet_env(workdir)
    absolute_input_paths(cfg, workdir)

    check_against_data(cfg)
    init_ray(workdir)
    plan = plan_resources(cfg)
    sweep_dir = Path(resume_dir).absolute() if resume_dir else (experiment_dir(cfg, workdir) / new_sweep_id())
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return Sweep(cfg=cfg, workdir=workdir, printer=printer, plan=plan, sweep_dir=sweep_dir,
                 state=SweepState(sweep_dir / STATE_FILE), resuming=resume_dir is not None, chunk=chunk)


def _open_parent_run(sweep: Sweep) -> None:
    """The sweep's MLflow parent run (the same one on a resume), with the config that ran and the search's params."""
    import ray
    import yaml

    cfg, state, errors = sweep.cfg, sweep.state, sweep.errors
    sweep.tracking_uri = state.data.get("tracking_uri") or cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") \
        or default_tracking_uri(sweep.workdir)
    sweep.experiment = cfg.mlflow.experiment or cfg.name
    tracker = sweep.tracker = SweepTracker(sweep.tracking_uri, sweep.experiment, artifact_root=sweep.workdir / "mlartifacts")
    parent_id = sweep.parent_id = tracker.start_parent(
        sweep.sweep_dir.name, {"raysweep.config_file": cfg.file, "methods": ",".join(cfg.methods),
                               "raysweep.sweep_dir": str(sweep.sweep_dir)}, existing_run_id=state.data.get("parent_run_id"))
    # which Ray ran it (a cluster's head, or the embedded local one): the latest driver's, on resume too
    safe_call(errors, tracker.set_tags, parent_id, {"raysweep.ray_gcs_address": ray.get_runtime_context().gcs_address})
    cfg_copy = sweep.sweep_dir / "sweep.yaml"
    resolved = yaml.safe_dump(cfg.raw, sort_keys=False)
    if state.data.get("parent_run_id") and cfg_copy.is_file() and cfg_copy.read_text() != resolved:
        # resumed from an edited YAML (e.g. with a configuration added): keep the config that ran
        # first, record the new one beside it
        cfg_copy = sweep.sweep_dir / f"sweep-resumed-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        cfg_copy.write_text(resolved)
        safe_call(errors, tracker.log_artifact, parent_id, cfg_copy)
        # MLflow params are write-once: the parent's params stay the first run's, tags say what runs now
        safe_call(errors, tracker.set_tags, parent_id, {
            "raysweep.resumed_yaml": cfg_copy.name, "raysweep.resumed_num_samples": str(cfg.sweep.num_samples),
            "raysweep.resumed_search_space": "; ".join(cfg.describe_space())})
    if not state.data.get("parent_run_id"):
        state.data.update(parent_run_id=parent_id, tracking_uri=sweep.tracking_uri, experiment=sweep.experiment,
                          config_file=str(cfg.file), name=cfg.name, pgd_aa_gap=cfg.final_eval.pgd_aa_gap)
        state.save(keys=["parent_run_id", "tracking_uri", "experiment", "config_file", "name", "pgd_aa_gap"])
        cfg_copy.write_text(resolved)
        safe_call(errors, tracker.log_artifact, parent_id, cfg_copy)
        safe_call(errors, tracker.log_params, parent_id, {
            "sweep.sampler": cfg.sweep.sampler, "sweep.num_samples": cfg.sweep.num_samples, "sweep.seed": cfg.sweep.seed,
            "sweep.max_concurrent": f"auto ({sweep.plan.max_concurrent})" if cfg.sweep.max_concurrent == "auto"
            else sweep.plan.max_concurrent,
            "objectives": ",".join(f"{o.metric}:{o.mode}" for o in cfg.objectives),
            **({"sweep.budget": ",".join(f"{k}={v:g}" for k, v in cfg.sweep.budget.items())} if cfg.sweep.budget else {}),
            "search_space": "; ".join(cfg.describe_space())})


def _open_search(sweep: Sweep):
    """The Optuna study and its Tune searcher; on a resume, the interrupted trials to restart first, the study's
    orphans failed, and what a killed driver left reserved on the cluster released. Returns (study, searcher,
    trials still to run)."""
    from .budget import SpentTally, budget_of
    from .searcher import OptunaMultiObjectiveSearch, open_study
    from .study_store import study_storage

    cfg, state = sweep.cfg, sweep.state
    notes: List[str] = []
    study = open_study(cfg, study_storage(sweep.sweep_dir), cfg.name, notes=notes,
                       started={int(k) for k in state.trials})
    for note in notes:
        sweep.printer(f"raysweep: {note}", flush=True)
        safe_call(sweep.errors, sweep.tracker.set_tags, sweep.parent_id, {"raysweep.study_rebuilt": note[:4000]})
    interrupted = state.unfinished()
    left = release_leftovers(state.data.get("drivers", []),
                             [pg for r in state.trials.values() for pg in r.get("placement_groups", [])])
    state.data.setdefault("drivers", []).append(driver_identity())
    state.save(keys=["drivers"])
    if left:
        sweep.printer(f"raysweep: released {left} placement group(s) an earlier driver of this sweep left reserved", flush=True)
    resume_points = [(r["trial"], r["sampled"]) for r in sorted(interrupted, key=lambda r: r["trial"])]
    _fail_orphaned_trials(study, keep={n for n, _ in resume_points})
    ended = sum(1 for r in state.trials.values() if r["status"] in ENDED)
    sweep.resumed = (ended, len(interrupted))
    budget = budget_of(cfg.sweep.budget)
    sweep.spent = SpentTally(state.trials, budget[0] if budget else None)  # fed each report by the recorder
    searcher = OptunaMultiObjectiveSearch(cfg, study, resume_points=resume_points, spent=sweep.spent.total,
                                          notify=lambda line: _budget_reached(sweep, line))
    return study, searcher, max(0, cfg.sweep.num_samples - ended)


def _budget_reached(sweep: Sweep, line: str) -> None:
    sweep.printer(line, flush=True)
    safe_call(sweep.errors, sweep.tracker.set_tags, sweep.parent_id, {"raysweep.budget_reached": line})


def _fail_orphaned_trials(study, keep=()):
    """RUNNING trials that no record will finish (asked, then the driver died before Tune
    started them) would stay RUNNING forever: mark them FAIL. ``keep``: the ones being resumed."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number not in keep:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)


@dataclass
class Parts:
    """The driver-side pieces a sweep runs with, and what must outlive ``fit``."""

    sync: Any  # MlflowSync
    hypervolume: Any  # HypervolumeTracker
    recorder: Any  # MlflowTrialRecorder
    callbacks: List[Any]
    trial_fn: Callable
    lean: bool
    eager: Any = None  # EagerEvaluation, with members: all
    mirror: Any = None  # SweepMirror, with an object store
    hub: Any = None  # the lean launch's report hub: a named actor lives as long as a handle to it


def _callbacks(sweep: Sweep, to_run: int) -> Parts:
    """MLflow sync (anything an earlier, killed driver could not log first), the hypervolume curve, progress lines,
    the early final evaluation, the copy to object storage, and the trial function with its launcher."""
    from ..tracking.hypervolume import HypervolumeTracker, front_eligible
    from ..tracking.sync import MlflowSync
    from .callbacks import MlflowTrialRecorder, ProgressPrinter, tensorboard_logger
    from .capacity import AutoscalerWatch
    from .final_eval import eager_evaluation
    from .placement import uses_inprocess
    from .ray_compat import lean_enabled
    from ..evaluation.checkpoints import is_uri
    from .storage import join as storage_join
    from .trainable import make_trial_fn

    cfg, state, plan, printer = sweep.cfg, sweep.state, sweep.plan, sweep.printer
    sync = MlflowSync(sweep.tracker, sweep.parent_id, state)
    sync.sync_all(force=True)
    objs = cfg.objective_specs
    hv = HypervolumeTracker(state, objs, declared=cfg.sweep.hypervolume_ref,
                            include_flagged=cfg.sweep.front_includes_flagged, excluded=cfg.infeasible)
    if not hv.enabled:
        printer(f"raysweep: {len(cfg.objectives)} objectives: no hypervolume curve (it is computed for two)", flush=True)
    storage = ray_storage(cfg, sweep.sweep_dir)
    # the tracker keeps the front with any number of objectives (the progress lines show its size)
    recorder = MlflowTrialRecorder(sync, state, cfg.objectives, hypervolume=hv, storage_uri=storage,
                                   on_result=sweep.spent.update if sweep.spent is not None else None)
    progress = ProgressPrinter(recorder, cfg.sweep.num_samples, cfg.objectives, printer,
                               eligible=lambda rec: front_eligible(rec, objs, cfg.sweep.front_includes_flagged, cfg.infeasible),
                               watch=AutoscalerWatch(plan.shape, printer) if plan.capacity.autoscaling else None,
                               front_size=hv.front_size)
    eager = None
    if cfg.final_eval.enabled and cfg.final_eval.members == "all":
        eager = eager_evaluation(cfg, state.trials, to_run, plan.use_gpu, printer)
    lean = not uses_inprocess(cfg.resources, plan.use_gpu) and lean_enabled()  # asked only where Ray Train runs
    parts = Parts(sync=sync, hypervolume=hv, recorder=recorder, callbacks=[recorder, progress], lean=lean, eager=eager,
                  trial_fn=make_trial_fn(storage_join(storage, "train"), cfg.resources, plan.use_gpu, lean=lean))
    parts.callbacks += [c for c in (eager, tensorboard_logger() if tune_result_files() else None) if c]
    if is_uri(storage):  # the sweep's own files go beside Ray's, so the sweep outlives this disk
        from .durable import MirrorToStorage, SweepMirror, remote_dir

        parts.mirror = SweepMirror(sweep.sweep_dir, remote_dir(storage))
        parts.mirror.push(force=True)
        parts.callbacks.append(MirrorToStorage(parts.mirror))
    if lean:
        from .lean_train import start_hub

        parts.hub = start_hub()  # carries reports from each trial's Ray Train controller to its Tune trial
    return parts


def tune_result_files() -> bool:
    """Whether Tune writes its per-trial result files (CSV, JSON, TensorBoard), through Tune's own switch
    ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` (raysweep's default: ``1``, off). Every report of every trial is appended
    to each, and only the ResultGrid that Tuner.fit returns reads them back, which raysweep never reads (its record is
    state.json and MLflow): at 10,000 trials, reading them back was most of the 56 s the sweep's end took, and the
    TensorBoard flush after every report ~4% of the driver's main thread (bench/scale.py). ``0`` writes them as Tune
    does by default (the TensorBoard logger without the history raysweep attaches to a resumed trial's report)."""
    return os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1") == "0"


def _announce(sweep: Sweep, to_run: int) -> None:
    cfg, printer = sweep.cfg, sweep.printer
    ended, interrupted = sweep.resumed
    printer(f"raysweep: sweep {cfg.name!r} ({sweep.sweep_dir.name}): {cfg.sweep.num_samples} trials, "
            f"{sweep.plan.max_concurrent} at a time{' (auto)' if cfg.sweep.max_concurrent == 'auto' else ''}, "
            f"sampler {cfg.sweep.sampler}, methods {', '.join(cfg.methods)}"
            + (f"; resuming: {ended} ended, {interrupted} interrupted (restart from their last checkpoint)"
               if sweep.resuming else ""), flush=True)
    printer(f"raysweep: MLflow {sweep.tracking_uri} experiment {sweep.experiment!r}, parent run {sweep.parent_id}", flush=True)
    from .searcher import sampler_cost_note

    note = sampler_cost_note(cfg)
    if note:
        printer(f"raysweep: {note}", flush=True)


def _fit(sweep: Sweep, searcher, parts: Parts, to_run: int) -> None:
    """The trials, through Ray Tune; the sweep's clock runs while they do."""
    from ray import tune

    from .chunks import plan_chunks
    from .placement import trial_resources, uses_inprocess
    from .schedulers import make_scheduler
    from .storage import join as storage_join

    cfg, plan = sweep.cfg, sweep.plan
    # Tune's experiment snapshot (every trial's JSON state, rewritten and copied to the storage) is only read by
    # Tuner.restore, which raysweep never calls: a resume starts a new Tuner from state.json. Under Tune's "auto"
    # period (up to 5% of the driver, growing with the trials) a 1,000-trial sweep wrote 15 of them, 3.6 s and
    # ~0.5 GB; at most hourly (plus Tune's forced one at the end) it wrote 2, 1.9 s (bench/scale.py).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "3600")
    sweep.state.start_clock()
    started = int(time.time())
    # consecutive Tune experiments of at most sweep.chunk trials: Tune holds every trial of an experiment until it
    # ends (chunks.py); each starts where the last stopped, as a resumed sweep does, the scheduler rebuilt from the record
    counts = parts.recorder.counts  # kept as trials end: reading the record would unpack every ended trial's
    for part, n in enumerate(plan_chunks(to_run, sweep.chunk)):
        ended = counts["FINISHED"] + counts["FAILED"]
        tuner = tune.Tuner(
            tune.with_resources(parts.trial_fn, trial_resources(cfg.resources, plan.use_gpu)),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=n,
                                        scheduler=make_scheduler(cfg, sweep.state.trials),
                                        max_concurrent_trials=plan.max_concurrent,
                                        # Ray's stock trainer path cannot hand back a trial that
                                        # Tune stopped early: its actor is not reused then.
                                        reuse_actors=parts.lean or uses_inprocess(cfg.resources, plan.use_gpu)
                                        or cfg.sweep.early_stopping is None),
            run_config=tune.RunConfig(name=f"tune-{started}" + (f"-{part}" if part else ""),
                                      storage_path=storage_join(ray_storage(cfg, sweep.sweep_dir), "tune"),
                                      # a copy: Tune appends its own callbacks to the list it is given, and
                                      # each would keep its experiment's trials for the sweep's life
                                      callbacks=list(parts.callbacks), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_failures)),
        )
        tuner.fit()
        if searcher.budget_reached or counts["FINISHED"] + counts["FAILED"] - ended < n:
            break  # the budget is spent, or the experiment was stopped before its trials ran (Ctrl-C)
    if parts.hub is not None:
        from .lean_train import release_placement_groups as release_hub_groups

        release_hub_groups(parts.hub)
        parts.hub = None
    sweep.wall_s = sweep.state.stop_clock()
