"""Stage 1: a variational autoencoder with IIN's conv encoder and decoder (``Model`` section of the config)."""
from __future__ import annotations

import torch
import torch.nn as nn

from edflow.config import section
from fairkit.nets import Decoder, DiagonalGaussian, Encoder

MODEL_DEFAULTS = {
    "deterministic": False,  # True: a plain autoencoder (point-mass posterior, no KL)
    "in_channels": 3,
    "in_size": 32,
    "n_down": 4,
    "norm": "an",
    "z_dim": 64,
    "ch": 64,  # width of the first block; blocks double it up to max_ch (paper: 64 ... 512)
    "max_ch": 512,
}


class Model(nn.Module):
    """``encode(x) -> DiagonalGaussian`` over codes (B, z_dim, 1, 1); ``decode(z) -> image``;
    ``forward(x) -> (reconstruction, posterior)`` (a posterior sample is decoded)."""

    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", MODEL_DEFAULTS)
        self.z_dim = int(options["z_dim"])
        self.deterministic = bool(options["deterministic"])
        shape = dict(z_dim=self.z_dim, ch=options["ch"], max_ch=options["max_ch"], norm=options["norm"])
        self.encoder = Encoder(options["in_channels"], options["in_size"], n_down=options["n_down"], **shape)
        self.decoder = Decoder(options["in_channels"], options["in_size"], n_up=options["n_down"], **shape)
        self.image_shape = (int(options["in_channels"]), int(options["in_size"]), int(options["in_size"]))

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(self.encoder(x), deterministic=self.deterministic)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.reshape(z.shape[0], self.z_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, DiagonalGaussian]:
        posterior = self.encode(x)
        return self.decode(posterior.sample()), posterior

    def get_last_layer(self) -> torch.Tensor:
        """The decoder's last weight, on which the adversarial loss is calibrated."""
        return self.decoder.last_layer.weight

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.get_last_layer().device
        return torch.randn(n, self.z_dim, generator=generator, device=device)
