"""Data pruning for adversarial training: a data-side policy that composes with every method.

``make_policy(spec: PruningSpec, run)`` returns the policy the loop drives:
``on_epoch_start(epoch, run)`` → ``observe(epoch, idx, per_example_loss)`` per step →
``on_epoch_end(epoch, run)``, plus ``metrics()`` (merged into each epoch's report) and
``state_dict()/load_state_dict()``. It trains on a subset through
``run.loader.set_subset(indices, weights)``; the methods apply the weights with
``Method.weighted_mean``.

**Static** (Kaufmann, Zhao, Shumailov, Mullins, Papernot, "Efficient Adversarial Training With
Data Pruning", arXiv 2207.00694; official code max-kaufmann/data-pruning, src/training_loop.py):
train on all data for ``warmup_epochs``; during the last warm-up epoch record each example's
adversarial training loss on the fly (the ``per_example_loss`` every method returns); then,
once, keep a subset and train on it for the rest of the run. Rules, all with an explicit KEEP
fraction ``keep`` (exactly ⌊keep·N⌋ examples are kept):

* ``high``: remove the highest-loss examples, keep the rest (= the ⌊keep·N⌋ lowest-loss);
* ``low``: keep the lowest-loss examples. With an explicit keep fraction this is the same
  selection as ``high``: in Kaufmann's code the two rules differ only in what the proportion
  argument q means (one reads q as the fraction kept, the other as the fraction removed, and
  the spec's summary and the code revision we read disagree on which is which). That
  inconsistency is why raysweep defines ``keep`` explicitly;
* ``both`` (Kaufmann's ``low+high``): remove (N − ⌊keep·N⌋)/2 examples from each tail
  (the lower tail gets the floor), keep the middle;
* ``random``: a seeded random subset;
* ``loss``: the complement of ``high``, keep the highest-loss (hardest) examples (ours);
* ``gradmatch``: see below (one-shot when static).

``stratified`` (Kaufmann's ``--systematic_sampling``) applies the rule per class, keeping
⌊keep·N_c⌋ of class c, then tops up to ⌊keep·N⌋ one example at a time for the classes with the
largest remainders keep·N_c − ⌊keep·N_c⌋ (ties: lower class index), so class proportions are
kept as closely as integers allow. Faithful to the code apart from the explicit keep fraction,
the deterministic top-up and the seeded random rule. With ``warmup_epochs = 0`` nothing has
been recorded: the losses then come from a scoring pass on the untrained model.

**Dynamic** (Li, Zhao, Lin, Kailkhura, Goldhahn, "Less is More: Data Pruning for Faster
Adversarial Training", arXiv 2302.12366). RECONSTRUCTION: the paper's selectors (Adv-GLISTER,
Adv-GRAD-MATCH) were not available in detail; what is here is our reading of GRAD-MATCH
(Killamsetty et al. 2021) applied to adversarial losses, plus two simple controls. After
``warmup_epochs`` on all data, the subset is re-selected every ``every`` epochs:

* ``loss``: the examples with the highest recent adversarial loss (hardest). "Recent" is the
  last loss observed for each example; examples outside the current subset keep the loss of
  the last epoch they were trained in (stale by design: no extra pass is spent on them);
* ``random``: a fresh seeded random subset at each re-selection;
* ``gradmatch``: orthogonal matching pursuit on last-layer gradients, per class when
  ``stratified`` (else over the whole set). For each training example the gradient of CE
  with respect to the final linear layer (weights and bias) is, in closed form,
  (softmax(z) − onehot(y)) ⊗ [φ(x), 1] with φ the penultimate features; it is computed on the
  adversarial example of the trained method (from a forward-only run of ``method.step``:
  its attack plus its loss forward, no backward) when the method makes one, else on the
  clean image; the features come from the full network in eval mode. OMP then greedily picks
  examples whose gradients match the class's summed gradient Σ_c g_i, with non-negative
  weights from a ridge-regularised non-negative least squares (projected gradient, FISTA).
  Because the methods normalise by the batch's weight sum (``weighted_mean``), the match
  also carries one constant coordinate that ties Σ_S w_i to the class size (ours);
  atoms are picked one at a time up to 64 rounds, more per round for larger subsets (a
  speed-up of ours). The weights go to ``loader.set_subset(indices, weights)``.
  ``high``/``low``/``both`` also work in dynamic mode, on the recent losses.

**Cost accounting.** The policy hooks run inside ``TrialRun.train_epoch``, whose wall time
already includes them, so only cost units are charged here (``run.add_cost(0, units)``).
A scoring pass is *measured*, not estimated (``raysweep.train.passes``): every convolution and
linear layer that runs during it counts its MACs (forward 1/3, backward 2/3 of a pass), so
the method's attack passes, its loss forwards (two for TRADES, MART and Backward Smoothing,
2 + m for local-ball), the subnetwork fraction of FP-Better, a teacher's forward and the
feature forward of ``gradmatch`` are each charged what they cost, in ``run.cost_units``
(clean-epoch) units. Selection arithmetic (OMP) is wall time only.

**No side effects.** A scoring pass runs the method's step in train mode (as training does),
but leaves the trial as it found it: BN running statistics and every other buffer, the
method's state (e.g. FP-Better's mask generator and p_L) and the global RNG streams are
restored afterwards, so training after a selection is the training it would have been.

**Warm-up.** ``warmup_epochs`` defaults to 5, Kaufmann's ``pruning_epoch`` default; their
MNIST sweep prunes after 1 of 2 epochs. Shorter runs must set it (a config error says so
when it is not below ``train.epochs``).

**DDP.** Every rank must train on the same subset: per-example losses are all-reduced (a
full-length vector, each rank filling its own indices), scoring passes shard the data the
way the loader does and all-reduce features, randomness is derived from the trial seed, and
the final indices and weights are broadcast from rank 0.
"""

import copy
import math
from fractions import Fraction
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..methods.base import StepContext
from ..models.modes import modes_kept
from .passes import count_passes
from .spec import PruningSpec

LOSS_RULES = ("high", "low", "both", "loss")
RULES = LOSS_RULES + ("random", "gradmatch")
# What `raysweep methods` lists for each mode: (fidelity, source), as methods carry theirs.
POLICIES = {
    "static": ("faithful", "Kaufmann, Zhao, Shumailov, Mullins, Papernot (arXiv 2207.00694); code max-kaufmann/data-pruning"
                           " - one selection after warmup_epochs"),
    "dynamic": ("reconstruction", "Li, Zhao, Lin, Kailkhura, Goldhahn (arXiv 2302.12366) - re-selection every `every` "
                                  "epochs (loss, random or GRAD-MATCH)"),
}


# ----------------------------------------------------------------------------------------
# pure selection helpers (tested directly)
# ----------------------------------------------------------------------------------------
def keep_count(keep: float, n: int) -> int:
    """⌊keep·n⌋, exact for decimal keep fractions (0.29·100 is 29, not 28)."""
    return int(math.floor(Fraction(repr(float(keep))) * int(n)))


def class_quotas(labels: torch.Tensor, keep: float, num_classes: int) -> List[int]:
    """⌊keep·N_c⌋ per class, then +1 for the classes with the largest remainders until the
    total is ⌊keep·N⌋ (ties by class index): deterministic, proportions kept."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).tolist()
    k = Fraction(repr(float(keep)))
    quotas = [int(math.floor(k * c)) for c in counts]
    rest = keep_count(keep, sum(counts)) - sum(quotas)
    order = sorted(range(num_classes), key=lambda c: (-(k * counts[c] - quotas[c]), c))
    for c in order:
        if rest <= 0:
            break
        if quotas[c] < counts[c]:
            quotas[c] += 1
            rest -= 1
    return quotas


def select_by_rule(scores: Optional[torch.Tensor], n_keep: int, rule: str, n: int,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Positions (into ``scores``) of the ``n_keep`` examples that ``rule`` keeps.
    Ties are broken by position (stable sort), so the result is deterministic."""
    n_keep = max(0, min(int(n_keep), n))
    if rule == "random":
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        return torch.randperm(n, generator=g)[:n_keep]
    s = scores.detach().double().cpu()
    if rule in ("high", "low"):  # drop the highest losses = keep the lowest
        return torch.sort(s, stable=True).indices[:n_keep]
    if rule == "loss":  # keep the highest losses (hardest)
        return torch.sort(-s, stable=True).indices[:n_keep]
    if rule == "both":  # drop from both tails, lower tail gets the floor
        lo = (n - n_keep) // 2
        return torch.sort(s, stable=True).indices[lo:lo + n_keep]
    raise ValueError(f"unknown pruning rule {rule!r} (allowed: {', '.join(RULES)})")


def select_subset(scores: Optional[torch.Tensor], labels: torch.Tensor, keep: float, rule: str, stratified: bool,
                  num_classes: int, seed: int = 0) -> torch.Tensor:
    """Sorted dataset indices kept by a loss or random rule (per class when ``stratified``)."""
    n = len(labels)
    labels = labels.cpu()
    if not stratified:
        g = torch.Generator().manual_seed(seed)
        pos = select_by_rule(scores, keep_count(keep, n), rule, n, g)
        return torch.sort(pos).values
    out = []
    for c, q in enumerate(class_quotas(labels, keep, num_classes)):
        members = torch.nonzero(labels == c).flatten()
        if q == 0 or len(members) == 0:
            continue
        g = torch.Generator().manual_seed(seed * 1009 + c)
        sub = None if scores is None else scores.cpu()[members]
        out.append(members[select_by_rule(sub, q, rule, len(members), g)])
    return torch.sort(torch.cat(out)).values if out else torch.zeros(0, dtype=torch.long)


def last_layer_gradients(features: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """Per-example gradient of CE wrt the final Linear layer (weight and bias), flattened:
    (softmax − onehot) ⊗ [φ, 1], shape n × K·(D+1)."""
    h = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)
    return (residual[:, :, None] * h[:, None, :]).flatten(1)


def _nnls(A: torch.Tensor, b: torch.Tensor, w0: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """min_w ½wᵀAw − bᵀw subject to w ≥ 0 (A symmetric positive definite), by FISTA."""
    k = A.shape[0]
    v = torch.ones(k, dtype=A.dtype, device=A.device) / math.sqrt(k)
    for _ in range(30):  # power iteration for the Lipschitz constant
        v = A @ v
        v = v / v.norm().clamp_min(1e-30)
    lip = float(v @ (A @ v)) * 1.01 + 1e-30
    w = w0.clamp_min(0)
    z, t = w.clone(), 1.0
    for _ in range(iters):
        w_next = (z - (A @ z - b) / lip).clamp_min(0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = w_next + ((t - 1) / t_next) * (w_next - w)
        w, t = w_next, t_next
    return w


def omp_nonneg(G: torch.Tensor, target: torch.Tensor, k: int, ridge: float = 1e-4,
               max_rounds: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Greedy orthogonal matching pursuit with non-negative weights:
    approximately min_{|S|=k, w≥0} ‖Σ_{i∈S} w_i G_i − target‖² + λ‖w‖².

    Each round adds the atoms most correlated with the residual (one per round while
    k ≤ max_rounds), then re-fits all weights by NNLS. Returns (positions, weights)."""
    n = G.shape[0]
    k = max(0, min(int(k), n))
    if k == 0:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=G.dtype)
    G = G.double()
    target = target.double()
    per_round = max(1, math.ceil(k / max_rounds))
    lam = ridge * float((G * G).sum(1).mean().clamp_min(1e-30))
    available = torch.ones(n, dtype=torch.bool, device=G.device)
    sel: List[int] = []
    gram = torch.zeros(0, 0, dtype=G.dtype, device=G.device)
    w = torch.zeros(0, dtype=G.dtype, device=G.device)
    residual = target.clone()
    while len(sel) < k:
        corr = G @ residual
        corr[~available] = -float("inf")
        take = min(per_round, k - len(sel))
        new = torch.topk(corr, take).indices
        available[new] = False
        # grow the Gram matrix of the selected atoms incrementally
        g_new = G[new]
        cross = g_new @ G[torch.tensor(sel, dtype=torch.long, device=G.device)].T if sel else g_new.new_zeros(take, 0)
        gram = torch.cat([torch.cat([gram, cross.T], 1), torch.cat([cross, g_new @ g_new.T], 1)], 0)
        sel += new.tolist()
        S = torch.tensor(sel, dtype=torch.long, device=G.device)
        A = gram + lam * torch.eye(len(sel), dtype=G.dtype, device=G.device)
        b = G[S] @ target
        last = len(sel) >= k
        w = _nnls(A, b, torch.cat([w, w.new_zeros(take)]), iters=300 if last else 100)
        residual = target - G[S].T @ w
    return torch.tensor(sel, dtype=torch.long), w.cpu()


def gradmatch_select(grads_fn, labels: torch.Tensor, keep: float, stratified: bool, num_classes: int,
                     ridge: float = 1e-4) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sorted dataset indices, their weights). ``grads_fn(positions)`` returns the gradient
    embeddings of those examples; per class (or over all when not stratified) the target is
    the group's summed gradient, with the weights' sum tied to the group size, so the
    normalised weighted subset gradient estimates the full mean gradient."""
    labels = labels.cpu()
    n = len(labels)
    groups = []
    if stratified:
        for c, q in enumerate(class_quotas(labels, keep, num_classes)):
            groups.append((torch.nonzero(labels == c).flatten(), q))
    else:
        groups.append((torch.arange(n), keep_count(keep, n)))
    idx_out, w_out = [], []
    for members, q in groups:
        if q == 0 or len(members) == 0:
            continue
        G = grads_fn(members).double()
        # one extra coordinate c·1 with target c·n makes Σw ≈ n: the methods normalise by
        # Σw (weighted_mean), so the weighted mean gradient then matches the full mean
        c = float((G * G).sum(1).mean().sqrt().clamp_min(1e-12))
        G = torch.cat([G, torch.full_like(G[:, :1], c)], 1)
        pos, w = omp_nonneg(G, G.sum(0), q, ridge=ridge)
        idx_out.append(members[pos])
        w_out.append(w.float())
    if not idx_out:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    idx, w = torch.cat(idx_out), torch.cat(w_out)
    order = torch.argsort(idx)
    idx, w = idx[order], w[order]
    mean = float(w.mean()) if len(w) else 1.0
    if mean > 0:
        w = w / mean  # scale is irrelevant to weighted_mean; mean 1 reads well
    return idx, w


# ----------------------------------------------------------------------------------------
# distributed helpers
# ----------------------------------------------------------------------------------------
def _dist_on(run) -> bool:
    if run.dist.world_size <= 1:
        return False
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


def _all_reduce_(t: torch.Tensor, run) -> torch.Tensor:
    if _dist_on(run):
        import torch.distributed as tdist

        tdist.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor, run) -> torch.Tensor:
    if _dist_on(run):
        import torch.distributed as tdist

        t = t.to(run.device).contiguous()
        tdist.broadcast(t, src=0)
        return t.cpu()
    return t


# ----------------------------------------------------------------------------------------
# the policy
# ----------------------------------------------------------------------------------------
class PruningPolicy:
    """See the module docstring. One instance per trial; state survives checkpoints."""

    SEED_SALT = 15_485_863

    def __init__(self, spec: PruningSpec, run):
        if spec.rule not in RULES:
            raise ValueError(f"pruning.rule {spec.rule!r} is not one of {', '.join(RULES)}")
        if spec.mode not in ("static", "dynamic"):
            raise ValueError(f"pruning.mode {spec.mode!r} is not one of static, dynamic")
        self.spec = spec
        self.n = len(run.data.train)
        self.labels = run.data.train.y.detach().cpu().long()
        self.num_classes = int(run.data.num_classes)
        self.seed = int(run.spec.train.seed)
        self.device = run.device
        self.loader = run.loader
        self.n_keep = keep_count(spec.keep, self.n)
        self.last_loss = torch.full((self.n,), float("nan"))
        self.last_seen = torch.full((self.n,), -1, dtype=torch.long)
        self._ep_loss = torch.zeros(self.n, device=self.device)
        self._ep_seen = torch.zeros(self.n, device=self.device)
        self._recording = False
        self.indices: Optional[torch.Tensor] = None
        self.weights: Optional[torch.Tensor] = None
        self.selection_epochs: List[int] = []
        self.selection_cost = 0.0
        self.trained_fraction = 1.0

    # -- schedule --------------------------------------------------------------------------
    def is_selection_epoch(self, epoch: int) -> bool:
        """Selections happen at the start of these epochs."""
        w = self.spec.warmup_epochs
        if epoch < w:
            return False
        if self.spec.mode == "static":
            return epoch == w
        return (epoch - w) % self.spec.every == 0

    def records_losses(self, epoch: int) -> bool:
        if self.spec.rule not in LOSS_RULES:
            return False
        if self.spec.mode == "static":
            return epoch == self.spec.warmup_epochs - 1  # Kaufmann: the last warm-up epoch
        return True

    # -- loop hooks ------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, run) -> None:
        if self.is_selection_epoch(epoch) and epoch not in self.selection_epochs:
            self.select(epoch, run)
        self._apply()
        self.trained_fraction = self.loader.num_examples / max(1, self.n)
        self._recording = self.records_losses(epoch)
        if self._recording:
            self._ep_loss.zero_()
            self._ep_seen.zero_()

    def observe(self, epoch: int, idx: torch.Tensor, per_example_loss: torch.Tensor) -> None:
        if not self._recording or per_example_loss is None:
            return
        i = idx.to(self.device, non_blocking=True)
        self._ep_loss[i] = per_example_loss.detach().float().to(self.device)
        self._ep_seen[i] = 1.0

    def on_epoch_end(self, epoch: int, run) -> None:
        if not self._recording:
            return
        self._recording = False
        _all_reduce_(self._ep_loss, run)
        _all_reduce_(self._ep_seen, run)
        seen = (self._ep_seen > 0).cpu()
        vals = (self._ep_loss / self._ep_seen.clamp_min(1.0)).cpu()
        self.last_loss[seen] = vals[seen]
        self.last_seen[seen] = epoch

    def metrics(self) -> Dict[str, float]:
        return {"kept_fraction": float(self.trained_fraction),
                "pruning_selections": float(len(self.selection_epochs)),
                "selection_cost": float(self.selection_cost)}

    # -- selection -------------------------------------------------------------------------
    def _apply(self):
        self.loader.set_subset(self.indices, self.weights)

    def _charge(self, run, units: float):
        self.selection_cost += units
        # the loop's epoch timer already covers this work: cost units only, no time
        run.add_cost(0.0, units)

    def select(self, epoch: int, run) -> None:
        rule, sp = self.spec.rule, self.spec
        seed = self.seed * self.SEED_SALT + epoch
        weights = None
        if rule == "gradmatch":
            feats, resid = self._scoring_pass(run, need_features=True)
            fn = lambda pos: last_layer_gradients(feats[pos.to(feats.device)].double(),  # noqa: E731
                                                  resid[pos.to(resid.device)].double())
            idx, weights = gradmatch_select(fn, self.labels, sp.keep, sp.stratified, self.num_classes)
        elif rule == "random":
            idx = select_subset(None, self.labels, sp.keep, "random", sp.stratified, self.num_classes, seed)
        else:
            scores = self.last_loss.clone()
            missing = torch.isnan(scores)
            if bool(missing.all()):
                scores = self._scoring_pass(run, need_features=False)
            elif bool(missing.any()):
                # never observed (e.g. left out of a short last DDP batch): neutral score
                scores[missing] = scores[~missing].median()
            idx = select_subset(scores, self.labels, sp.keep, rule, sp.stratified, self.num_classes, seed)
        idx = _broadcast(idx.long(), run)
        if weights is not None:
            weights = _broadcast(weights.float(), run)
        self.indices, self.weights = idx, weights
        self.selection_epochs.append(int(epoch))

    @torch.no_grad()
    def _features(self, model, x):
        feats = model.features(x)
        return feats, model.fc(feats)

    def _scoring_pass(self, run, need_features: bool):
        """One pass over the whole training set, sharded like the loader. Returns the
        per-example adversarial losses, or (features, softmax − onehot) of the examples the
        method trains on (its adversarial examples when it makes some, else clean).
        Measured cost; no side effects on the model, the method or the RNG (module docstring)."""
        model = run.raw_model
        devices = [run.device.index or 0] if run.device.type == "cuda" else []
        buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
        method_state = copy.deepcopy(run.method.state_dict())
        method_plain = {k: v for k, v in vars(run.method).items() if isinstance(v, (bool, int, float, str, type(None)))}
        try:
            with modes_kept(model), torch.random.fork_rng(devices=devices), \
                    count_passes(model, tuple(run.data.input_shape)) as count:
                out = self._score(run, need_features)
        finally:
            model.zero_grad(set_to_none=True)
            with torch.no_grad():
                for k, b in model.named_buffers():
                    b.copy_(buffers[k])
            run.method.load_state_dict(method_state)
            vars(run.method).update(method_plain)
        (total,) = run.dist.all_reduce_sum([count.units], self.device)
        self._charge(run, run.cost_units(total))
        return out

    def _score(self, run, need_features: bool):
        model, method = run.raw_model, run.method
        train = run.data.train
        bs = int(run.spec.train.batch_size)
        world, rank = run.dist.world_size, run.dist.rank
        n = self.n
        starts = list(range(0, n, bs))
        if len(starts) > 1 and n - starts[-1] < world:  # keep every rank's shard non-empty
            starts.pop()
        bounds = [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]
        losses = torch.zeros(n, device=self.device)
        feats = resid = None
        use_method = True
        for a, b in bounds:
            pos = torch.tensor_split(torch.arange(a, b), world)[rank]
            i_dev = pos.to(train.x.device)
            x = train.floats(i_dev).to(self.device)
            y = train.y[i_dev].to(self.device)
            x_in = x
            if use_method:
                model.train()
                ctx = StepContext(model, model, int(getattr(run, "epoch", 0)), self.num_classes,
                                  tuple(run.data.input_shape), None)
                with torch.enable_grad():
                    res = method.step(ctx, x, y)
                if res.per_example_loss is not None:
                    losses[pos.to(self.device)] = res.per_example_loss.detach().float()
                else:
                    losses[pos.to(self.device)] = F.cross_entropy(res.logits, y, reduction="none").float()
                if res.x_adv is not None:
                    x_in = res.x_adv.detach()
                elif need_features:
                    use_method = False  # no attack: clean examples, skip the method from now on
                del res
            if need_features:
                model.eval()
                f, logits = self._features(model, x_in)
                if feats is None:
                    feats = torch.zeros(n, f.shape[1], device=self.device)
                    resid = torch.zeros(n, logits.shape[1], device=self.device)
                r = F.softmax(logits.float(), dim=1)
                r[torch.arange(len(y), device=r.device), y] -= 1.0
                feats[pos.to(self.device)] = f.float()
                resid[pos.to(self.device)] = r
        if need_features:
            return _all_reduce_(feats, run), _all_reduce_(resid, run)
        return _all_reduce_(losses, run).cpu()

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {"indices": self.indices, "weights": self.weights, "last_loss": self.last_loss,
                "last_seen": self.last_seen, "selection_epochs": list(self.selection_epochs),
                "selection_cost": self.selection_cost, "trained_fraction": self.trained_fraction}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if not state:
            return
        self.indices = state.get("indices")
        self.weights = state.get("weights")
        if state.get("last_loss") is not None:
            self.last_loss = state["last_loss"].cpu().float()
        if state.get("last_seen") is not None:
            self.last_seen = state["last_seen"].cpu().long()
        self.selection_epochs = [int(e) for e in state.get("selection_epochs", [])]
        self.selection_cost = float(state.get("selection_cost", 0.0))
        self.trained_fraction = float(state.get("trained_fraction", 1.0))
        self._apply()


def make_policy(spec: PruningSpec, run) -> PruningPolicy:
    """The data policy for ``spec`` (a PruningSpec or a dict of its fields)."""
    if isinstance(spec, dict):
        from ..hparams import build_params

        spec, errors = build_params(PruningSpec, spec)
        if errors:
            raise ValueError("; ".join(f"pruning.{k}: {m}" for k, m in errors))
    return PruningPolicy(spec, run)
