"""The downstream classifier: ``Model/arch: convnet``, fairkit's ConvNet (conv3x3-BN-LeakyReLU-maxpool blocks,
global average pooling), or ``mp32``, nifr's ``mp_32x32_net`` for 32 x 32 images (a 5x5 convolution without
padding first, conv-BN-LeakyReLU-maxpool blocks down to 1 x 1, then Linear)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from edflow.config import section
from fairkit.nets import ConvNet

CLASSIFIER_DEFAULTS = {"in_channels": 3, "num_classes": 10, "channels": [32, 64, 128, 256], "arch": "convnet"}
CLASSIFIER_ARCHS = ("convnet", "mp32")


class MaxPoolNet32(nn.Module):
    """nifr's ``mp_32x32_net`` with widths ``channels`` (nifr: 64, 128, 256, 512): 32 -> 28 -> 14 -> 7 -> 3 -> 1."""

    def __init__(self, in_channels: int, num_classes: int, channels: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(channels):
            kernel, padding = (5, 0) if i == 0 else (3, 1)
            layers += [nn.Conv2d(prev, width, kernel, padding=padding), nn.BatchNorm2d(width), nn.LeakyReLU(),
                       nn.MaxPool2d(2, 2)]
            prev = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        if h.shape[2:] != (1, 1):
            raise ValueError(f"Model/arch mp32 maps 32 x 32 images through 4 blocks to 1 x 1; images of shape "
                             f"{tuple(x.shape[1:])} end at {tuple(h.shape[2:])}: use Model/arch convnet")
        return self.fc(h.flatten(1))


class Classifier(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", CLASSIFIER_DEFAULTS)
        self.num_classes = int(options["num_classes"])
        if options["arch"] not in CLASSIFIER_ARCHS:
            raise ValueError(f"Model/arch={options['arch']!r} must be one of {CLASSIFIER_ARCHS}")
        net = ConvNet if options["arch"] == "convnet" else MaxPoolNet32
        self.net = net(int(options["in_channels"]), self.num_classes, tuple(options["channels"]))

    def forward(self, x):
        return self.net(x)
