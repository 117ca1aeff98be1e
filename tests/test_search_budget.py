"""The replay benchmark of searches under a budget (bench/search_budget.py, bench/record_curves.py) and the
``cyclic_rungs`` schedule it compares."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import record_curves  # noqa: E402
import search_budget as sb  # noqa: E402

from raysweep.train.schedule import lr_at, rung_bounds  # noqa: E402
from raysweep.train.spec import TrainSpec  # noqa: E402

# A hand-made grid over two real methods: PGD-AT robust and dear, FGSM-RS cheap; 7 steps and alpha=1.25eps are
# dominated, and that FGSM-RS setting's 4-epoch run collapses at epoch 3.
KNOB = {"pgd_at": ("pgd_at.steps", [3, 7]), "fgsm_rs": ("fgsm_rs.alpha", ["eps", "1.25eps"])}
SPEED = {("pgd_at", 3): 4.0, ("pgd_at", 7): 5.0, ("fgsm_rs", "eps"): 1.0, ("fgsm_rs", "1.25eps"): 1.5}
ACC = {("pgd_at", 3): 0.6, ("pgd_at", 7): 0.5, ("fgsm_rs", "eps"): 0.3, ("fgsm_rs", "1.25eps"): 0.25}


def _run(method, value, schedule, epochs, collapse_at=None):
    per = SPEED[(method, value)]
    hist, t = [], 0.0
    for e in range(1, epochs + 1):
        t += per
        frac = e / epochs if schedule == "cyclic" else (1.0 if e in (1, 2, 4) else 0.8)
        co = 1.0 if collapse_at is not None and e >= collapse_at else 0.0
        hist.append({"epoch": e, "train_time_s": t, "cost": e * per, "val_robust_acc": ACC[(method, value)] * frac,
                     "val_clean_acc": 0.9, "val_fgsm_acc": 0.5, "catastrophic_overfit": co})
        if co:
            break
    return {"params": {"method": method, KNOB[method][0]: value, "epochs": epochs, "schedule": schedule},
            "status": "FINISHED", "catastrophic_overfit": bool(collapse_at), "epochs": hist}


def table_json():
    runs = {}
    for m, (_, values) in KNOB.items():
        for v in values:
            for e in (1, 2, 4):
                collapse = 3 if (m, v, e) == ("fgsm_rs", "1.25eps", 4) else None
                runs[f"{m}|{v}|cyclic|{e}"] = _run(m, v, "cyclic", e, collapse)
            runs[f"{m}|{v}|cyclic_rungs|4"] = _run(m, v, "cyclic_rungs", 4)
    return {"dataset": "synthetic", "eps": 0.3,
            "sizes": {"train_size": 64, "val_size": 32, "val_pgd_steps": 1, "model": {"name": "small_cnn"},
                      "batch_size": 32},
            "setting": {"train": {"epochs": 4, "batch_size": 32, "lr": 0.005, "optimizer": "adam", "weight_decay": 0.0,
                                  "schedule": "cyclic", "eps_warmup": 0.3},
                        "params": {}, "threat": {"norm": "linf", "eps": 0.3}},
            "knobs": {m: [k, v] for m, (k, v) in KNOB.items()}, "wall_s": 1.0, "runs": runs}


def _knob(sampled):
    return sampled[KNOB[sampled["method"]][0]]


@pytest.fixture
def table():
    return sb.Table(table_json())


REF = [1.05 * 20.0, 0.0]


def test_replay_is_deterministic_and_keeps_the_budget(table):
    budget = 30.0
    for search in ("random", "tpe", "tpe+asha", "tpe+mo_asha", "tpe+mo_asha_restart", "tpe+mo_asha_cycles",
                   "tpe+mo_asha_fixed_epochs"):
        a = sb.simulate(table, search, 3, budget, REF)
        b = sb.simulate(table, search, 3, budget, REF)
        assert a["curve"] == b["curve"] and [t["sampled"] for t in a["trials"]] == [t["sampled"] for t in b["trials"]]
        # no trial starts once the spend (every trial's latest report, running ones included) reached B
        assert all(t["spent_at_start"] < budget for t in a["trials"])
        assert a["spent"] >= budget  # the budget, not num_samples, ended the sweep
        # spend never falls, and the curve's last spend is what the trials spent
        spends = [s for s, _ in a["curve"]]
        assert spends == sorted(spends)
        assert abs(a["spent"] - sum(t["spent"] for t in a["trials"])) < 1e-9


def test_a_stopped_trial_pays_only_its_epochs_so_far(table):
    run = sb.simulate(table, "tpe+asha_cycles", 0, 60.0, REF)
    stopped = [t for t in run["trials"] if t["stopped"]]
    assert stopped, "ASHA stopped nothing on the toy grid"
    for t in stopped:
        m, v = t["sampled"]["method"], _knob(t["sampled"])
        assert t["epochs_run"] < sb.MAX_EPOCHS
        assert t["spent"] == pytest.approx(SPEED[(m, v)] * t["epochs_run"])
        assert t["point"][0] == pytest.approx(t["spent"])


def test_restart_pays_every_rung_run_and_reports_the_complete_run(table):
    run = sb.simulate(table, "tpe+mo_asha_restart", 1, 60.0, REF)
    for t in run["trials"]:
        m, v = t["sampled"]["method"], _knob(t["sampled"])
        rungs = [e for e in sb.RESTART_EPOCHS if e <= t["epochs_run"]]  # grace 1: runs of 1, 2, 4 epochs
        paid = sum(table.run(m, v, "cyclic", e)["epochs"][-1]["train_time_s"] for e in rungs)
        assert t["spent"] == pytest.approx(paid)
        # its point: the last complete run (its own training time and accuracy), not the sum
        assert t["point"][0] == pytest.approx(table.run(m, v, "cyclic", t["epochs_run"])["epochs"][-1]["train_time_s"])


def test_restart_with_grace_2_starts_at_the_two_epoch_run(table):
    run = sb.simulate(table, "tpe+mo_asha_restart_grace2", 2, 60.0, REF)
    assert run["trials"] and all(t["epochs_run"] in (2, 4) for t in run["trials"])
    for t in run["trials"]:
        m, v = t["sampled"]["method"], _knob(t["sampled"])
        rungs = [e for e in (2, 4) if e <= t["epochs_run"]]
        assert t["spent"] == pytest.approx(sum(table.run(m, v, "cyclic", e)["epochs"][-1]["train_time_s"] for e in rungs))


def test_hypervolume_uses_the_fixed_reference_and_collapses_stay_off_the_front(table):
    from raysweep.tracking.pareto import hypervolume_2d

    run = sb.simulate(table, "random", 5, 80.0, REF)
    pts = [t["point"] for t in run["trials"] if t["eligible"]]
    assert run["final_hv"] == pytest.approx(hypervolume_2d(pts, ["min", "max"], REF))
    collapsed = [t for t in run["trials"] if t["sampled"] == {"method": "fgsm_rs", "fgsm_rs.alpha": "1.25eps", "epochs": 4}]
    assert all(not t["eligible"] for t in collapsed)


def test_median_times_replace_a_configurations_noisy_epochs():
    tj = table_json()
    run = tj["runs"]["pgd_at|3|cyclic|2"]
    run["epochs"][1]["train_time_s"] = 4.0 + 20.0  # an epoch slowed by other work on the machine
    assert sb.Table(tj, "recorded").run("pgd_at", 3, "cyclic", 2)["epochs"][1]["train_time_s"] == 24.0
    med = sb.Table(tj, "median")
    assert [h["train_time_s"] for h in med.run("pgd_at", 3, "cyclic", 2)["epochs"]] == [4.0, 8.0]
    assert [h["val_robust_acc"] for h in med.run("pgd_at", 3, "cyclic", 2)["epochs"]] == [0.3, 0.6]


def test_bootstrap_ci_contains_the_mean():
    mean, (lo, hi) = sb.bootstrap_ci([0.1, 0.5, 0.3, 0.9, 0.2], n=2000)
    assert lo <= mean <= hi and lo < hi
    assert sb.bootstrap_ci([0.4] * 4, n=100)[1] == [0.4, 0.4]


def test_result_json_shape(table, tmp_path):
    curves = tmp_path / "replay_curves_synthetic.json"
    curves.write_text(json.dumps(table_json()))
    out = tmp_path / "out"
    sb.main(["--curves", str(curves), "--seeds", "3", "--searches", "random,tpe+mo_asha,tpe+mo_asha_cycles",
             "--procs", "1", "--bootstrap", "200", "--out", str(out), "--plot", str(tmp_path / "p.png")])
    res = json.loads((out / "search_budget.json").read_text())
    assert res["default"] in ("random", "tpe+mo_asha", "tpe+mo_asha_cycles")
    d = res["datasets"]["synthetic"]
    assert d["reference_point"] == pytest.approx([1.05 * table.max_time(), 0.0])
    assert d["budget_s"] > 0 and {"train_size", "val_size"} <= set(d["grid"])
    for s in d["searches"].values():
        assert s["seeds"] == 3
        lo, hi = s["final_hv"]["ci95"]
        assert lo <= s["final_hv"]["mean"] <= hi
        f = s["budget_fraction_to_random_final_hv"]
        assert set(f) >= {"mean", "ci95", "reached"} and 0 <= f["reached"] <= 3
        assert (f["mean"] is None) == (f["ci95"] is None)
    assert (tmp_path / "p.png").stat().st_size > 0
    # re-summarised from the JSON alone: the same numbers
    again = sb.main(["--from-json", str(out / "search_budget.json"), "--bootstrap", "200", "--out", str(tmp_path / "o2"),
                     "--plot", ""])
    assert again["datasets"]["synthetic"]["searches"]["random"]["final_hv"] == d["searches"]["random"]["final_hv"]


def test_curves_from_a_sweep_state():
    points = [{"method": "pgd_at", "pgd_at.steps": 3, "epochs": 2, "schedule": "cyclic", "eps_warmup": 0.3}]
    hist = [{"epoch": 1.0, "train_time_s": 1.5, "cost": 4.0, "val_robust_acc": 0.2, "val_clean_acc": 0.8,
             "val_fgsm_acc": 0.3, "catastrophic_overfit": 0.0, "lr": 0.004},
            {"epoch": 2.0, "train_time_s": 3.0, "cost": 8.0, "val_robust_acc": 0.4, "val_clean_acc": 0.9,
             "val_fgsm_acc": 0.5, "catastrophic_overfit": 0.0, "lr": 0.0}]
    state = {"trials": {"0": {"trial": 0, "status": "FINISHED", "sampled": dict(points[0]), "history": hist,
                              "metrics": hist[-1]},
                        "1": {"trial": 1, "status": "FINISHED", "sampled": {"method": "pgd_at", "pgd_at.steps": 9,
                                                                             "epochs": 1, "schedule": "cyclic"},
                              "history": hist[:1]}}}
    runs = record_curves.curves_from_state(state, points)
    assert list(runs) == ["pgd_at|3|cyclic|2"]
    r = runs["pgd_at|3|cyclic|2"]
    assert [e["train_time_s"] for e in r["epochs"]] == [1.5, 3.0]
    assert set(r["epochs"][0]) == set(record_curves.HISTORY_KEYS)
    assert r["status"] == "FINISHED" and r["catastrophic_overfit"] is False


def test_recording_grid_every_run_once():
    g = record_curves.grid()
    keys = [record_curves.run_key(p) for p in g]
    assert len(keys) == len(set(keys)) == len(record_curves.METHODS) * 2 * (len(record_curves.EPOCHS) + 1)
    raw = record_curves.sweep_yaml("mnist", g, 1000, 500, 5, "t")
    assert raw["sweep"]["num_samples"] == len(g) and raw["sweep"]["enqueue"] == g
    assert raw["resources"]["executor"] == "inprocess" and raw["final_eval"] == {"enabled": False}


@pytest.mark.parametrize("epochs", [1, 2, 4, 6])
def test_cyclic_rungs_ends_every_cycle_at_zero_on_a_rung(epochs):
    spec = TrainSpec(epochs=epochs, lr=1.0, schedule="cyclic_rungs", cyclic_peak=0.4)
    bounds = rung_bounds(epochs)
    assert bounds == {1: [1], 2: [1, 2], 4: [1, 2, 4], 6: [1, 2, 4, 6]}[epochs]
    start = 0
    for end in bounds:
        for edge in (start, end):
            assert lr_at(spec, edge / epochs) == pytest.approx(0.0, abs=1e-9)
        peak = start + 0.4 * (end - start)
        assert lr_at(spec, peak / epochs) == pytest.approx(1.0)
        # it rises to the peak and falls after, inside the cycle
        assert lr_at(spec, (start + 0.2 * (end - start)) / epochs) == pytest.approx(0.5)
        assert 0 < lr_at(spec, (start + 0.7 * (end - start)) / epochs) < 1
        start = end


def test_cyclic_rungs_first_cycle_is_a_one_epoch_cyclic_run():
    one = TrainSpec(epochs=1, lr=0.01, schedule="cyclic")
    rungs = TrainSpec(epochs=4, lr=0.01, schedule="cyclic_rungs")
    for u in (0.0, 0.1, 0.4, 0.75, 1.0):
        assert lr_at(rungs, u / 4) == pytest.approx(lr_at(one, u))


def test_an_interrupted_replay_resumes_from_its_cache(tmp_path):
    curves = tmp_path / "replay_curves_synthetic.json"
    curves.write_text(json.dumps(table_json()))
    cache = tmp_path / "runs.jsonl"
    first, _ = sb.run_all([str(curves)], ["random", "tpe"], 2, procs=1, cache=str(cache))
    lines = cache.read_text().splitlines()
    assert len(lines) == 4
    cache.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # the last line torn by a kill
    again, _ = sb.run_all([str(curves)], ["random", "tpe"], 2, procs=1, cache=str(cache))
    assert [r["final_hv"] for r in again["synthetic"]] == [r["final_hv"] for r in first["synthetic"]]
    assert len(cache.read_text().splitlines()) == 5  # only the torn replay ran again, on a line of its own
    assert json.loads(cache.read_text().splitlines()[-1])["seed"] == 1


def test_a_seed_ending_below_randoms_final_hv_is_continued_past_the_budget(tmp_path):
    curves = tmp_path / "replay_curves_synthetic.json"
    curves.write_text(json.dumps(table_json()))
    runs, meta = sb.run_all([str(curves)], ["random", "tpe"], 4, procs=1)
    rs = runs["synthetic"]
    target = sum(r["final_hv"] for r in rs if r["search"] == "random") / 4
    below = [r for r in rs if sb.first_reach(r["curve"], target) is None]
    assert below, "the grid should leave some seed below random's mean"
    sb.continue_unreached(runs, meta, procs=1)
    budget = meta["synthetic"]["budget_s"]
    for r in rs:
        c = r.get("continued")
        assert (c is not None) == (r in below)
        if c:
            assert c["budget_s"] == sb.CONTINUE_BUDGETS * budget and c["target"] == target
            assert c["reach_s"] is None or c["reach_s"] >= budget  # the two sweeps agree until B is spent
    out, _ = sb.summarise_dataset(rs, budget, n_boot=100)
    for name in ("random", "tpe"):
        f, mine = out[name]["budget_fraction_to_random_final_hv"], [r for r in rs if r["search"] == name]
        assert f["reached"] == sum(r not in below for r in mine)
        assert f["reached_continued"] == sum(r not in below or r["continued"]["reach_s"] is not None for r in mine)
        assert (f["mean"] is None) == (f["reached_continued"] < 4)
        for r, x in zip(mine, out[name]["per_seed_fraction"]):
            assert (x is None) == (r in below and r["continued"]["reach_s"] is None)
            assert x is None or (x > 1.0) == (r in below)
    # a continuation that differs from its sweep before B means the replay is not deterministic: refused
    bad = [list(p) for p in below[0]["curve"]]
    i = next(i for i, (x, h) in enumerate(bad) if 0 < x < budget and h > 0)
    bad[i][1] += 1.0
    with pytest.raises(RuntimeError, match="not deterministic"):
        sb._same_until(bad, below[0]["curve"], budget)
