"""BigGAN-style generator and discriminator, an EMA of G, and hinge losses.

- :class:`Generator`: linear -> 4x4 map, residual up-blocks [BN, ReLU, upsample, conv3x3, BN, ReLU, conv3x3],
  BN, ReLU, conv3x3, tanh. Class-conditional BN when ``n_classes > 0``.
- :class:`Discriminator`: residual down-blocks [ReLU, conv3x3, ReLU, conv3x3, avgpool], ReLU, sum over space,
  linear; plus a projection term ``<embed(y), h>`` when ``n_classes > 0``.
- Spectral norm (``torch.nn.utils.parametrizations.spectral_norm``) on every conv, linear and embedding of G
  and D; orthogonal init, as in BigGAN.
- :class:`EMA` of the generator's weights; :func:`d_hinge_loss` (with optional per-example importance weights
  on the real term, fairgen's reweighting) and :func:`g_hinge_loss`.
- :class:`GAN`: generator, discriminator and the generator's EMA in one module (the GAN that fairgen and latent
  de-biasing train; :mod:`fairkit.gan` builds it from a run config and trains it).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["Generator", "Discriminator", "ConditionalBatchNorm2d", "EMA", "GAN", "d_hinge_loss", "g_hinge_loss"]

# Channel multipliers of ch per block, as in BigGAN's architectures (bottom width 4 for G).
G_ARCH = {
    32: {"in": (4, 4, 4), "out": (4, 4, 4)},
    64: {"in": (16, 16, 8, 4), "out": (16, 8, 4, 2)},
    128: {"in": (16, 16, 8, 4, 2), "out": (16, 8, 4, 2, 1)},
}
D_ARCH = {
    32: {"out": (4, 4, 4, 4), "down": (True, True, False, False)},
    64: {"out": (1, 2, 4, 8, 16), "down": (True, True, True, True, True)},
    128: {"out": (1, 2, 4, 8, 16, 16), "down": (True, True, True, True, True, False)},
}
BOTTOM_WIDTH = 4


def _check_resolution(resolution: int) -> None:
    if resolution not in G_ARCH:
        raise ValueError(f"unsupported GAN resolution {resolution}; choose one of {sorted(G_ARCH)}")


def _sn(module: nn.Module) -> nn.Module:
    """Orthogonal init, then spectral norm (init first: the parametrisation wraps the initialised weight)."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module)


def _check_labels(y: torch.Tensor | None, n_classes: int, who: str) -> None:
    if n_classes > 0 and y is None:
        raise ValueError(f"this {who} is class-conditional (n_classes={n_classes}): pass labels y")
    if n_classes == 0 and y is not None:
        raise ValueError(f"this {who} is unconditional: build it with n_classes > 0 to pass labels")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias come from the class label (plain affine BN when ``n_classes == 0``).

    Gain = 1 + embed_g(y), bias = embed_b(y); both embeddings start at zero, so training starts from plain BN.
    """

    def __init__(self, num_features: int, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.bn = nn.BatchNorm2d(num_features, affine=n_classes == 0)
        if n_classes > 0:
            self.gain = nn.Embedding(n_classes, num_features)
            self.bias = nn.Embedding(n_classes, num_features)
            nn.init.zeros_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.bn(x)
        if self.n_classes == 0:
            return h
        gain = 1.0 + self.gain(y)[:, :, None, None]
        return h * gain + self.bias(y)[:, :, None, None]


class GBlock(nn.Module):
    """Residual up-block: [CBN, ReLU, upsample x2, conv3x3, CBN, ReLU, conv3x3] + [upsample, conv1x1]."""

    def __init__(self, in_channels: int, out_channels: int, n_classes: int = 0):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_channels, n_classes)
        self.conv1 = _sn(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.bn2 = ConditionalBatchNorm2d(out_channels, n_classes)
        self.conv2 = _sn(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.shortcut = _sn(nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """BigGAN-style generator: ``forward(z, y=None) -> images (B, out_channels, resolution, resolution)`` in [-1, 1].

    Widths are multiples of ``ch`` (BigGAN's tables for 32, 64 and 128 pixels).
    """

    def __init__(self, dim_z: int = 128, ch: int = 64, resolution: int = 32, out_channels: int = 3, n_classes: int = 0):
        super().__init__()
        _check_resolution(resolution)
        arch = G_ARCH[resolution]
        self.dim_z, self.n_classes, self.resolution = dim_z, n_classes, resolution
        self.first_channels = arch["in"][0] * ch
        self.linear = _sn(nn.Linear(dim_z, self.first_channels * BOTTOM_WIDTH**2))
        self.blocks = nn.ModuleList(
            GBlock(i * ch, o * ch, n_classes) for i, o in zip(arch["in"], arch["out"])
        )
        last = arch["out"][-1] * ch
        self.output_bn = nn.BatchNorm2d(last)
        self.output_conv = _sn(nn.Conv2d(last, out_channels, 3, padding=1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim_z:
            raise ValueError(f"Generator expects z of shape (B, {self.dim_z}), got {tuple(z.shape)}")
        _check_labels(y, self.n_classes, "Generator")
        h = self.linear(z).view(z.shape[0], self.first_channels, BOTTOM_WIDTH, BOTTOM_WIDTH)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.output_conv(F.relu(self.output_bn(h))))


class DBlock(nn.Module):
    """Residual down-block: [(ReLU), conv3x3, ReLU, conv3x3, (avgpool)] + shortcut [conv1x1, avgpool].

    The first block skips the leading ReLU (its input is the image) and pools before its shortcut conv.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, preactivation: bool):
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1 = _sn(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = _sn(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.learnable_shortcut = downsample or in_channels != out_channels
        if self.learnable_shortcut:
            self.shortcut = _sn(nn.Conv2d(in_channels, out_channels, 1))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if not self.learnable_shortcut:
            return x
        if self.preactivation:
            return self._pool(self.shortcut(x))
        return self.shortcut(self._pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        return self._pool(h) + self._skip(x)


class Discriminator(nn.Module):
    """BigGAN-style discriminator: ``forward(x, y=None) -> logits (B,)``.

    With ``n_classes > 0`` the logit gets the projection term ``sum(embed(y) * h)``.
    """

    def __init__(self, ch: int = 64, resolution: int = 32, in_channels: int = 3, n_classes: int = 0):
        super().__init__()
        _check_resolution(resolution)
        arch = D_ARCH[resolution]
        self.n_classes, self.resolution, self.in_channels = n_classes, resolution, in_channels
        widths = [in_channels] + [m * ch for m in arch["out"]]
        self.blocks = nn.Sequential(
            *[
                DBlock(widths[i], widths[i + 1], down, preactivation=i > 0)
                for i, down in enumerate(arch["down"])
            ]
        )
        self.linear = _sn(nn.Linear(widths[-1], 1))
        if n_classes > 0:
            self.embed = _sn(nn.Embedding(n_classes, widths[-1]))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.in_channels, self.resolution, self.resolution)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"Discriminator expects images (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        _check_labels(y, self.n_classes, "Discriminator")
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        logits = self.linear(h).squeeze(1)
        if self.n_classes > 0:
            logits = logits + (self.embed(y) * h).sum(1)
        return logits


class EMA:
    """Exponential moving average of a model's parameters (BigGAN's EMA of G).

    ``ema.module`` is a frozen copy used for sampling and evaluation. ``update(step)`` copies the weights
    while ``step < start_step`` and afterwards sets ``p_ema = decay * p_ema + (1 - decay) * p``. Buffers
    (BatchNorm statistics, spectral-norm vectors) are copied. ``state_dict()`` / ``load_state_dict()``
    save and restore it with a checkpoint.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, start_step: int = 0):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay, self.start_step = decay, start_step
        self.model = model
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = self.decay if step >= self.start_step else 0.0
        source = dict(self.model.named_parameters())
        for name, p_ema in self.module.named_parameters():
            p_ema.lerp_(source[name].detach(), 1.0 - decay)
        source_buffers = dict(self.model.named_buffers())
        for name, b_ema in self.module.named_buffers():
            b_ema.copy_(source_buffers[name])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_step": self.start_step, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.start_step = state["decay"], state["start_step"]
        self.module.load_state_dict(state["module"])



class GAN(nn.Module):
    """Generator, discriminator and the generator's EMA. ``forward(z, y=None)`` runs the EMA generator.

    ``conditional`` conditions G and D on a binary label (fairgen's conditional baseline: dataset membership).
    The state dict holds ``generator``, ``discriminator`` and ``generator_ema``.
    """

    def __init__(self, *, dim_z: int = 128, ch: int = 64, resolution: int = 32, channels: int = 3,
                 conditional: bool = False, ema_decay: float = 0.9999, ema_start: int = 1000):
        super().__init__()
        self.dim_z, self.conditional = int(dim_z), bool(conditional)
        n_classes = 2 if self.conditional else 0
        self.generator = Generator(self.dim_z, int(ch), int(resolution), int(channels), n_classes)
        self.discriminator = Discriminator(int(ch), int(resolution), int(channels), n_classes)
        self._ema = EMA(self.generator, float(ema_decay), int(ema_start))
        self.generator_ema = self._ema.module  # registered, so checkpoints and later stages hold it

    def train(self, mode: bool = True) -> "GAN":
        super().train(mode)
        self.generator_ema.eval()  # sampling always uses the running BatchNorm statistics
        return self

    def update_ema(self, step: int) -> None:
        self._ema.update(step)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator_ema(z, y)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.dim_z, generator=generator).to(device)

    def reference_labels(self, n: int) -> torch.Tensor | None:
        """The class to sample from: the reference set (1) for a conditional GAN, none otherwise."""
        if not self.conditional:
            return None
        return torch.ones(n, dtype=torch.long, device=next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int, batch_size: int = 500, ema: bool = True, generator: torch.Generator | None = None,
               y: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images (B, C, H, W) in [-1, 1] and their latents; ``y`` picks the class of a conditional GAN
        (default: the reference class)."""
        net = self.generator_ema if ema else self.generator
        was_training = net.training
        net.eval()
        images, latents = [], []
        try:
            for start in range(0, n, batch_size):
                z = self.sample_z(min(batch_size, n - start), generator)
                labels = self.reference_labels(len(z))
                if labels is not None and y is not None:
                    labels = torch.full_like(labels, int(y))
                images.append(net(z, labels).cpu())
                latents.append(z.cpu())
        finally:
            net.train(was_training)
        return torch.cat(images), torch.cat(latents)

def d_hinge_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, real_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Discriminator hinge loss ``mean_i[w_i relu(1 - D(x_i))] + mean_j[relu(1 + D(G(z_j)))]``.

    ``real_weights`` (one per real example, e.g. density ratios r_i ** alpha) weight the real term only;
    ``None`` means unit weights.
    """
    real_logits, fake_logits = real_logits.reshape(-1), fake_logits.reshape(-1)
    real_term = F.relu(1.0 - real_logits)
    if real_weights is not None:
        real_weights = real_weights.reshape(-1)
        if real_weights.shape != real_logits.shape:
            raise ValueError(
                f"real_weights needs one weight per real example: got {real_weights.numel()} for {real_logits.numel()}"
            )
        real_term = real_weights.to(real_term.dtype) * real_term
    return real_term.mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean D(G(z))``."""
    return -fake_logits.mean()
