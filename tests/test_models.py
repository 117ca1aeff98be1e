"""Every registered model: shapes, gradients, skippable blocks, executed fraction, and the
input normalisation that lives inside the model."""

import pytest
import torch

from raysweep.models import ClassifierNet, SkippableBlock, build_model, list_models
from raysweep.models.base import Normalize

# input shape and a small width per model, to stay fast on CPU
INPUT = {"small_cnn": (1, 28, 28), "resnet_small": (1, 28, 28), "resnet_tiny": (1, 28, 28), "resnet18": (3, 32, 32),
         "preact_resnet18": (3, 32, 32)}
WIDTH = {"small_cnn": 8, "resnet_small": 4, "resnet_tiny": 4, "resnet18": 4, "preact_resnet18": 4}
SKIPPABLE = ("resnet_small", "resnet_tiny", "resnet18", "preact_resnet18")
ALL = list_models()


def _build(name, seed=0, **kw):
    torch.manual_seed(seed)
    shape = INPUT.get(name, (3, 32, 32))
    kw.setdefault("width", WIDTH.get(name))
    return build_model(name, num_classes=10, input_shape=shape, **kw), shape


def _x(shape, n=2, seed=1):
    return torch.rand((n,) + tuple(shape), generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_expected_models():
    assert set(INPUT) <= set(ALL)
    assert list_models("resnet*") == ["resnet18", "resnet_small", "resnet_tiny"]
    with pytest.raises(KeyError, match="unknown model"):
        build_model("no_such_model", 10, (3, 32, 32))


@pytest.mark.parametrize("name", ALL)
def test_output_shape_no_nans_and_every_parameter_gets_a_gradient(name):
    model, shape = _build(name)
    assert isinstance(model, ClassifierNet)
    model.train()
    x = _x(shape)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    feats = model.features(x)
    assert feats.shape == (2, model.feature_dim) and torch.isfinite(feats).all()
    torch.nn.functional.cross_entropy(out, torch.tensor([1, 7])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
    # eval mode too, and the mask None == all kept
    model.eval()
    with torch.no_grad():
        a = model(x)
        b = model(x, block_mask=[True] * model.num_blocks)
    assert torch.isfinite(a).all() and torch.equal(a, b)


@pytest.mark.parametrize("name", SKIPPABLE)
def test_dropped_block_equals_its_shortcut(name):
    model, shape = _build(name)
    model.eval()
    blocks = [b for b in model.blocks if isinstance(b, SkippableBlock)]
    assert len(blocks) == model.num_blocks > 0
    assert any(getattr(b, "proj", None) is not None for b in blocks)  # both kinds of shortcut exercised
    with torch.no_grad():
        h = model.stem(model.normalize(_x(shape)))
        for b in blocks:
            skipped = b(h, keep=False)
            torch.testing.assert_close(skipped, b.post(b.shortcut(h)), rtol=0, atol=0)
            kept = b(h, keep=True)
            torch.testing.assert_close(kept, b.post(b.residual(h) + b.shortcut(h)))
            assert not torch.allclose(kept, skipped)
            if getattr(b, "proj", None) is None:  # identity shortcut: h itself (post-activated)
                torch.testing.assert_close(skipped, b.post(h))
            h = kept


@pytest.mark.parametrize("name", SKIPPABLE)
def test_block_mask_is_honoured(name):
    model, shape = _build(name)
    model.eval()
    x = _x(shape)
    n = model.num_blocks
    with torch.no_grad():
        full = model(x)
        none = model(x, block_mask=[False] * n)
        assert none.shape == (2, 10) and torch.isfinite(none).all()
        assert model.features(x, block_mask=[False] * n).shape == (2, model.feature_dim)
        for i in range(n):
            mask = [j != i for j in range(n)]
            out = model(x, block_mask=mask)
            assert out.shape == (2, 10) and not torch.allclose(out, full), f"dropping block {i} changed nothing"
    # the mask is per call: nothing sticks to the model
    with torch.no_grad():
        assert torch.equal(model(x), full)
    # gradients flow with blocks dropped; dropped blocks' residual weights get none
    model.train()
    model.zero_grad(set_to_none=True)
    mask = [i % 2 == 0 for i in range(n)]
    model(x, block_mask=mask).sum().backward()
    blocks = [b for b in model.blocks if isinstance(b, SkippableBlock)]
    for b, keep in zip(blocks, mask):
        assert (b.conv1.weight.grad is not None) == keep


@pytest.mark.parametrize("name", ALL)
def test_executed_fraction(name):
    model, shape = _build(name)
    n = model.num_blocks
    assert model.executed_fraction(None, shape) == 1.0
    assert model.executed_fraction([True] * n, shape) == pytest.approx(1.0)
    fr = model.block_fractions(shape)
    assert len(fr) == n
    if n == 0:
        return
    assert all(f > 0 for f in fr) and sum(fr) < 1
    one = model.executed_fraction([i != 0 for i in range(n)], shape)
    assert one == pytest.approx(1 - fr[0]) and one < 1
    two = model.executed_fraction([i not in (0, n - 1) for i in range(n)], shape)
    assert two < one
    none = model.executed_fraction([False] * n, shape)
    assert none == pytest.approx(1 - sum(fr)) and 0 < none < two


@pytest.mark.parametrize("name", ALL)
def test_normalisation_is_inside_the_model(name):
    c = INPUT.get(name, (3, 32, 32))[0]
    mean = tuple(0.2 + 0.1 * i for i in range(c))
    std = tuple(0.25 + 0.05 * i for i in range(c))
    normed, shape = _build(name, seed=0, mean=mean, std=std)
    plain, _ = _build(name, seed=0)  # mean 0, std 1
    weights = {k: v for k, v in normed.state_dict().items() if not k.startswith("normalize.")}
    plain.load_state_dict(weights, strict=False)
    normed.eval(), plain.eval()
    x = _x(shape, n=3)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        a = normed(x)
        b = plain((x - m) / s)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(a, plain(x), rtol=1e-3, atol=1e-4)  # normalisation matters
    assert torch.equal(normed.normalize.mean.flatten(), torch.tensor(mean, dtype=torch.float32))
    assert torch.equal(plain.normalize.std.flatten(), torch.ones(c))
    # the constants travel with the weights (buffers in the state dict)
    assert {"normalize.mean", "normalize.std"} <= set(normed.state_dict())


def test_normalize_module():
    norm = Normalize((0.5, 0.25), (0.5, 2.0))
    x = torch.ones(1, 2, 2, 2)
    torch.testing.assert_close(norm(x), torch.tensor([1.0, 0.375]).view(1, 2, 1, 1).expand(1, 2, 2, 2))
