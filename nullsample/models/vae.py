"""The cVAE variant: a gated-conv encoder q(z | x) and a decoder p(x | z, s) conditioned on one-hot s.
Null-sampling decodes the posterior mean with s = 0 (the zero vector instead of a one-hot code)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from edflow.config import section
from nullsample.quantization import to_signed_range

CVAE_DEFAULTS = {"in_channels": 3, "image_size": 32, "z_dim": 64, "channels": [32, 64, 128], "num_s": 10}


class GatedConv2d(nn.Module):
    """A conv producing features and gates: ``features * sigmoid(gates)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gates = self.conv(x).chunk(2, dim=1)
        return features * torch.sigmoid(gates)


def bottleneck_side(image_size: int, channels: Sequence[int]) -> int:
    factor = 2 ** len(channels)
    if image_size % factor:
        raise ValueError(f"Model/image_size={image_size} must be divisible by 2**len(Model/channels) = {factor}")
    return image_size // factor


class GatedEncoder(nn.Module):
    """Gated convs 4x4 stride 2 (one per entry of ``channels``), then a linear map to (mu, logvar)."""

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int], z_dim: int):
        super().__init__()
        layers, previous = [], in_channels
        for width in channels:
            layers += [GatedConv2d(previous, width, 4, 2, 1), nn.BatchNorm2d(width)]
            previous = width
        self.body = nn.Sequential(*layers)
        side = bottleneck_side(image_size, channels)
        self.head = nn.Linear(previous * side * side, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class ConditionalDecoder(nn.Module):
    """[z, s] -> linear -> transposed convs 4x4 stride 2 (mirroring the encoder) -> pixel logits."""

    def __init__(self, out_channels: int, image_size: int, channels: Sequence[int], z_dim: int, num_s: int):
        super().__init__()
        self.side = bottleneck_side(image_size, channels)
        widths = list(reversed(channels))
        self.widths = widths
        self.head = nn.Linear(z_dim + num_s, widths[0] * self.side * self.side)
        layers = []
        for width, following in zip(widths, widths[1:] + [None]):
            if following is None:
                layers.append(nn.ConvTranspose2d(width, out_channels, 4, 2, 1))
            else:
                layers += [nn.ConvTranspose2d(width, following, 4, 2, 1), nn.BatchNorm2d(following), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, s_code: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.head(torch.cat([z, s_code], dim=1)), 0.2)
        return self.body(h.view(-1, self.widths[0], self.side, self.side))


class CVAE(nn.Module):
    """``forward(x, s) -> (pixel logits, mu, logvar, z)``; images in [-1, 1], pixel targets (x + 1) / 2."""

    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", CVAE_DEFAULTS)
        self.num_s = int(options["num_s"])
        self.z_dim = int(options["z_dim"])
        args = (int(options["in_channels"]), int(options["image_size"]), list(options["channels"]), self.z_dim)
        self.encoder = GatedEncoder(*args)
        self.decoder = ConditionalDecoder(*args, self.num_s)

    def s_code(self, s: torch.Tensor) -> torch.Tensor:
        if s.min() < 0 or s.max() >= self.num_s:
            raise ValueError(f"s holds values {int(s.min())}..{int(s.max())} but Model/num_s={self.num_s}")
        return F.one_hot(s, self.num_s).float()

    def forward(self, x: torch.Tensor, s: torch.Tensor):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z, self.s_code(s)), mu, logvar, z

    def adversary_input(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def decode(self, z: torch.Tensor, s_code: torch.Tensor) -> torch.Tensor:
        return to_signed_range(torch.sigmoid(self.decoder(z, s_code)))

    @torch.no_grad()
    def null_code(self, x: torch.Tensor) -> torch.Tensor:
        """mu(x): the code a null-sample is decoded from."""
        return self.encoder(x)[0]

    @torch.no_grad()
    def null_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Dec(mu(x), s = 0), in [-1, 1]."""
        return self.decode(self.null_code(x), torch.zeros(len(x), self.num_s, device=x.device))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Dec(mu(x), s), in [-1, 1]."""
        mu, _ = self.encoder(x)
        return self.decode(mu, self.s_code(s))
