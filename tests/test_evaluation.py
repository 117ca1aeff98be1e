"""Final evaluation: attack ordering on a really trained model, agreement with torchattacks,
gradient-masking flags, AutoAttack through evaluate_state, and `raysweep evaluate` logging to
MLflow (checkpoint + spec, trial run id, a sweep's front). No Ray.

The model is PGD-AT (3 steps) on 6000 MNIST images for 3 epochs at ε = 0.1: a few hundred
steps. At ε = 0.3 such a briefly trained small CNN genuinely shows the masking signature
(Square and AutoAttack several points below PGD-50×10), so it could not serve as the honest
reference; at ε = 0.1 every attack agrees within a point."""

import argparse
import json

import pytest
import torch

torch.set_num_threads(1)

pytest.importorskip("torchattacks")

from raysweep.errors import UserError  # noqa: E402
from raysweep.evaluation.suite import evaluate_model, evaluate_state, masking_flags  # noqa: E402

EPS = 0.1
SPEC = {
    "method": "pgd_at", "method_params": {"steps": 3},
    "dataset": {"name": "mnist", "val_size": 500, "train_size": 6000},
    "model": {"name": "small_cnn"}, "threat": {"eps": EPS},
    "train": {"epochs": 3, "batch_size": 128, "lr": 0.005, "optimizer": "adam", "weight_decay": 0.0,
              "schedule": "cyclic", "eps_warmup": 0.3},
    "device": "cpu",
}
# cheap AutoAttack / Square for tests (the suite's defaults are 100 iterations / 5000 queries)
QUICK = {"aa_steps": 10, "n_queries": 1000}
ALL = ["clean", "fgsm", "pgd20", "pgd50x10", "cw20", "autoattack", "square"]


@pytest.fixture(scope="module")
def trained():
    from raysweep.data import load_dataset
    from raysweep.models import build_model
    from raysweep.train.loop import LocalReporter, run_trial

    rep = LocalReporter()
    hist = run_trial(SPEC, rep)
    assert hist[-1]["val_robust_acc"] > 0.5, hist[-1]  # it did learn something robust
    data = load_dataset("mnist", val_size=500, train_size=1)
    model = build_model("small_cnn", data.num_classes, data.input_shape)
    model.load_state_dict(rep.last_state["model"])
    model.eval()
    return {"state": rep.last_state, "model": model, "x": data.test.x, "y": data.test.y, "history": hist}


class Quantised(torch.nn.Module):
    """Gradient masking by construction: the input is rounded to 8 bits, and round() has a zero
    gradient, so every gradient attack sees a flat loss while the decision is unchanged."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


def _acc_line(name, r):
    return name + ": " + ", ".join(f"{a} {r[f'test_{a}_acc']:.3f}" for a in ALL if f"test_{a}_acc" in r)


@pytest.fixture(scope="module")
def honest_results(trained):
    r = evaluate_model(trained["model"], trained["x"][:200], trained["y"][:200], ALL, EPS, **QUICK)
    print("\n" + _acc_line("honest (200 test images)", r))
    return r


def test_attack_ordering_and_no_flags_on_honest_model(honest_results):
    r = honest_results
    slack = 1 / 200  # one example: the PGD restarts and AutoAttack's starts are random
    assert r["test_n"] == 200
    assert r["test_clean_acc"] > 0.9
    assert r["test_pgd20_acc"] <= r["test_clean_acc"] + slack
    assert r["test_pgd50x10_acc"] <= r["test_pgd20_acc"] + slack
    assert r["test_autoattack_acc"] <= r["test_pgd50x10_acc"] + slack
    assert r["test_autoattack_acc"] <= r["test_clean_acc"]
    assert r["test_cw20_acc"] <= r["test_clean_acc"] + slack
    assert 0.5 < r["test_autoattack_acc"] < r["test_clean_acc"]  # robust, and the attacks do bite
    flags = masking_flags(r)
    assert set(flags) == {"fgsm_beats_pgd", "pgd_far_above_aa", "blackbox_below_whitebox"}
    assert not any(flags.values()), flags


def test_masked_model_raises_flags(trained, honest_results):
    masked = Quantised(trained["model"]).eval()
    r = evaluate_model(masked, trained["x"][:200], trained["y"][:200], ALL, EPS, **QUICK)
    print("\n" + _acc_line("masked (200 test images)", r))
    # white-box attacks are blind (no gradient) ...
    assert r["test_pgd20_acc"] >= honest_results["test_pgd20_acc"] + 0.05
    # ... the black-box part of AutoAttack is not
    assert r["test_square_acc"] < r["test_pgd20_acc"] - 0.05
    flags = masking_flags(r)
    assert flags["pgd_far_above_aa"] and flags["blackbox_below_whitebox"], flags


def test_masking_flags_only_with_inputs():
    assert masking_flags({"test_clean_acc": 0.9}) == {}
    assert masking_flags({"test_pgd20_acc": 0.5, "test_autoattack_acc": 0.4}) == {"pgd_far_above_aa": True}
    assert masking_flags({"test_pgd20_acc": 0.5, "test_autoattack_acc": 0.48}) == {"pgd_far_above_aa": False}
    assert masking_flags({"test_pgd20_acc": 0.5, "test_autoattack_acc": 0.4}, pgd_aa_gap=0.2) == {"pgd_far_above_aa": False}
    # FGSM accuracy above PGD's is the normal ordering; below it, single-step beats iterative
    assert masking_flags({"test_fgsm_acc": 0.6, "test_pgd20_acc": 0.5}) == {"fgsm_beats_pgd": False}
    assert masking_flags({"test_fgsm_acc": 0.3, "test_pgd20_acc": 0.5}) == {"fgsm_beats_pgd": True}
    assert masking_flags({"test_fgsm_acc": 0.45, "test_pgd20_acc": 0.4, "test_pgd50x10_acc": 0.5})["fgsm_beats_pgd"]
    f = masking_flags({"test_square_acc": 0.3, "test_cw20_acc": 0.5, "test_pgd20_acc": float("nan")})
    assert f == {"blackbox_below_whitebox": True}
    assert masking_flags({"test_square_acc": 0.5, "test_cw20_acc": 0.505}) == {"blackbox_below_whitebox": False}


def test_pgd20_agrees_with_torchattacks(trained):
    import torchattacks

    model, n = trained["model"], 600
    x, y = trained["x"][:n].float() / 255, trained["y"][:n]
    ours = evaluate_model(model, x, y, ["pgd20"], EPS, seed=0)["test_pgd20_acc"]
    torch.manual_seed(1)
    atk = torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=20, random_start=True)  # the suite's α = ε/4
    xa = torch.cat([atk(x[i:i + 300], y[i:i + 300]) for i in range(0, n, 300)])
    with torch.no_grad():
        theirs = (model(xa).argmax(1) == y).float().mean().item()
    assert abs(ours - theirs) <= 0.005, (ours, theirs)


def test_autoattack_input_checks_and_rng(trained):
    from raysweep.evaluation.autoattack import autoattack_accuracy

    model = trained["model"]
    x, y = trained["x"][:8].float() / 255, trained["y"][:8]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        autoattack_accuracy(model, x * 255, y, EPS, steps=1, n_queries=1)
    with pytest.raises(ValueError, match="seed"):
        autoattack_accuracy(model, x, y, EPS, seed=None, steps=1, n_queries=1)
    model.train()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    acc = autoattack_accuracy(model, x, y, EPS, steps=2, n_queries=5)
    assert torch.equal(torch.rand(3), expected)  # torchattacks' reseeding did not leak out
    assert model.training  # mode restored
    model.eval()
    assert 0.0 <= acc <= 1.0


def test_evaluate_state_with_autoattack(trained):
    r = evaluate_state(SPEC, trained["state"]["model"], ["clean", "autoattack"], n=40, batch_size=20, device="cpu", **QUICK)
    assert set(r) == {"test_clean_acc", "test_autoattack_acc", "test_n"}
    assert r["test_n"] == 40
    assert 0.0 <= r["test_autoattack_acc"] <= r["test_clean_acc"]
    with pytest.raises(ValueError, match="unknown attack"):
        evaluate_state(SPEC, trained["state"]["model"], ["pgd7"], n=4)


# -- raysweep evaluate ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from raysweep.tracking.store import SweepTracker

    root = tmp_path_factory.mktemp("mlflow")
    uri = "sqlite:///" + str(root / "mlflow.db")
    return {"uri": uri, "root": root, "tracker": SweepTracker(uri, "eval-test", artifact_root=root / "art")}


def _save_checkpoint(state, d):
    d.mkdir(parents=True, exist_ok=True)
    torch.save(state, d / "state.pt")
    return d


def test_evaluate_checkpoint_with_spec_logs_to_run(trained, store, tmp_path, capsys):
    import yaml

    from raysweep.evaluation.command import evaluate_target

    tr = store["tracker"]
    parent = tr.start_parent("adhoc", {})
    child = tr.start_child(parent, "trial-000-pgd_at", {"method": "pgd_at"}, {"method": "pgd_at"})
    ck = _save_checkpoint(trained["state"], tmp_path / "somewhere" / "checkpoint_000003")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))

    with pytest.raises(UserError, match="--spec"):  # a bare checkpoint has no spec of its own
        evaluate_target(str(ck), attacks="clean", n=4, tracking_uri=store["uri"])

    out = evaluate_target(str(ck), attacks="clean,fgsm,pgd20", n=100, tracking_uri=store["uri"], spec_file=str(spec_file),
                          run_id=child, device="cpu")
    assert not out["log_errors"]
    run = tr.client.get_run(child)
    m = out["members"][0].results
    assert run.data.metrics["test_clean_acc"] == pytest.approx(m["test_clean_acc"])
    assert run.data.metrics["test_pgd20_acc"] == pytest.approx(m["test_pgd20_acc"])
    assert run.data.metrics["test_n"] == 100
    assert run.data.tags["masking_fgsm_beats_pgd"] == "false"
    assert run.data.tags["evaluate.checkpoint"] == str(ck)
    printed = capsys.readouterr().out
    assert "test_pgd20_acc" in printed and child in printed

    # also from a bare .pt file with the same spec, through the CLI subcommand
    from raysweep.evaluation.command import add_evaluate_parser

    p = argparse.ArgumentParser(prog="raysweep")
    add_evaluate_parser(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(["evaluate", str(ck / "state.pt"), "--spec", str(spec_file), "--attacks", "clean",
                         "--n", "20", "--tracking-uri", store["uri"], "--device", "cpu"])
    assert args.attacks == "clean" and args.which == "front"
    assert args.fn(args) == 0
    assert "no MLflow run to log to" in capsys.readouterr().out
    defaults = p.parse_args(["evaluate", "x"])
    assert defaults.attacks == "clean,pgd20,pgd50x10,cw20,autoattack" and defaults.n is None and defaults.seed == 0


def _fake_sweep(store, trained, tmp_path, name):
    """A sweep as the runner leaves it: parent run tagged with its directory, child runs,
    state.json with spec / checkpoint / run id per trial, two trials on the front."""
    from raysweep.tracking.store import SweepTracker

    tr = SweepTracker(store["uri"], name, artifact_root=store["root"] / "art")
    sweep_dir = tmp_path / "raysweep_runs" / name / "sweep-20250101-000000"
    parent = tr.start_parent(sweep_dir.name, {"raysweep.sweep_dir": str(sweep_dir)})
    trials = {}
    for i, (tt, front) in enumerate([(3.5, True), (7.0, True), (9.0, False)]):
        ck = _save_checkpoint(trained["state"], sweep_dir / "train" / f"run_{i}" / "checkpoint_000002")
        run_id = tr.start_child(parent, f"trial-{i:03d}-pgd_at", {"method": "pgd_at"},
                                {"method": "pgd_at", "optuna_trial": i, "status": "FINISHED",
                                 "pareto_optimal": str(front).lower()})
        tr.log_metrics(run_id, {"train_time_s": tt, "val_robust_acc": 0.8 + i / 100}, 3)
        trials[str(i)] = {"trial": i, "method": "pgd_at", "spec": SPEC, "sampled": {}, "status": "FINISHED",
                          "metrics": {"train_time_s": tt, "epoch": 3.0, "val_robust_acc": 0.8 + i / 100},
                          "history": [], "run_id": run_id, "checkpoint_path": str(ck)}
    (sweep_dir / "state.json").write_text(json.dumps({"parent_run_id": parent, "tracking_uri": store["uri"],
                                                      "experiment": name, "trials": trials}))
    return tr, parent, sweep_dir, trials


def test_evaluate_experiment_front_and_trial_run(trained, store, tmp_path):
    from raysweep.evaluation.command import evaluate_target

    tr, parent, sweep_dir, trials = _fake_sweep(store, trained, tmp_path, "eval-front")
    out = evaluate_target("eval-front", attacks="clean,pgd20,autoattack", n=30, tracking_uri=store["uri"],
                          batch_size=30, device="cpu", aa_steps=3, n_queries=30)
    assert out["parent_run_id"] == parent and not out["log_errors"]
    assert [m.trial for m in out["members"]] == [0, 1]  # the front only
    for m in out["members"]:
        run = tr.client.get_run(m.run_id)
        assert {"test_clean_acc", "test_pgd20_acc", "test_autoattack_acc"} <= set(run.data.metrics)
        assert run.data.tags["masking_pgd_far_above_aa"] in ("true", "false")
    assert "test_autoattack_acc" not in tr.client.get_run(trials["2"]["run_id"]).data.metrics
    arts = {a.path for a in tr.client.list_artifacts(parent)}
    assert {"evaluated_front.csv", "evaluated_front.png", "evaluated_front.json"} <= arts
    assert (sweep_dir / "evaluated_front.png").stat().st_size > 1000
    header = (sweep_dir / "evaluated_front.csv").read_text().splitlines()[0].split(",")
    assert {"trial", "train_time_s", "test_pgd20_acc", "test_autoattack_acc"} <= set(header)

    # a trial's run id, and that trial's checkpoint directory (spec found in state.json)
    rid = trials["2"]["run_id"]
    out = evaluate_target(rid, attacks="clean", n=10, tracking_uri=store["uri"], device="cpu")
    assert out["members"][0].trial == 2 and out["parent_run_id"] is None
    assert tr.client.get_run(rid).data.metrics["test_clean_acc"] == out["members"][0].results["test_clean_acc"]
    out = evaluate_target(trials["1"]["checkpoint_path"], attacks="pgd20", n=10, tracking_uri=store["uri"], device="cpu")
    assert out["members"][0].run_id == trials["1"]["run_id"]
    assert "test_pgd20_acc" in tr.client.get_run(trials["1"]["run_id"]).data.metrics


def test_load_model_from_a_sweeps_checkpoint(trained, store, tmp_path):
    """docs/concepts.md's way to use a trained model: the checkpoint directory alone, its spec from state.json."""
    from raysweep.evaluation import load_model

    _, _, sweep_dir, trials = _fake_sweep(store, trained, tmp_path, "load-model")
    model, spec = load_model(trials["1"]["checkpoint_path"], device="cpu")
    assert spec == SPEC and not model.training
    x = trained["x"][:64]
    with torch.no_grad():
        assert torch.equal(model(x).argmax(1), trained["model"](x).argmax(1))
    with pytest.raises(UserError, match="seed 1 out of range"):
        load_model(trials["1"]["checkpoint_path"], seed=1)
    with pytest.raises(UserError, match="spec="):
        load_model(str(_save_checkpoint(trained["state"], tmp_path / "loose")))


def test_evaluate_user_errors(store, tmp_path):
    from raysweep.evaluation.command import evaluate_target

    with pytest.raises(UserError, match="neither a checkpoint path"):
        evaluate_target("no-such-experiment", attacks="clean", tracking_uri=store["uri"])
    with pytest.raises(UserError, match="unknown attack"):
        evaluate_target("no-such-experiment", attacks="clean,pgd7", tracking_uri=store["uri"])
    bad = tmp_path / "x.pt"
    bad.write_text("not a checkpoint")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    with pytest.raises(UserError, match="cannot read"):
        evaluate_target(str(bad), attacks="clean", spec_file=str(spec), tracking_uri=store["uri"])
    spec.write_text(json.dumps({**SPEC, "thret": {}}))
    with pytest.raises(UserError, match="not a valid trial spec"):
        evaluate_target(str(bad), attacks="clean", spec_file=str(spec), tracking_uri=store["uri"])
