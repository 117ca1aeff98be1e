"""``raysweep claims``: the verdicts from the reproduction sweeps on this machine (and the committed rows of the
others), written as JSON, Markdown and figures."""

import json
from pathlib import Path

from .report import markdown, plot, update_readme
from .rows import collect
from .rules import DATASETS


def add_claims_parser(sub) -> None:
    c = sub.add_parser("claims", help="judge the seed papers' claims from the reproduction sweeps",
                       description="Judge the seed papers' claims from the reproduction sweeps (scripts/reproduce.sh) "
                                   "and write claims.json, claims.md and one figure per dataset. Paths are relative to "
                                   "the current directory (the repository's root).")
    c.add_argument("--runs", default="raysweep_runs", help="sweep storage (default ./raysweep_runs)")
    c.add_argument("--out", default="bench/results", help="where claims.json and claims.md go (default bench/results)")
    c.add_argument("--figures", default="docs", help="where the claims_<dataset>.png figures go (default docs)")
    c.add_argument("--paired", default="bench/results/paired_times.json",
                   help="side-by-side timings of bench/paired_time.py (judged instead of the sweeps' time ratios)")
    c.add_argument("--readme", default="README.md", help="rewrite this file's claims section (between its markers)")
    c.add_argument("--no-readme", action="store_true", help="do not rewrite the README's claims section")
    c.add_argument("--fresh", action="store_true",
                   help="report only the sweeps on this machine (default: keep the committed rows of the others)")
    c.set_defaults(fn=cmd_claims)


def cmd_claims(args) -> int:
    out = Path(args.out)
    prior = out / "claims.json"
    committed = None if args.fresh or not prior.is_file() else json.loads(prior.read_text())
    result = collect(Path(args.runs), paired_file=Path(args.paired), committed=committed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.json").write_text(json.dumps(result, indent=1, sort_keys=False))
    md = markdown(result["rows"], result["claims"], result["baselines"], result["sweeps"])
    (out / "claims.md").write_text(md + "\n")
    Path(args.figures).mkdir(parents=True, exist_ok=True)
    figs = [plot(result["rows"], ds, Path(args.figures) / f"claims_{ds}.png") for ds in DATASETS]
    if not args.no_readme and Path(args.readme).is_file():
        update_readme(md, Path(args.readme))
    print(md)
    print(f"claims: {len(result['rows'])} configurations, {len(result['claims'])} verdicts -> {out / 'claims.json'}; "
          f"figures: {', '.join(str(f) for f in figs if f)}")
    return 0
