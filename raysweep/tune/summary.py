"""The end of a sweep: its front (the package's one rule for who may be on it), the final evaluation of its
members, the Pareto files, what MLflow shows on the parent run, and the printed summary."""

import csv
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..config import SweepConfig
from ..tracking.hypervolume import front_eligible
from ..tracking.pareto import front_rows, plot_front
from ..tracking.report import format_table
from .final_eval import evaluate_members
from .mlflow_fallback import safe_call


def finish_sweep(cfg: SweepConfig, tracker, parent_id, rows, sweep_dir: Path, errors, printer, use_gpu, sync,
                 started: Optional[Dict[int, Any]] = None) -> Dict[str, Any]:
    objectives = cfg.objective_specs
    finished = [r for r in rows if r["status"] == "FINISHED"]
    failed = [r for r in rows if r["status"] == "FAILED"]
    flagged = [r for r in finished if r.get("catastrophic_overfit", 0) > 0]
    for r in finished:
        if cfg.infeasible(r):  # outside the YAML's constraints: never on the front
            r["infeasible"] = True
            sync.state.trials[str(r["trial"])].setdefault("pending_tags", {})["infeasible"] = "true"
    # the front's one rule (collapsed runs stay off unless the YAML lets them on, infeasible ones always)
    candidates = [r for r in finished if front_eligible(sync.state.trials[str(r["trial"])], objectives,
                                                        cfg.sweep.front_includes_flagged, cfg.infeasible)]
    front_rows(candidates, objectives)
    for r in finished:
        r.setdefault("pareto_optimal", False)
    front = [r for r in finished if r.get("pareto_optimal")]
    for r in finished:  # tagged false as each trial ended: only the trials whose membership differs are written
        rec = sync.state.trials[str(r["trial"])]
        if rec.get("pareto_optimal") is not bool(r["pareto_optimal"]):
            rec["pareto_optimal"] = bool(r["pareto_optimal"])
            rec.setdefault("pending_tags", {})["pareto_optimal"] = str(r["pareto_optimal"]).lower()

    if cfg.final_eval.enabled and front:
        evaluate_members(cfg, finished, front, sync.state.trials, use_gpu, printer, started)
    sync.sync_all()
    for r in rows:  # the runs of the last trials are made by this push (MLflow is written behind the sweep)
        r["run_id"] = sync.state.trials[str(r["trial"])].get("run_id")

    table = [_table_row(r, objectives) for r in finished]
    csv_path = sweep_dir / "pareto.csv"
    _write_csv(csv_path, table)
    x, y = objectives[0], objectives[1] if len(objectives) > 1 else objectives[0]
    png_path = sweep_dir / "pareto.png"
    if finished:
        plot_front(finished, x["metric"], y["metric"], png_path, title=f"{cfg.name}: {len(front)} of {len(finished)} trials on the front",
                   x_mode=x["mode"], y_mode=y["mode"],
                   labels={"val_robust_acc": f"validation robust accuracy (PGD-{cfg.base['eval']['val_pgd_steps']})"})
        safe_call(errors, tracker.log_artifact, parent_id, png_path)
    safe_call(errors, tracker.log_artifact, parent_id, csv_path)
    if table:
        safe_call(errors, tracker.log_table, parent_id, [t for t in table if t["pareto_optimal"]] or table, "pareto_front.json")
    safe_call(errors, tracker.set_tags, parent_id, {"mlflow.note.content": front_note(cfg, finished, front, objectives)})
    if flagged:
        printer(f"raysweep: {len(flagged)} trial(s) flagged catastrophic_overfit "
                f"({'kept on' if cfg.sweep.front_includes_flagged else 'kept off'} the front): "
                + ", ".join(str(r['trial']) for r in flagged), flush=True)
    _print_summary(cfg, finished, failed, front, objectives, printer)
    return {"rows": rows, "front": front, "finished": len(finished), "failed": len(failed),
            "pareto_csv": str(csv_path), "pareto_png": str(png_path) if finished else None,
            "experiment_id": tracker.experiment_id, "parent_run_id": parent_id}


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


def close_sweep(sweep, study, parts) -> Dict[str, Any]:
    """After the trials: the front and its evaluation (``finish_sweep``), parameter importance, the hypervolume
    curve, the parent run ended, anything MLflow still lacks pushed or written to the fallback store, the copy to
    object storage closed. Returns the sweep's summary."""
    from .mlflow_fallback import flush_or_fallback

    cfg, printer, errors, tracker, parent_id = sweep.cfg, sweep.printer, sweep.errors, sweep.tracker, sweep.parent_id
    sweep_dir, hv, eager = sweep.sweep_dir, parts.hypervolume, parts.eager
    summary = finish_sweep(cfg, tracker, parent_id, parts.recorder.rows(), sweep_dir, errors, printer, sweep.plan.use_gpu,
                           parts.sync, started=eager.started if eager else None)
    if summary["finished"]:
        from .importance import param_importances, plot_importances

        imp = param_importances(study, cfg.objectives)
        (sweep_dir / "importance.json").write_text(json.dumps(imp, indent=1))
        safe_call(errors, tracker.log_artifact, parent_id, sweep_dir / "importance.json")
        safe_call(errors, tracker.log_artifact, parent_id, plot_importances(imp, sweep_dir / "importance.png"))
        summary["importance"] = imp
    if hv.enabled and hv.data["curve"]:
        from ..tracking.hypervolume import plot_curve

        hv_png = plot_curve(hv.data["curve"], sweep_dir / "hypervolume.png", title=f"{cfg.name}: hypervolume of the front",
                            ref=hv.ref_param())
        safe_call(errors, tracker.log_artifact, parent_id, hv_png)
        summary.update(front_hypervolume=hv.data["curve"][-1][2], hypervolume_ref=hv.ref_param(), hypervolume_png=str(hv_png))
        printer(f"raysweep: front hypervolume {hv.data['curve'][-1][2]:.4g} (reference {hv.ref_param()}) "
                f"after {hv.data['curve'][-1][0]} trials: {hv_png}", flush=True)
    summary.update(sweep_dir=str(sweep_dir), parent_run_id=parent_id, tracking_uri=sweep.tracking_uri,
                   experiment=sweep.experiment, sweep_wall_s=sweep.wall_s, evaluated_early=len(eager.started) if eager else 0)
    safe_call(errors, tracker.log_metrics, parent_id, {
        "sweep_wall_s": sweep.state.data["sweep_wall_s"], "trials_finished": summary["finished"],
        "trials_failed": summary["failed"], "front_size": len(summary["front"])}, 0)
    safe_call(errors, tracker.end_run, parent_id, "FINISHED")
    summary["mlflow_fallback"] = flush_or_fallback(cfg, parts.sync, sweep_dir, errors, printer, sweep.workdir)
    sweep.state.save()  # one whole snapshot, the log folded in: a finished sweep's state.json is complete on its own
    mirror = parts.mirror
    if mirror is not None:
        mirror.close()
        summary["storage_copy"] = mirror.remote
        if mirror.errors:
            printer(f"raysweep: warning: copying the sweep's files to {mirror.remote} failed "
                    f"{len(mirror.errors)} time(s) ({mirror.errors[-1]}); they are complete in {sweep_dir}", flush=True)
    summary["mlflow_failed_calls"] = len(parts.sync.errors) + len(errors)  # retried or written to the fallback
    return summary
