"""The MNIST models Wong et al. released, under raysweep's evaluation.

locuslab/fast_adversarial ships the weights its MNIST script trains (``MNIST/models/fgsm.pth``: FGSM-RS
with the script's defaults, eps 0.3, alpha 0.375, 10 epochs; ``pgd_madry.pth``: PGD-40 AT in Madry et al.'s
setting) for the network raysweep calls ``small_cnn``. Evaluating them here ties the MNIST baselines to the
paper from the other side: does raysweep's PGD-20 find what the paper's PGD-50 with 10 restarts finds, and
what does AutoAttack, which the paper predates, say of a published FGSM-RS model? Nothing is trained.

    git show HEAD:MNIST/models/fgsm.pth > DIR/fgsm.pth   # in a checkout of locuslab/fast_adversarial
    .venv/bin/python bench/published_mnist.py DIR        # writes bench/results/published_mnist.json

The weights are not committed (they are the paper's, not ours); the figures are.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]

EPS = 0.3
# the Sequential of their mnist_net, by index, onto small_cnn's modules
KEYS = {"0": "stem.0", "2": "stem.2", "5": "hidden.0", "7": "fc"}


def load_published(path: Path):
    from raysweep.models import build_model

    model = build_model("small_cnn", num_classes=10, input_shape=(1, 28, 28))
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    unknown = sorted(k for k in theirs if k.split(".")[0] not in KEYS)
    if unknown:
        sys.exit(f"published_mnist: {path} is not fast_adversarial's mnist_net (unexpected {', '.join(unknown)})")
    ours = {f"{KEYS[k.split('.')[0]]}.{k.split('.', 1)[1]}": v for k, v in theirs.items()}
    missing = model.load_state_dict(ours, strict=False)
    if missing.unexpected_keys or set(missing.missing_keys) - {"normalize.mean", "normalize.std"}:
        sys.exit(f"published_mnist: {path} is not fast_adversarial's mnist_net ({missing})")
    return model.eval()


def evaluate(model, x, y, aa_n: int, restarts_n: int):
    from raysweep.attacks import accuracy_under, make_attack
    from raysweep.evaluation.autoattack import autoattack_accuracy

    out = accuracy_under(model, x, y, {"clean": make_attack("clean", EPS), "pgd20": make_attack("pgd", EPS, steps=20)})
    # the paper's own evaluation (evaluate_mnist.py): 50 steps of 0.01, 10 restarts
    out.update({f"pgd50x10_first{restarts_n}": accuracy_under(
        model, x[:restarts_n], y[:restarts_n], {"a": make_attack("pgd", EPS, steps=50, alpha=0.01, restarts=10)})["a"]})
    out[f"autoattack_first{aa_n}"] = autoattack_accuracy(model, x[:aa_n], y[:aa_n], EPS, seed=0)
    return {k: round(v, 4) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights_dir", type=Path, help="folder with fgsm.pth and/or pgd_madry.pth")
    ap.add_argument("--aa-n", type=int, default=500, help="AutoAttack on the first N test images (the reproductions' 500)")
    ap.add_argument("--restarts-n", type=int, default=1000, help="PGD-50x10 on the first N test images")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "published_mnist.json")
    a = ap.parse_args(argv)
    import raysweep.data  # noqa: F401  (registers the datasets)
    from raysweep.data.registry import load_raw

    torch.set_num_threads(1)
    raw = load_raw("mnist")
    x, y = torch.tensor(raw.test_x), torch.tensor(raw.test_y)
    rows = {}
    for name in ("fgsm.pth", "pgd_madry.pth"):
        path = a.weights_dir / name
        if not path.exists():
            continue
        t0 = time.time()
        rows[name] = evaluate(load_published(path), x, y, a.aa_n, a.restarts_n)
        print(name, rows[name], f"({time.time() - t0:.0f} s)", flush=True)
    if not rows:
        sys.exit(f"published_mnist: neither fgsm.pth nor pgd_madry.pth in {a.weights_dir}")
    a.out.write_text(json.dumps({
        "source": "github.com/locuslab/fast_adversarial MNIST/models (weights not committed)",
        "eps": EPS, "test_images": len(y), "models": rows,
        "attacks": "clean and pgd20 (step 2.5 eps/20) on all test images; the paper's PGD-50 (step 0.01, 10 restarts) "
                   "and AutoAttack (standard, seed 0) on the first N",
    }, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
