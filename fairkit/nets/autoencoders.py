"""Convolutional autoencoder parts (IIN's stage 1) and a PatchGAN discriminator.

- :class:`Encoder`: ``n_down`` blocks of [conv 4x4 stride 2 (no bias), norm, LeakyReLU(0.2)], then a conv whose
  kernel equals the bottleneck size, giving ``2 * z_dim`` channels at 1x1 (the parameters of a
  :class:`DiagonalGaussian`).
- :class:`Decoder`: the mirror image with transposed convs, ending in tanh.
- :class:`DiagonalGaussian`: the posterior built from the encoder's output.
- :class:`PatchDiscriminator`: PatchGAN (pix2pix) with optional spectral norm.

Norms are chosen by name: ``"an"`` (ActNorm with data-dependent init), ``"bn"`` (BatchNorm) or ``"none"``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from fairkit.nets.flows import ActNorm

__all__ = ["ActNormLayer", "make_norm", "Encoder", "Decoder", "DiagonalGaussian", "PatchDiscriminator"]

NORMS = ("an", "bn", "none")


class ActNormLayer(ActNorm):
    """ActNorm as a plain layer: ``forward(x) -> y`` (no logdet), for use inside ordinary conv nets."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 2d normalisation layer by name: "an" (ActNorm), "bn" (BatchNorm2d) or "none"."""
    if kind == "an":
        return ActNormLayer(channels)
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def init_normal_(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN-style init: conv weights ~ N(0, std), BatchNorm weights ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def _channel_widths(n: int, ch: int, max_ch: int) -> list[int]:
    """Width of block i: ch * 2**i, capped at max_ch (IIN: 64, 128, 256, 512)."""
    return [min(ch * 2**i, max_ch) for i in range(n)]


def _bottleneck_size(size: int, n: int) -> int:
    if size % 2**n:
        raise ValueError(f"image size {size} must be divisible by 2**{n} = {2**n} for {n} down/up-sampling blocks")
    return size // 2**n


class Encoder(nn.Module):
    """IIN's conv encoder: image ``(B, C, S, S)`` -> Gaussian parameters ``(B, 2 * z_dim, 1, 1)``.

    Wrap the output in :class:`DiagonalGaussian` to sample. ``ch``/``max_ch`` set the widths
    (paper: 64 ... 512; narrower at CPU scale).
    """

    def __init__(
        self,
        in_channels: int = 3,
        in_size: int = 32,
        z_dim: int = 64,
        n_down: int = 4,
        ch: int = 64,
        max_ch: int = 512,
        norm: str = "an",
    ):
        super().__init__()
        bottleneck = _bottleneck_size(in_size, n_down)
        widths = _channel_widths(n_down, ch, max_ch)
        layers: list[nn.Module] = []
        prev = in_channels
        for width in widths:
            layers += [
                nn.Conv2d(prev, width, 4, stride=2, padding=1, bias=False),
                make_norm(norm, width),
                nn.LeakyReLU(0.2),
            ]
            prev = width
        layers.append(nn.Conv2d(prev, 2 * z_dim, bottleneck))
        self.net = nn.Sequential(*layers)
        self.in_channels, self.in_size, self.z_dim = in_channels, in_size, z_dim
        init_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (self.in_size, self.in_size):
            raise ValueError(
                f"Encoder expects images (B, {self.in_channels}, {self.in_size}, {self.in_size}), got {tuple(x.shape)}"
            )
        return self.net(x)


class Decoder(nn.Module):
    """IIN's conv decoder: code ``(B, z_dim)`` or ``(B, z_dim, 1, 1)`` -> image ``(B, C, S, S)`` in [-1, 1].

    ConvTranspose(z_dim -> widest, kernel = bottleneck), ``n_up - 1`` x [ConvT 4x4 s2, norm, LeakyReLU(0.2)],
    a final ConvT 4x4 s2 and tanh. :attr:`last_layer` is the final ConvT (for adaptive loss weights).
    """

    def __init__(
        self,
        out_channels: int = 3,
        out_size: int = 32,
        z_dim: int = 64,
        n_up: int = 4,
        ch: int = 64,
        max_ch: int = 512,
        norm: str = "an",
    ):
        super().__init__()
        bottleneck = _bottleneck_size(out_size, n_up)
        widths = _channel_widths(n_up, ch, max_ch)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, widths[-1], bottleneck)]
        for width_in, width_out in zip(widths[:0:-1], widths[-2::-1]):
            layers += [
                nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1, bias=(norm == "none")),
                make_norm(norm, width_out),
                nn.LeakyReLU(0.2),
            ]
        layers += [nn.ConvTranspose2d(widths[0], out_channels, 4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.z_dim = z_dim
        init_normal_(self)

    @property
    def last_layer(self) -> nn.ConvTranspose2d:
        """The final transposed conv (its weight is where IIN's adaptive GAN weight is computed)."""
        return self.net[-2]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or z.shape[1:] != (self.z_dim, 1, 1):
            raise ValueError(
                f"Decoder expects codes (B, {self.z_dim}) or (B, {self.z_dim}, 1, 1), got {tuple(z.shape)}"
            )
        return self.net(z)


class DiagonalGaussian:
    """A diagonal Gaussian from parameters ``[mean, logvar]`` stacked along dim 1.

    ``logvar`` is clamped to [-30, 10] for numerical safety. ``deterministic=True`` makes it a point mass
    (zero variance, zero KL), e.g. for a plain autoencoder.
    """

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False):
        if parameters.shape[1] % 2:
            raise ValueError(
                f"DiagonalGaussian needs an even number of channels (mean, logvar), got {parameters.shape[1]}"
            )
        self.parameters = parameters
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 10.0)
        self.deterministic = deterministic
        if deterministic:
            self.logvar = torch.zeros_like(self.mean)
            self.std = torch.zeros_like(self.mean)
            self.var = torch.zeros_like(self.mean)
        else:
            self.std = torch.exp(0.5 * self.logvar)
            self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)), summed over all but the batch dim: shape (B,)."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], dtype=self.mean.dtype, device=self.mean.device)
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).flatten(1).sum(1)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix): a map of real/fake logits, one per overlapping patch.

    conv 4x4 s2 (in -> ndf), LeakyReLU(0.2); ``n_layers - 1`` x [conv 4x4 s2, norm, LeakyReLU] doubling up to
    8 * ndf; conv 4x4 s1, norm, LeakyReLU; conv 4x4 s1 -> 1 channel. A 32x32 input gives a 2x2 logit map
    with ``n_layers = 3``; 64x64 gives 6x6.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "bn",
        use_spectral_norm: bool = False,
    ):
        super().__init__()
        maybe_sn = spectral_norm if use_spectral_norm else (lambda m: m)
        bias = norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias),
                make_norm(norm, ndf * mult),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        init_normal_(nn.Sequential(*layers))
        self.net = nn.Sequential(*[maybe_sn(m) if isinstance(m, nn.Conv2d) else m for m in layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
