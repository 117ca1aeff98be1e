"""Does a trial cost the driver more as the sweep grows? A sweep of N tiny trials (synthetic data, ``small_cnn``,
one epoch, PGD-2 validation, in-process trials two at a time, final evaluation off), measured from the driver:

  first_100_s / last_100_s   wall between the 1st and 100th trial ending (from the first start), and over the last 100
  wall_s, ideal_s            run_sweep's wall; N x median trial wall (start to end, as the driver saw it) / concurrency
  end_s                      from the last trial's end to run_sweep's return (front, importance, plots, MLflow)
  driver_cpu_s_per_trial     the driver process's CPU time (all its threads) / N
  state_bytes                bytes written to the sweep's state files (state.json and, from format 2, state.log)
  driver_write_bytes         bytes the driver passed to write() (state, optuna.db, mlflow.db, logs: /proc/self/io wchar)
  peak_driver_rss_mb         the driver's peak resident memory
  tune_checkpoint_s          time in Tune's experiment checkpoint (TuneController.save_to_dir), and how often
  driver_cpu_split_s_per_trial  that CPU by thread: the driver's main thread, the MLflow writer, the benchmark's sampler,
                             the rest (Ray's threads in the driver)
  memory_kb_per_trial        (``--memory``) what Tune's Trial objects, Optuna's trials and raysweep's state hold per
                             trial at the end of the trials
  rss_mb_at_each_tune_experiment_start  the driver's resident memory as each Tune experiment starts (a sweep longer
                             than RAYSWEEP_TUNE_CHUNK runs as several): its growth between them is what the sweep keeps
  wall_parts                 what the wall pays per trial beyond the ideal's median: each trial's duration as the driver
                             saw it (percentiles, mean), how long a slot stood empty between trials, the trial's own
                             build and epoch (from its reports), the driver's GC pauses
  main_cpu_s_per_trial       the main thread's CPU by owner: raysweep's Tune callbacks, its searcher, Tune's loop around
                             them, the rest (start-up, the end)
  profile                    where the driver's main thread was, sampled every 10 ms from a thread (no sys.setprofile,
                             so no per-call cost): the raysweep / Tune / Optuna / MLflow functions on the stack

Each N runs in a process of its own (peak RSS is per process).

``--resume-at K``: the sweep driven by the CLI, its process group SIGKILLed once K trials have ended, then
``raysweep resume``: seconds until it announces the sweep and until its first trial starts, against the same for the
sweep's own start. ``--tune-floor S``: Ray Tune alone (no raysweep) running N trials that each keep a core busy for
S seconds: Tune's own wall / ideal for trials that short on this machine, the floor under raysweep's; with
``--with-mlflow`` each of those trials is also recorded as an MLflow run the way raysweep records one (the floor
under any tool that keeps such a record).

    .venv/bin/python bench/scale.py 100                       # ~1 min on 2 cores
    .venv/bin/python bench/scale.py 100 1000 --out bench/results/scale.json
    .venv/bin/python bench/scale.py 10000 --resume-at 5000 --out bench/results/scale.json   # time a resume mid-sweep
    .venv/bin/python bench/scale.py 1000 --tune-floor 0.15 --out bench/results/scale.json  # Tune alone, same trial length
    .venv/bin/python bench/scale.py 1000 --tune-floor 0.15 --with-mlflow --out bench/results/scale.json
"""

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

YAML = """
name: scale-{n}
method: fgsm_rs
dataset: {{name: synthetic, val_size: 128, train_size: {train_size}}}
model: {{name: small_cnn, width: 4}}
threat: {{norm: linf, eps: 0.1}}
train: {{epochs: 1, batch_size: 64, lr: 0.01, optimizer: adam, weight_decay: 0.0}}
eval: {{val_pgd_steps: 2}}
search: {{lr: {{float: [0.001, 0.05], log: true}}}}
sweep: {{num_samples: {n}, max_concurrent: {concurrency}, sampler: random, seed: 0}}
resources: {{num_workers: 1, cpus_per_worker: 1, executor: inprocess}}
final_eval: {{enabled: false}}
"""

START = re.compile(r"\| start trial (\d+) ")
END = re.compile(r"\| trial (\d+) (?:\S+: val_robust_acc=|FAILED)")


class Sampler:
    """Stacks of one thread, sampled from another: inclusive counts of the functions worth naming."""

    def __init__(self, thread_id, every_s=0.01):
        self.thread_id, self.every_s = thread_id, every_s
        self.inclusive, self.leaf, self.samples = collections.Counter(), collections.Counter(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        self.cpu_s = 0.0
        c0 = time.thread_time()
        while not self._stop.wait(self.every_s):
            self.cpu_s = time.thread_time() - c0
            frame = sys._current_frames().get(self.thread_id)
            seen = set()
            leaf = True
            while frame is not None:
                code = frame.f_code
                name = f"{_short(code.co_filename)}:{code.co_name}"
                if leaf:
                    self.leaf[name] += 1
                    leaf = False
                if name not in seen and _worth(code.co_filename):
                    self.inclusive[name] += 1
                    seen.add(name)
                frame = frame.f_back
            self.samples += 1

    def top(self, n=25):
        tot = max(1, self.samples)
        return {"samples": self.samples,
                "inclusive": [[k, round(100.0 * v / tot, 1)] for k, v in self.inclusive.most_common(n)],
                "leaf": [[k, round(100.0 * v / tot, 1)] for k, v in self.leaf.most_common(15)]}


def _short(path):
    for mark in ("site-packages/", "/work/main/", "/tmp/base/", "lib/python3.11/"):
        if mark in path:
            return path.split(mark, 1)[1]
    return path


def _worth(path):
    return any(k in path for k in ("raysweep", "ray/tune", "optuna", "mlflow", "json", "sqlalchemy", "sqlite"))


def _timed(owner, name, into):
    fn = getattr(owner, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - t
            into[name + "_calls"] = into.get(name + "_calls", 0) + 1

    setattr(owner, name, wrapper)


def _count_state_bytes(sweep_state, counter):
    """Bytes each save wrote to the state files, from the files themselves (works for either format)."""
    save = sweep_state.SweepState.save

    def sizes(self):
        out = []
        for p in (self.path, self.path.with_suffix(".log")):
            try:
                st = p.stat()
                out.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except FileNotFoundError:
                out.append((0, 0, 0))
        return out

    def wrapper(self, *a, **k):
        (s0, m0, i0), (l0, _, _) = sizes(self)
        try:
            return save(self, *a, **k)
        finally:
            (s1, m1, i1), (l1, _, _) = sizes(self)
            if (m1, i1) != (m0, i0):
                counter[0] += s1  # the snapshot rewritten whole
                counter[0] += l1  # the log after it: whatever was appended since its truncation
            else:
                counter[0] += max(0, l1 - l0)

    sweep_state.SweepState.save = wrapper


def _thread_cpu(owner, name, into):
    """CPU time of the threads that call ``owner.name``, other than the main one (the MLflow writer's)."""
    fn = getattr(owner, name)

    def wrapper(*a, **k):
        if threading.current_thread() is threading.main_thread():
            return fn(*a, **k)
        c = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            into[0] += time.thread_time() - c

    setattr(owner, name, wrapper)


def _main_cpu(owner, name, into, part):
    """CPU time of the driver's main thread inside ``owner.name``, added to ``into[part]`` (a part's outermost call
    only: one hook calling another is counted once)."""
    fn = getattr(owner, name)
    busy = "_in_" + part

    def wrapper(*a, **k):
        if threading.current_thread() is not threading.main_thread() or into.get(busy):
            return fn(*a, **k)
        into[busy] = True
        c = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            into[part] = into.get(part, 0.0) + time.thread_time() - c
            into[busy] = False

    setattr(owner, name, wrapper)


class GcPauses:
    """The driver's garbage-collection pauses (every thread stops for them)."""

    def __init__(self):
        self.total_s, self.max_s, self.full, self._t0 = 0.0, 0.0, 0, 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        d = time.perf_counter() - self._t0
        self.total_s += d
        self.max_s = max(self.max_s, d)
        self.full += info.get("generation") == 2


def _pct_ms(xs):
    if not xs:
        return None
    xs = sorted(xs)
    at = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {"p50": round(1000 * at(0.5), 1), "p90": round(1000 * at(0.9), 1), "p99": round(1000 * at(0.99), 1),
            "mean": round(1000 * statistics.fmean(xs), 1)}


def _slot_gaps(starts, ends):
    """For each trial start, the time since the earliest trial end not yet followed by a start: how long a slot stood
    empty between two trials, as the driver saw them."""
    events = sorted([(t, 1) for t in starts] + [(t, 0) for t in ends])
    free, gaps = collections.deque(), []
    for t, is_start in events:
        if not is_start:
            free.append(t)
        elif free:
            gaps.append(t - free.popleft())
    return gaps


WORK_DIRS = []  # removed when the measurement ends, unless --keep: a 10,000-trial sweep leaves ~7 GB of checkpoints


def _work_dir(prefix):
    work = Path(tempfile.mkdtemp(prefix=prefix))
    WORK_DIRS.append(work)
    return work


def _drop_work_dirs():
    for work in WORK_DIRS:
        shutil.rmtree(work, ignore_errors=True)


def _wchar():
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _deep_bytes(roots, seen):
    """Bytes of the objects reachable from ``roots`` (containers, and the attributes of Ray's, Optuna's and
    raysweep's objects) not already in ``seen``: what each part of the driver holds, counted once."""
    total, stack = 0, list(roots)
    while stack:
        x = stack.pop()
        if id(x) in seen or isinstance(x, (type, types.ModuleType, types.FunctionType)):
            continue
        seen.add(id(x))
        total += sys.getsizeof(x)
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(x)
        elif type(x).__module__.split(".")[0] in ("ray", "optuna", "raysweep"):
            if hasattr(x, "__dict__"):
                stack.append(vars(x))
            for slot in getattr(type(x), "__slots__", ()):
                if hasattr(x, slot):
                    stack.append(getattr(x, slot))
    return total


def _memory_by_part(into, n):
    """At the end of the trials: KB per trial held by Tune's Trial objects, Optuna's trials and raysweep's state, in
    that order (what two of them share is counted under the first), and the driver's resident memory then."""
    import gc

    import optuna
    from ray.tune.experiment import Trial

    from raysweep.sweep_state import SweepState

    gc.collect()
    objs = gc.get_objects()
    seen = set()
    parts = {"tune_trials": [o for o in objs if isinstance(o, Trial)],
             "optuna_trials": [o for o in objs if isinstance(o, optuna.trial.FrozenTrial)],
             "raysweep_state": [o.data for o in objs if isinstance(o, SweepState)]}
    into["memory_kb_per_trial"] = {k: round(_deep_bytes(v, seen) / 1024 / n, 1) for k, v in parts.items()}
    into["rss_at_end_of_trials_mb"] = _rss_mb()


def _rss_mb():
    return round(int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6, 1)


def run_one(n, concurrency, train_size, memory=False):
    from raysweep import sweep_state
    from raysweep._env import apply_quiet_env
    from raysweep.config import load_config
    from raysweep.tune import summary
    from raysweep.tune.ray_setup import init_ray
    from raysweep.tune.runner import run_sweep
    from ray.tune.execution.tune_controller import TuneController

    work = _work_dir(f"rs-scale-{n}-")
    os.chdir(work)
    apply_quiet_env(work)
    init_ray(work)
    y = work / "scale.yaml"
    y.write_text(YAML.format(n=n, concurrency=concurrency, train_size=train_size))
    cfg = load_config(y)
    timings, state_bytes = {}, [0]
    _timed(TuneController, "save_to_dir", timings)
    _timed(summary, "finish_sweep", timings)
    measured = {}
    if memory:  # before the end's own work; its walk of every object is slow and adds to end_s and peak RSS
        finish = summary.finish_sweep

        def counted(*a, **k):
            _memory_by_part(measured, n)
            return finish(*a, **k)

        summary.finish_sweep = counted
    from raysweep.tune import importance

    _timed(importance, "param_importances", timings)
    states = []
    if hasattr(sweep_state.SweepState(work / "probe.json"), "bytes_written"):
        # the writer counts its own bytes: no stat() of the files around every save (a cost of this benchmark)
        init = sweep_state.SweepState.__init__

        def kept(self, *a, **k):
            init(self, *a, **k)
            states.append(self)

        sweep_state.SweepState.__init__ = kept
    else:  # an older tree (A/B): counted from the files
        _count_state_bytes(sweep_state, state_bytes)
    from raysweep.tracking import sync

    writer_cpu = [0.0]
    _thread_cpu(sync.MlflowSync, "_run", writer_cpu)
    from raysweep.tune import callbacks as rs_callbacks, searcher as rs_searcher

    main_parts = {}
    for cls in (rs_callbacks.MlflowTrialRecorder, rs_callbacks.ProgressPrinter):
        for hook in ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error", "on_trial_recover",
                     "on_step_end"):
            if hook in vars(cls):
                _main_cpu(cls, hook, main_parts, "raysweep_callbacks")
    for hook in ("suggest", "on_trial_complete"):
        _main_cpu(rs_searcher.OptunaMultiObjectiveSearch, hook, main_parts, "searcher")
    _main_cpu(TuneController, "step", main_parts, "tune_step")
    import gc

    # the driver's RSS as each Tune experiment starts (a sweep of more than RAYSWEEP_TUNE_CHUNK trials runs as several)
    from ray import tune as ray_tune

    fit, at_fit = ray_tune.Tuner.fit, []

    def fit_measured(self, *a, **k):
        at_fit.append(_rss_mb())
        return fit(self, *a, **k)

    ray_tune.Tuner.fit = fit_measured
    gc_pauses = GcPauses()
    gc.callbacks.append(gc_pauses)
    starts, ends = {}, []

    def printer(*a, **k):
        line = " ".join(map(str, a))
        now = time.perf_counter()
        m = START.search(line)
        if m:
            starts[int(m.group(1))] = now
        m = END.search(line)
        if m:
            ends.append((now, int(m.group(1))))

    sampler = Sampler(threading.main_thread().ident).start()
    cpu0, main0, w0, t0 = time.process_time(), time.thread_time(), _wchar(), time.perf_counter()
    s = run_sweep(cfg, workdir=work, printer=printer)
    wall = time.perf_counter() - t0
    cpu, main_cpu, wrote = time.process_time() - cpu0, time.thread_time() - main0, _wchar() - w0
    sampler.stop()
    gc.callbacks.remove(gc_pauses)
    first_start = min(starts.values()) if starts else t0
    times = [t for t, _ in ends]
    durations = [t - starts[k] for t, k in ends if k in starts]
    med = statistics.median(durations) if durations else float("nan")
    k = min(100, len(times))
    sweep_dir = Path(s["sweep_dir"])
    files = {p.name: p.stat().st_size for p in sweep_dir.iterdir() if p.is_file()}
    recs = sweep_state.read_state(sweep_dir)["trials"].values()
    phase = lambda key: [r["metrics"][key] for r in recs if key in r.get("metrics", {})]  # noqa: E731
    in_step = main_parts.get("tune_step", 0.0)
    return {
        "trials": n, "finished": s["finished"], "concurrency": concurrency, "train_size": train_size,
        "first_100_s": round(times[k - 1] - first_start, 2) if times else None,
        "last_100_s": round(times[-1] - times[-k - 1] if len(times) > k else times[-1] - first_start, 2) if times else None,
        "wall_s": round(wall, 1), "ideal_s": round(n * med / concurrency, 1), "median_trial_s": round(med, 3),
        "trials_phase_s": round(times[-1] - first_start, 1) if times else None,
        "end_s": round(t0 + wall - times[-1], 1) if times else None,
        "driver_cpu_s_per_trial": round(cpu / n, 4),
        # by thread: the driver's (Tune's loop, raysweep's callbacks, Optuna), the MLflow writer's, this benchmark's
        # sampler's, and the rest (Ray's own threads in the driver, C++ included)
        "driver_cpu_split_s_per_trial": {
            "main": round(main_cpu / n, 4), "mlflow_writer": round(writer_cpu[0] / n, 4),
            "benchmark_sampler": round(sampler.cpu_s / n, 4),
            "other_threads": round((cpu - main_cpu - writer_cpu[0] - sampler.cpu_s) / n, 4)},
        "state_bytes": state_bytes[0] + sum(st.bytes_written for st in states), "driver_write_bytes": wrote,
        "peak_driver_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "files_bytes": {k: v for k, v in files.items() if k.startswith(("state", "optuna"))},
        "mlflow_db_bytes": (work / "mlflow.db").stat().st_size if (work / "mlflow.db").is_file() else None,
        "tune_checkpoint_s": round(timings.get("save_to_dir", 0.0), 2),
        "tune_checkpoints": timings.get("save_to_dir_calls", 0),
        "finish_sweep_s": round(timings.get("finish_sweep", 0.0), 2),
        "importance_s": round(timings.get("param_importances", 0.0), 2),
        "tune_global_checkpoint_s": os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", "auto"),
        # where wall / ideal goes: ideal = N x median trial / concurrency, while the wall pays each trial's mean
        # duration plus the time its slot stands empty before the next trial starts
        "wall_parts": {
            "trial_seen_ms": _pct_ms(durations),
            "slot_gap_ms": _pct_ms(_slot_gaps(list(starts.values()), times)),
            # inside the trial (its own report): building data, model and method in the reused process; one epoch
            "trial_build_ms": _pct_ms(phase("startup_build_s")), "trial_epoch_ms": _pct_ms(phase("epoch_time_s")),
            "driver_gc_s": round(gc_pauses.total_s, 2), "driver_gc_max_s": round(gc_pauses.max_s, 3),
            "driver_gc_full": gc_pauses.full},
        # the main thread's CPU by owner: raysweep's Tune callbacks (record, state saves, MLflow hand-off, front,
        # progress lines), its searcher (Optuna ask/tell, the trial's spec), Tune's loop around them, the rest
        # (start-up, the end, Ray's client calls outside Tune's loop)
        "main_cpu_s_per_trial": {
            "raysweep_callbacks": round(main_parts.get("raysweep_callbacks", 0.0) / n, 4),
            "searcher": round(main_parts.get("searcher", 0.0) / n, 4),
            "tune_loop": round((in_step - main_parts.get("raysweep_callbacks", 0.0) - main_parts.get("searcher", 0.0)) / n, 4),
            "rest": round((main_cpu - in_step) / n, 4)},
        "profile": sampler.top(),
        "rss_mb_at_each_tune_experiment_start": at_fit,
        **measured,
    }


def _lines(proc):
    """(arrival time, line) of a child's output as it comes."""
    for line in proc.stdout:
        yield time.perf_counter(), line


def _stop(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def run_resume(n, at, concurrency, train_size, more=100):
    """A sweep of ``n`` trials driven by the CLI, its driver SIGKILLed once ``at`` trials have ended, then
    ``raysweep resume``: how long until it announces the resume and until its first new trial starts (against the
    same times for the sweep's own start), and the wall of its next ``more`` trials against the ``more`` before
    the kill."""
    work = _work_dir(f"rs-resume-{n}-")
    y = work / "scale.yaml"
    y.write_text(YAML.format(n=n, concurrency=concurrency, train_size=train_size))
    cli = [sys.executable, "-m", "raysweep.cli"]
    kw = dict(cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out = {"trials": n, "killed_at": at, "concurrency": concurrency, "train_size": train_size}

    def drive(args, stop_after):
        t0, first_start, announce, ends = time.perf_counter(), None, None, []
        proc = subprocess.Popen(cli + args, **kw)
        try:
            for now, line in _lines(proc):
                if announce is None and "raysweep: sweep " in line:
                    announce = now - t0
                if first_start is None and START.search(line):
                    first_start = now - t0
                if END.search(line):
                    ends.append(now)
                    if len(ends) >= stop_after:
                        break
        finally:
            _stop(proc)
        return announce, first_start, ends

    announce, first, ends = drive(["sweep", str(y)], at)
    out.update(start_announce_s=round(announce, 1), start_first_trial_s=round(first, 1),
               before_kill_last_s=round(ends[-1] - ends[-more - 1], 2) if len(ends) > more else None)
    time.sleep(5)  # the killed driver's Ray processes notice and go
    state = json.loads(next((work / "raysweep_runs").glob("*/sweep-*/state.json")).read_text())
    out["state_json_bytes_at_kill"] = len(json.dumps(state))
    announce, first, ends = drive(["resume", f"scale-{n}"], more)
    out.update(resume_announce_s=round(announce, 1), resume_first_trial_s=round(first, 1),
               after_resume_first_s=round(ends[-1] - ends[0], 2) if len(ends) > 1 else None)
    return out


def _burn(config):
    """A Tune trial that keeps a core busy for ``config["seconds"]`` and reports once, as a raysweep trial does."""
    from ray import tune

    end = time.perf_counter() + config["seconds"]
    x = 0
    while time.perf_counter() < end:
        x += 1
    tune.report({"val_robust_acc": 0.5, "train_time_s": config["seconds"]})


def _mlflow_floor(work):
    """A Tune callback that records each ended trial as an MLflow child run the way raysweep's writer does (its run
    made with raysweep's creation tags and the trial's pending ones, one batch of a raysweep trial's 41 params and 20
    metrics, then its end; before 2026-12-06 the 3 pending tags went in the batch) through raysweep's own MLflow layer, on a writer thread: what any tool that keeps a full MLflow record per
    trial pays on top of Tune."""
    import queue

    from ray.tune import Callback

    from raysweep.tracking.store import SweepTracker, default_tracking_uri

    class MlflowFloor(Callback):
        def __init__(self):
            self.tracker = SweepTracker(default_tracking_uri(work), "floor", artifact_root=work / "mlartifacts")
            self.parent = self.tracker.start_parent("floor", {})
            self.jobs, self.cpu_s = queue.Queue(), 0.0
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

        def __getstate__(self):  # Tune pickles its callbacks with the experiment: nothing of this one is needed
            return {}

        def _loop(self):
            params = {f"spec.key_{i}": i for i in range(41)}
            metrics = {f"metric_{i}": 0.5 for i in range(20)}
            while True:
                n = self.jobs.get()
                if n is None:
                    return
                c = time.thread_time()
                rid = self.tracker.create_child(self.parent, f"trial-{n}", {
                    "method": "x", "status": "FINISHED", "optuna_trial": n, "method_fidelity": "x", "sampled": "{}",
                    "pareto_optimal": "false", "node_id": "x"})  # the tags a run is made with, its pending ones included
                self.tracker.log_batch(rid, params=params, metrics=[(metrics, 1)])
                self.tracker.end_run(rid, "FINISHED")
                self.cpu_s += time.thread_time() - c

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.jobs.put(trial.trial_id)

        def on_experiment_end(self, trials, **info):
            self.jobs.put(None)
            self.thread.join()  # the record complete before the sweep counts as ended, as raysweep's end waits

    return MlflowFloor()


def run_tune_floor(n, concurrency, seconds, mlflow=False):
    """Ray Tune alone, no raysweep: ``n`` trials that each burn a core for ``seconds`` (raysweep's median trial),
    ``concurrency`` at a time, Tune's random search, actors reused, Tune's checkpoint period as raysweep sets it.
    Its wall / ideal is what Tune itself costs per trial on this machine: the floor under raysweep's ratio."""
    import ray
    from ray import tune

    from raysweep._env import apply_quiet_env
    from raysweep.tune.ray_setup import init_ray

    work = _work_dir(f"rs-tune-floor-{n}-")
    os.chdir(work)
    apply_quiet_env(work)
    init_ray(work)
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "3600")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # as raysweep runs Tune
    seen = _trial_clock()
    callbacks = [seen] + ([_mlflow_floor(work)] if mlflow else [])
    cpu0, t0 = time.process_time(), time.perf_counter()
    tune.Tuner(tune.with_resources(_burn, {"cpu": 1}),
               param_space={"seconds": seconds, "x": tune.uniform(0, 1)},
               tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=concurrency, reuse_actors=True),
               run_config=tune.RunConfig(name="floor", storage_path=str(work / "tune"), verbose=0,
                                         callbacks=callbacks)).fit()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ray.shutdown()
    ideal = n * seconds / concurrency
    # raysweep's ideal is read the same way: each trial's start to end as the driver sees them
    seen_ideal = n * statistics.median(seen.durations) / concurrency
    return {"trials": n, "concurrency": concurrency, "trial_s": seconds, "wall_s": round(wall, 1),
            "ideal_s": round(ideal, 1), "wall_over_ideal": round(wall / ideal, 2),
            "median_trial_seen_s": round(statistics.median(seen.durations), 3),
            "wall_over_ideal_seen": round(wall / seen_ideal, 2), "driver_cpu_s_per_trial": round(cpu / n, 4),
            **({"with_mlflow": True, "mlflow_writer_cpu_s_per_trial": round(callbacks[1].cpu_s / n, 4)} if mlflow else {})}


def _trial_clock():
    from ray.tune import Callback

    class TrialClock(Callback):
        """Each trial's start to end as the driver sees them (as raysweep's progress lines time a trial)."""

        def __init__(self):
            self.starts, self.durations = {}, []

        def on_trial_start(self, iteration, trials, trial, **info):
            self.starts[trial.trial_id] = time.perf_counter()

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.durations.append(time.perf_counter() - self.starts.pop(trial.trial_id))

    return TrialClock()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trials", type=int, nargs="+")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--train-size", type=int, default=256)
    ap.add_argument("--out", help="write {'runs': [...]} to this JSON file")
    ap.add_argument("--label", default="", help="a note kept with each run (e.g. before/after)")
    ap.add_argument("--tune-floor", type=float, metavar="SECONDS",
                    help="Ray Tune alone (no raysweep) with trials that burn a core this long: Tune's own wall / ideal")
    ap.add_argument("--with-mlflow", action="store_true",
                    help="with --tune-floor: each trial also recorded as an MLflow run, as raysweep records one")
    ap.add_argument("--resume-at", type=int, help="SIGKILL the driver after this many trials end, then time `raysweep resume`")
    ap.add_argument("--memory", action="store_true",
                    help="also count what Tune's, Optuna's and raysweep's objects hold per trial (slow: not for timing)")
    ap.add_argument("--keep", action="store_true", help="keep each run's working directory (sweep, MLflow store, checkpoints)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one N, JSON on stdout's last line
    args = ap.parse_args(argv)
    try:
        _main(args)
    finally:
        if not args.keep:
            _drop_work_dirs()


def _main(args):
    if args.out:  # the Tune-alone run changes directory before it writes
        args.out = str(Path(args.out).resolve())
    if args.tune_floor or args.resume_at:  # one measurement in this process, kept under its own key
        key, r = (("tune_floor", run_tune_floor(args.trials[0], args.concurrency, args.tune_floor,
                                                                        mlflow=args.with_mlflow)) if args.tune_floor
                  else ("resume", run_resume(args.trials[0], args.resume_at, args.concurrency, args.train_size)))
        r.update(label=args.label, date=time.strftime("%Y-%m-%d %H:%M"), cpus=os.cpu_count())
        print(json.dumps(r), flush=True)
        if args.out:
            _append(Path(args.out), key, [r])
        return
    if args.one:
        print("RESULT " + json.dumps(run_one(args.trials[0], args.concurrency, args.train_size,
                                                       memory=args.memory)), flush=True)
        return
    runs = []
    for n in args.trials:
        cmd = [sys.executable, __file__, str(n), "--one", "--concurrency", str(args.concurrency),
               "--train-size", str(args.train_size)] + (["--memory"] if args.memory else []) \
            + (["--keep"] if args.keep else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode != 0 or not lines:
            sys.exit(f"bench/scale.py {n} failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        r = json.loads(lines[-1][len("RESULT "):])
        r.update(label=args.label, date=time.strftime("%Y-%m-%d %H:%M"), cpus=os.cpu_count())
        runs.append(r)
        ratio = r["last_100_s"] / r["first_100_s"] if r["first_100_s"] else float("nan")
        print(f"{n} trials: first 100 {r['first_100_s']} s, last 100 {r['last_100_s']} s (x{ratio:.2f}); "
              f"wall {r['wall_s']} s vs ideal {r['ideal_s']} s (x{r['wall_s'] / r['ideal_s']:.2f}), end {r['end_s']} s; "
              f"driver CPU {r['driver_cpu_s_per_trial']} s/trial; state {r['state_bytes'] / 1e6:.1f} MB written, "
              f"driver write() {r['driver_write_bytes'] / 1e6:.1f} MB; peak RSS {r['peak_driver_rss_mb']} MB; "
              f"Tune checkpoints {r['tune_checkpoints']} x, {r['tune_checkpoint_s']} s; driver CPU by thread (s/trial) "
              f"{r['driver_cpu_split_s_per_trial']}", flush=True)
        print(f"    wall parts {r.get('wall_parts')}\n    main thread CPU by owner (s/trial) {r.get('main_cpu_s_per_trial')}")
        print(f"    RSS at each Tune experiment's start (MB) {r['rss_mb_at_each_tune_experiment_start']}")
        for name, pct in r["profile"]["inclusive"][:12]:
            print(f"    {pct:5.1f}%  {name}")
    if args.out:
        _append(Path(args.out), "runs", runs)


def _append(out: Path, key: str, rows) -> None:
    """Adds ``rows`` to the list ``key`` of the results file (made if missing), keeping what it held."""
    old = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    old.setdefault(key, []).extend(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    main()
