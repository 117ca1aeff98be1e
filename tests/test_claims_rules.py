"""The claims' verdict rules (raysweep/repro) on hand-made rows: similar / higher robustness, speed bounds, the teacher-excluded
RRM speed-up, no verdict against an unrobust baseline, and provisional verdicts while a tuning sweep is missing."""

from raysweep.repro import judge as claims_judge
from raysweep.repro import pages, rules
from raysweep.repro import rows as claims_rows

def _row(label, aa, time_s, clean=0.98, std=0.005, cost=10.0, teacher=None):
    agg = lambda m: {"mean": m, "std": std, "seeds": [m] * 3}  # noqa: E731
    return {"label": label, "aa": agg(aa), "clean": agg(clean), "pgd20": agg(aa + 0.02),
            "train_time_s": {"mean": time_s, "std": 1.0, "seeds": [time_s] * 3}, "cost": {"mean": cost, "std": 0.0, "seeds": [cost] * 3},
            "catastrophic_overfit": False, "masking": [], "teacher": teacher}

RULE = dict(paper="backward_smoothing", dataset="mnist", claim="c", robust="similar", speed="third",
            pairs=[("TRADES-10", ["BS", "BS (tuned)"])])

def _judge(rows, rule=RULE):
    return claims_judge.judge(rule, {r["label"]: r for r in rows})

def test_similar_and_a_third_of_the_time_holds():
    v = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.85, 180.0)])
    assert v["verdict"] == "holds" and not v["provisional"]

def test_a_drop_beyond_two_points_is_not_similar_even_when_seeds_disagree():
    v = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.82, 180.0, std=0.2)])
    assert v["verdict"] == "partly" and "less robust" in v["why"] and "seeds disagree" in v["why"]
    assert v["provisional"] and "BS (tuned) not run yet" in v["why"]


def test_speed_alone_is_partly_only_near_the_baselines_robustness():
    """Faster and robust, but more than PARTLY_MARGIN (5 points) below the baseline: a different robustness level
    reached cheaply, not the claim; at exactly the margin it still counts."""
    far = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.80, 180.0), _row("BS (tuned)", 0.74, 180.0)])
    assert far["verdict"] == "does not hold" and "more than 5.0 points below" in far["why"]
    edge = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.81, 180.0), _row("BS (tuned)", 0.74, 180.0)])
    assert edge["verdict"] == "partly"

def test_the_tuned_point_decides_when_it_is_there():
    v = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.50, 180.0), _row("BS (tuned)", 0.855, 200.0)])
    assert v["verdict"] == "holds" and not v["provisional"] and v["why"].startswith("BS (tuned)")
    v = _judge([_row("TRADES-10", 0.86, 500.0), _row("BS", 0.50, 400.0), _row("BS (tuned)", 0.60, 400.0)])
    assert v["verdict"] == "does not hold" and not v["provisional"]

def test_a_tuned_configuration_judged_against_two_baselines_is_awaited_once():
    rule = dict(RULE, all_pairs=True, pairs=[("TRADES-10", ["BS", "BS (tuned)"]), ("TRADES-20", ["BS", "BS (tuned)"])])
    rows = {r["label"]: r for r in [_row("TRADES-10", 0.86, 500.0), _row("TRADES-20", 0.86, 600.0), _row("BS", 0.82, 180.0)]}
    assert claims_judge.assess(rule, rows)["untuned"] == ["BS (tuned)"]
    assert claims_judge.judge(rule, rows)["why"].endswith("| provisional: BS (tuned) not run yet")

def test_higher_needs_a_margin_and_cheaper_needs_time_and_cost():
    rule = dict(RULE, robust="higher", speed="cheaper", pairs=[("FGSM-RS", ["FPB"])])
    assert _judge([_row("FGSM-RS", 0.40, 360.0), _row("FPB", 0.80, 310.0, cost=7.0)], rule)["verdict"] == "holds"
    assert _judge([_row("FGSM-RS", 0.40, 360.0), _row("FPB", 0.405, 310.0, cost=7.0)], rule)["verdict"] == "partly"
    assert _judge([_row("FGSM-RS", 0.40, 360.0), _row("FPB", 0.80, 310.0, cost=10.0)], rule)["verdict"] == "partly"

def test_nothing_is_judged_against_an_unrobust_baseline():
    v = _judge([_row("TRADES-10", 0.10, 500.0), _row("BS", 0.09, 100.0)])
    assert v["verdict"] is None and "not a robust baseline" in v["why"]

def test_rrm_speed_is_judged_without_the_teacher_and_reported_with_it():
    rule = dict(RULE, paper="rrm", speed="fraction", teacher=True, pairs=[("PGD-AT", ["RRM"])])
    rows = [_row("PGD-AT", 0.88, 480.0, cost=44.0), _row("RRM", 0.87, 500.0, cost=40.0,
                                                          teacher={"teacher_time_s": 350.0, "teacher_cost": 30.0})]
    v = _judge(rows, rule)
    assert v["verdict"] == "holds" and "without the teacher" in v["why"]
    rows[1]["teacher"]["teacher_time_s"] = 100.0
    assert _judge(rows, rule)["verdict"] == "partly"

def test_backward_smoothing_on_mnist_must_match_trades_at_both_betas():
    """The MNIST rule as raysweep/repro/rules.py builds it: the tuned point (beta 6) against TRADES-10 at beta 1 and at beta 6."""
    (rule,) = [r for r in rules.RULES if r["paper"] == "backward_smoothing" and r["dataset"] == "mnist"]
    bs, tuned, b6 = "Backward Smoothing (paper defaults, beta 1)", "Backward Smoothing (tuned)", rules.BS_TUNED_TRADES["mnist"]
    rows = [_row("TRADES-10", 0.86, 500.0), _row(b6, 0.88, 500.0), _row(bs, 0.50, 180.0), _row(tuned, 0.855, 180.0)]
    v = _judge(rows, rule)
    assert v["verdict"] == "partly" and [p["verdict"] for p in v["per_baseline"]] == ["holds", "partly"]
    rows[1] = _row(b6, 0.865, 500.0)
    assert _judge(rows, rule)["verdict"] == "holds"
    v = _judge(rows[:1] + rows[2:], rule)  # its own-beta TRADES not run: no "holds" yet
    assert v["verdict"] == "partly" and f"{b6}: not run yet" in v["why"]


def test_fp_better_must_beat_fgsm_rs_from_either_random_start():
    """The rule as raysweep/repro/rules.py builds it: against FGSM-RS with the clipped start (Wong et al.'s CIFAR-10 code) and
    with the unclipped one (their MNIST code); beating only the collapsed variant is not "higher robustness"."""
    (rule,) = [r for r in rules.RULES if r["paper"] == "fp_better" and r["dataset"] == "mnist"]
    rows = [_row("FGSM-RS", 0.36, 360.0, cost=16.0), _row("FP-Better (paper defaults)", 0.80, 310.0, cost=12.0),
            _row("FGSM-RS (unclipped start)", 0.85, 360.0, cost=16.0),
            _row("FP-Better (unclipped start)", 0.82, 310.0, cost=12.0)]
    v = _judge(rows, rule)
    assert [p["verdict"] for p in v["per_baseline"]] == ["holds", "partly"] and v["verdict"] == "partly"
    assert "FP-Better (unclipped start): AutoAttack 82.0% vs 85.0% for FGSM-RS (unclipped start)" in v["why"]
    rows[3] = _row("FP-Better (unclipped start)", 0.90, 310.0, cost=12.0)
    assert _judge(rows, rule)["verdict"] == "holds"
    v = _judge(rows[:2], rule)  # the unclipped pair not run: no "holds" yet
    assert v["verdict"] == "partly" and "FGSM-RS (unclipped start): not run yet" in v["why"]


def _state(runs, exp, trials):
    d = runs / exp / "sweep-20260101-000000"
    d.mkdir(parents=True)
    recs = {str(i): dict(t, trial=i, status=t.get("status", "FINISHED"), sampled={"x": i}) for i, t in enumerate(trials)}
    (d / "state.json").write_text(__import__("json").dumps({"trials": recs}))


def _trial(time_s, val, label=None, co=0.0, cost=None):
    return {"label": label, "catastrophic_overfit": co,
            "metrics": {"train_time_s": time_s, "val_robust_acc": val, "cost": time_s / 10 if cost is None else cost}}


def test_tuned_point_keeps_to_the_budget_and_calibrates_it_with_an_anchor(tmp_path, capsys):
    """The tuned point (raysweep/repro/tuned_point.py): the best validation point within max_time_ratio x the baseline's time, never a collapsed
    one; with --anchor the budget is rescaled by how much slower the tuning sweep ran the reproduction's configuration."""
    import json

    from raysweep.repro import tuned_point as tp

    _state(tmp_path, "rep", [_trial(400.0, 0.9, "base"), _trial(200.0, 0.8, "cheap")])
    _state(tmp_path, "tune", [_trial(240.0, 0.70, "as rep"), _trial(290.0, 0.85), _trial(250.0, 0.95, co=1.0),
                              _trial(310.0, 0.99)])

    def pick(*extra):
        tp.main(["tune", "--baseline", "rep", "base", "--max-time-ratio", "0.75", "--runs", str(tmp_path), *extra])
        return json.loads(capsys.readouterr().out)

    out = pick()
    assert out["trial"] == 1 and out["budget_s"] == 300.0 and out["candidates"] == 2  # 0.95 collapsed, 0.99 too slow
    out = pick("--anchor", "as rep", "cheap")  # the tuning sweep ran 1.2x slower than the reproduction
    assert out["trial"] == 3 and abs(out["budget_s"] - 360.0) < 1e-9
    assert out["anchor"]["uncalibrated_pick"] == 1 and abs(out["anchor"]["time_scale"] - 1.2) < 1e-9
    # a cost budget (load-free): trial 3 fits the calibrated time budget but not 0.75x the baseline's cost (40)
    _state(tmp_path, "tune2", [_trial(240.0, 0.70, "as rep"), _trial(290.0, 0.85, cost=29.0),
                               _trial(310.0, 0.99, cost=31.0), _trial(200.0, 0.97, cost=32.0, co=1.0)])
    tp.main(["tune2", "--baseline", "rep", "base", "--max-cost-ratio", "0.75", "--runs", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert out["trial"] == 1 and out["cost_budget"] == 30.0 and out["budget_s"] is None and out["candidates"] == 2
    # every trial at 0 robust accuracy: the weaker attack's accuracy breaks the tie, then clean accuracy
    tied = [_trial(100.0, 0.0), _trial(100.0, 0.0), _trial(100.0, 0.0)]
    for t, (fgsm, clean) in zip(tied, [(0.1, 0.99), (0.3, 0.95), (0.3, 0.97)]):
        t["metrics"].update(val_fgsm_acc=fgsm, val_clean_acc=clean)
    _state(tmp_path, "tune3", tied)
    tp.main(["tune3", "--runs", str(tmp_path)])
    assert json.loads(capsys.readouterr().out)["trial"] == 2
    # the reproduction ran on another machine: its committed rows give the baseline's time and cost
    committed = tmp_path / "claims.json"
    committed.write_text(json.dumps({"rows": [_committed_row("base", "elsewhere", "sweep-1", 0.9, 400.0, 40.0)]}))
    tp.main(["tune", "--baseline", "elsewhere", "base", "--max-time-ratio", "0.75", "--runs", str(tmp_path),
             "--committed", str(committed)])
    out = json.loads(capsys.readouterr().out)
    assert out["trial"] == 1 and out["budget_s"] == 300.0 and out["baseline_from"] == str(committed)


def test_a_side_by_side_timing_judges_the_speed_and_the_sweep_ratio_is_shown():
    rule = dict(RULE, speed="faster", pairs=[("PGD-AT", ["PGD-AT + pruning"])])
    rows = [_row("PGD-AT", 0.88, 500.0), _row("PGD-AT + pruning", 0.875, 520.0, cost=8.0)]
    assert _judge(rows, rule)["verdict"] == "partly"  # 1.04x as the sweep ran them: not faster
    paired = {("mnist", "PGD-AT", "PGD-AT + pruning"): {"time_ratio": 0.70, "rounds": [{}]}}
    v = claims_judge.judge(rule, {r["label"]: r for r in rows}, paired)
    assert v["verdict"] == "holds" and "0.70x its training time side by side" in v["why"]
    assert "1.04x time as the sweep ran them" in v["why"]
    paired = {("fashion_mnist", "PGD-AT", "PGD-AT + pruning"): {"time_ratio": 0.70, "rounds": [{}]}}
    assert claims_judge.judge(rule, {r["label"]: r for r in rows}, paired)["verdict"] == "partly"  # another dataset's pair


def _committed_row(label, exp, sweep, aa, time_s, cost, method="pgd_at"):
    return dict(_row(label, aa, time_s, cost=cost), experiment=exp, sweep=sweep, dataset="mnist", eps=0.3,
                model="resnet_tiny (width 8)", epochs=4, method=method, run_id="0123456789abcdef", trial=0)


def test_a_sweep_run_on_a_fresh_checkout_adds_to_the_committed_rows_instead_of_replacing_them(tmp_path):
    exp, old = "reproduce-rrm-mnist", "sweep-20261201-155401"
    teacher = {"teacher_time_s": 300.0, "teacher_cost": 20.0, "teacher_val_robust_acc": 0.9}
    committed = {
        "rows": [_committed_row("PGD-AT of the student architecture", exp, old, 0.86, 1300.0, 44.0),
                 dict(_committed_row("RRM student (paper defaults)", exp, old, 0.0, 500.0, 18.0, "rrm"), teacher=teacher),
                 _committed_row("FGSM-RS", "reproduce-fp-better-mnist", "sweep-20261201-102617", 0.36, 360.0, 16.0)],
        "sweeps": [{"experiment": exp, "sweep": old, "configurations": 2, "wall_s": 7740.0, "trials_wall_s": 4200.0},
                   {"experiment": "reproduce-fp-better-mnist", "sweep": "sweep-20261201-102617", "configurations": 1,
                    "wall_s": 100.0, "trials_wall_s": 50.0},
                   {"experiment": "reproduce-local-ball-mnist", "sweep": "sweep-20261201-163537", "configurations": 0,
                    "wall_s": 1.0, "trials_wall_s": 1.0}]}
    spec = {"repeats": 3, "model": {"name": "resnet_tiny", "width": 8}, "dataset": {"name": "mnist"},
            "threat": {"eps": 0.3}, "train": {"epochs": 8}}
    seeds = lambda key, v: {f"{key}_seed{i}": v + 0.001 * i for i in range(3)}  # noqa: E731
    tuned = {"label": "RRM student (tuned)", "method": "rrm", "spec": spec, "run_id": "feedface",
             "metrics": {**seeds("train_time_s", 600.0), **seeds("cost", 22.0), "teacher_time_s": 300.0,
                         "teacher_cost": 20.0, "teacher_val_robust_acc": 0.9},
             "test": {**seeds("test_clean_acc", 0.97), **seeds("test_pgd20_acc", 0.02),
                      **seeds("test_autoattack_acc", 0.01), "test_n": 10000, "test_n_all": 10000, "test_n_aa": 500}}
    runs = tmp_path / "runs"
    _state(runs, exp, [tuned])
    state = runs / exp / "sweep-20260101-000000" / "state.json"
    state.write_text(state.read_text().replace('"trials"', f'"experiment": "{exp}", "trials"', 1))

    result = claims_rows.collect(runs, tmp_path / "no-paired.json", committed)
    labels = [(r["experiment"], r["label"]) for r in result["rows"]]
    assert labels == [("reproduce-fp-better-mnist", "FGSM-RS"), (exp, "PGD-AT of the student architecture"),
                      (exp, "RRM student (paper defaults)"), (exp, "RRM student (tuned)")]
    rrm = next(c for c in result["claims"] if c["paper"] == "rrm")
    assert rrm["verdict"] == "does not hold" and not rrm.get("provisional")  # the tuned row decides, the rest is carried
    # both rrm sweeps are listed, in the order they started; a committed sweep none of whose rows is reported is not
    assert [(s["experiment"], s["sweep"]) for s in result["sweeps"]] == [
        ("reproduce-fp-better-mnist", "sweep-20261201-102617"), (exp, "sweep-20260101-000000"), (exp, old)]
    written = pages.render_pages(result, [])
    rrm_rows = {ln.split(" | ")[1]: ln for ln in written["docs/claims/rrm.md"].splitlines() if ln.startswith("| MNIST | ")}
    assert f"| rrm-mnist, {old} |" in rrm_rows["RRM student (paper defaults)"]  # each row names the sweep it ran in
    assert "| rrm-mnist, sweep-20260101-000000 |" in rrm_rows["RRM student (tuned)"]
    assert "| fp-better-mnist, sweep-20261201-102617 |" in written["docs/claims/fp_better.md"]
    # a local row of a committed label takes its place; --fresh (no committed rows) reports this machine only
    assert [r["label"] for r in claims_rows.collect(runs, tmp_path / "none.json")["rows"]] == ["RRM student (tuned)"]


def test_speed_alone_is_not_partly_for_a_model_autoattack_breaks():
    rule = dict(RULE, paper="rrm", speed="fraction", teacher=True, pairs=[("PGD-AT", ["RRM"])])
    rows = [_row("PGD-AT", 0.88, 480.0, cost=44.0), _row("RRM", 0.0, 150.0, cost=10.0, teacher={"teacher_time_s": 50.0})]
    v = _judge(rows, rule)
    assert v["verdict"] == "does not hold" and "its speed does not count" in v["why"]
    # above the 30% bar and within PARTLY_MARGIN of the baseline, the speed half counts
    rows[0] = _row("PGD-AT", 0.38, 480.0, cost=44.0)
    rows[1] = _row("RRM", 0.35, 150.0, cost=10.0, teacher={"teacher_time_s": 50.0})
    assert _judge(rows, rule)["verdict"] == "partly"


def test_the_control_row_is_quoted_not_judged():
    rule = dict(RULE, paper="rrm", speed="fraction", teacher=True, pairs=[("PGD-AT", ["RRM"])], control="clean")
    rows = [_row("PGD-AT", 0.88, 480.0, cost=44.0), _row("RRM", 0.0, 150.0, cost=10.0), _row("clean", 0.0, 40.0)]
    v = _judge(rows, rule)
    assert v["verdict"] == "does not hold" and "control, clean: clean 98.0%, PGD-20 2.0%, AutoAttack 0.0%" in v["why"]
    assert len(v["per_baseline"]) == 1


def test_a_dataset_with_only_its_baselines_says_so_and_checks_them_against_its_own_bar(tmp_path):
    exp = "reproduce-baselines-fashion_mnist"
    row = dict(_committed_row("PGD-AT (PGD-10)", exp, "sweep-20261202-144554", 0.62, 300.0, 55.0), dataset="fashion_mnist",
               eps=0.1, model="small_cnn")
    result = claims_rows.collect(tmp_path / "runs", tmp_path / "none.json", {"rows": [row], "sweeps": []})
    assert not [c for c in result["claims"] if c["dataset"] == "fashion_mnist"]
    (b,) = [b for b in result["baselines"] if b["dataset"] == "fashion_mnist"]
    assert b["metric"] == "aa" and b["reached"] and "no published level" in b["source"]
    index = pages.render_pages(result, [])["docs/claims/README.md"]
    assert "No claim reproduced on Fashion-MNIST yet" in index
    assert not [ln for ln in index.splitlines() if ln.startswith("| [")]  # no verdict row
    assert "| Fashion-MNIST | PGD-AT (PGD-10) | AutoAttack | 62.0 | ≥ 30.0 | reached | [1] |" in index
    assert "1. no published level" in index
