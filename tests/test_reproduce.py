"""The claim reproductions (search_spaces/reproduce/<dataset>/*.yaml): each validates, is a fixed set of labelled
configurations with three seeds and AutoAttack on every member, and a one-epoch, small-data version of every one
of its configurations trains on the real dataset (one whole reproduction as a sweep: test_reproduce_sweep.py)."""

import copy
import re

import pytest
import torch

from raysweep.config import load_yaml, parse_config
from raysweep.train import run_trial

from conftest import REPO

FILES = sorted((REPO / "search_spaces" / "reproduce").glob("*/*.yaml"))
DATASET_OF = {"mnist": "mnist", "fashion_mnist": "fashion_mnist"}


def test_every_paper_and_dataset_has_a_reproduction():
    names = {(f.parent.name, f.stem) for f in FILES}
    for ds in DATASET_OF:
        for paper in ("baselines", "fp_better", "data_pruning", "data_pruning_trades_mart", "local_ball",
                      "backward_smoothing", "rrm"):
            assert (ds, paper) in names, f"missing search_spaces/reproduce/{ds}/{paper}.yaml"


@pytest.mark.parametrize("path", FILES, ids=[f"{f.parent.name}-{f.stem}" for f in FILES])
def test_reproduction_yaml_is_a_fixed_seeded_evaluated_set(path):
    raw = load_yaml(path)
    cfg = parse_config(raw, path)
    header = path.read_text().split("\nname:")[0]
    assert "Claim" in header and "Baseline" in header and "Run alone:" in header, "the header states claim and baseline"
    assert cfg.base["dataset"]["name"] == DATASET_OF[path.parent.name]
    assert cfg.base["threat"]["eps"] == (0.3 if path.parent.name == "mnist" else 0.1)
    s = cfg.sweep
    assert s.repeats == 3 and s.sampler != "random"
    # fixed configurations only: every trial is an enqueued, labelled point
    assert s.num_samples == len(s.enqueue) >= 2
    assert all(p.get("label") for p in s.enqueue)
    for p in s.enqueue:  # a search key a point leaves out would be sampled: not a fixed configuration
        m = p.get("method", cfg.methods[0])
        missing = [sp.key for sp in cfg.search if (sp.methods is None or m in sp.methods) and sp.key not in p]
        assert not missing, f"{p['label']!r} leaves {missing} to the sampler"
    fe = cfg.final_eval
    assert fe.enabled and fe.members == "all" and fe.n is None  # PGD-20 on the whole test set
    assert {"clean", "pgd20", "autoattack"} <= set(fe.attacks)
    assert fe.attack_n.get("autoattack", 10**9) >= 500  # the same first >= 500 images for every configuration


def _small(raw, point):
    """A one-epoch, small-data version of one enqueued configuration (real dataset, 512 images)."""
    raw = copy.deepcopy(raw)
    raw["dataset"].update(val_size=64, train_size=512)
    raw["train"].update(epochs=1, batch_size=128)
    raw["eval"] = {"val_pgd_steps": 2}
    # one epoch, and no pruning warm-up, so that a pruned configuration prunes within it
    one = {"epochs": 1, "train.epochs": 1, "pruning.warmup_epochs": 0}
    point = {k: v for k, v in point.items() if k != "label"}
    for k, v in one.items():
        if k in raw.get("search", {}):
            raw["search"][k] = {"choice": [v]}
        if k in point:
            point[k] = v
    raw["sweep"]["enqueue"] = [dict(point)]
    raw["sweep"]["num_samples"] = 1
    if raw.get("pruning"):
        raw["pruning"]["warmup_epochs"] = 0
    cfg = parse_config(raw, "small")
    spec = cfg.trial_spec(point).to_dict()
    spec["repeats"] = 1
    if spec["method"] == "rrm":
        spec["method_params"]["teacher_epochs"] = 1
    return spec


CASES = [(f, i) for f in FILES for i in range(len(load_yaml(f)["sweep"]["enqueue"]))]


@pytest.mark.parametrize("path,i", CASES, ids=[f"{f.parent.name}-{f.stem}-{i}" for f, i in CASES])
def test_one_epoch_of_every_configuration_on_the_real_data(path, i):
    torch.set_num_threads(1)
    raw = load_yaml(path)
    spec = _small(raw, raw["sweep"]["enqueue"][i])
    hist = run_trial(spec, device="cpu")
    m = hist[-1]
    assert len(hist) == 1 and m["cost"] > 0 and m["train_time_s"] > 0 and 0 <= m["val_robust_acc"] <= 1
    if spec.get("pruning") and spec["pruning"]["mode"] != "none":
        assert m["kept_fraction"] < 1.0
    if spec["method"] == "rrm":
        assert m["teacher_cost"] > 0 and 0 <= m["teacher_val_robust_acc"] <= 1


TUNE_FILES = sorted((REPO / "search_spaces" / "reproduce").glob("*/tune/*.yaml"))


@pytest.mark.parametrize("path", TUNE_FILES, ids=[f"{f.parent.parent.name}-tune-{f.stem}" for f in TUNE_FILES])
def test_tuning_sweeps_search_at_least_16_points_on_validation_only(path):
    cfg = parse_config(load_yaml(path), path)
    assert cfg.sweep.num_samples >= 16 and cfg.sweep.sampler in ("tpe", "nsga2") and cfg.search
    assert not cfg.final_eval.enabled  # selection on validation; the test set is for the reproduction's 3 seeds
    header = path.read_text().split("\nname:")[0]
    fed = re.findall(r"reproduce/(\w+)/(\w+)\.yaml", header)
    assert fed and all((REPO / "search_spaces" / "reproduce" / d / f"{n}.yaml").is_file() for d, n in fed), \
        "the header names the reproduction its best point goes to"
