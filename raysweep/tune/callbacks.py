"""Driver-side Tune callbacks: the MLflow record of every trial, and concise progress lines."""

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ray.tune import Callback

from ..methods import get_method
from ..train.spec import flatten

# Tune's own bookkeeping fields; everything else numeric in a result is ours.
_TUNE_KEYS = {
    "timestamp", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "training_iteration",
    "trial_id", "date", "done", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
    "should_checkpoint", "experiment_tag", "config",
}


class SweepState:
    """What a resumed sweep needs to append to the same MLflow runs: persisted as JSON."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: Dict[str, Any] = {"parent_run_id": None, "trials": {}}
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())

    def save(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a killed driver never leaves half a file

    @property
    def trials(self) -> Dict[str, Dict[str, Any]]:
        return self.data.setdefault("trials", {})


def _our_metrics(result: Dict) -> Dict[str, float]:
    out = {}
    for k, v in result.items():
        if k in _TUNE_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        out[k] = float(v)
    return out


class MlflowTrialRecorder(Callback):
    """One child run per trial under the sweep's parent run, written from the driver.

    Also keeps each trial's last metrics and checkpoint so the sweep can compute its front.
    Every MLflow call goes through ``self.safe`` so a tracking outage never stops training."""

    def __init__(self, tracker, parent_id: str, state: SweepState, safe: Callable):
        self.tracker = tracker
        self.parent_id = parent_id
        self.state = state
        self.safe = safe

    # -- helpers -----------------------------------------------------------------------
    def _record(self, trial) -> Dict[str, Any]:
        rec = self.state.trials.get(trial.trial_id)
        if rec is None:
            cfg = trial.config
            spec = cfg.get("spec", {})
            method = spec.get("method", "?")
            rec = {"trial": int(cfg.get("optuna_trial", len(self.state.trials))), "method": method,
                   "sampled": cfg.get("sampled", {}), "spec": spec, "status": "PENDING", "metrics": {},
                   "run_id": None, "checkpoint_path": None, "retries": 0, "error": None}
            self.state.trials[trial.trial_id] = rec
        return rec

    def _ensure_run(self, trial, rec):
        if rec["run_id"]:
            return rec["run_id"]
        spec = rec["spec"]
        method_cls = get_method(rec["method"])
        params = {"method": rec["method"], **flatten({k: v for k, v in spec.items() if k != "method"})}
        tags = {"method": rec["method"], "status": "RUNNING", "raysweep.trial_id": trial.trial_id,
                "optuna_trial": rec["trial"], "method_fidelity": method_cls.fidelity,
                "sampled": json.dumps(rec["sampled"], sort_keys=True)}
        run_id = self.safe(self.tracker.start_child, self.parent_id, f"trial-{rec['trial']:03d}-{rec['method']}", params, tags)
        rec["run_id"] = run_id
        self.state.save()
        return run_id

    # -- Tune hooks --------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        rec["status"] = "RUNNING"
        run_id = self._ensure_run(trial, rec)
        if run_id:
            self.safe(self.tracker.set_tags, run_id, {"status": "RUNNING"})
        self.state.save()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rec = self._record(trial)
        metrics = _our_metrics(result)
        rec["metrics"] = metrics
        if result.get("checkpoint_path"):
            rec["checkpoint_path"] = result["checkpoint_path"]
        run_id = self._ensure_run(trial, rec)
        if run_id:
            self.safe(self.tracker.log_metrics, run_id, metrics, int(metrics.get("epoch", 0)))
        self.state.save()

    def on_trial_complete(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        if trial.checkpoint is not None and not rec.get("checkpoint_path"):
            rec["checkpoint_path"] = trial.checkpoint.path
        vals = [rec["metrics"].get(k) for k in ("train_time_s", "val_robust_acc")]
        bad = any(v is None or not math.isfinite(v) for v in vals)
        rec["status"] = "FAILED" if bad else "FINISHED"
        run_id = self._ensure_run(trial, rec)
        if run_id:
            self.safe(self.tracker.set_tags, run_id, {"status": rec["status"]})
            self.safe(self.tracker.end_run, run_id, "FAILED" if bad else "FINISHED")
        self.state.save()

    def on_trial_recover(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        rec["retries"] = rec.get("retries", 0) + 1
        if rec["run_id"]:
            self.safe(self.tracker.set_tags, rec["run_id"], {"status": "RETRYING", "retries": rec["retries"]})
        self.state.save()

    def on_trial_error(self, iteration, trials, trial, **info):
        rec = self._record(trial)
        rec["status"] = "FAILED"
        rec["error"] = _error_line(trial)
        run_id = self._ensure_run(trial, rec)
        if run_id:
            self.safe(self.tracker.set_tags, run_id, {"status": "FAILED", "error": rec["error"]})
            self.safe(self.tracker.end_run, run_id, "FAILED")
        self.state.save()

    def rows(self) -> List[Dict[str, Any]]:
        out = []
        for tid, rec in self.state.trials.items():
            out.append({"trial": rec["trial"], "tune_trial_id": tid, "method": rec["method"], "status": rec["status"],
                        "run_id": rec["run_id"], "checkpoint_path": rec.get("checkpoint_path"),
                        **{f"param:{k}": v for k, v in rec["sampled"].items() if k != "method"},
                        **rec["metrics"]})
        return sorted(out, key=lambda r: r["trial"])


def _error_line(trial) -> str:
    """The last line of the trial's exception (the useful part of a Ray traceback)."""
    msg = ""
    try:
        err = trial.get_error()
        msg = str(err) if err is not None else ""
    except Exception:  # older/newer Tune: fall back to the error file
        path = getattr(trial, "error_file", None)
        if path and os.path.isfile(path):
            msg = Path(path).read_text()
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    cause = next((ln for ln in reversed(lines) if "Error" in ln or "Exception" in ln), lines[-1] if lines else "unknown error")
    return cause[:500]


class ProgressPrinter(Callback):
    """A line per event and a heartbeat, instead of Ray's tables and log flood."""

    def __init__(self, recorder: MlflowTrialRecorder, total: int, objectives, printer=print, every_s: float = 20.0):
        self.rec = recorder
        self.total = total
        self.objectives = objectives
        self.print = printer
        self.every = every_s
        self.t0 = time.time()
        self.last = time.time()

    def _counts(self):
        st = [r["status"] for r in self.rec.state.trials.values()]
        return st.count("FINISHED"), st.count("RUNNING") + st.count("RETRYING"), st.count("FAILED")

    def _front_size(self):
        from ..tracking.pareto import pareto_mask

        rows = [r for r in self.rec.state.trials.values() if r["status"] == "FINISHED"]
        if not rows:
            return 0
        pts = [[r["metrics"].get(o.metric, float("nan")) for o in self.objectives] for r in rows]
        return int(pareto_mask(pts, [o.mode for o in self.objectives]).sum())

    def _line(self, event: str):
        done, running, failed = self._counts()
        self.print(f"[{time.time() - self.t0:6.0f}s] {done}/{self.total} done, {running} running, {failed} failed, "
                   f"front {self._front_size()} | {event}", flush=True)
        self.last = time.time()

    def on_trial_start(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(trial.trial_id, {})
        self._line(f"start trial {r.get('trial', '?')} ({r.get('method', '?')}) {_short(r.get('sampled', {}))}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(trial.trial_id, {})
        m = r.get("metrics", {})
        self._line(f"trial {r.get('trial', '?')} {r.get('method', '?')}: "
                   f"val_robust_acc={m.get('val_robust_acc', float('nan')):.3f} "
                   f"val_clean_acc={m.get('val_clean_acc', float('nan')):.3f} train_time_s={m.get('train_time_s', float('nan')):.1f}")

    def on_trial_error(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(trial.trial_id, {})
        self._line(f"trial {r.get('trial', '?')} FAILED: {r.get('error', '')}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        r = self.rec.state.trials.get(trial.trial_id, {})
        self._line(f"trial {r.get('trial', '?')} failed, retrying from its last checkpoint")

    def on_step_end(self, iteration, trials, **info):
        if time.time() - self.last >= self.every:
            self._line("running")


def _short(sampled: Dict) -> str:
    parts = []
    for k, v in sampled.items():
        if k == "method":
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)
