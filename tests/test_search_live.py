"""The live search benchmark's summary (bench/search_live.py): a sweep state read in completion order, the
hypervolume curve on the replay's clock, and the fraction of the budget to random's final hypervolume. No Ray."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import search_live as sl  # noqa: E402

REF = [10.0, 0.0]


def _rec(n, method, t, acc, status="FINISHED", epoch=1, **extra):
    return dict({"trial": n, "method": method, "sampled": {"method": method}, "status": status,
                 "metrics": {"epoch": epoch, "train_time_s": t, "val_robust_acc": acc}}, **extra)


def fake_state():
    """Four trials ending in the order 2, 0, 3, 1: trial 3 collapsed (off the front), trial 1 stopped early."""
    return {"trials": {"0": _rec(0, "pgd_at", 4.0, 0.5, epoch=2),
                       "1": _rec(1, "trades", 2.0, 0.6, stopped_early=True),
                       "2": _rec(2, "fgsm_rs", 2.0, 0.2),
                       "3": _rec(3, "fgsm_rs", 1.0, 0.9, catastrophic_overfit=True)},
            "hypervolume": {"done": [2, 0, 3, 1]}}


def test_trials_in_completion_order_with_the_sweeps_front_rule():
    ts = sl.trials_from_state(fake_state(), ended={"2": 3.0, "0": 7.0, "3": 8.0, "1": 9.0})
    assert [t["trial"] for t in ts] == [2, 0, 3, 1]
    assert [t["eligible"] for t in ts] == [True, True, False, True]
    assert [t["stopped_early"] for t in ts] == [False, False, False, True]
    assert [t["spent_at_end"] for t in ts] == [3.0, 7.0, 8.0, 9.0]
    assert ts[1]["epochs_run"] == 2


def test_curve_on_the_replay_clock_and_without_a_spend_log():
    ts = sl.trials_from_state(fake_state(), ended={"2": 3.0, "0": 7.0, "3": 8.0, "1": 9.0})
    curve, clock = sl.hv_curve(ts, REF)
    assert clock == "all_reports"
    # (2, 0.2): 8 x 0.2 = 1.6; + (4, 0.5): 1.6 + 6 x 0.3 = 3.4; the collapse adds nothing; (2, 0.6) dominates both
    assert [x for x, _ in curve] == [0.0, 3.0, 7.0, 8.0, 9.0]
    assert [h for _, h in curve] == pytest.approx([0.0, 1.6, 3.4, 3.4, 4.8])
    bare, clock = sl.hv_curve(sl.trials_from_state(fake_state()), REF)
    assert clock == "completed_trials"
    assert [x for x, _ in bare] == [0.0, 2.0, 6.0, 7.0, 9.0]  # cumulative training time of the ended trials


def test_summary_fraction_of_budget_to_randoms_final_hv_and_the_replays_numbers():
    ended = {"2": 3.0, "0": 7.0, "3": 8.0, "1": 9.0}
    rnd = {"search": "random", "seed": 0, "wall_s": 5.0, "trials": sl.trials_from_state(fake_state(), ended=ended)}
    st = fake_state()
    st["hypervolume"]["done"] = [1, 2, 0, 3]  # the best trial first: random's final HV (4.8) at spend 2
    fast = {"search": "tpe", "seed": 0, "wall_s": 4.0,
            "trials": sl.trials_from_state(st, ended={"1": 2.0, "2": 4.0, "0": 8.0, "3": 9.0})}
    slow = dict(rnd, search="tpe", seed=1)
    replay = {"datasets": {"fashion_mnist": {"random_final_hv": 50.0, "searches": {"tpe": {
        "seeds": 20, "final_hv": {"mean": 54.5}, "hv_at_budget_fraction": {"0.25": {"mean": 51.0}, "0.5": {"mean": 53.0},
                                                                           "1": {"mean": 54.5}},
        "budget_fraction_to_random_final_hv": {"mean": 0.46, "reached": 20}, "trials_mean": 46.5,
        "stopped_early_mean": 0.0, "spent_over_budget_mean": 1.06}}}}}
    out, target = sl.summarise([rnd, fast, slow], 8.0, REF, replay)
    assert target == pytest.approx(4.8)
    tpe = out["tpe"]
    assert tpe["per_seed_fraction"] == pytest.approx([2.0 / 8.0, 9.0 / 8.0])
    assert tpe["budget_fraction_to_random_final_hv"] == pytest.approx((0.25 + 9.0 / 8.0) / 2)
    assert tpe["hv_at_budget_fraction"]["0.25"] == pytest.approx((4.8 + 0.0) / 2)  # B/4 = 2 s of training
    assert tpe["hv_at_budget_fraction"]["1"] == pytest.approx((4.8 + 3.4) / 2)     # seed 1's last trial ends past B
    assert tpe["stopped_early_mean"] == 1.0 and tpe["trials_mean"] == 4.0
    assert tpe["spent_over_budget_mean"] == pytest.approx(9.0 / 8.0)
    assert tpe["replay"]["final_hv"] == 54.5 and tpe["replay"]["budget_fraction_to_random_final_hv"] == 0.46
    assert out["random"]["per_seed_fraction"] == pytest.approx([9.0 / 8.0]) and "replay" not in out["random"]
    # a search one seed of which never reaches random's final HV has no mean fraction
    low = dict(rnd, search="nsga2", trials=[t for t in rnd["trials"] if t["trial"] != 1])
    out, _ = sl.summarise([rnd, low], 8.0, REF)
    assert out["nsga2"]["budget_fraction_to_random_final_hv"] is None and out["nsga2"]["reached"] == 0
    o = sl.ordering(out)
    assert o["live"] == ["random", "nsga2"] and o["agree"] is None


def test_markdown_and_json_round_trip():
    ended = {"2": 3.0, "0": 7.0, "3": 8.0, "1": 9.0}
    runs = [{"search": "random", "seed": 0, "wall_s": 5.0, "trials": sl.trials_from_state(fake_state(), ended=ended)}]
    res = sl.build_result(runs, 8.0, REF, None, {"date": "2026-12-06", "commit": "abc1234def", "cpus": 2})
    text = sl.markdown(res)
    assert "| random | 4.80 (—)" in text and "commit `abc1234`" in text
    again = sl.build_result(json.loads(json.dumps(runs)), 8.0, REF, None, {})
    assert again["searches"] == res["searches"]


def test_a_run_made_apart_is_summarised_beside_the_table_not_in_it():
    ended = {"2": 3.0, "0": 7.0, "3": 8.0, "1": 9.0}
    runs = [{"search": "random", "seed": 0, "wall_s": 5.0, "trials": sl.trials_from_state(fake_state(), ended=ended)}]
    res = sl.build_result(runs, 8.0, REF, None, {})
    apart = fake_state()
    apart["trials"]["1"]["metrics"]["val_robust_acc"] = 0.3  # a lower final HV: 0.3 x 2 + 0.5 x 6 = 3.6
    saved = {"date": "2026-12-06", "commit": "abc", "runs": [
        {"search": "random", "seed": 0, "wall_s": 5.0, "trials": sl.trials_from_state(apart, ended=ended)}]}
    sup = sl.supplement(res, runs, saved, "/tmp/x.json")
    assert sup["random_final_hv"] == pytest.approx(3.6) and res["random_final_hv"] == pytest.approx(4.8)
    assert sup["main_fraction_to_this_random_final_hv"]["random"] == pytest.approx([9.0 / 8.0])  # 3.4 at 7, 4.8 at 9
    res["supplementary"] = [sup]
    assert "Run apart (/tmp/x.json" in sl.markdown(res)
    json.dumps(res)  # kept in the JSON as it is
