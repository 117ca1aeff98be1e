"""``raysweep evaluate TARGET``: test-set evaluation of checkpoints after (or outside) a sweep.

TARGET is one of

(a) a checkpoint: a directory holding ``state.pt`` or a ``.pt`` file (or a ``s3://``-style URI
    of a Ray checkpoint). Its trial spec comes from ``--spec FILE`` or, for a checkpoint inside a
    sweep directory, from the nearest ``state.json`` above it (which also names the trial's
    MLflow run); ``--run-id`` names the run to log to for a checkpoint outside a sweep;
(b) an MLflow run id: a trial's child run (``raysweep.kind=trial``; its sweep directory is the
    parent run's ``raysweep.sweep_dir`` tag, its record in that ``state.json`` is found by
    ``run_id``), or a sweep's parent run (its front is evaluated, as for (c));
(c) an MLflow experiment name: the front (children tagged ``pareto_optimal=true``) of its
    latest sweep.

Results go to each trial's child run as ``test_*`` metrics and ``masking_<flag>`` tags; for a
front, the parent run also gets the *evaluated front*: ``evaluated_front.csv``,
``evaluated_front.png`` (PGD-20 and AutoAttack accuracy against training time) and the MLflow
table ``evaluated_front.json``. A table is printed either way. Runs on a GPU when there is one.
"""

import csv
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..errors import UserError
from ..tracking.report import format_table
from .checkpoints import (find_sweep_state, is_uri, load_checkpoint, load_sweep_state, model_states, read_spec, record_for_checkpoint,
                          record_for_run)
from .suite import ATTACK_SUITE, DEFAULT_PGD_AA_GAP, check_attacks, masking_flags

DEFAULT_ATTACKS = "clean,pgd20,pgd50x10,cw20,autoattack"
WHICH = ("front", "best", "all")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Member:
    """One checkpoint to evaluate and where its results go."""

    label: str
    spec: Dict[str, Any]
    checkpoint: str
    run_id: Optional[str] = None
    trial: Optional[int] = None
    method: str = "?"
    train_time_s: Optional[float] = None
    step: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)
    results: Dict[str, float] = field(default_factory=dict)
    flags: Dict[str, bool] = field(default_factory=dict)
    pgd_aa_gap: float = DEFAULT_PGD_AA_GAP  # the sweep's, when the checkpoint comes from one


def parse_attacks(value) -> List[str]:
    names = [a.strip() for a in (value.split(",") if isinstance(value, str) else value) if a and a.strip()]
    if not names:
        raise UserError("--attacks: empty (allowed: " + ", ".join(ATTACK_SUITE) + ")")
    try:
        return check_attacks(list(dict.fromkeys(names)))
    except ValueError as e:
        raise UserError(f"--attacks: {e}") from None


def _uri(tracking_uri: Optional[str], fallback: Optional[str] = None) -> str:
    from ..tracking.store import default_tracking_uri

    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or fallback or default_tracking_uri()


def _member_from_record(rec: Dict[str, Any], state: Dict[str, Any], checkpoint: Optional[str] = None, spec=None) -> Member:
    m = rec.get("metrics") or {}
    return Member(label=f"trial {rec.get('trial')}", spec=spec or rec["spec"], checkpoint=checkpoint or rec.get("checkpoint_path"),
                  run_id=rec.get("run_id"), trial=rec.get("trial"), method=rec.get("method", "?"),
                  train_time_s=m.get("train_time_s"), step=int(m.get("epoch", 0) or 0),
                  extra={k: m[k] for k in ("val_robust_acc", "val_clean_acc", "cost") if k in m},
                  pgd_aa_gap=float(state.get("pgd_aa_gap", DEFAULT_PGD_AA_GAP)))


# -- resolving the target ----------------------------------------------------------------
def _resolve_checkpoint(target: str, spec_file, run_id, tracking_uri):
    found = record_for_checkpoint(target)
    spec = read_spec(spec_file) if spec_file else None
    if found is not None:
        _, data, rec = found
        member = _member_from_record(rec, data, checkpoint=target, spec=spec)
        if run_id:
            member.run_id = run_id
        return [member], _uri(tracking_uri, data.get("tracking_uri")), None
    if spec is None:
        near = find_sweep_state(target) if not is_uri(target) else None
        where = (f"matches no trial's checkpoint in {near}" if near is not None
                 else "is outside a raysweep sweep directory, so nothing records its trial spec")
        raise UserError(f"{target}: {where}; pass --spec FILE (a YAML/JSON trial spec: method, dataset, model, "
                        f"threat, ...)")
    member = Member(label=Path(str(target)).name or str(target), spec=spec, checkpoint=str(target), run_id=run_id,
                    method=spec.get("method", "?"))
    return [member], _uri(tracking_uri), None


def _front_members(client, parent, which: str) -> List[Member]:
    sweep_dir = parent.data.tags.get("raysweep.sweep_dir")
    if not sweep_dir:
        raise UserError(f"sweep run {parent.info.run_id} has no raysweep.sweep_dir tag: cannot find its checkpoints")
    data = load_sweep_state(sweep_dir)
    flt = f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    if which in ("front", "best"):
        flt += " and tags.pareto_optimal = 'true'"
    children = client.search_runs([parent.info.experiment_id], filter_string=flt, max_results=10_000)
    children = [c for c in children if c.data.tags.get("status", "FINISHED") == "FINISHED"]
    if which == "best" and children:
        children = [max(children, key=lambda c: c.data.metrics.get("val_robust_acc", -1.0))]
    if not children:
        what = "on the Pareto front (is the sweep finished?)" if which != "all" else "finished"
        raise UserError(f"sweep run {parent.info.run_id} ({sweep_dir}): no trial {what}")
    members = []
    for c in children:
        rec = record_for_run(data, c.info.run_id)
        if rec is None:
            raise UserError(f"{sweep_dir}/state.json has no trial with run id {c.info.run_id}")
        m = _member_from_record(rec, data)
        if m.train_time_s is None:
            m.train_time_s = c.data.metrics.get("train_time_s")
        members.append(m)
    return sorted(members, key=lambda m: (m.trial is None, m.trial))


def _resolve_mlflow(target: str, tracking_uri, which: str):
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = _uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    if _RUN_ID.match(target):
        try:
            run = client.get_run(target)
        except MlflowException:
            run = None
        if run is not None:
            kind = run.data.tags.get("raysweep.kind")
            if kind == "sweep":
                return _front_members(client, run, which), uri, run
            if kind != "trial":
                raise UserError(f"run {target} is not a raysweep trial or sweep run (tag raysweep.kind={kind!r})")
            parent_id = run.data.tags.get("mlflow.parentRunId")
            if not parent_id:
                raise UserError(f"trial run {target} has no parent sweep run")
            parent = client.get_run(parent_id)
            sweep_dir = parent.data.tags.get("raysweep.sweep_dir")
            if not sweep_dir:
                raise UserError(f"sweep run {parent_id} has no raysweep.sweep_dir tag: cannot find trial {target}'s checkpoint")
            data = load_sweep_state(sweep_dir)
            rec = record_for_run(data, target)
            if rec is None:
                raise UserError(f"{sweep_dir}/state.json has no trial with run id {target}")
            m = _member_from_record(rec, data)
            if m.train_time_s is None:
                m.train_time_s = run.data.metrics.get("train_time_s")
            return [m], uri, None
    exp = client.get_experiment_by_name(target)
    if exp is None:
        raise UserError(f"{target!r} is neither a checkpoint path, nor a run id, nor an MLflow experiment in {uri} "
                        f"(experiments: {', '.join(e.name for e in client.search_experiments()) or 'none'})")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`raysweep.kind` = 'sweep'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise UserError(f"experiment {target!r} has no raysweep sweep run")
    return _front_members(client, parents[0], which), uri, parents[0]


# -- evaluation ----------------------------------------------------------------------------
def _evaluate_member(m: Member, attacks, n, batch_size, seed, device, aa_steps, n_queries):
    from ..train.seeds import summarise_seeds
    from .suite import evaluate_state

    if not m.checkpoint:
        raise UserError(f"{m.label}: no checkpoint recorded")
    if not is_uri(m.checkpoint) and not Path(str(m.checkpoint).replace("file://", "", 1)).exists():
        raise UserError(f"{m.label}: checkpoint {m.checkpoint} does not exist")
    states = model_states(load_checkpoint(m.checkpoint))
    per_seed = [evaluate_state(m.spec, s, attacks, n=n, batch_size=batch_size, device=device, seed=seed,
                               aa_steps=aa_steps, n_queries=n_queries) for s in states]
    out = summarise_seeds(per_seed)
    m.results, m.flags = out, masking_flags(out, m.pgd_aa_gap)  # as the sweep flags its members


def _log_member(client, uri, m: Member, attacks, n_desc: str):
    from ..tracking.store import SweepTracker

    run = client.get_run(m.run_id)
    tracker = SweepTracker(uri, client.get_experiment(run.info.experiment_id).name)
    tracker.log_metrics(m.run_id, m.results, m.step)
    tags = {f"masking_{k}": str(v).lower() for k, v in m.flags.items()}
    tags.update({"evaluate.checkpoint": m.checkpoint, "evaluate.attacks": ",".join(attacks), "evaluate.n": n_desc})
    tracker.set_tags(m.run_id, tags)
    return tracker


def evaluate_target(target: str, attacks=DEFAULT_ATTACKS, n: Optional[int] = None, tracking_uri: Optional[str] = None,
                    batch_size: int = 500, seed: int = 0, which: str = "front", spec_file=None,
                    run_id: Optional[str] = None, device: str = "auto", aa_steps: Optional[int] = None,
                    n_queries: Optional[int] = None, printer: Callable = print) -> Dict[str, Any]:
    """Evaluate TARGET (see the module docstring), log to MLflow, print a table.

    ``which``: for a sweep (experiment name or parent run id) evaluate its ``front`` (default),
    only its most robust front point by validation (``best``), or ``all`` finished trials.
    Returns ``{"members": [Member...], "tracking_uri", "parent_run_id", "csv", "png", "log_errors"}``."""
    attacks = parse_attacks(attacks)
    members, uri, parent = _resolve(target, which, n, spec_file, run_id, tracking_uri)
    from ..train.dist import pick_device

    dev = pick_device(device or "auto")
    n_desc = "all" if n is None else str(n)
    printer(f"raysweep: evaluating {len(members)} checkpoint(s) on {dev}: {', '.join(attacks)} "
            f"on {n_desc} test images (seed {seed})", flush=True)
    for m in members:
        t0 = time.perf_counter()
        _evaluate_member(m, attacks, n, batch_size, seed, str(dev), aa_steps, n_queries)
        if len(members) > 1:
            printer(f"raysweep: {m.label}: evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = [_row(m, attacks) for m in members]
    summary: Dict[str, Any] = {"members": members, "rows": rows, "tracking_uri": uri,
                               "parent_run_id": parent.info.run_id if parent is not None else None, "csv": None, "png": None}
    summary["log_errors"] = errors = _log_all(members, rows, uri, parent, attacks, n_desc, which, summary)
    _report(members, rows, attacks, uri, parent, errors, printer)
    return summary


def _resolve(target: str, which: str, n: Optional[int], spec_file, run_id, tracking_uri):
    """(members, tracking URI, parent run or None) for a checkpoint target or an MLflow one, after the argument checks."""
    if which not in WHICH:
        raise UserError(f"which={which!r} (allowed: {', '.join(WHICH)})")
    if n is not None and n < 1:
        raise UserError(f"--n {n}: must be at least 1")
    if spec_file and not Path(str(target)).exists() and not is_uri(str(target)):
        raise UserError(f"--spec is for a checkpoint target, and {target} is not a file or directory")
    if Path(str(target)).expanduser().exists() or is_uri(str(target)):
        return _resolve_checkpoint(str(Path(str(target)).expanduser().absolute()) if not is_uri(str(target)) else str(target),
                                   spec_file, run_id, tracking_uri)
    if run_id:
        raise UserError("--run-id is for a checkpoint target (an MLflow target names its own runs)")
    return _resolve_mlflow(str(target), tracking_uri, which)


def _log_all(members, rows, uri, parent, attacks, n_desc: str, which: str, summary: Dict[str, Any]) -> List[str]:
    """Each member's results to its run, a sweep's evaluated front to its parent run; returns what failed."""
    from mlflow.exceptions import MlflowException

    errors: List[str] = []
    loggable = [m for m in members if m.run_id]
    if not loggable and parent is None:
        return errors
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for m in loggable:
        try:
            _log_member(client, uri, m, attacks, n_desc)
        except (MlflowException, OSError) as e:
            errors.append(f"{m.label} (run {m.run_id}): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    if parent is not None:
        summary.update(_log_front(client, uri, parent, rows, which, errors))
    return errors


def _report(members, rows, attacks, uri, parent, errors: List[str], printer) -> None:
    cols = ["trial" if any(m.trial is not None for m in members) else "checkpoint", "method", "train_time_s"]
    cols += [f"test_{a}_acc" for a in attacks] + ["masking", "run_id"]
    printer(format_table(rows, cols), flush=True)
    for m in members:
        ks = [k for k, v in m.flags.items() if v]
        if ks:
            printer(f"raysweep: warning: {m.label}: gradient-masking red flag(s): {', '.join(ks)} "
                    f"(the robust accuracy is likely overestimated; trust AutoAttack's number)", flush=True)
    loggable = [m for m in members if m.run_id]
    if not loggable and parent is None:
        printer("raysweep: no MLflow run to log to (pass --run-id RUN to attach the results to one)", flush=True)
    elif loggable:
        printer(f"raysweep: logged test_* metrics and masking_* tags to {len(loggable) - len(errors)} run(s) in {uri}", flush=True)
    for e in errors:
        printer(f"raysweep: warning: could not log to MLflow: {e}", flush=True)


def _row(m: Member, attacks) -> Dict[str, Any]:
    r = {"trial": m.trial if m.trial is not None else "", "checkpoint": m.checkpoint, "method": m.method,
         "run_id": m.run_id or "", "train_time_s": m.train_time_s if m.train_time_s is not None else float("nan"), **m.extra}
    r.update(m.results)
    for k, v in m.flags.items():
        r[f"masking_{k}"] = v
    r["masking"] = ",".join(k for k, v in m.flags.items() if v) or ("none" if m.flags else "-")
    return r


def _log_front(client, uri, parent, rows, which, errors) -> Dict[str, Any]:
    """The evaluated front on the sweep's parent run: CSV, plot and MLflow table."""
    from mlflow.exceptions import MlflowException

    from ..tracking.store import SweepTracker

    sweep_dir = Path(parent.data.tags.get("raysweep.sweep_dir", ""))
    out_dir = sweep_dir if sweep_dir.is_dir() and os.access(sweep_dir, os.W_OK) else Path(tempfile.mkdtemp(prefix="raysweep-eval-"))
    csv_path, png_path = out_dir / "evaluated_front.csv", out_dir / "evaluated_front.png"
    table = [{k: v for k, v in r.items() if k != "masking"} for r in rows]
    cols = list(dict.fromkeys(k for r in table for k in r))
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in table:
            w.writerow(r)
    n_test = int(rows[0].get("test_n", 0)) if rows else 0
    what = {"front": "evaluated front", "best": "most robust front point", "all": "all finished trials"}[which]
    plot_evaluated_front(rows, png_path, title=f"{parent.info.run_name or parent.info.run_id}: {what} "
                                                 f"({len(rows)} trials, {n_test} test images)")
    try:
        tracker = SweepTracker(uri, client.get_experiment(parent.info.experiment_id).name)
        tracker.log_artifact(parent.info.run_id, csv_path)
        tracker.log_artifact(parent.info.run_id, png_path)
        tracker.log_table(parent.info.run_id, table, "evaluated_front.json")
    except (MlflowException, OSError) as e:
        errors.append(f"sweep run {parent.info.run_id}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    return {"csv": str(csv_path), "png": str(png_path)}


def plot_evaluated_front(rows: List[Dict[str, Any]], path, title: str = ""):
    """Test accuracy against training time: per trial, the PGD-20 and the AutoAttack accuracy
    (different markers) joined by a vertical line (the gap PGD leaves to the stronger attack)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..tracking.pareto import UNITS

    fig, ax = plt.subplots(figsize=(7, 4.8), dpi=120)
    series = [("test_pgd20_acc", "o", "tab:blue", "PGD-20"), ("test_autoattack_acc", "v", "crimson", "AutoAttack")]
    pts = [r for r in rows if _finite(r.get("train_time_s"))]
    for r in pts:
        ys = [r[k] for k, *_ in series if _finite(r.get(k))]
        if len(ys) == 2:
            ax.vlines(r["train_time_s"], min(ys), max(ys), colors="0.5", lw=1.2, alpha=0.8)
    for key, marker, color, label in series:
        xy = [(r["train_time_s"], r[key]) for r in pts if _finite(r.get(key))]
        if xy:
            xs, ys = zip(*xy)
            ax.scatter(xs, ys, marker=marker, s=44, color=color, alpha=0.9, label=label, zorder=3)
    for r in pts:
        ys = [r[k] for k, *_ in series if _finite(r.get(k))]
        if ys and r.get("trial", "") != "":
            ax.annotate(str(r["trial"]), (r["train_time_s"], max(ys)), textcoords="offset points", xytext=(5, 3), fontsize=7)
    n = int(rows[0].get("test_n", 0)) if rows else 0
    ax.set_xlabel(UNITS.get("train_time_s", "training time (s)"))
    ax.set_ylabel(f"test accuracy (fraction of {n} test images)" if n else "test accuracy (fraction)")
    ax.set_title(title or "evaluated front")
    ax.grid(alpha=0.3)
    if pts:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _finite(v) -> bool:
    try:
        return v is not None and v != "" and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def cmd_evaluate(args) -> int:
    summary = evaluate_target(args.target, attacks=args.attacks, n=args.n, tracking_uri=args.tracking_uri,
                              batch_size=args.batch_size, seed=args.seed, which=args.which, spec_file=args.spec,
                              run_id=args.run_id, device=args.device, aa_steps=args.aa_steps,
                              n_queries=args.square_queries,
                              printer=lambda *a, **kw: print(*a, **{"flush": True, **kw}))
    return 1 if summary["log_errors"] else 0


def add_evaluate_parser(subparsers):
    """Register ``raysweep evaluate`` on the CLI's subparsers (sets ``fn=cmd_evaluate``)."""
    e = subparsers.add_parser(
        "evaluate", help="test-set evaluation (PGD, CW, AutoAttack) of a checkpoint, a trial run or a sweep's front",
        description="Evaluate checkpoints on the test set and log the results to their MLflow runs. TARGET is a "
                    "checkpoint (a directory with state.pt, or a .pt file), an MLflow run id (a trial's run, or a "
                    "sweep's parent run: its front), or an experiment name (its latest sweep's front).")
    e.add_argument("target", help="checkpoint path, MLflow run id, or experiment name")
    e.add_argument("--attacks", default=DEFAULT_ATTACKS,
                   help=f"comma-separated, from: {', '.join(ATTACK_SUITE)} (default: {DEFAULT_ATTACKS})")
    e.add_argument("--n", type=int, default=None, help="evaluate the first N test images (default: the whole test set)")
    e.add_argument("--batch-size", type=int, default=500)
    e.add_argument("--seed", type=int, default=0, help="seed of the random starts and of AutoAttack / Square (default 0)")
    e.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, the sweep's store, or sqlite:///./mlflow.db")
    e.add_argument("--spec", help="YAML/JSON trial spec, for a checkpoint outside a sweep directory")
    e.add_argument("--run-id", help="MLflow run to log a checkpoint's results to (default: its trial's run, if any)")
    e.add_argument("--which", choices=WHICH, default="front",
                   help="for a sweep: its front (default), the most robust front point by validation, or all finished trials")
    e.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ...")
    e.add_argument("--aa-steps", type=int, default=None,
                   help="APGD/APGD-T/FAB iterations inside AutoAttack (default 100, the official count; fewer: a quick look only)")
    e.add_argument("--square-queries", type=int, default=None, help="Square attack query budget (default 5000)")
    e.set_defaults(fn=cmd_evaluate)
    return e
