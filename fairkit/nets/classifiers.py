"""Classifiers shared by the methods.

- :class:`SimpleConvNet`: EnD's Biased-MNIST network; its L2-normalised 128-d features come out of the
  named submodule ``features_norm`` (see :attr:`SimpleConvNet.feature_layer`), so a forward hook can read them.
- :class:`ResNet`: ResNet-18-style net with width/depth options and an optional MLP head.
- :class:`ConvNet`: conv-BN-LeakyReLU-maxpool blocks (null-sampling's downstream CNN).
- :class:`MLP`: a fully connected net (optionally with BatchNorm and dropout).

Every classifier has ``forward(x) -> logits`` and ``features(x) -> penultimate features``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["L2Normalize", "SimpleConvNet", "BasicBlock", "ResNet", "ConvNet", "MLP"]


class L2Normalize(nn.Module):
    """Scale every row (dim 1) to unit Euclidean norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2, dim=1)


LAST_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class SimpleConvNet(nn.Module):
    """EnD's SimpleConvNet.

    4 x conv 7x7 (stride 1, padding 3) with widths 16, 32, 64, 128 (times ``width``), BN + ReLU after the first
    three and BN + Tanh after the last; global average pooling; per-sample L2 normalisation (``features_norm``);
    a linear classifier. Kaiming-normal (fan_out) init for the convs.

    ``last_activation="relu", normalize=False`` gives ReBias's SimpleConvNet (Bahng et al. 2020), the network of
    the EnD paper's vanilla row: BN + ReLU after all four convs and no normalisation (``features_norm`` is then
    the identity).
    """

    #: name of the submodule whose output is the normalised feature vector (for forward hooks)
    feature_layer = "features_norm"

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0, kernel_size: int = 7,
                 *, last_activation: str = "tanh", normalize: bool = True):
        super().__init__()
        if last_activation not in LAST_ACTIVATIONS:
            raise ValueError(f"last_activation={last_activation!r}; choose one of {sorted(LAST_ACTIVATIONS)}")
        widths = [_scaled(c, width) for c in (16, 32, 64, 128)]
        layers: list[nn.Module] = []
        prev = in_channels
        for i, out in enumerate(widths):
            last = i == len(widths) - 1
            layers += [
                nn.Conv2d(prev, out, kernel_size, stride=1, padding=kernel_size // 2),
                nn.BatchNorm2d(out),
                LAST_ACTIVATIONS[last_activation]() if last else nn.ReLU(),
            ]
            prev = out
        self.extracter = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.features_norm = L2Normalize() if normalize else nn.Identity()
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feature_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (L2-normalised unless ``normalize=False``), shape (B, 128 * width)."""
        return self.features_norm(self.avgpool(self.extracter(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


RESNET_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def _resnet_stem(in_channels: int, width: int, input_size: int) -> nn.Sequential:
    """Bring the input to about 32x32 before the residual stages (CIFAR stem at 32, strided at 64, ImageNet at 128+)."""
    if input_size >= 128:
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
    stride = 2 if input_size >= 64 else 1
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())


class ResNet(nn.Module):
    """ResNet with basic blocks (ResNet-18 by default) for 32, 64 or 128 pixel inputs.

    Args:
        num_outputs: logits (1 for a binary attribute with BCE).
        in_channels: image channels.
        width: channels of the first stage (64 for the standard net); stages double it.
        depth: 10, 18 or 34, or ``blocks`` (blocks per stage) for anything else.
        input_size: selects the stem: 3x3 stride 1 (<= 32), 3x3 stride 2 (64), 7x7 stride 2 + maxpool (>= 128).
        head_hidden: hidden widths of an MLP head on the pooled features (e.g. ``(2048,)``); empty for linear.
    """

    def __init__(
        self,
        num_outputs: int = 10,
        in_channels: int = 3,
        width: int = 64,
        depth: int = 18,
        input_size: int = 32,
        blocks: Sequence[int] | None = None,
        head_hidden: Sequence[int] = (),
    ):
        super().__init__()
        if blocks is None:
            if depth not in RESNET_DEPTHS:
                raise ValueError(f"unknown ResNet depth {depth}; choose one of {sorted(RESNET_DEPTHS)} or pass blocks=")
            blocks = RESNET_DEPTHS[depth]
        self.stem = _resnet_stem(in_channels, width, input_size)
        stages: list[nn.Module] = []
        prev = width
        for i, n_blocks in enumerate(blocks):
            out = width * 2**i
            stage = [BasicBlock(prev, out, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(out, out) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*stage))
            prev = out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = prev
        self.head = MLP(prev, num_outputs, hidden=head_hidden)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features of the last stage, shape (B, width * 2**(stages-1))."""
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvNet(nn.Module):
    """Blocks of [conv 3x3, BN, LeakyReLU, maxpool 2x2], global average pooling, a linear classifier."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64, 128, 256),
        negative_slope: float = 0.01,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for out in channels:
            layers += [
                nn.Conv2d(prev, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(negative_slope),
                nn.MaxPool2d(2),
            ]
            prev = out
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)
        self.feature_dim = prev

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Fully connected net: ``len(hidden)`` x [Linear, (BatchNorm1d), activation, (Dropout)], then Linear.

    Inputs with more than two dims are flattened. ``features(x)`` is the last hidden activation
    (the input itself when there are no hidden layers).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (512,),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        layers: list[nn.Module] = []
        prev = in_features
        for width in hidden:
            layers.append(nn.Linear(prev, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(_ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = width
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(prev, out_features)
        self.feature_dim = prev

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))
