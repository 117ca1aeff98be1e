"""Data pruning: exact keep counts, class-stratified quotas, the loss rules on hand-made losses,
the dynamic re-selection schedule, GRAD-MATCH weights, DDP-identical subsets, and an
end-to-end run that trains on ⌊keep·N⌋ examples at a lower cost."""

import math
import os
import socket

import pytest
import torch

from raysweep.train import LocalReporter, TrialRun, run_trial
from raysweep.train.pruning import (class_quotas, gradmatch_select, keep_count, last_layer_gradients, omp_nonneg,
                                    select_by_rule, select_subset)
from raysweep.train.spec import DatasetSpec, ModelSpec, PruningSpec, ThreatSpec, TrainSpec, TrialSpec



def _labels(n=1000, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    # unbalanced classes
    p = torch.linspace(1.0, 3.0, k)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=g)


def test_keep_count_is_exact_floor():
    assert keep_count(0.29, 100) == 29  # 0.29*100 is 28.999... in floating point
    assert keep_count(0.5, 1001) == 500
    assert keep_count(0.3, 1984) == 595


@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("rule", ["high", "low", "both", "random", "loss"])
@pytest.mark.parametrize("keep", [0.2, 0.29, 0.5, 0.77])
def test_static_keeps_exactly_floor_keep_n(rule, keep, stratified):
    labels = _labels(997)
    scores = torch.rand(997, generator=torch.Generator().manual_seed(1))
    idx = select_subset(scores, labels, keep, rule, stratified, 10, seed=3)
    assert len(idx) == math.floor(keep * 997 + 1e-9) == keep_count(keep, 997)
    assert len(set(idx.tolist())) == len(idx)
    assert torch.equal(idx, torch.sort(idx).values)


@pytest.mark.parametrize("keep", [0.2, 0.35, 0.5, 0.8])
def test_stratified_keeps_class_proportions(keep):
    labels = _labels(1003)
    scores = torch.rand(1003, generator=torch.Generator().manual_seed(2))
    idx = select_subset(scores, labels, keep, "low", True, 10)
    counts = torch.bincount(labels, minlength=10)
    kept = torch.bincount(labels[idx], minlength=10)
    assert kept.tolist() == class_quotas(labels, keep, 10)
    for c in range(10):
        assert math.floor(keep * counts[c]) <= kept[c] <= math.floor(keep * counts[c]) + 1
    assert int(kept.sum()) == keep_count(keep, 1003)
    # within each class, the rule still picks the lowest losses
    for c in range(10):
        members = torch.nonzero(labels == c).flatten()
        chosen = set(idx.tolist()) & set(members.tolist())
        worst_kept = max(scores[list(chosen)]) if chosen else -1
        dropped = [i for i in members.tolist() if i not in chosen]
        assert all(scores[i] >= worst_kept for i in dropped)


def test_rules_pick_the_right_examples():
    # example i has loss perm[i]; the rank of each example is known
    losses = torch.tensor([5.0, 0.0, 9.0, 3.0, 7.0, 1.0, 8.0, 2.0, 6.0, 4.0])
    by_loss = lambda vals: sorted(i for i in range(10) if float(losses[i]) in vals)  # noqa: E731
    labels = torch.zeros(10, dtype=torch.long)
    pick = lambda rule, keep=0.6: select_subset(losses, labels, keep, rule, False, 1).tolist()  # noqa: E731
    assert pick("low") == by_loss({0, 1, 2, 3, 4, 5})  # keep the lowest 6
    assert pick("high") == pick("low")  # remove the highest 4 (same subset with an explicit keep)
    assert pick("both") == by_loss({2, 3, 4, 5, 6, 7})  # drop 2 from each tail
    assert pick("both", 0.5) == by_loss({2, 3, 4, 5, 6})  # odd removal: lower tail gets the floor
    assert pick("loss") == by_loss({4, 5, 6, 7, 8, 9})  # the hardest
    r = pick("random")
    assert len(set(r)) == 6 and r == pick("random")  # seeded
    assert select_by_rule(losses, 3, "low", 10).tolist() == [1, 5, 7]


def _run(pruning, method="fgsm_rs", epochs=6, train_size=256, **train):
    spec = TrialSpec(method=method, dataset=DatasetSpec(name="synthetic", val_size=64, train_size=train_size),
                     model=ModelSpec(name="resnet_small", width=4), threat=ThreatSpec(eps=0.3),
                     train=TrainSpec(epochs=epochs, batch_size=64, **train), pruning=PruningSpec(**pruning), device="cpu")
    return TrialRun(spec, device="cpu")


def _drive(run, epochs, loss_of=None):
    """Call the policy hooks as the loop does, with synthetic per-example losses."""
    pol = run.policy
    subsets = []
    for e in range(epochs):
        pol.on_epoch_start(e, run)
        subsets.append(None if run.loader.indices is None else run.loader.indices.clone())
        for _, _, idx, _ in run.loader:
            pol.observe(e, idx, loss_of(e, idx) if loss_of else torch.rand(len(idx)))
        pol.on_epoch_end(e, run)
    return subsets


@pytest.mark.parametrize("warmup,every", [(1, 2), (2, 3), (0, 1)])
def test_dynamic_reselects_every_R_epochs(warmup, every):
    run = _run({"mode": "dynamic", "rule": "random", "keep": 0.25, "warmup_epochs": warmup, "every": every})
    subsets = _drive(run, 7)
    expected = [e for e in range(7) if e >= warmup and (e - warmup) % every == 0]
    assert run.policy.selection_epochs == expected
    for e in range(7):
        if e < warmup:
            assert subsets[e] is None
        else:
            assert len(subsets[e]) == keep_count(0.25, 256)
            if e in expected and e - 1 >= warmup:
                assert not torch.equal(subsets[e], subsets[e - 1])  # re-drawn
            elif e not in expected:
                assert torch.equal(subsets[e], subsets[e - 1])  # kept between selections


def test_dynamic_loss_rule_keeps_highest_recent_losses():
    run = _run({"mode": "dynamic", "rule": "loss", "keep": 0.25, "warmup_epochs": 1, "every": 1,
                "stratified": False})
    target = torch.randperm(256, generator=torch.Generator().manual_seed(0)).float()
    subsets = _drive(run, 2, lambda e, idx: target[idx])
    assert sorted(subsets[1].tolist()) == sorted(torch.topk(target, 64).indices.tolist())


def test_static_selects_once_from_the_last_warmup_epoch():
    run = _run({"mode": "static", "rule": "low", "keep": 0.5, "warmup_epochs": 2, "stratified": False})
    target = torch.arange(256).float()
    # epoch 0 losses are the reverse ranking: only the last warm-up epoch (1) may count
    subsets = _drive(run, 5, lambda e, idx: (255 - target[idx]) if e == 0 else target[idx])
    assert run.policy.selection_epochs == [2]
    assert subsets[2].tolist() == list(range(128))
    assert all(torch.equal(subsets[e], subsets[2]) for e in (3, 4))
    assert run.policy.metrics()["kept_fraction"] == 0.5


def _toy_embeddings(n=600, d=6, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g).abs()
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * 2
    resid = torch.softmax(logits, 1)
    resid[torch.arange(n), labels] -= 1.0
    return last_layer_gradients(feats.double(), resid.double()), labels


def test_last_layer_gradient_is_the_autograd_gradient():
    g = torch.Generator().manual_seed(0)
    h, y = torch.randn(3, 5, generator=g), torch.tensor([0, 2, 1])
    fc = torch.nn.Linear(5, 4)
    for i in range(3):
        fc.zero_grad()
        logits = fc(h[i:i + 1])
        torch.nn.functional.cross_entropy(logits, y[i:i + 1]).backward()
        r = torch.softmax(logits.detach(), 1)
        r[0, y[i]] -= 1
        emb = last_layer_gradients(h[i:i + 1], r)[0].view(4, 6)
        assert torch.allclose(emb[:, :5], fc.weight.grad, atol=1e-6)
        assert torch.allclose(emb[:, 5], fc.bias.grad, atol=1e-6)


def test_omp_recovers_a_sparse_nonnegative_combination():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(50, 30, generator=g, dtype=torch.float64)
    target = 2.0 * G[3] + 0.5 * G[17] + 1.0 * G[40]
    pos, w = omp_nonneg(G, target, 3, ridge=1e-9)
    assert sorted(pos.tolist()) == [3, 17, 40]
    assert (w >= 0).all()
    assert torch.linalg.norm(G[pos].T @ w.double() - target) < 1e-3 * torch.linalg.norm(target)


@pytest.mark.parametrize("stratified", [True, False])
def test_gradmatch_weights_nonnegative_and_beat_random(stratified):
    G, labels = _toy_embeddings()
    n, keep = len(labels), 0.1
    idx, w = gradmatch_select(lambda pos: G[pos], labels, keep, stratified, 4)
    assert len(idx) == keep_count(keep, n) and (w >= 0).all() and w.sum() > 0
    full = G.mean(0)
    # the loss the method trains is Σ w_i ℓ_i / Σ w_i: its gradient estimates the full mean
    err_gm = torch.linalg.norm((w.double()[:, None] * G[idx]).sum(0) / w.double().sum() - full)
    errs = []
    for s in range(20):
        r = select_subset(None, labels, keep, "random", stratified, 4, seed=s)
        errs.append(float(torch.linalg.norm(G[r].mean(0) - full)))
    assert err_gm < min(errs)
    assert err_gm < 0.5 * sorted(errs)[len(errs) // 2]


def test_end_to_end_static_pruning_is_cheaper():
    base = {"method": "fgsm_rs", "dataset": {"name": "synthetic", "val_size": 64},
            "model": {"name": "resnet_small", "width": 4}, "threat": {"eps": 0.3},
            "train": {"epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0},
            "eval": {"val_pgd_steps": 2, "val_n": 32}, "device": "cpu"}
    full = run_trial(base, LocalReporter())
    pruned = run_trial({**base, "pruning": {"mode": "static", "keep": 0.5, "rule": "low", "warmup_epochs": 1}},
                       LocalReporter())
    assert pruned[0]["kept_fraction"] == 1.0
    assert pruned[-1]["kept_fraction"] == 0.5
    assert pruned[-1]["examples_seen"] == keep_count(0.5, 1984)
    assert pruned[-1]["cost"] == pytest.approx(2.0 + 2.0 * 0.5)
    assert full[-1]["cost"] == pytest.approx(4.0)
    assert pruned[-1]["cost"] < full[-1]["cost"]


def test_end_to_end_gradmatch_charges_selection_and_trains_weighted():
    run = _run({"mode": "dynamic", "rule": "gradmatch", "keep": 0.3, "warmup_epochs": 1, "every": 1},
               epochs=2, optimizer="adam", lr=5e-3)
    hist = run.run(LocalReporter())
    w = run.loader.weights
    assert w is not None and len(w) == keep_count(0.3, 256) and (w >= 0).all()
    sel = hist[-1]["selection_cost"]
    # one scoring pass over all examples, measured: the FGSM-RS attack pass (1), its loss forward
    # without a backward (1/3) and the feature forward (1/3)
    assert sel == pytest.approx(2.0 - 2 / 3 + 1 / 3)
    assert hist[-1]["cost"] == pytest.approx(2.0 + sel + 2.0 * keep_count(0.3, 256) / 256)


@pytest.mark.parametrize("method,params,per_example", [
    ("pgd_at", {"steps": 3}, 3 + 1 / 3),                    # 3 attack passes + the loss forward
    ("trades", {"steps": 2}, 1 / 3 + 2 + 3 / 3),             # p(x), 2 attack passes, three loss forwards
    ("mart", {"steps": 2}, 2 + 2 / 3),                       # 2 attack passes, two loss forwards
    ("backward_smoothing", {}, 1 / 3 + 1 + 1 + 2 / 3),       # f(x), init, one step, two loss forwards
    ("local_ball", {"k": 1, "m": 2}, 1 + 4 / 3),              # 1 attack pass, forwards on x, x', u1, u2
])
def test_scoring_pass_charges_the_passes_it_runs(method, params, per_example):
    """Warm-up 0: the selection needs a scoring pass over all 256 examples; its cost is the
    method's real passes without the update's backward (no fixed discount)."""
    run = _run({"mode": "static", "rule": "low", "keep": 0.5, "warmup_epochs": 0}, method=method, epochs=1)
    run.method = type(run.method)(type(run.method).Params(**params), run.method.threat, 10)
    run.policy.select(0, run)
    assert run.policy.selection_cost == pytest.approx(per_example, rel=1e-6)


def test_scoring_pass_of_fp_better_counts_its_subnetworks():
    run = _run({"mode": "static", "rule": "low", "keep": 0.5, "warmup_epochs": 0}, method="fp_better", epochs=1)
    fracs = []
    real = run.raw_model.executed_fraction
    run.raw_model.executed_fraction = lambda mask, shape: fracs.append(real(mask, shape)) or fracs[-1]
    run.policy.select(0, run)
    batches = [64] * 4
    # each batch: the attack pass and the loss forward on that batch's sampled subnetwork
    expect = sum(f * b * (1 + 1 / 3) for f, b in zip(fracs, batches)) / 256
    assert len(fracs) == 4 and run.policy.selection_cost == pytest.approx(expect, rel=1e-6)
    assert run.policy.selection_cost < 4 / 3  # blocks were skipped


def test_scoring_pass_has_no_side_effects():
    """BN statistics, FP-Better's mask stream and p_L, and the global RNG are as before."""
    run = _run({"mode": "static", "rule": "low", "keep": 0.5, "warmup_epochs": 0}, method="fp_better", epochs=1)
    buffers = {k: b.clone() for k, b in run.raw_model.named_buffers()}
    params = {k: p.detach().clone() for k, p in run.raw_model.named_parameters()}
    gen = run.method._ensure_generator().get_state().clone()
    rng = torch.get_rng_state().clone()
    frac = (run.method._frac_sum, run.method._frac_n, run.method.p_last)
    run.policy.select(0, run)
    assert run.policy.indices is not None
    assert all(torch.equal(b, buffers[k]) for k, b in run.raw_model.named_buffers())
    assert all(torch.equal(p, params[k]) for k, p in run.raw_model.named_parameters())
    assert torch.equal(run.method._ensure_generator().get_state(), gen)
    assert torch.equal(torch.get_rng_state(), rng)
    assert (run.method._frac_sum, run.method._frac_n, run.method.p_last) == frac
    assert all(p.grad is None for p in run.raw_model.parameters())


def test_warmup_default_is_kaufmanns_and_a_useless_warmup_is_a_config_error(tmp_path):
    from raysweep.config import load_config
    from raysweep.errors import ConfigError

    assert PruningSpec().warmup_epochs == 5  # Kaufmann et al.'s pruning_epoch
    f = tmp_path / "p.yaml"
    f.write_text("name: p\nmethod: pgd_at\ntrain: {epochs: 5}\npruning: {keep: 0.5}\n")
    with pytest.raises(ConfigError, match="pruning.warmup_epochs: 5 is not below train.epochs"):
        load_config(f)
    f.write_text("name: p\nmethod: pgd_at\ntrain: {epochs: 6}\npruning: {keep: 0.5}\n")
    assert load_config(f).base["pruning"]["warmup_epochs"] == 5


def test_policy_state_round_trip_restores_subset():
    run = _run({"mode": "static", "rule": "random", "keep": 0.4, "warmup_epochs": 1})
    _drive(run, 2)
    state = run.policy.state_dict()
    fresh = _run({"mode": "static", "rule": "random", "keep": 0.4, "warmup_epochs": 1})
    fresh.policy.load_state_dict(state)
    assert torch.equal(fresh.loader.indices, run.loader.indices)
    fresh.policy.on_epoch_start(2, fresh)  # no second selection after resume
    assert fresh.policy.selection_epochs == [1] and torch.equal(fresh.loader.indices, run.loader.indices)


# ------------------------------------------------------------------ DDP (gloo, 2 processes)
def _ddp_worker(rank, world, port, rule, out_dir):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    import torch.distributed as tdist

    from raysweep.train.dist import DistInfo

    tdist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        spec = {"method": "fp_better", "dataset": {"name": "synthetic", "val_size": 64, "train_size": 256},
                "model": {"name": "resnet_small", "width": 4}, "threat": {"eps": 0.3},
                "train": {"epochs": 3, "batch_size": 64, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0},
                "eval": {"val_pgd_steps": 1, "val_n": 16},
                "pruning": {"mode": "dynamic", "keep": 0.3, "rule": rule, "warmup_epochs": 1, "every": 1},
                "device": "cpu"}
        run = TrialRun(TrialSpec.from_dict(spec), dist=DistInfo(rank, world), device="cpu",
                       wrap_model=lambda m: torch.nn.parallel.DistributedDataParallel(m, find_unused_parameters=True))
        run.run(LocalReporter())
        torch.save({"indices": run.loader.indices, "weights": run.loader.weights,
                    "masks": [run.method.sample_mask(6) for _ in range(5)]},
                   os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        tdist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("rule", ["loss", "gradmatch"])
def test_ddp_ranks_train_on_identical_subsets(rule, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), rule, str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"r{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(a["indices"], b["indices"]) and len(a["indices"]) == keep_count(0.3, 256)
    if rule == "gradmatch":
        assert torch.equal(a["weights"], b["weights"])
    assert a["masks"] == b["masks"]  # FP-Better draws the same subnetworks on every rank
