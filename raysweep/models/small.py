"""Models for 28x28 inputs."""

import torch.nn as nn

from .base import ClassifierNet, SkippableBlock
from .registry import register_model


@register_model("small_cnn")
class SmallCNN(ClassifierNet):
    """Two strided convolutions and two dense layers: the MNIST network of Wong et al.'s
    fast_adversarial code (conv 16/32, 4x4 stride 2, fc 100). Fast on one CPU core."""

    def __init__(self, num_classes=10, input_shape=(1, 28, 28), mean=(0.0,), std=(1.0,), width=16, hidden=100):
        super().__init__(mean, std)
        c, h, w = input_shape
        self.stem = nn.Sequential(
            nn.Conv2d(c, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
        )
        self.blocks = nn.ModuleList()
        flat = 2 * width * (h // 4) * (w // 4)
        self.hidden = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU())
        self.feature_dim = hidden
        self.fc = nn.Linear(hidden, num_classes)

    def head_features(self, h):
        return self.hidden(h)


class BasicBlock(SkippableBlock):
    """Post-activation ResNet basic block (He et al.): relu(bn(conv(relu(bn(conv h)))) + S(h))."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def residual(self, h):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(h)))))

    def shortcut(self, h):
        return h if self.proj is None else self.proj(h)

    def shortcut_modules(self):
        return [] if self.proj is None else list(self.proj.modules())

    def post(self, z):
        return self.relu(z)


@register_model("resnet_small")
class ResNetSmall(ClassifierNet):
    """A small post-activation ResNet for 28x28: stem 16 channels, three stages of
    ``blocks_per_stage`` basic blocks (16/32/64 channels), every block skippable."""

    def __init__(self, num_classes=10, input_shape=(1, 28, 28), mean=(0.0,), std=(1.0,), width=16, blocks_per_stage=2):
        super().__init__(mean, std)
        c = input_shape[0]
        self.stem = self.make_stem(c, width)
        blocks, cin = [], width
        for stage, mult in enumerate((1, 2, 4)):
            for i in range(blocks_per_stage):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(cin, width * mult, stride))
                cin = width * mult
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = cin
        self.fc = nn.Linear(cin, num_classes)

    @staticmethod
    def make_stem(c, width):
        return nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())

    def head_features(self, h):
        return self.pool(h)


@register_model("resnet_tiny")
class ResNetTiny(ResNetSmall):
    """``resnet_small`` with a strided stem (4x4, stride 2, as small_cnn's first layer): the six
    skippable basic blocks run at 14/7/4 px instead of 28/14/7, about a quarter of the
    multiply-accumulates. The residual model of the CPU-sized reproductions (FP-Better needs
    skippable blocks; RRM's student is an architecture other than its small_cnn teacher)."""

    def __init__(self, num_classes=10, input_shape=(1, 28, 28), mean=(0.0,), std=(1.0,), width=8, blocks_per_stage=2):
        super().__init__(num_classes, input_shape, mean, std, width, blocks_per_stage)

    @staticmethod
    def make_stem(c, width):
        return nn.Sequential(nn.Conv2d(c, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
