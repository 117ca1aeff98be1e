"""Every shipped search space drives a real one-epoch trial of each of its methods (small
synthetic data, in-process); the cross-method YAML's sweep is in test_search_spaces_front.py."""

import pytest
import torch

from raysweep.config import load_config
from raysweep.train import run_trial

from conftest import REPO

SMALL = ["dataset.name=synthetic", "dataset.val_size=64", "dataset.train_size=256", "train.epochs=1",
         "train.batch_size=64", "model.width=4", "eval.val_pgd_steps=2"]

CASES = []
for path in sorted((REPO / "search_spaces").glob("*.yaml")):
    cfg = load_config(path)
    CASES += [(path, m) for m in cfg.methods]


def _small(path):
    # one epoch: a pruning warm-up must be shorter than that (a config error says so otherwise)
    return SMALL + (["pruning.warmup_epochs=0"] if load_config(path).base.get("pruning") else [])


@pytest.mark.parametrize("path,method", CASES, ids=[f"{p.stem}-{m}" for p, m in CASES])
def test_one_epoch_of_each_method_in_each_search_space(path, method):
    torch.set_num_threads(1)
    cfg = load_config(path, _small(path))
    spec = cfg.trial_spec({"method": method}).to_dict()
    if method == "rrm":
        spec["method_params"]["teacher_epochs"] = 1
    hist = run_trial(spec, device="cpu")
    assert len(hist) == 1
    m = hist[0]
    assert m["cost"] > 0 and m["train_time_s"] > 0 and 0 <= m["val_robust_acc"] <= 1
