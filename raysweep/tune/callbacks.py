"""Driver-side Tune callbacks: each trial's events recorded in the sweep's state (and pushed to MLflow through
``tracking.sync``), and concise progress lines."""

import collections
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ray.tune import Callback

from ..sweep_state import SweepState
from ..tracking.sync import MlflowSync
from .ray_compat import release_trial_statistics
from .storage import as_uri
from .trial_config import spec_of

# Tune's own bookkeeping fields; everything else numeric in a result is ours.
_TUNE_KEYS = {
    "timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "training_iteration",
    "trial_id", "date", "done", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
    "should_checkpoint", "experiment_tag", "config",
}


def _our_metrics(result: Dict) -> Dict[str, float]:
    out = {}
    for k, v in result.items():
        if k in _TUNE_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = float(v)
    return out


class MlflowTrialRecorder(Callback):
    """Records every trial in the sweep state and mirrors it to one MLflow child run per
    trial under the sweep's parent run, all from the driver (a single writer)."""

    def __init__(self, sync: MlflowSync, state: SweepState, objectives, hypervolume=None, storage_uri=None,
                 on_result: Optional[Callable[[Dict[str, Any]], None]] = None):
        self.sync = sync
        self.state = state
        self.objectives = objectives
        self.hypervolume = hypervolume  # a tracking.hypervolume.HypervolumeTracker, or None
        self.storage_uri = storage_uri  # the sweep's Ray storage: checkpoint paths are made URIs against it
        self.on_result = on_result  # told each report's record (the budget's tally)
        # trials per status, kept as they change: counting them for every progress line grew with the sweep
        self.counts = collections.Counter(r["status"] for r in state.trials.values())

    def _status(self, rec, status: str) -> None:
        self.counts[rec["status"]] -= 1
        self.counts[status] += 1
        rec["status"] = status

    def _completed(self, rec):
        if self.hypervolume is not None:
            self.hypervolume.on_complete(rec)  # its curve point reaches MLflow with the next flush

    def _record(self, trial) -> Dict[str, Any]:
        cfg = trial.config
        key = str(cfg.get("optuna_trial", trial.trial_id))
        rec = self.state.trials.get(key)
        if rec is None:
            spec = spec_of(cfg)
            rec = {"trial": int(cfg.get("optuna_trial", len(self.state.trials))), "method": spec.get("method", "?"),
                   "sampled": cfg.get("sampled", {}), "spec": spec, "status": "PENDING", "metrics": {},
                   "history": [], "logged": [], "run_id": None, "checkpoint_path": None, "retries": 0,
                   "error": None, "train_run_name": cfg.get("train_run_name"), "pending_tags": {}}
            if cfg.get("label"):
                rec["label"] = cfg["label"]
            self.state.trials[key] = rec
            self.counts["PENDING"] += 1
        rec["tune_trial_id"] = trial.trial_id
        return rec

    def _tag(self, rec, **tags):
        rec.setdefault("pending_tags", {}).update({k: str(v) for k, v in tags.items()})

    def on_trial_start(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        self._status(rec, "RUNNING")
        self._tag(rec, status="RUNNING")
        self.sync.sync(rec)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rec = self._record(trial)
        metrics = _our_metrics(result)
        epoch = int(metrics.get("epoch", len(rec["history"]) + 1))
        # A trial restarted from its checkpoint reports from the next epoch on, and its first
        # report carries the epochs before the checkpoint: a driver killed while reports were
        # in flight missed some of them. Each epoch is recorded (and logged) exactly once.
        by_epoch = {int(h.get("epoch", 0)): h for h in rec["history"]}
        for h in result.get("resumed_history") or []:
            by_epoch.setdefault(int(h.get("epoch", 0)), _our_metrics(h))
        by_epoch = {e: h for e, h in by_epoch.items() if e < epoch}
        by_epoch[epoch] = metrics
        rec["history"] = [by_epoch[e] for e in sorted(by_epoch)]
        rec["logged"] = [e for e in rec.get("logged", []) if e < epoch]  # a re-run epoch is logged again
        rec["metrics"] = metrics
        if result.get("checkpoint_path"):
            rec["checkpoint_path"] = as_uri(result["checkpoint_path"], self.storage_uri)
        if metrics.get("catastrophic_overfit", 0) > 0 and not rec.get("catastrophic_overfit"):
            rec["catastrophic_overfit"] = True
            self._tag(rec, catastrophic_overfit="true")
        for key in ("node_id", "worker_nodes"):
            node = result.get(key)
            if node and node != rec.get(key):
                rec[key] = node
                self._tag(rec, **{key: node})
        pg = result.get("placement_group")
        if pg and pg not in rec.setdefault("placement_groups", []):
            rec["placement_groups"].append(pg)  # released by a resume if a killed driver left it
        if self.on_result is not None:
            self.on_result(rec)
        self.sync.sync(rec)

    def on_trial_complete(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        if trial.checkpoint is not None and not rec.get("checkpoint_path"):
            rec["checkpoint_path"] = as_uri(trial.checkpoint.path, self.storage_uri)
        vals = [rec["metrics"].get(o.metric) for o in self.objectives]
        bad = any(v is None or not math.isfinite(v) for v in vals)
        planned = int(rec["spec"].get("train", {}).get("epochs", 0))
        ran = int(rec["metrics"].get("epoch", 0))
        if not bad and 0 < ran < planned and not rec["metrics"].get("catastrophic_overfit"):
            rec["stopped_early"] = True  # by the sweep's scheduler (ASHA / HyperBand)
            self._tag(rec, stopped_early="true", epochs_run=ran)
        self._status(rec, "FAILED" if bad else "FINISHED")
        if bad:
            rec["error"] = "an objective is missing or not finite: " + ", ".join(
                f"{o.metric}={rec['metrics'].get(o.metric)}" for o in self.objectives)
            self._tag(rec, status="FAILED", error=rec["error"])
        else:
            # settled when the sweep ends (summary.finish_sweep re-tags only the trials the final front changes)
            rec.setdefault("pareto_optimal", False)
            self._tag(rec, status="FINISHED", pareto_optimal=str(rec["pareto_optimal"]).lower())
        self.sync.sync(rec)
        self._completed(rec)
        release_trial_statistics(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        rec["retries"] = rec.get("retries", 0) + 1
        rec["error"] = _error_line(trial)
        self._tag(rec, status="RETRYING", retries=rec["retries"], last_error=rec["error"])
        self.sync.sync(rec)

    def on_trial_error(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        self._status(rec, "FAILED")
        rec["error"] = _error_line(trial)
        self._tag(rec, status="FAILED", error=rec["error"])
        self.sync.sync(rec)
        self._completed(rec)
        release_trial_statistics(trial)

    def on_step_end(self, iteration, trials, **info):
        self.sync.tick()

    def rows(self) -> List[Dict[str, Any]]:
        out = []
        for rec in self.state.trials.values():
            out.append({"trial": rec["trial"], "method": rec["method"], "status": rec["status"], "label": rec.get("label"),
                        "run_id": rec["run_id"], "checkpoint_path": rec.get("checkpoint_path"),
                        "retries": rec.get("retries", 0), "error": rec.get("error"),
                        **{f"param:{k}": v for k, v in rec["sampled"].items() if k != "method"},
                        **rec["metrics"]})
        return sorted(out, key=lambda r: r["trial"])


def _error_line(trial) -> str:
    """The last line of the trial's exception (the useful part of a Ray traceback)."""
    msg = ""
    # The driver's local copy first: the copy in the trial's storage (get_error) is written there only
    # at Tune's next sync, after the error callbacks (an object store, or a staging directory apart).
    path = getattr(trial, "error_file", None)
    if path and os.path.isfile(path):
        msg = Path(path).read_text()
    if not msg:
        try:
            err = trial.get_error()
            msg = str(err) if err is not None else ""
        except Exception:  # noqa: BLE001 - not in storage (yet): say what we know
            msg = ""
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    # The innermost "package.ExceptionName: message" line is the cause; Ray wraps it in
    # "Training failed due to worker errors" / "[Rank 0 Error Snippet]" banners.
    exc_line = re.compile(r"^(?:[a-z_]\w*\.)*[A-Z]\w*: \S")
    causes = [ln for ln in lines if exc_line.match(ln) and not ln.startswith(("Worker info", "Worker exit"))]
    cause = causes[-1] if causes else (lines[-1] if lines else "unknown error")
    return cause[:500]


class ProgressPrinter(Callback):
    """A line per event and a heartbeat, instead of Ray's tables and log flood."""

    def __init__(self, recorder: MlflowTrialRecorder, total: int, objectives, printer=print, every_s: float = 20.0,
                 eligible=None, watch=None, front_size=None):
        self.rec = recorder
        # the hypervolume tracker's front (kept as trials end) when given: recomputing the front of every
        # trial for each line grew with the sweep
        self.front_size = front_size or self._front_size
        self.watch = watch  # capacity.AutoscalerWatch on an autoscaling cluster
        self.eligible = eligible or (lambda rec: rec["status"] == "FINISHED")  # which trials the front may hold
        self.total = total
        self.objectives = objectives
        self.print = printer
        self.every = every_s
        self.t0 = time.time()
        self.last = time.time()

    def _counts(self):
        c = self.rec.counts
        return c["FINISHED"], c["RUNNING"] + c["RETRYING"], c["FAILED"]

    def _front_size(self):
        from ..tracking.pareto import pareto_mask

        rows = [r for r in self.rec.state.trials.values() if self.eligible(r)]
        if not rows:
            return 0
        pts = [[r["metrics"].get(o.metric, float("nan")) for o in self.objectives] for r in rows]
        return int(pareto_mask(pts, [o.mode for o in self.objectives]).sum())

    def _line(self, event: str):
        done, running, failed = self._counts()
        self.print(f"[{time.time() - self.t0:6.0f}s] {done}/{self.total} done, {running} running, {failed} failed, "
                   f"front {self.front_size()} | {event}", flush=True)
        self.last = time.time()

    def on_trial_start(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(str(trial.config.get("optuna_trial")), {})
        name = f" [{r['label']}]" if r.get("label") else ""
        self._line(f"start trial {r.get('trial', '?')} ({r.get('method', '?')}){name} {_short(r.get('sampled', {}))}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(str(trial.config.get("optuna_trial")), {})
        m = r.get("metrics", {})
        self._line(f"trial {r.get('trial', '?')} {r.get('method', '?')}: "
                   f"val_robust_acc={m.get('val_robust_acc', float('nan')):.3f} "
                   f"val_clean_acc={m.get('val_clean_acc', float('nan')):.3f} train_time_s={m.get('train_time_s', float('nan')):.1f}")

    def on_trial_error(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(str(trial.config.get("optuna_trial")), {})
        self._line(f"trial {r.get('trial', '?')} FAILED: {r.get('error', '')}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(str(trial.config.get("optuna_trial")), {})
        self._line(f"trial {r.get('trial', '?')} failed, retrying from its last checkpoint")

    def on_step_end(self, iteration, trials, **info):
        if self.watch is not None:
            self.watch.poll()
        if time.time() - self.last >= self.every:
            self._line("running")


def _short(sampled: Dict) -> str:
    parts = []
    for k, v in sampled.items():
        if k == "method":
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def tensorboard_logger():
    """Tune's TensorBoard logger, minus the per-epoch history raysweep attaches to a resumed
    trial's first report (for the recorder above). Tune adds its stock TBX logger unless one is
    given, and that one warned with the whole history, on every report of a resumed trial."""
    from ray.tune.logger import TBXLoggerCallback

    class _WithoutHistory(TBXLoggerCallback):
        def log_trial_result(self, iteration, trial, result):
            super().log_trial_result(iteration, trial, {k: v for k, v in result.items() if k != "resumed_history"})

    try:
        return _WithoutHistory()
    except ImportError:  # tensorboardX missing: Tune would skip its own logger too
        return None
