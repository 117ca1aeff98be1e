"""CIFAR-10, CIFAR-100 and SVHN from their standard distribution formats.

``root`` may point at the folder holding the files or at its parent:

* CIFAR-10, python version: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (pickled
  dicts with ``b"data"``, N x 3072 uint8 in R/G/B planes, and ``b"labels"``), usually in
  ``cifar-10-batches-py/``;
* CIFAR-100, python version: ``train`` and ``test`` (``b"data"`` and ``b"fine_labels"``),
  usually in ``cifar-100-python/``;
* SVHN, format 2: ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB files with ``X``,
  32 x 32 x 3 x N, and ``y`` in 1..10 where 10 stands for the digit 0), usually in ``svhn/``.

With no ``root`` the files are fetched by torchvision into ``download_dir`` (default ``./data``)
and read from there with the same readers; if that fails a DataError says how to pass
``dataset.root``. Images come back as uint8 N x 3 x 32 x 32; CIFAR is trained with ``crop_flip``
augmentation, SVHN with ``crop`` alone (a mirrored digit is another shape). Normalisation happens inside the model: ``NORMALIZATION`` holds
the usual per-channel training-set mean and std, for a trial config to pass to the model.
"""

import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError
from .registry import RawDataset, register_dataset

# Per-channel mean and std of the training set, pixel values in [0, 1].
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}

CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR100_FILES = ("train", "test")
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")

_SUBDIRS = {
    "cifar10": ("cifar-10-batches-py", "cifar10", "cifar-10"),
    "cifar100": ("cifar-100-python", "cifar100", "cifar-100"),
    "svhn": ("svhn", "SVHN"),
}


def _resolve_dir(root, what: str, files, subdirs) -> Path:
    """The directory holding ``files``: ``root`` itself or one of its known subfolders."""
    p = Path(root).expanduser()
    expected = ", ".join(files)
    if not p.is_dir():
        raise DataError(f"{what}: dataset directory {p} does not exist or is not a directory (expected {expected}, "
                        f"or a parent folder with {'/ or '.join(subdirs)}/ holding them)")
    for cand in (p,) + tuple(p / s for s in subdirs):
        if all((cand / f).is_file() for f in files):
            return cand
    # Name the files missing from the most plausible candidate.
    best = max((p,) + tuple(p / s for s in subdirs if (p / s).is_dir()),
               key=lambda c: sum((c / f).is_file() for f in files))
    missing = [f for f in files if not (best / f).is_file()]
    raise DataError(f"{what}: directory {best} lacks {', '.join(missing)} (expected {expected}, "
                    f"in {p} or in a subfolder {'/ or '.join(subdirs)}/)")


def _unpickle(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(f"{what}: cannot read {path} as a pickled python-version batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{what}: {path} holds a {type(d).__name__}, expected a dict with b'data' and labels")
    return d


def _cifar_batch(path: Path, label_key: bytes, what: str, num_classes: int):
    d = _unpickle(path, what)
    if b"data" not in d or label_key not in d:
        raise DataError(f"{what}: {path} lacks the keys b'data' and {label_key!r} (has {list(d)[:6]})")
    try:
        x = np.asarray(d[b"data"])
        y = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what}: {path}: cannot convert data/labels to arrays ({e})") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DataError(f"{what}: {path}: b'data' is {x.dtype} {x.shape}, expected uint8 N x 3072")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{what}: {path}: {len(x)} images but labels of shape {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{what}: {path}: labels outside 0..{num_classes - 1}")
    return x.reshape(-1, 3, 32, 32), y


def _read_cifar(d: Path, what: str, train_files, test_files, label_key: bytes, num_classes: int) -> RawDataset:
    tr = [_cifar_batch(d / f, label_key, what, num_classes) for f in train_files]
    te = [_cifar_batch(d / f, label_key, what, num_classes) for f in test_files]
    cat = lambda parts, i: np.ascontiguousarray(np.concatenate([p[i] for p in parts]))
    return RawDataset(train_x=cat(tr, 0), train_y=cat(tr, 1), test_x=cat(te, 0), test_y=cat(te, 1),
                      num_classes=num_classes, source=str(d), augment="crop_flip")


def _svhn_split(path: Path, what: str):
    try:
        from scipy.io import loadmat

        m = loadmat(str(path))
    except Exception as e:
        raise DataError(f"{what}: cannot read {path} as a MATLAB file ({type(e).__name__}: {e})") from None
    if "X" not in m or "y" not in m:
        raise DataError(f"{what}: {path} lacks the variables X and y (format 2 '*_32x32.mat' expected)")
    x, y = np.asarray(m["X"]), np.asarray(m["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(f"{what}: {path}: X is {x.dtype} {x.shape}, expected uint8 32 x 32 x 3 x N")
    if len(y) != x.shape[3]:
        raise DataError(f"{what}: {path}: {x.shape[3]} images but {len(y)} labels")
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{what}: {path}: labels outside 1..10")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10  # 10 is the digit 0


def _read_svhn(d: Path, what: str = "svhn") -> RawDataset:
    trx, tr_y = _svhn_split(d / SVHN_FILES[0], what)
    tex, te_y = _svhn_split(d / SVHN_FILES[1], what)
    return RawDataset(trx, tr_y, tex, te_y, num_classes=10, source=str(d), augment="crop")


def _download(what: str, cache: Path, fetch, files):
    try:
        fetch(str(cache))
    except Exception as e:  # offline, or a mirror refusing: say what to do instead
        raise DataError(f"{what}: no local copy found and the download into {cache} failed ({type(e).__name__}); "
                        f"pass dataset.root=DIR with {', '.join(files)}") from None


def _tv_fetch(cls_name):
    def fetch(cache):
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        if cls_name == "SVHN":
            for split in ("train", "test"):
                cls(cache, split=split, download=True)
        else:
            for train in (True, False):
                cls(cache, train=train, download=True)

    return fetch


def _load(what, root, download_dir, files, reader, tv_name):
    if root:
        return reader(_resolve_dir(root, what, files, _SUBDIRS[what]), what)
    cache = Path(download_dir or "data").expanduser()
    # A previous download (or a copy placed there by hand) is used as is.
    try:
        d = _resolve_dir(cache, what, files, _SUBDIRS[what])
    except DataError:
        _download(what, cache, _tv_fetch(tv_name), files)
        d = _resolve_dir(cache, what, files, _SUBDIRS[what])
    raw = reader(d, what)
    raw.source = f"torchvision:{d}"
    return raw


@register_dataset("cifar10")
def load_cifar10(root=None, download_dir=None, **_):
    reader = lambda d, what: _read_cifar(d, what, CIFAR10_FILES[:5], CIFAR10_FILES[5:], b"labels", 10)
    return _load("cifar10", root, download_dir, CIFAR10_FILES, reader, "CIFAR10")


@register_dataset("cifar100")
def load_cifar100(root=None, download_dir=None, **_):
    reader = lambda d, what: _read_cifar(d, what, CIFAR100_FILES[:1], CIFAR100_FILES[1:], b"fine_labels", 100)
    return _load("cifar100", root, download_dir, CIFAR100_FILES, reader, "CIFAR100")


@register_dataset("svhn")
def load_svhn(root=None, download_dir=None, **_):
    return _load("svhn", root, download_dir, SVHN_FILES, _read_svhn, "SVHN")
