"""The sweep: YAML config -> Ray Tune (Optuna ask/tell) -> Ray Train trials -> MLflow + Pareto front.

Layout of one sweep on disk (``storage_path``, default ``./raysweep_runs``)::

    <storage>/<experiment>/<sweep-id>/optuna.db   the Optuna study (RDB: resumable, dashboard-able)
                                      state.json  MLflow run ids per trial (resume appends, never duplicates)
                                      tune/       Ray Tune experiment state
                                      train/      Ray Train runs and their per-epoch checkpoints
"""

import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .._env import apply_quiet_env
from ..config import SweepConfig
from ..evaluation.checkpoints import is_uri
from ..tracking.pareto import front_rows, plot_front
from ..tracking.report import format_table
from ..tracking.store import SweepTracker, default_tracking_uri
from .placement import driver_identity, release_leftovers
from .ray_setup import init_ray, plan_resources
from .storage import join as storage_join


def _safe(errors: List[str], fn, *args, **kw):
    """Call into MLflow for the parent run's extras; an outage is recorded, never raised."""
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kw)
    except (MlflowException, OSError) as e:
        errors.append(f"{getattr(fn, '__name__', fn)}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        return None


def _storage_setting(cfg: SweepConfig) -> Optional[str]:
    return cfg.storage_path or os.environ.get("RAYSWEEP_STORAGE_PATH")


def runs_root(setting: Optional[str], workdir: Path) -> Path:
    """The local directory that holds every experiment's sweeps for a storage setting (the YAML's
    ``storage_path``, ``$RAYSWEEP_STORAGE_PATH`` or ``--storage``): that path when it is local,
    ``<workdir>/raysweep_runs`` otherwise. With a URI storage (s3://, gs://) Ray's Tune/Train
    state and the checkpoints go there, so every node of a cluster can reach them, and the sweep's
    own files are copied there as it runs (``durable.py``)."""
    if setting and not is_uri(setting):
        base = Path(setting.replace("file://", "")).expanduser()
        return base if base.is_absolute() else workdir / base
    return workdir / "raysweep_runs"


def experiment_dir(cfg: SweepConfig, workdir: Path) -> Path:
    """Where the sweep's own state is written (Optuna study, state.json, Pareto files): always a
    local directory of the driver (copied to an object-store storage as the sweep runs)."""
    return runs_root(_storage_setting(cfg), workdir) / cfg.name


def ray_storage(cfg: SweepConfig, sweep_dir: Path) -> str:
    setting = _storage_setting(cfg)
    if is_uri(setting):
        return storage_join(setting, cfg.name, sweep_dir.name)
    return str(sweep_dir)


def absolute_input_paths(cfg: SweepConfig, workdir: Path):
    """Paths in the YAML are relative to where the sweep runs, not to where a worker does."""
    root = cfg.base["dataset"].get("root")
    if root and not Path(root).expanduser().is_absolute():
        cfg.base["dataset"]["root"] = str((workdir / Path(root).expanduser()).resolve())
    for params in cfg.params.values():
        ck = params.get("teacher_checkpoint")
        if isinstance(ck, str) and ck and not is_uri(ck) and not Path(ck).expanduser().is_absolute():
            params["teacher_checkpoint"] = str(workdir / Path(ck).expanduser())


def make_scheduler(cfg: SweepConfig, trials: Optional[Dict[str, Dict[str, Any]]] = None):
    """Early stopping with epochs as the time axis; None: off. ``mo_asha`` ranks on the sweep's
    objectives and rebuilds its rungs from ``trials`` (state.json) on a resumed sweep; ASHA /
    HyperBand rank on the YAML's scalar proxy."""
    es = cfg.sweep.early_stopping
    if es is None:
        return None
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    max_t = int(cfg.base["train"]["epochs"])
    if es.scheduler == "mo_asha":
        from .mo_asha import MultiObjectiveASHA

        history = {int(r["trial"]): r.get("history", []) for r in (trials or {}).values()}
        return MultiObjectiveASHA([(o.metric, o.mode) for o in cfg.objectives], max_t=max_t,
                                  grace_period=es.grace_period, reduction_factor=es.reduction_factor, history=history)
    proxy, mode = es.metric or "val_robust_acc", es.mode or "max"
    if es.scheduler == "hyperband":
        return HyperBandScheduler(time_attr="epoch", metric=proxy, mode=mode, max_t=max_t,
                                  reduction_factor=es.reduction_factor)
    return ASHAScheduler(time_attr="epoch", metric=proxy, mode=mode, max_t=max_t,
                         grace_period=es.grace_period, reduction_factor=es.reduction_factor)


def new_sweep_id() -> str:
    return time.strftime("sweep-%Y%m%d-%H%M%S")


def latest_sweep_dir(exp_dir: Path, setting: Optional[str] = None) -> Optional[Path]:
    """The newest sweep of an experiment with a ``state.json``. With an object-store ``setting``
    and no local copy (a new head), the newest copy there is fetched into ``exp_dir`` first."""
    from ..sweep_state import latest_sweep_dir as latest_local

    local = latest_local(exp_dir)
    if local is not None:
        return local
    if is_uri(setting):
        from .durable import fetch, latest_remote_sweep, remote_dir

        exp_uri = storage_join(setting, exp_dir.name)
        name = latest_remote_sweep(exp_uri)
        if name and fetch(remote_dir(storage_join(exp_uri, name)), exp_dir / name):
            return exp_dir / name
    return None


def run_sweep(cfg: SweepConfig, *, workdir: Optional[Path] = None, resume_dir: Optional[Path] = None,
              printer: Callable = print) -> Dict[str, Any]:
    """Run (or resume) one sweep; returns a summary with the rows and the front."""
    workdir = Path(workdir or os.getcwd()).absolute()
    apply_quiet_env(workdir)
    from ray import tune

    from ..sweep_state import STATE_FILE, SweepState
    from .callbacks import MlflowSync, MlflowTrialRecorder, ProgressPrinter, tensorboard_logger
    from .searcher import OptunaMultiObjectiveSearch, open_study
    from .placement import trial_resources
    from .trainable import make_trial_fn

    absolute_input_paths(cfg, workdir)
    # What only the data or the model can refuse, then resources: errors before anything is written.
    from ..preflight import check_against_data

    check_against_data(cfg)
    init_ray(workdir)
    plan = plan_resources(cfg)
    use_gpu, max_concurrent = plan.use_gpu, plan.max_concurrent
    exp_dir = experiment_dir(cfg, workdir)
    sweep_dir = Path(resume_dir).absolute() if resume_dir else (exp_dir / new_sweep_id())
    sweep_dir.mkdir(parents=True, exist_ok=True)
    state = SweepState(sweep_dir / STATE_FILE)
    errors: List[str] = []

    tracking_uri = state.data.get("tracking_uri") or cfg.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") \
        or default_tracking_uri(workdir)
    experiment = cfg.mlflow.experiment or cfg.name
    tracker = SweepTracker(tracking_uri, experiment, artifact_root=workdir / "mlartifacts")
    parent_id = tracker.start_parent(sweep_dir.name, {"raysweep.config_file": cfg.file, "methods": ",".join(cfg.methods),
                                                      "raysweep.sweep_dir": str(sweep_dir)},
                                     existing_run_id=state.data.get("parent_run_id"))
    import ray

    # which Ray ran it (a cluster's head, or the embedded local one): the latest driver's, on resume too
    _safe(errors, tracker.set_tags, parent_id, {"raysweep.ray_gcs_address": ray.get_runtime_context().gcs_address})
    import yaml

    cfg_copy = sweep_dir / "sweep.yaml"
    resolved = yaml.safe_dump(cfg.raw, sort_keys=False)
    if state.data.get("parent_run_id") and cfg_copy.is_file() and cfg_copy.read_text() != resolved:
        # resumed from an edited YAML (e.g. with a configuration added): keep the config that ran
        # first, record the new one beside it
        cfg_copy = sweep_dir / f"sweep-resumed-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
        cfg_copy.write_text(resolved)
        _safe(errors, tracker.log_artifact, parent_id, cfg_copy)
        # MLflow params are write-once: the parent's params stay the first run's, tags say what runs now
        _safe(errors, tracker.set_tags, parent_id, {
            "raysweep.resumed_yaml": cfg_copy.name, "raysweep.resumed_num_samples": str(cfg.sweep.num_samples),
            "raysweep.resumed_search_space": "; ".join(cfg.describe_space())})
    if not state.data.get("parent_run_id"):
        state.data.update(parent_run_id=parent_id, tracking_uri=tracking_uri, experiment=experiment,
                          config_file=str(cfg.file), name=cfg.name, pgd_aa_gap=cfg.final_eval.pgd_aa_gap)
        state.save()
        cfg_copy.write_text(resolved)
        _safe(errors, tracker.log_artifact, parent_id, cfg_copy)
        _safe(errors, tracker.log_params, parent_id, {
            "sweep.sampler": cfg.sweep.sampler, "sweep.num_samples": cfg.sweep.num_samples, "sweep.seed": cfg.sweep.seed,
            "sweep.max_concurrent": f"auto ({max_concurrent})" if cfg.sweep.max_concurrent == "auto" else max_concurrent,
            "objectives": ",".join(f"{o.metric}:{o.mode}" for o in cfg.objectives),
            "search_space": "; ".join(cfg.describe_space())})

    notes: List[str] = []
    study = open_study(cfg, f"sqlite:///{sweep_dir / 'optuna.db'}", cfg.name, notes=notes,
                       started={int(k) for k in state.trials})
    for note in notes:
        printer(f"raysweep: {note}", flush=True)
        _safe(errors, tracker.set_tags, parent_id, {"raysweep.study_rebuilt": note[:4000]})
    interrupted = state.unfinished()
    left = release_leftovers(state.data.get("drivers", []),
                             [pg for r in state.trials.values() for pg in r.get("placement_groups", [])])
    state.data.setdefault("drivers", []).append(driver_identity())
    state.save()
    if left:
        printer(f"raysweep: released {left} placement group(s) an earlier driver of this sweep left reserved", flush=True)
    resume_points = [(r["trial"], r["sampled"]) for r in sorted(interrupted, key=lambda r: r["trial"])]
    _fail_orphaned_trials(study, keep={n for n, _ in resume_points})
    ended = sum(1 for r in state.trials.values() if r["status"] in ("FINISHED", "FAILED"))
    to_run = max(0, cfg.sweep.num_samples - ended)
    searcher = OptunaMultiObjectiveSearch(cfg, study, resume_points=resume_points)
    sync = MlflowSync(tracker, parent_id, state)
    sync.sync_all(force=True)  # anything an earlier (killed) driver could not log
    from ..tracking.hypervolume import HypervolumeTracker

    hv = HypervolumeTracker(state, [{"metric": o.metric, "mode": o.mode} for o in cfg.objectives],
                            declared=cfg.sweep.hypervolume_ref, include_flagged=cfg.sweep.front_includes_flagged,
                            excluded=cfg.infeasible)
    if not hv.enabled:
        printer(f"raysweep: {len(cfg.objectives)} objectives: no hypervolume curve (it is computed for two)", flush=True)
    recorder = MlflowTrialRecorder(sync, state, cfg.objectives, hypervolume=hv if hv.enabled else None,
                                   storage_uri=ray_storage(cfg, sweep_dir))
    from ..tracking.hypervolume import front_eligible

    objs = [{"metric": o.metric, "mode": o.mode} for o in cfg.objectives]
    from .capacity import AutoscalerWatch

    progress = ProgressPrinter(recorder, cfg.sweep.num_samples, cfg.objectives, printer,
                               eligible=lambda rec: front_eligible(rec, objs, cfg.sweep.front_includes_flagged, cfg.infeasible),
                               watch=AutoscalerWatch(plan.shape, printer) if plan.capacity.autoscaling else None)
    eager = None
    if cfg.final_eval.enabled and cfg.final_eval.members == "all":
        eager = eager_evaluation(cfg, state.trials, to_run, use_gpu, printer)
    storage = ray_storage(cfg, sweep_dir)
    from .placement import uses_inprocess
    from .lean_train import start_hub
    from .ray_compat import lean_enabled

    lean = not uses_inprocess(cfg.resources, use_gpu) and lean_enabled()  # asked only where Ray Train runs
    trial_fn = make_trial_fn(storage_join(storage, "train"), cfg.resources, use_gpu, lean=lean)
    mirror = None
    if is_uri(storage):  # the sweep's own files go beside Ray's, so the sweep outlives this disk
        from .durable import MirrorToStorage, SweepMirror, remote_dir

        mirror = SweepMirror(sweep_dir, remote_dir(storage))
        mirror.push(force=True)
    hub = None  # held until the sweep ends: a named actor goes away with its last handle
    if lean:
        hub = start_hub()  # carries reports from each trial's Ray Train controller to its Tune trial

    state.start_clock()
    printer(f"raysweep: sweep {cfg.name!r} ({sweep_dir.name}): {cfg.sweep.num_samples} trials, "
            f"{max_concurrent} at a time{' (auto)' if cfg.sweep.max_concurrent == 'auto' else ''}, "
            f"sampler {cfg.sweep.sampler}, methods {', '.join(cfg.methods)}"
            + (f"; resuming: {ended} ended, {len(interrupted)} interrupted (restart from their last checkpoint)"
               if resume_dir else ""), flush=True)
    printer(f"raysweep: MLflow {tracking_uri} experiment {experiment!r}, parent run {parent_id}", flush=True)
    if to_run > 0:
        tuner = tune.Tuner(
            tune.with_resources(trial_fn, trial_resources(cfg.resources, use_gpu)),
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=to_run,
                                        scheduler=make_scheduler(cfg, state.trials),
                                        max_concurrent_trials=max_concurrent,
                                        # Ray's stock trainer path cannot hand back a trial that
                                        # Tune stopped early: its actor is not reused then.
                                        reuse_actors=lean or uses_inprocess(cfg.resources, use_gpu)
                                        or cfg.sweep.early_stopping is None),
            run_config=tune.RunConfig(name=f"tune-{int(time.time())}", storage_path=storage_join(storage, "tune"),
                                      callbacks=[recorder, progress] + [c for c in (eager, tensorboard_logger()) if c]
                                      + ([MirrorToStorage(mirror)] if mirror else []),
                                      verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=cfg.sweep.max_failures)),
        )
        tuner.fit()
    if hub is not None:
        from .lean_train import release_placement_groups as release_hub_groups

        release_hub_groups(hub)
    del hub
    sweep_wall = state.stop_clock()

    rows = recorder.rows()
    summary = finish_sweep(cfg, tracker, parent_id, rows, sweep_dir, errors, printer, use_gpu, sync,
                           started=eager.started if eager else None)
    if summary["finished"]:
        from .importance import param_importances, plot_importances

        imp = param_importances(study, cfg.objectives)
        (sweep_dir / "importance.json").write_text(json.dumps(imp, indent=1))
        _safe(errors, tracker.log_artifact, parent_id, sweep_dir / "importance.json")
        _safe(errors, tracker.log_artifact, parent_id, plot_importances(imp, sweep_dir / "importance.png"))
        summary["importance"] = imp
    if hv.enabled and hv.data["curve"]:
        from ..tracking.hypervolume import plot_curve

        hv_png = plot_curve(hv.data["curve"], sweep_dir / "hypervolume.png", title=f"{cfg.name}: hypervolume of the front",
                            ref=hv.ref_param())
        _safe(errors, tracker.log_artifact, parent_id, hv_png)
        summary.update(front_hypervolume=hv.data["curve"][-1][2], hypervolume_ref=hv.ref_param(), hypervolume_png=str(hv_png))
        printer(f"raysweep: front hypervolume {hv.data['curve'][-1][2]:.4g} (reference {hv.ref_param()}) "
                f"after {hv.data['curve'][-1][0]} trials: {hv_png}", flush=True)
    summary.update(sweep_dir=str(sweep_dir), parent_run_id=parent_id, tracking_uri=tracking_uri,
                   experiment=experiment, sweep_wall_s=sweep_wall, evaluated_early=len(eager.started) if eager else 0)
    _safe(errors, tracker.log_metrics, parent_id, {"sweep_wall_s": state.data["sweep_wall_s"], "trials_finished": summary["finished"],
                                                   "trials_failed": summary["failed"], "front_size": len(summary["front"])}, 0)
    _safe(errors, tracker.end_run, parent_id, "FINISHED")
    summary["mlflow_fallback"] = _flush_or_fallback(cfg, sync, sweep_dir, errors, printer, workdir)
    if mirror is not None:
        mirror.close()
        summary["storage_copy"] = mirror.remote
        if mirror.errors:
            printer(f"raysweep: warning: copying the sweep's files to {mirror.remote} failed "
                    f"{len(mirror.errors)} time(s) ({mirror.errors[-1]}); they are complete in {sweep_dir}", flush=True)
    summary["mlflow_failed_calls"] = len(sync.errors) + len(errors)  # retried or written to the fallback
    return summary


def _flush_or_fallback(cfg, sync, sweep_dir: Path, errors: List[str], printer, workdir) -> Optional[str]:
    """Last try to push everything; if MLflow is still unreachable, write the whole sweep to a
    local sqlite store beside it, so nothing is lost, and say so."""
    if not sync.dirty() and not errors:
        return None
    if sync.sync_all(force=True) and not errors:
        return None
    fallback_uri = "sqlite:///" + str(sweep_dir / "mlflow-fallback.db")
    from .callbacks import MlflowSync

    local = SweepTracker(fallback_uri, sync.tracker.experiment, artifact_root=sweep_dir / "mlflow-fallback-artifacts")
    parent = local.start_parent(sweep_dir.name, {"raysweep.fallback_for": sync.tracker.uri})
    copy = {**sync.state.data, "trials": {k: {**r, "run_id": None, "logged": [], "terminated": False, "create_tried": False,
                                              "pending_tags": {"status": r["status"], "pareto_optimal": str(r.get("pareto_optimal", ""))}}
                                          for k, r in sync.state.trials.items()}}
    if copy.get("hypervolume"):
        copy["hypervolume"] = {**copy["hypervolume"], "logged": 0, "ref_logged": False}

    class _Mem:
        data = copy
        trials = copy["trials"]

        def save(self):
            pass

    fb = MlflowSync(local, parent, _Mem())
    fb.sync_all()
    for name in ("pareto.csv", "pareto.png", "hypervolume.png", "importance.json", "importance.png", "sweep.yaml"):
        if (sweep_dir / name).is_file():
            local.log_artifact(parent, sweep_dir / name)
    local.end_run(parent)
    printer(f"raysweep: warning: MLflow at {sync.tracker.uri} was unreachable ({(sync.errors + errors)[-1]}); "
            f"the complete sweep was written to {fallback_uri} (open it with: raysweep ui --tracking-uri {fallback_uri}); "
            f"`raysweep resume {cfg.name}` pushes it to the original store once it is back", flush=True)
    return fallback_uri


def _fail_orphaned_trials(study, keep=()):
    """RUNNING trials that no record will finish (asked, then the driver died before Tune
    started them) would stay RUNNING forever: mark them FAIL. ``keep``: the ones being resumed."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.number not in keep:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def finish_sweep(cfg: SweepConfig, tracker, parent_id, rows, sweep_dir: Path, errors, printer, use_gpu, sync,
                 started: Optional[Dict[int, Any]] = None) -> Dict[str, Any]:
    objectives = [{"metric": o.metric, "mode": o.mode} for o in cfg.objectives]
    finished = [r for r in rows if r["status"] == "FINISHED"]
    failed = [r for r in rows if r["status"] == "FAILED"]
    flagged = [r for r in finished if r.get("catastrophic_overfit", 0) > 0]
    infeasible = [r for r in finished if cfg.infeasible(r)]
    for r in infeasible:  # outside the YAML's constraints: never on the front
        r["infeasible"] = True
        sync.state.trials[str(r["trial"])].setdefault("pending_tags", {})["infeasible"] = "true"
    # Collapsed single-step runs stay off the front unless the user asks for them.
    candidates = [r for r in finished if (cfg.sweep.front_includes_flagged or r not in flagged) and r not in infeasible]
    front_rows(candidates, objectives)
    for r in finished:
        r.setdefault("pareto_optimal", False)
    front = [r for r in finished if r.get("pareto_optimal")]
    for r in finished:
        rec = sync.state.trials[str(r["trial"])]
        rec["pareto_optimal"] = bool(r["pareto_optimal"])
        rec.setdefault("pending_tags", {})["pareto_optimal"] = str(r["pareto_optimal"]).lower()

    if cfg.final_eval.enabled and front:
        fe = cfg.final_eval
        if fe.members == "all":
            members = list(finished)
        elif fe.members == "front":
            members = front
        else:
            members = [max(front, key=lambda r: r.get("val_robust_acc", -1))]
        final_evaluate(cfg, members, use_gpu, printer, records=sync.state.trials, started=started)
        for r in members:
            test = {k: v for k, v in r.items() if k.startswith("test_")}
            if test:
                from ..evaluation.suite import masking_flags

                rec = sync.state.trials[str(r["trial"])]
                if rec.get("test") != test:
                    rec["test"] = test
                    rec["test_config"] = _eval_signature(cfg)
                    rec.setdefault("pending_metrics", {}).update(test)
                flags = masking_flags(test, pgd_aa_gap=cfg.final_eval.pgd_aa_gap)
                rec["masking"] = flags  # what every later reader of the sweep takes as its flags
                r.update({f"masking_{k}": v for k, v in flags.items()})
                rec.setdefault("pending_tags", {}).update({f"masking_{k}": str(v).lower() for k, v in flags.items()})
                raised = [k for k, v in flags.items() if v]
                if raised:
                    printer(f"raysweep: warning: trial {r['trial']}: gradient-masking red flag(s): {', '.join(raised)}", flush=True)
    sync.sync_all()

    table = [_table_row(r, objectives) for r in finished]
    csv_path = sweep_dir / "pareto.csv"
    _write_csv(csv_path, table)
    x, y = objectives[0], objectives[1] if len(objectives) > 1 else objectives[0]
    png_path = sweep_dir / "pareto.png"
    if finished:
        plot_front(finished, x["metric"], y["metric"], png_path, title=f"{cfg.name}: {len(front)} of {len(finished)} trials on the front",
                   x_mode=x["mode"], y_mode=y["mode"],
                   labels={"val_robust_acc": f"validation robust accuracy (PGD-{cfg.base['eval']['val_pgd_steps']})"})
        _safe(errors, tracker.log_artifact, parent_id, png_path)
    _safe(errors, tracker.log_artifact, parent_id, csv_path)
    if table:
        _safe(errors, tracker.log_table, parent_id, [t for t in table if t["pareto_optimal"]] or table, "pareto_front.json")
    _safe(errors, tracker.set_tags, parent_id, {"mlflow.note.content": front_note(cfg, finished, front, objectives)})
    if flagged:
        printer(f"raysweep: {len(flagged)} trial(s) flagged catastrophic_overfit "
                f"({'kept on' if cfg.sweep.front_includes_flagged else 'kept off'} the front): "
                + ", ".join(str(r['trial']) for r in flagged), flush=True)
    _print_summary(cfg, finished, failed, front, objectives, printer)
    return {"rows": rows, "front": front, "finished": len(finished), "failed": len(failed),
            "pareto_csv": str(csv_path), "pareto_png": str(png_path) if finished else None,
            "experiment_id": tracker.experiment_id, "parent_run_id": parent_id}


def _eval_signature(cfg: SweepConfig) -> Dict[str, Any]:
    """What a final evaluation depends on: a resumed sweep reuses results with the same one."""
    fe = cfg.final_eval
    return {"attacks": list(fe.attacks), "n": fe.n, "attack_n": dict(fe.attack_n), "best": fe.best}


def attack_groups(attacks: List[str], n: Optional[int], attack_n: Dict[str, int]) -> List[tuple]:
    """[(n_images, [attacks...])]: attacks sharing an image count run together, the cheap
    full-set ones first. ``None`` means the whole test set."""
    groups: Dict[Optional[int], List[str]] = {}
    for a in attacks:
        groups.setdefault(attack_n.get(a, n), []).append(a)
    return sorted(groups.items(), key=lambda kv: (kv[0] is not None, -(kv[0] or 0)))


_EVAL_TASKS: Dict[bool, Any] = {}


def eval_task(use_gpu: bool):
    """The Ray task that evaluates one seed of one trial's checkpoint on the test set: its last
    weights and, when asked and different, its best-on-validation weights. One task per seed,
    so the seeds of a ``repeats`` trial are evaluated in parallel."""
    if use_gpu in _EVAL_TASKS:
        return _EVAL_TASKS[use_gpu]
    import ray

    @ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)
    def _eval(spec, ckpt_path, groups, with_best, seed_index):
        import torch
        from ray.train import Checkpoint

        from ..evaluation import evaluate_state
        from ..train.ray_worker import load_state

        torch.set_num_threads(1)
        if use_gpu:  # never a silent CPU fallback (see trainable.trial_device)
            from .trainable import trial_device

            trial_device(True)
        with Checkpoint(path=ckpt_path).as_directory() as d:  # local dir, or downloaded from s3:// etc.
            state = load_state(d)
        st = (state["seeds"] if "seeds" in state else [state])[seed_index]

        def evaluate(weights):
            res: Dict[str, float] = {}
            for n, attacks in groups:
                r = evaluate_state(spec, weights, attacks, n=n)
                res.update({k: v for k, v in r.items() if k != "test_n"})
                res[f"test_n_{'all' if n is None else n}"] = r["test_n"]
                res.setdefault("test_n", r["test_n"])  # the largest set (groups run largest first)
            return res

        best = st.get("best") or {}
        has_best = best.get("model") is not None and best.get("epoch") != st["epoch"]
        return {"last": evaluate(st["model"]), "best": evaluate(best["model"]) if with_best and has_best else None,
                "best_epoch": float(best.get("epoch", st["epoch"]))}

    _EVAL_TASKS[use_gpu] = _eval
    return _eval


def combine_seeds(per_seed: List[Dict[str, Any]], with_best: bool) -> Dict[str, float]:
    from ..train.seeds import summarise_seeds

    out = summarise_seeds([p["last"] for p in per_seed])
    if with_best:
        # the best-on-validation checkpoint: test_best_* (equal to the last where it is the last)
        best = summarise_seeds([p["best"] or p["last"] for p in per_seed])
        out.update({k.replace("test_", "test_best_", 1): v for k, v in best.items()
                    if k.startswith("test_") and not k.startswith("test_n")})
    out["best_epoch"] = max(p["best_epoch"] for p in per_seed)
    return out


def submit_evaluation(cfg: SweepConfig, row: Dict, use_gpu: bool, printer):
    """Start the test-set evaluation of one trial (one Ray task per seed), or None without a checkpoint."""
    ck = row.get("checkpoint_path")
    if not ck or (not is_uri(ck) and not Path(ck).exists()):
        printer(f"raysweep: trial {row['trial']}: no checkpoint to evaluate", flush=True)
        return None
    fe = cfg.final_eval
    groups = attack_groups(list(fe.attacks), fe.n, dict(fe.attack_n))
    spec = _spec_of(cfg, row)
    task = eval_task(use_gpu)
    return [task.remote(spec, ck, groups, fe.best, i) for i in range(int(spec.get("repeats", 1)))]


def eager_evaluation(cfg: SweepConfig, records: Dict, to_run: int, use_gpu: bool, printer):
    """A Tune callback: with ``final_eval.members: all`` no selection is needed, so a finished trial's test-set
    evaluation can start while other trials still train, on a CPU that would otherwise idle.
    Evaluations start only once every trial of the sweep has been launched: a Ray Train trial
    still to come would otherwise wait for a CPU an evaluation holds. ``.started`` maps trial
    numbers to their evaluation's object refs, for ``final_evaluate``."""
    from ray.tune import Callback

    class EagerEvaluation(Callback):
        def __init__(self):
            self.started: Dict[int, Any] = {}
            self.finished: List[Dict] = []

        def on_trial_complete(self, iteration, trials, trial, **info):
            rec = records.get(str(trial.config.get("optuna_trial")))
            if rec is not None and rec["status"] == "FINISHED":
                self.finished.append(rec)
            if len(trials) < to_run:
                return
            signature = _eval_signature(cfg)
            for r in self.finished:
                if r["trial"] in self.started or (r.get("test") and r.get("test_config") == signature):
                    continue
                row = {"trial": r["trial"], "method": r["method"], "checkpoint_path": r.get("checkpoint_path"),
                       **{f"param:{k}": v for k, v in r["sampled"].items() if k != "method"}}
                ref = submit_evaluation(cfg, row, use_gpu, printer)
                if ref is not None:
                    self.started[r["trial"]] = ref

    return EagerEvaluation()


def final_evaluate(cfg: SweepConfig, members: List[Dict], use_gpu: bool, printer, records: Optional[Dict] = None,
                   started: Optional[Dict[int, Any]] = None):
    """Test-set evaluation of the members' checkpoints, as Ray tasks (in parallel, on GPUs
    when there are any). Runs after selection, so it cannot influence which trials are shown.

    Every seed of a ``repeats`` trial is evaluated: the row gets the mean (``test_<a>_acc``),
    the spread (``_std``) and each seed's value (``_seed<i>``). A member whose record already
    holds results of the same evaluation (a resumed sweep) is not evaluated again; one in
    ``started`` (trial -> object refs, see ``eager_evaluation``) is already being evaluated."""
    import ray

    fe = cfg.final_eval
    groups = attack_groups(list(fe.attacks), fe.n, dict(fe.attack_n))
    signature = _eval_signature(cfg)
    started = dict(started or {})
    early = sum(1 for r in members if r["trial"] in started)
    jobs = []
    reused = 0
    for r in members:
        rec = (records or {}).get(str(r["trial"])) or {}
        if rec.get("test") and rec.get("test_config") == signature:
            r.update(rec["test"])
            reused += 1
            continue
        ref = started.pop(r["trial"], None) or submit_evaluation(cfg, r, use_gpu, printer)
        if ref is not None:
            jobs.append((r, ref))
    desc = "; ".join(f"{', '.join(a)} on {'all' if n is None else n} test images" for n, a in groups)
    printer(f"raysweep: final evaluation of {len(jobs)} checkpoint(s) on the test set ({desc})"
            + (f"; {reused} already evaluated" if reused else "")
            + (f"; {early} started as their trials finished" if early else ""), flush=True)
    for r, refs in jobs:
        try:
            r.update(combine_seeds(ray.get(refs), fe.best))
        except Exception as e:  # one broken checkpoint must not hide the others' results
            printer(f"raysweep: trial {r['trial']}: final evaluation failed: {type(e).__name__}: {e}", flush=True)
    for refs in started.values():  # started for a trial that is no member after all
        for ref in refs:
            ray.cancel(ref)


def _spec_of(cfg: SweepConfig, row: Dict) -> Dict:
    sampled = {k[len("param:"):]: v for k, v in row.items() if k.startswith("param:")}
    sampled["method"] = row["method"]
    return cfg.trial_spec(sampled).to_dict()


def _table_row(r: Dict, objectives) -> Dict[str, Any]:
    keep = ["trial", "label", "method", "status", "pareto_optimal"] + [o["metric"] for o in objectives]
    keep += ["val_clean_acc", "val_robust_acc", "val_fgsm_acc", "train_time_s", "cost", "epoch", "catastrophic_overfit"]
    out = {}
    for k in keep:
        if k in r and k not in out:
            out[k] = r[k]
    out.update({k: v for k, v in r.items() if k.startswith("param:") or k.startswith("test_")})
    out["run_id"] = r.get("run_id")
    return out


def _write_csv(path: Path, table: List[Dict]):
    cols: List[str] = []
    for t in table:
        cols += [k for k in t if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols or ["trial"])
        w.writeheader()
        for t in table:
            w.writerow(t)


def _front_cols(front, objectives) -> List[str]:
    cols = ["trial"] + (["label"] if any(r.get("label") for r in front) else []) + ["method"] + [o["metric"] for o in objectives]
    for extra in ("val_clean_acc", "val_robust_acc", "cost", "test_clean_acc", "test_pgd20_acc", "test_autoattack_acc",
                  "best_epoch", "test_best_pgd20_acc"):
        if extra not in cols and any(extra in r for r in front):
            cols.append(extra)
    return cols + sorted({k for r in front for k in r if k.startswith("param:")})


NOTE_LIMIT = 4900


def front_note(cfg, finished, front, objectives) -> str:
    """The parent run's MLflow description: the front first (the UI shows a description's first lines until
    "Show more"), then what was optimised and with which attacks, so the run page reads on its own."""
    fe = cfg.final_eval
    lines = [f"**raysweep sweep `{cfg.name}`** ({cfg.file}): {len(finished)} finished trials, {len(front)} on the "
             f"Pareto front.", ""]
    about = ["Objectives: " + ", ".join(f"`{o['metric']}` ({o['mode']})" for o in objectives)
             + f"; robustness on validation data by PGD-{cfg.base['eval']['val_pgd_steps']} "
               f"(L{'∞' if cfg.base['threat']['norm'] == 'linf' else '2'}, ε = {cfg.base['threat']['eps']:g}).",
             "Final evaluation on the test set, after the front was fixed: "
             + (", ".join(f"`{a}`" + (f" ({fe.attack_n[a]} images)" if a in (fe.attack_n or {}) else "")
                          for a in fe.attacks) + f" on {fe.members} members" if fe.enabled else "off") + "."]
    if front:
        cols = [c for c in _front_cols(front, objectives) if not c.startswith("param:")]
        fmt = lambda v: f"{v:.4f}" if isinstance(v, float) and abs(v) < 10 else (f"{v:.1f}" if isinstance(v, float) else str(v))
        head = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        rows = ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in front]

        def table(kept):
            more = ["", f"({len(front) - len(kept)} more front points in pareto.csv)"] if len(kept) < len(front) else []
            return head + kept + more + [""]

        while rows and len("\n".join(lines + table(rows) + about)) > NOTE_LIMIT:  # a tag holds 5000 characters
            rows = rows[:-1]
        lines += table(rows)
    return "\n".join(lines + about)


def _print_summary(cfg, finished, failed, front, objectives, printer):
    printer(f"raysweep: {len(finished)} trials finished, {len(failed)} failed; Pareto front: {len(front)} points", flush=True)
    if not front:
        return
    printer(format_table(front, _front_cols(front, objectives)), flush=True)
    tested = [r for r in front if "test_pgd20_acc" in r]
    if tested:
        best = max(tested, key=lambda r: r.get("val_robust_acc", -1))
        printer(f"raysweep: most robust front point (by validation): trial {best['trial']} ({best['method']}): "
                f"test PGD-20 accuracy {best['test_pgd20_acc']:.4f}, clean {best.get('test_clean_acc', float('nan')):.4f} "
                f"on {int(best.get('test_n', 0))} test images", flush=True)
