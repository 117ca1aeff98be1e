"""bench/published_mnist.py loads Wong et al.'s released MNIST weights (their mnist_net, an nn.Sequential) into
raysweep's small_cnn: the same function, so raysweep's attacks evaluate the paper's own model."""

import importlib.util
import pathlib

import pytest
import torch
import torch.nn as nn

_spec = importlib.util.spec_from_file_location(
    "published_mnist", pathlib.Path(__file__).resolve().parents[1] / "bench" / "published_mnist.py")
published = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(published)


def _their_net():
    """fast_adversarial's MNIST/mnist_net.py architecture, written out here (its layer indices are the keys)."""
    return nn.Sequential(nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10))


def test_their_weights_load_into_small_cnn_as_the_same_function(tmp_path):
    torch.manual_seed(0)
    theirs = _their_net().eval()
    torch.save(theirs.state_dict(), tmp_path / "fgsm.pth")
    ours = published.load_published(tmp_path / "fgsm.pth")
    x = torch.rand(16, 1, 28, 28)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert not ours.training


def test_a_file_of_another_network_is_refused(tmp_path):
    torch.save({"0.weight": torch.zeros(16, 1, 4, 4), "9.weight": torch.zeros(1)}, tmp_path / "fgsm.pth")
    with pytest.raises(SystemExit, match="not fast_adversarial's mnist_net .unexpected 9.weight"):
        published.load_published(tmp_path / "fgsm.pth")
