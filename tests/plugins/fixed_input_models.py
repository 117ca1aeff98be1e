"""A test-only model that takes one input shape only (3x32x32), as many user models do: the
driver's pre-flight check must refuse it on MNIST before any trial starts."""

import torch.nn as nn

from raysweep.models.registry import register_model


@register_model("linear_cifar_only")
def linear_cifar_only(num_classes, input_shape, mean, std, width=None):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))
