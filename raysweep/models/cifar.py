"""ResNet-18 and PreActResNet-18 for 32x32 inputs, every basic block skippable."""

import torch.nn as nn
import torch.nn.functional as F

from .base import ClassifierNet, SkippableBlock
from .registry import register_model
from .small import BasicBlock


class PreActBlock(SkippableBlock):
    """Pre-activation block (He et al. 2016): F(h) = conv(relu(bn(conv(relu(bn h))))).

    The shortcut of a downsampling block reads relu(bn1(h)), as in the reference
    PreActResNet; when the block is skipped that projection still runs (it is the shortcut)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, h, keep: bool = True):
        a = F.relu(self.bn1(h))
        s = h if self.proj is None else self.proj(a)
        if not keep:
            return s
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + s

    # The SkippableBlock API, standalone (forward fuses them so bn1 runs once per call).
    def residual(self, h):
        return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(h))))))

    def shortcut(self, h):
        return h if self.proj is None else self.proj(F.relu(self.bn1(h)))

    def shortcut_modules(self):
        # bn1 feeds both branches; count it with the residual branch (it is tiny)
        return [] if self.proj is None else [self.proj]


class _ResNet18Base(ClassifierNet):
    def _make_blocks(self, block, width):
        blocks, cin = [], width
        for stage, mult in enumerate((1, 2, 4, 8)):
            for i in range(2):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(block(cin, width * mult, stride))
                cin = width * mult
        self.blocks = nn.ModuleList(blocks)
        self.feature_dim = cin
        return cin

    def head_features(self, h):
        return F.adaptive_avg_pool2d(self.final(h), 1).flatten(1)


@register_model("resnet18")
class ResNet18(_ResNet18Base):
    """CIFAR ResNet-18 (3x3 stem, no max-pool), 8 basic blocks: FP-Better's architecture."""

    def __init__(self, num_classes=10, input_shape=(3, 32, 32), mean=(0.0,) * 3, std=(1.0,) * 3, width=64):
        super().__init__(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        cout = self._make_blocks(BasicBlock, width)
        self.final = nn.Identity()
        self.fc = nn.Linear(cout, num_classes)


@register_model("preact_resnet18")
class PreActResNet18(_ResNet18Base):
    """PreActResNet-18 as used by Wong et al. and Rice et al. (final BN+ReLU before pooling)."""

    def __init__(self, num_classes=10, input_shape=(3, 32, 32), mean=(0.0,) * 3, std=(1.0,) * 3, width=64):
        super().__init__(mean, std)
        self.stem = nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False)
        cout = self._make_blocks(PreActBlock, width)
        self.final = nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU())
        self.fc = nn.Linear(cout, num_classes)
