"""A seeded synthetic image-classification task for tests and benchmarks.

Each class has a fixed random template; an example is its class template plus noise, so a
model can learn it quickly and attacks have something to attack.
"""

import numpy as np

from .registry import RawDataset, register_dataset


@register_dataset("synthetic")
def load_synthetic(root=None, seed=0, shape=(1, 28, 28), num_classes=10, train_size=2048, test_size=512, noise=0.25, **_):
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    templates = rng.uniform(0.0, 1.0, size=(num_classes,) + shape)

    def make(n):
        y = rng.integers(0, num_classes, size=n)
        x = templates[y] + noise * rng.standard_normal((n,) + shape)
        return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), y.astype(np.int64)

    trx, tr_y = make(int(train_size))
    tex, te_y = make(int(test_size))
    return RawDataset(trx, tr_y, tex, te_y, num_classes=num_classes, source=f"synthetic(seed={seed})",
                      augment="crop_flip" if shape[-1] == 32 else "none")
