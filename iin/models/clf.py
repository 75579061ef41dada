"""A classifier as IIN's first stage: its ``z_dim`` features are what a disentangling IIN interprets.

The feature extractor is IIN's conv encoder trunk (``Model`` section: in_channels, in_size, n_down, norm, z_dim,
ch, max_ch) ending in ``z_dim`` channels at 1x1; a linear layer maps the features to ``n_classes`` logits
(top-level key, as in the original release).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edflow.config import section
from edflow.util import retrieve
from fairkit.nets import DiagonalGaussian, Encoder
from iin.models.ae import MODEL_DEFAULTS

CLF_DEFAULTS = {k: v for k, v in MODEL_DEFAULTS.items() if k != "deterministic"}


class Model(nn.Module):
    """``features(x) -> (B, z_dim)``, ``forward(x) -> logits``, and ``encode(x)`` -> a point mass at the features
    (so IIN trainers treat it like an autoencoder's posterior)."""

    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", CLF_DEFAULTS)
        self.z_dim = int(options["z_dim"])
        self.n_classes = int(retrieve(config, "n_classes", default=10))
        self.trunk = Encoder(options["in_channels"], options["in_size"], z_dim=self.z_dim, n_down=options["n_down"],
                             ch=options["ch"], max_ch=options["max_ch"], norm=options["norm"])
        last = self.trunk.net[-1]
        # The encoder ends in 2 * z_dim Gaussian parameters; a classifier needs z_dim features only.
        self.trunk.net[-1] = nn.Conv2d(last.in_channels, self.z_dim, last.kernel_size)
        self.head = nn.Linear(self.z_dim, self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        h = self.features(x)[:, :, None, None]
        return DiagonalGaussian(torch.cat([h, torch.zeros_like(h)], dim=1), deterministic=True)
