"""``raysweep claims``: the verdicts from the reproduction sweeps on this machine (and the committed rows of the
others), written as JSON, per-epoch curves, figures and the docs/claims pages; ``--pages-only`` rewrites the pages
from the committed JSON alone."""

import json
import sys
from pathlib import Path

from ..errors import UserError
from .curves import write_curves
from .pages import PAGES, glance, rejudge, render_pages, update_readme, write_pages
from .report import plot
from .rows import collect, local_states
from .rules import DATASETS


def add_claims_parser(sub) -> None:
    c = sub.add_parser("claims", help="judge the seed papers' claims from the reproduction sweeps",
                       description="Judge the seed papers' claims from the reproduction sweeps (scripts/reproduce.sh) "
                                   "and write claims.json, each row's per-epoch validation curves, one figure per "
                                   "dataset and the pages under docs/claims/ (their hand-written parts are kept). "
                                   "Paths are relative to the current directory (the repository's root).")
    c.add_argument("--runs", default="raysweep_runs", help="sweep storage (default ./raysweep_runs)")
    c.add_argument("--out", default="bench/results",
                   help="where claims.json and curves/<experiment>.csv go (default bench/results)")
    c.add_argument("--pages", default=PAGES, help=f"where the claims pages go (default {PAGES})")
    c.add_argument("--figures", default=None,
                   help="where the <dataset>.png figures go (default: beside the pages, which link them there)")
    c.add_argument("--paired", default="bench/results/paired_times.json",
                   help="side-by-side timings of bench/paired_time.py (judged instead of the sweeps' time ratios)")
    c.add_argument("--readme", default="README.md",
                   help="write the results at a glance into this file, between its results markers")
    c.add_argument("--no-readme", action="store_true", help="leave the README alone")
    c.add_argument("--fresh", action="store_true",
                   help="report only the sweeps on this machine (default: keep the committed rows of the others)")
    c.add_argument("--pages-only", action="store_true",
                   help="only rewrite the pages (and the README's results) from OUT/claims.json; reads no sweep")
    c.set_defaults(fn=cmd_claims)


def cmd_claims(args) -> int:
    out, pages_dir = Path(args.out), Path(args.pages)
    prior = out / "claims.json"
    paired_file = Path(args.paired)
    paired = json.loads(paired_file.read_text()) if paired_file.is_file() else []
    if args.pages_only:
        if not prior.is_file():
            raise UserError(f"{prior}: no claims.json to write the pages from (run `raysweep claims` first)")
        result = json.loads(prior.read_text())
        if rejudge(result, paired) != result["claims"]:
            # the pages judge the rows again; a claims.json from older rules would contradict them
            print(f"warning: {prior}'s verdicts differ from what the rules give on its rows; the pages show the "
                  f"rules' (`raysweep claims` rewrites {prior})", file=sys.stderr)
    else:
        committed = None if args.fresh or not prior.is_file() else json.loads(prior.read_text())
        states = local_states(Path(args.runs))
        result = collect(Path(args.runs), paired_file=paired_file, committed=committed, states=states)
        out.mkdir(parents=True, exist_ok=True)
        prior.write_text(json.dumps(result, indent=1, sort_keys=False))
        curves = write_curves(states, out / "curves")
        fig_dir = Path(args.figures) if args.figures else pages_dir
        fig_dir.mkdir(parents=True, exist_ok=True)
        figs = [plot(result["rows"], ds, fig_dir / f"{ds}.png") for ds in DATASETS]
    changed = write_pages(render_pages(result, paired), pages_dir)
    md = glance(result, paired)
    readme = "" if args.no_readme or not Path(args.readme).is_file() else \
        (f"; {args.readme} updated" if update_readme(md, Path(args.readme)) else f"; {args.readme} has no results markers")
    print(md)
    if not args.pages_only:
        print(f"claims: {len(result['rows'])} configurations, {len(result['claims'])} verdicts -> {prior}; "
              f"curves: {len(curves)} -> {out / 'curves'}; figures: {', '.join(str(f) for f in figs if f)}")
    print(f"pages: {len(changed)} changed in {pages_dir}{readme}")
    return 0
