"""raysweep command line: sweep | resume | validate | methods | pareto | ui.

User errors (bad YAML, bad values, missing data) print one line and exit with code 2,
before anything is started or written."""

import argparse
import os
import sys
from pathlib import Path

from ._env import apply_quiet_env
from .errors import UserError


def _print(*a, **kw):
    kw.setdefault("flush", True)
    try:
        print(*a, **kw)
    except BrokenPipeError:
        # the reader went away (`raysweep validate FILE | head`): stop printing, not the command. A sweep whose
        # output pipe closes keeps running to its end.
        sys.stdout = open(os.devnull, "w")


def cmd_validate(args) -> int:
    from .config import load_config

    cfg = load_config(args.file, args.set)
    for note in cfg.notes:
        _print(f"raysweep: {note}")
    from .preflight import check_against_data, check_paths

    if args.data:
        check_against_data(cfg)
    else:
        check_paths(cfg)
    _print(f"{cfg.file}: OK")
    _print(f"name: {cfg.name}")
    _print(f"methods: {', '.join(cfg.methods)}")
    _print(f"objectives: {', '.join(f'{o.metric} ({o.mode})' for o in cfg.objectives)}")
    _print(f"sweep: {cfg.sweep.model_dump()}")
    _print(f"resources: {cfg.resources.model_dump()}")
    _print("search space:")
    for line in cfg.describe_space() or ["(empty: every trial uses the fixed config)"]:
        _print(f"  {line}")
    _print("resolved trial config (first method, search at defaults):")
    spec = cfg.trial_spec({"method": cfg.methods[0]}).to_dict()
    import yaml

    _print("  " + yaml.safe_dump(spec, sort_keys=False).replace("\n", "\n  ").rstrip())
    return 0


def _workdir() -> Path:
    from .workdir import output_dir

    workdir, why = output_dir()
    if why:
        _print(f"raysweep: {why}")
    return workdir


def cmd_sweep(args) -> int:
    from .config import load_config
    from .tune.layout import absolute_input_paths, experiment_dir, latest_sweep_dir
    from .tune.runner import run_sweep

    cfg = load_config(args.file, args.set, args.only)
    for note in cfg.notes:
        _print(f"raysweep: {note}")
    absolute_input_paths(cfg, Path.cwd())  # inputs are read where the user is, even when the outputs go elsewhere
    workdir = _workdir()
    resume_dir = None
    if args.resume:
        resume_dir = latest_sweep_dir(experiment_dir(cfg, workdir), cfg.storage_path or os.environ.get("RAYSWEEP_STORAGE_PATH"))
        if resume_dir is None:
            _print(f"raysweep: no earlier sweep of {cfg.name!r} to resume; starting a new one")
    summary = run_sweep(cfg, workdir=workdir, resume_dir=resume_dir, printer=_print)
    _print(f"raysweep: results: {summary['pareto_csv']}" + (f", {summary['pareto_png']}" if summary.get("pareto_png") else ""))
    _print(f"raysweep: sweep state: {summary['sweep_dir']} (continue it with: raysweep resume {cfg.name}"
           + (f" --storage {Path(summary['sweep_dir']).parent.parent}" if Path(summary["sweep_dir"]).parent.parent
              != workdir / "raysweep_runs" else "") + ")")
    _print(_ui_hint(summary))
    return 0 if summary["finished"] > 0 else 1


def _ui_hint(summary) -> str:
    from .tracking.store import ui_url

    uri, exp = summary.get("tracking_uri") or "", summary.get("experiment_id")
    if summary.get("mlflow_fallback") or not exp:
        return "raysweep: open them with:  raysweep ui"
    run = summary.get("parent_run_id")
    if uri.startswith(("http://", "https://")):
        return f"raysweep: the sweep in the MLflow UI: {ui_url(uri, exp, run)}"
    return f"raysweep: open them with:  raysweep ui   then {ui_url('http://127.0.0.1:5000', exp, run)}"


def cmd_resume(args) -> int:
    from .config import load_config
    from .tune.layout import latest_sweep_dir, runs_root
    from .tune.runner import run_sweep

    workdir = _workdir()
    setting = args.storage or os.environ.get("RAYSWEEP_STORAGE_PATH")
    storage = runs_root(setting, workdir)
    target = Path(args.experiment)
    if not target.exists():
        target = storage / args.experiment
    sweep_dir = target if (target / "state.json").is_file() else latest_sweep_dir(target, setting)
    if sweep_dir is None and not target.exists():
        raise UserError(f"no experiment {args.experiment!r} under {storage}"
                        + (f" or {setting}" if setting and str(storage) not in setting else "")
                        + " (pass the experiment name or its directory)")
    if sweep_dir is None:
        raise UserError(f"{target}: no sweep with a state.json to resume")
    from .sweep_state import read_state

    state = read_state(sweep_dir)
    edited = sorted(sweep_dir.glob("sweep-resumed-*.yaml"))  # the config of the latest `sweep FILE --resume`
    cfg_file = edited[-1] if edited else sweep_dir / "sweep.yaml"
    cfg = load_config(cfg_file)
    cfg.file = state.get("config_file", str(cfg_file))
    summary = run_sweep(cfg, workdir=workdir, resume_dir=sweep_dir, printer=_print)
    return 0 if summary["finished"] > 0 else 1


def cmd_methods(args) -> int:
    import dataclasses

    from .hparams import describe_bounds
    from .methods import get_method, list_methods

    from .train.pruning import POLICIES
    from .train.spec import PruningSpec

    def fields(params):
        for f in dataclasses.fields(params):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            _print(f"    {f.name} = {default!r}  ({describe_bounds(f)}) {f.metadata.get('doc', '')}")

    for name in list_methods():
        cls = get_method(name)
        tag = "" if cls.fidelity == "faithful" else f"  [{cls.fidelity}]"
        _print(f"{name}{tag}: {cls.paper}")
        if args.verbose:
            fields(cls.Params)
    # Pruning is a data-side policy, not a method: it lives in its own YAML section and composes with all of the above.
    _print("\ndata pruning (YAML section `pruning:`, composes with every method above; mode: none trains on all data):")
    for mode, (fidelity, paper) in POLICIES.items():
        tag = "" if fidelity == "faithful" else f"  [{fidelity}]"
        _print(f"pruning.mode: {mode}{tag}: {paper}")
    if args.verbose:
        fields(PruningSpec)
    return 0


def _tracking_uri(args) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else the sqlite store where this sweep writes (workdir.py)."""
    from .tracking.store import default_tracking_uri
    from .workdir import output_dir

    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_dir()[0])


def cmd_pareto(args) -> int:
    from .tracking.report import format_table, load_sweep_front, sweep_hypervolume

    uri = _tracking_uri(args)
    rows, objectives, parent = load_sweep_front(args.experiment, uri, run_id=args.run)
    front = [r for r in rows if r["pareto_optimal"]]
    _print(f"experiment {args.experiment!r}, sweep run {parent}: {len(rows)} finished trials, {len(front)} on the front "
           f"({', '.join(f'{m} {d}' for m, d in objectives)})")
    cols = ["trial", "method"] + [m for m, _ in objectives]
    for extra in ("val_clean_acc", "val_robust_acc", "cost", "test_clean_acc", "test_pgd20_acc", "test_pgd50x10_acc",
                  "test_cw20_acc", "test_autoattack_acc"):
        if extra not in cols and any(extra in r for r in front):
            cols.append(extra)
    cols += ["flags", "run_id"]
    _print(format_table(front if not args.all else rows, cols + (["pareto_optimal"] if args.all else [])))
    hv = sweep_hypervolume(parent, uri)
    if hv:
        _print(f"front hypervolume {hv[0]:.4g} after {hv[2]} completed trials (reference point {hv[1]})")
    if args.importance:
        from .tracking.report import sweep_artifact_json
        from .tune.importance import format_importances

        imp = sweep_artifact_json(parent, "importance.json", uri)
        _print(format_importances(imp) if imp else "no importance.json on this sweep's run (it ended before any trial finished)")
    return 0


def cmd_ui(args) -> int:
    from .tracking.ui import serve

    return serve(_tracking_uri(args), args.host, args.port, printer=_print)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="raysweep", description="Multi-objective sweeps of efficient adversarial training "
                                "(Ray Tune + Optuna + Ray Train, tracked in MLflow).")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("sweep", help="run a sweep from a search-space YAML", description="Run a multi-objective sweep.")
    s.add_argument("file", help="search-space YAML (see search_spaces/)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML value, e.g. --set sweep.num_samples=4 --set train.epochs=1")
    s.add_argument("--resume", action="store_true", help="continue the latest sweep of this experiment instead of starting a new one")
    s.add_argument("--only", action="append", default=[], metavar="LABEL",
                   help="run only the sweep.enqueue point with this label (repeatable), e.g. a configuration added later")
    s.set_defaults(fn=cmd_sweep)

    r = sub.add_parser("resume", help="continue a sweep whose driver stopped", description="Resume an interrupted sweep.")
    r.add_argument("experiment", help="experiment name (or a sweep directory)")
    r.add_argument("--storage", help="storage path the sweep used (default: $RAYSWEEP_STORAGE_PATH when a local path, "
                   "else ./raysweep_runs; inside a Ray job, $RAYSWEEP_HOME/raysweep_runs)")
    r.set_defaults(fn=cmd_resume)

    v = sub.add_parser("validate", help="check a YAML and print the resolved config; starts nothing",
                       description="Validate a search-space YAML.")
    v.add_argument("file")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--no-data", dest="data", action="store_false",
                   help="skip the checks against the dataset and the model (split sizes, input shape); faster")
    v.set_defaults(fn=cmd_validate)

    m = sub.add_parser("methods", help="list the registered training methods and the data-pruning policies",
                       description="List methods and data-pruning policies.")
    m.add_argument("-v", "--verbose", action="store_true", help="show each method's parameters, defaults and bounds")
    m.set_defaults(fn=cmd_methods)

    pa = sub.add_parser("pareto", help="print the Pareto front of an experiment's latest sweep",
                        description="Print the Pareto front recorded in MLflow.")
    pa.add_argument("experiment", help="MLflow experiment name (the YAML's name unless mlflow.experiment is set)")
    pa.add_argument("--run", help="the sweep's parent run id (default: the latest sweep)")
    pa.add_argument("--all", action="store_true", help="print every finished trial, not only the front")
    pa.add_argument("--importance", action="store_true", help="also print which searched parameters mattered, per objective")
    pa.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db")
    pa.set_defaults(fn=cmd_pareto)

    u = sub.add_parser("ui", help="serve the MLflow UI on 127.0.0.1 and print links to each experiment's runs",
                       description="Serve the MLflow UI (localhost only) and print a link per experiment that lands "
                                   "on its training runs. Ctrl-C or SIGTERM stops the server with it.")
    u.add_argument("--port", type=int, default=5000, help="default 5000; a port in use is an error")
    u.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: not reachable from other machines)")
    u.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db")
    u.set_defaults(fn=cmd_ui)

    from .evaluation.command import add_evaluate_parser
    from .repro.command import add_claims_parser

    add_evaluate_parser(sub)
    add_claims_parser(sub)
    return p


def main(argv=None) -> int:
    apply_quiet_env()
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"raysweep: error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("raysweep: interrupted; `raysweep resume` continues where it stopped", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
