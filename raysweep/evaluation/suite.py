"""Named test-set attacks, the evaluation of a checkpoint's weights, and gradient-masking flags."""

import math
from typing import Dict, List, Optional

import torch

from ..attacks import make_attack
from ..attacks.evaluate import accuracy_under
from ..data import load_dataset
from ..errors import UserError
from ..models import build_model
from ..train.dist import pick_device
from ..train.loop import import_plugins
from ..train.spec import TrialSpec

# name -> (attack kind, steps, restarts). Step size ε/4 for every PGD variant: 2/255 at
# ε = 8/255, the RobustBench/Rice et al. setting. For ``autoattack`` "steps" is the APGD /
# APGD-T / FAB iteration count (100, the official AutoAttack's) and for ``square`` the query
# budget (5000); both are run by ``raysweep.evaluation.autoattack`` (torchattacks).
ATTACK_SUITE = {
    "clean": ("clean", 0, 1),
    "fgsm": ("fgsm", 1, 1),
    "pgd20": ("pgd", 20, 1),
    "pgd50x10": ("pgd", 50, 10),
    "cw20": ("cw", 20, 1),
    "autoattack": ("autoattack", 100, 1),
    "square": ("square", 5000, 1),
}

# attacks that need torchattacks (imported lazily, only when one of them is asked for)
TORCHATTACKS_ATTACKS = ("autoattack", "square")
WHITEBOX_ATTACKS = ("fgsm", "pgd20", "pgd50x10", "cw20")
PGD_ATTACKS = ("pgd20", "pgd50x10")


def check_attacks(attacks: List[str]) -> List[str]:
    """The names, validated against ATTACK_SUITE (ValueError naming the unknown ones)."""
    bad = [a for a in attacks if a not in ATTACK_SUITE]
    if bad:
        raise ValueError(f"unknown attack(s) {', '.join(map(repr, bad))} (allowed: {', '.join(ATTACK_SUITE)})")
    return list(attacks)


def evaluate_model(model, x, y, attacks: List[str], eps: float, norm: str = "linf", n_classes: int = 10,
                   batch_size: int = 500, device=None, seed: int = 0, aa_steps: Optional[int] = None,
                   n_queries: Optional[int] = None, aa_version: str = "standard") -> Dict[str, float]:
    """Accuracy of ``model`` (inputs in [0, 1]; uint8 is scaled) for each named attack:
    ``{"test_<name>_acc": ...}``. Gradient attacks run batched in one pass (raysweep's own
    FGSM / PGD / CW); AutoAttack and Square through torchattacks. ``aa_steps`` / ``n_queries``
    override the suite's 100 iterations / 5000 queries (for quick looks and tests only)."""
    check_attacks(attacks)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    fns = {}
    for a in attacks:
        kind, steps, restarts = ATTACK_SUITE[a]
        if a not in TORCHATTACKS_ATTACKS:
            fns[a] = make_attack(kind, eps, norm, steps=max(1, steps), alpha=eps / 4, restarts=restarts)
    acc: Dict[str, float] = {}
    if fns:
        torch.manual_seed(seed)
        acc.update(accuracy_under(model, x, y, fns, batch_size=batch_size, device=device))
    if "autoattack" in attacks:
        from .autoattack import autoattack_accuracy

        acc["autoattack"] = autoattack_accuracy(
            model, x, y, eps, norm, n_classes=n_classes, seed=seed, version=aa_version, batch_size=batch_size,
            steps=ATTACK_SUITE["autoattack"][1] if aa_steps is None else aa_steps,
            n_queries=ATTACK_SUITE["square"][1] if n_queries is None else n_queries, device=device)
    if "square" in attacks:
        from .autoattack import square_accuracy

        acc["square"] = square_accuracy(model, x, y, eps, norm, seed=seed, batch_size=batch_size, device=device,
                                        n_queries=ATTACK_SUITE["square"][1] if n_queries is None else n_queries)
    out = {f"test_{a}_acc": float(acc[a]) for a in attacks}
    out["test_n"] = float(len(y))
    return out


def evaluate_state(spec_dict: Dict, model_state: Dict, attacks: List[str], n: Optional[int] = None,
                   batch_size: int = 500, device: Optional[str] = None, seed: int = 0,
                   aa_steps: Optional[int] = None, n_queries: Optional[int] = None) -> Dict[str, float]:
    """Accuracy on the test split for each named attack: ``{"test_pgd20_acc": ...}``.

    Builds the trial's model from ``spec_dict`` (a TrialSpec dict), loads ``model_state``, and
    evaluates in eval mode and fp32 on the first ``n`` test examples (all when None)."""
    check_attacks(attacks)
    spec = TrialSpec.from_dict(spec_dict)
    dev = pick_device(device or "auto")
    model, data = _trial_model(spec, model_state, dev)
    x, y = data.test.x, data.test.y
    if n is not None:
        x, y = x[:n], y[:n]
    return evaluate_model(model, x, y, attacks, spec.threat.eps, spec.threat.norm, n_classes=data.num_classes,
                          batch_size=batch_size, device=dev, seed=seed, aa_steps=aa_steps, n_queries=n_queries)


def _trial_model(spec: TrialSpec, model_state: Dict, dev):
    """The trial's model with its weights, in eval mode and fp32, and its dataset (test split only: the
    model's input shape and classes come from the data)."""
    import_plugins(spec.imports)  # a plugin's own dataset or model, in whatever process evaluates
    ds = spec.dataset
    data = load_dataset(ds.name, root=ds.root, val_size=ds.val_size, seed=ds.split_seed,
                        train_size=1, test_size=ds.test_size)
    model = build_model(spec.model.name, data.num_classes, data.input_shape, mean=spec.model.mean,
                        std=spec.model.std, width=spec.model.width).to(dev)
    model.load_state_dict(model_state)
    return model.float().eval(), data


def load_model(checkpoint: str, spec: Optional[Dict] = None, seed: int = 0, device: Optional[str] = None):
    """A trained model from a trial's checkpoint, ready for inference: ``(model, spec_dict)``.

    ``checkpoint``: a checkpoint directory of a sweep (``raysweep_runs/<exp>/<sweep>/train/.../checkpoint_*``,
    its trial spec read from the sweep's ``state.json``), a ``state.pt`` file, or a checkpoint URI; ``spec``
    (a trial spec dict) is needed only outside a sweep directory. ``seed``: which seed's model of a
    ``sweep.repeats`` trial."""
    from .checkpoints import load_checkpoint, model_states, record_for_checkpoint

    if spec is None:
        found = record_for_checkpoint(checkpoint)
        if found is None:
            raise UserError(f"{checkpoint}: not inside a raysweep sweep directory; pass spec= (the trial's spec)")
        spec = found[2]["spec"]
    states = model_states(load_checkpoint(checkpoint))
    if not 0 <= seed < len(states):
        raise UserError(f"{checkpoint}: seed {seed} out of range; this checkpoint holds {len(states)} model(s)")
    model, _ = _trial_model(TrialSpec.from_dict(spec), states[seed], pick_device(device or "auto"))
    return model, spec


def _acc(results: Dict, name: str) -> Optional[float]:
    v = results.get(f"test_{name}_acc")
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


DEFAULT_PGD_AA_GAP = 0.05


def masking_flags(results: Dict, pgd_aa_gap: float = DEFAULT_PGD_AA_GAP, tol: float = 0.01) -> Dict[str, bool]:
    """Gradient-masking red flags (docs/evaluation.md) from ``evaluate_*`` results; a flag is
    present only when its inputs are. The one rule for the sweep, ``raysweep evaluate`` and the
    reproduction tooling: applied to the accuracies reported for a checkpoint (the seed means
    when it holds several seeds), with the gap of the sweep that trained it.

    * ``fgsm_beats_pgd``: the single-step attack is *stronger* than an iterative one, i.e.
      FGSM **accuracy below** PGD-20's or PGD-50×10's by more than ``tol``. (Iterative PGD from
      the same start can only do better when gradients are informative; FGSM accuracy *above*
      PGD accuracy is the normal ordering and is not flagged.)
    * ``pgd_far_above_aa``: the strongest PGD's accuracy (the lowest of PGD-20 / PGD-50×10)
      exceeds AutoAttack's by more than ``pgd_aa_gap``.
    * ``blackbox_below_whitebox``: the black-box Square attack (no gradients) beats every
      white-box attack present (FGSM, PGD-20, PGD-50×10, CW-20) by more than ``tol``.
    """
    flags: Dict[str, bool] = {}
    fgsm, sq, aa = _acc(results, "fgsm"), _acc(results, "square"), _acc(results, "autoattack")
    pgds = [v for v in (_acc(results, a) for a in PGD_ATTACKS) if v is not None]
    white = [v for v in (_acc(results, a) for a in WHITEBOX_ATTACKS) if v is not None]
    if fgsm is not None and pgds:
        flags["fgsm_beats_pgd"] = bool(fgsm < max(pgds) - tol)
    if aa is not None and pgds:
        flags["pgd_far_above_aa"] = bool(min(pgds) - aa > pgd_aa_gap)
    if sq is not None and white:
        flags["blackbox_below_whitebox"] = bool(sq < min(white) - tol)
    return flags
