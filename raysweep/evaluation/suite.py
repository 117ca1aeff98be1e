"""Named test-set attacks and the evaluation of a checkpoint's weights."""

from typing import Dict, List, Optional

import torch

from ..attacks import make_attack
from ..attacks.evaluate import accuracy_under
from ..data import load_dataset
from ..models import build_model
from ..train.dist import pick_device
from ..train.spec import TrialSpec

# name -> (attack kind, steps, restarts). Step size ε/4 for every PGD variant: 2/255 at
# ε = 8/255, the RobustBench/Rice et al. setting.
ATTACK_SUITE = {
    "clean": ("clean", 0, 1),
    "fgsm": ("fgsm", 1, 1),
    "pgd20": ("pgd", 20, 1),
    "pgd50x10": ("pgd", 50, 10),
    "cw20": ("cw", 20, 1),
}


def evaluate_state(spec_dict: Dict, model_state: Dict, attacks: List[str], n: Optional[int] = None,
                   batch_size: int = 500, device: Optional[str] = None, seed: int = 0) -> Dict[str, float]:
    """Accuracy on the test split for each named attack: ``{"test_pgd20_acc": ...}``."""
    spec = TrialSpec.from_dict(spec_dict)
    dev = pick_device(device or "auto")
    ds = spec.dataset
    data = load_dataset(ds.name, root=ds.root, val_size=ds.val_size, seed=ds.split_seed,
                        train_size=1, test_size=ds.test_size)
    model = build_model(spec.model.name, data.num_classes, data.input_shape, mean=spec.model.mean,
                        std=spec.model.std, width=spec.model.width).to(dev)
    model.load_state_dict(model_state)
    model.eval()
    eps, norm = spec.threat.eps, spec.threat.norm
    fns = {}
    for a in attacks:
        kind, steps, restarts = ATTACK_SUITE[a]
        fns[a] = make_attack(kind, eps, norm, steps=max(1, steps), alpha=eps / 4, restarts=restarts)
    x, y = data.test.x, data.test.y
    if n is not None:
        x, y = x[:n], y[:n]
    torch.manual_seed(seed)
    acc = accuracy_under(model, x, y, fns, batch_size=batch_size, device=dev)
    out = {f"test_{k}_acc": v for k, v in acc.items()}
    out["test_n"] = float(len(y))
    return out
