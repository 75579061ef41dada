"""The downstream classifier: fairkit's ConvNet (conv-BN-LeakyReLU-maxpool blocks)."""
from __future__ import annotations

import torch.nn as nn

from edflow.config import section
from fairkit.nets import ConvNet

CLASSIFIER_DEFAULTS = {"in_channels": 3, "num_classes": 10, "channels": [32, 64, 128, 256]}


class Classifier(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", CLASSIFIER_DEFAULTS)
        self.num_classes = int(options["num_classes"])
        self.net = ConvNet(int(options["in_channels"]), self.num_classes, tuple(options["channels"]))

    def forward(self, x):
        return self.net(x)
