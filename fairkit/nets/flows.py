"""Invertible layers for normalising flows.

Every flow layer shares one interface:

- ``forward(x, cond=None) -> (y, logdet)`` with ``logdet`` of shape ``(B,)``: log|det dy/dx| per example;
- ``reverse(y, cond=None) -> x``.

Layers act on images ``(B, C, H, W)`` and, where it makes sense, on vectors ``(B, D)``; the channel or
feature axis is always dim 1. ``cond`` is only read by couplings; the other layers accept and ignore it so
that any stack of layers can be driven through one call.

Building blocks: :class:`ActNorm`, :class:`InvConv1x1LU`, :class:`AffineCoupling`, :class:`Squeeze`,
:class:`Permutation` (alias ``Shuffle``), :class:`Split` (factor-out helper) and :class:`FlowSequential`.
Ready-made flows: :class:`MultiScaleFlow` (Glow-like, multi-scale, for images; null-sampling's cFlow) and
:class:`VectorFlow` (the IIN transformer on vectors).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ActNorm",
    "InvConv1x1LU",
    "AffineCoupling",
    "CouplingConvNet",
    "CouplingMLP",
    "Squeeze",
    "Permutation",
    "Shuffle",
    "Split",
    "FlowSequential",
    "MultiScaleFlow",
    "VectorFlow",
    "iin_block",
]


def _check_layout(x: torch.Tensor, num_features: int, layer: str) -> None:
    if x.dim() not in (2, 4):
        raise ValueError(
            f"{layer} expects vectors (B, D) or images (B, C, H, W), got a tensor of shape {tuple(x.shape)}"
        )
    if x.shape[1] != num_features:
        raise ValueError(
            f"{layer} was built for {num_features} features/channels but got {x.shape[1]} "
            f"(input shape {tuple(x.shape)}); build it with num_features={x.shape[1]}"
        )


def _per_channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-channel vector so that it broadcasts against ``x`` (vector or image layout)."""
    return v.view(1, -1, 1, 1) if x.dim() == 4 else v.view(1, -1)


def _spatial_size(x: torch.Tensor) -> int:
    return x.shape[2] * x.shape[3] if x.dim() == 4 else 1


def _zero_logdet(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------------------------------
# ActNorm
# --------------------------------------------------------------------------------------------------
class ActNorm(nn.Module):
    """Per-channel affine normalisation ``y = scale * (x + loc)`` (Glow), for vectors and images.

    On the first forward pass in training mode the parameters are set from the batch
    (``loc = -mean``, ``scale = 1 / (std + 1e-6)`` per channel, population std) so that this batch comes out
    with mean 0 and std 1 per channel. Under ``torch.distributed`` the statistics are averaged over all ranks
    so that every replica starts from the same parameters. The ``initialized`` buffer is part of the
    state dict: a restored layer does not initialise again.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.scale = nn.Parameter(torch.ones(num_features))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set loc/scale from the statistics of ``x`` (done automatically on the first training forward)."""
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        count = x.numel() // x.shape[1]
        if count < 2 and not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "ActNorm's data-dependent init needs more than one value per channel; the first training "
                f"batch has shape {tuple(x.shape)}. Use a batch size > 1 for the first training step."
            )
        stats = torch.stack([x.sum(dims), (x * x).sum(dims)])
        n = torch.tensor(float(count), dtype=x.dtype, device=x.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
            dist.all_reduce(n)
        mean = stats[0] / n
        var = (stats[1] / n - mean * mean).clamp_min(0.0)
        self.loc.copy_(-mean)
        self.scale.copy_(1.0 / (var.sqrt() + 1e-6))
        self.initialized.fill_(1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        _check_layout(x, self.num_features, "ActNorm")
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = _per_channel(self.scale, x) * (x + _per_channel(self.loc, x))
        logdet = _spatial_size(x) * torch.log(torch.abs(self.scale)).sum()
        return y, logdet.expand(x.shape[0]).to(x.dtype)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        _check_layout(y, self.num_features, "ActNorm")
        return y / _per_channel(self.scale, y) - _per_channel(self.loc, y)


# --------------------------------------------------------------------------------------------------
# Invertible 1x1 convolution
# --------------------------------------------------------------------------------------------------
class InvConv1x1LU(nn.Module):
    """Invertible 1x1 convolution with LU-parametrised weight ``W = P L (U + diag(sign_s * exp(log_s)))``.

    ``P`` is a fixed permutation, ``L`` unit lower-triangular, ``U`` strictly upper-triangular; the weight
    starts as a random rotation (Q of the QR of a Gaussian matrix). ``log|det W| = sum(log_s)``, multiplied
    by ``H * W`` for images. On vectors ``(B, D)`` it is the linear map ``y = W x``.
    """

    def __init__(self, num_channels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.num_channels = num_channels
        q, _ = torch.linalg.qr(torch.randn(num_channels, num_channels, generator=generator))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones_like(q), -1))
        self.register_buffer("eye", torch.eye(num_channels))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> torch.Tensor:
        """The dense (C, C) matrix this layer applies (``y = W x`` per pixel)."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def _apply_matrix(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return F.conv2d(x, w.view(self.num_channels, self.num_channels, 1, 1))
        return x @ w.T

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        _check_layout(x, self.num_channels, "InvConv1x1LU")
        y = self._apply_matrix(x, self.weight())
        logdet = _spatial_size(x) * self.log_s.sum()
        return y, logdet.expand(x.shape[0]).to(x.dtype)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        _check_layout(y, self.num_channels, "InvConv1x1LU")
        return self._apply_matrix(y, torch.linalg.inv(self.weight()))


# --------------------------------------------------------------------------------------------------
# Affine coupling
# --------------------------------------------------------------------------------------------------
class CouplingConvNet(nn.Module):
    """conv3x3 - ReLU - conv1x1 - ReLU - conv3x3; returns ``(s_raw, t)``.

    The last conv starts at zero, so a fresh coupling is the identity (Glow's trick for stable training).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, 2 * out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor):
        s_raw, t = self.net(h).chunk(2, dim=1)
        return s_raw, t


def _mlp(in_features: int, out_features: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.LeakyReLU()]
    for _ in range(depth):
        layers += [nn.Linear(hidden, hidden), nn.LeakyReLU()]
    layers.append(nn.Linear(hidden, out_features))
    return nn.Sequential(*layers)


class CouplingMLP(nn.Module):
    """IIN's coupling nets: separate MLPs for ``s_raw`` and ``t``.

    Each is ``in -> hidden, LeakyReLU, depth x (hidden -> hidden, LeakyReLU), -> out``
    (IIN: 32 -> 512, 2 x (512 -> 512), -> 32). Returns ``(s_raw, t)``.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 512, depth: int = 2):
        super().__init__()
        self.s_net = _mlp(in_features, out_features, hidden, depth)
        self.t_net = _mlp(in_features, out_features, hidden, depth)

    def forward(self, h: torch.Tensor):
        return self.s_net(h), self.t_net(h)


_SCALES = ("sigmoid", "tanh")


class AffineCoupling(nn.Module):
    """Affine coupling: ``y_b = x_b * scale(x_a, cond) + t(x_a, cond)``, ``y_a = x_a``.

    The channels/features are split into ``first = x[:, :C//2]`` and ``second = x[:, C//2:]``; ``x_a`` (the
    conditioning half) is ``first``, or ``second`` when ``swap=True``; the other half is transformed. The
    output keeps the input's channel order.

    Args:
        num_features: channels (images) or features (vectors), at least 2.
        hidden: width of the coupling net.
        scale: ``"sigmoid"``: ``scale = sigmoid(s_raw) + 0.5`` (null-sampling's cFlow);
            ``"tanh"``: ``log scale = tanh(s_raw)`` (IIN).
        kind: ``"conv"`` (:class:`CouplingConvNet`, images) or ``"mlp"`` (:class:`CouplingMLP`, vectors).
        cond_features: size of an optional condition, concatenated to ``x_a`` before the net. Images take a
            condition ``(B, Cc, H, W)`` or ``(B, Cc)`` (broadcast over space).
        swap: which half conditions (see above).
        depth: hidden layers of the MLP net (ignored by the conv net).
        net: a custom module ``net(h) -> (s_raw, t)`` replacing the built-in one; it receives
            ``cat([x_a, cond], 1)`` and must return two tensors shaped like ``x_b``.
    """

    def __init__(
        self,
        num_features: int,
        hidden: int = 512,
        scale: str = "sigmoid",
        kind: str = "conv",
        cond_features: int = 0,
        swap: bool = False,
        depth: int = 2,
        net: nn.Module | None = None,
    ):
        super().__init__()
        if num_features < 2:
            raise ValueError(f"AffineCoupling needs at least 2 features/channels to split, got {num_features}")
        if scale not in _SCALES:
            raise ValueError(f"unknown coupling scale {scale!r}; choose one of {_SCALES}")
        if kind not in ("conv", "mlp"):
            raise ValueError(f"unknown coupling net kind {kind!r}; choose 'conv' (images) or 'mlp' (vectors)")
        self.num_features = num_features
        self.scale_kind = scale
        self.kind = kind
        self.cond_features = cond_features
        self.swap = swap
        n_first = num_features // 2
        n_second = num_features - n_first
        n_a, n_b = (n_second, n_first) if swap else (n_first, n_second)
        self.n_first = n_first
        if net is None:
            if kind == "conv":
                net = CouplingConvNet(n_a + cond_features, n_b, hidden)
            else:
                net = CouplingMLP(n_a + cond_features, n_b, hidden, depth)
        self.net = net

    def _halves(self, x: torch.Tensor):
        first, second = x[:, : self.n_first], x[:, self.n_first :]
        return (second, first) if self.swap else (first, second)

    def _join(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        return torch.cat([x_b, x_a] if self.swap else [x_a, x_b], dim=1)

    def _net_input(self, x_a: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.cond_features == 0:
            if cond is not None:
                raise ValueError("this AffineCoupling was built without a condition; pass cond_features>0 to use one")
            return x_a
        if cond is None:
            raise ValueError(f"this AffineCoupling needs a condition with {self.cond_features} features (cond=...)")
        if x_a.dim() == 4 and cond.dim() == 2:
            cond = cond[:, :, None, None].expand(-1, -1, x_a.shape[2], x_a.shape[3])
        if cond.shape[1] != self.cond_features:
            raise ValueError(f"condition has {cond.shape[1]} features, expected {self.cond_features}")
        return torch.cat([x_a, cond.to(x_a.dtype)], dim=1)

    def _scale_and_shift(self, x_a: torch.Tensor, cond: torch.Tensor | None):
        if self.kind == "mlp" and x_a.dim() != 2:
            raise ValueError(f"an 'mlp' coupling works on vectors (B, D), got shape {tuple(x_a.shape)}")
        if self.kind == "conv" and x_a.dim() != 4:
            raise ValueError(f"a 'conv' coupling works on images (B, C, H, W), got shape {tuple(x_a.shape)}")
        s_raw, t = self.net(self._net_input(x_a, cond))
        if self.scale_kind == "sigmoid":
            log_scale = torch.log(torch.sigmoid(s_raw) + 0.5)
        else:
            log_scale = torch.tanh(s_raw)
        return log_scale, t

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        _check_layout(x, self.num_features, "AffineCoupling")
        x_a, x_b = self._halves(x)
        log_scale, t = self._scale_and_shift(x_a, cond)
        y_b = x_b * torch.exp(log_scale) + t
        return self._join(x_a, y_b), log_scale.flatten(1).sum(1)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        _check_layout(y, self.num_features, "AffineCoupling")
        y_a, y_b = self._halves(y)
        log_scale, t = self._scale_and_shift(y_a, cond)
        return self._join(y_a, (y_b - t) * torch.exp(-log_scale))


# --------------------------------------------------------------------------------------------------
# Reshaping and permuting layers
# --------------------------------------------------------------------------------------------------
class Squeeze(nn.Module):
    """2x2 space-to-depth: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``; volume-preserving (logdet 0)."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze needs images (B, C, H, W) with even H and W, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, _zero_logdet(x)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if y.dim() != 4 or y.shape[1] % 4:
            raise ValueError(f"Squeeze.reverse needs images with a multiple of 4 channels, got {tuple(y.shape)}")
        b, c4, h, w = y.shape
        c = c4 // 4
        return y.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h, 2 * w)


class Permutation(nn.Module):
    """A fixed random permutation of the channels/features (dim 1); volume-preserving."""

    def __init__(self, num_features: int, generator: torch.Generator | None = None):
        super().__init__()
        self.num_features = num_features
        perm = torch.randperm(num_features, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        _check_layout(x, self.num_features, "Permutation")
        return x[:, self.perm], _zero_logdet(x)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        _check_layout(y, self.num_features, "Permutation")
        return y[:, self.inverse_perm]


Shuffle = Permutation


class Split(nn.Module):
    """Factor-out helper for multi-scale flows (not a flow layer: it changes the number of outputs).

    ``forward(x) -> (kept, factored)`` splits dim 1 into the first ``num_channels - num_factored``
    channels (kept, transformed further) and the rest (factored out); ``reverse(kept, factored) -> x``.
    With ``factor_first=True`` the first ``num_factored`` channels are factored out and the rest kept (nifr's
    ``FactorOut``).
    """

    def __init__(self, num_channels: int, num_factored: int | None = None, factor_first: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.num_factored = num_channels // 2 if num_factored is None else num_factored
        self.factor_first = factor_first
        if not 0 < self.num_factored < num_channels:
            raise ValueError(f"cannot factor out {self.num_factored} of {num_channels} channels")

    def forward(self, x: torch.Tensor):
        _check_layout(x, self.num_channels, "Split")
        if self.factor_first:
            return x[:, self.num_factored :], x[:, : self.num_factored]
        n_keep = self.num_channels - self.num_factored
        return x[:, :n_keep], x[:, n_keep:]

    def reverse(self, kept: torch.Tensor, factored: torch.Tensor) -> torch.Tensor:
        return torch.cat([factored, kept] if self.factor_first else [kept, factored], dim=1)


class FlowSequential(nn.Sequential):
    """A chain of flow layers: forward sums the logdets, reverse runs the layers backwards."""

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        logdet = _zero_logdet(x)
        for layer in self:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def reverse(self, y: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        for layer in reversed(self):
            y = layer.reverse(y, cond)
        return y


# --------------------------------------------------------------------------------------------------
# Ready-made flows
# --------------------------------------------------------------------------------------------------
class MultiScaleFlow(nn.Module):
    """Glow-like multi-scale flow on images (null-sampling's cFlow).

    Each level is ``[Squeeze, level_depth x ([ActNorm], InvConv1x1LU, AffineCoupling(conv))]``; after every
    level except the last, half of the channels are factored out. ``forward(x) -> (z, logdet)`` returns
    ``z`` flat, of shape ``(B, C*H*W)``: the factored parts in order of their levels, then the last level's
    output, each flattened (C, H, W)-major. So the last dims of ``z`` are the deepest, most global latents.
    With ``factor_out=False`` nothing is factored out: every dim passes through all levels (single-scale).
    ``factor_first=True`` factors out the first half of the channels instead of the second (nifr's order);
    ``actnorm=False`` leaves ActNorm out of the steps (nifr's cFlow).

    ``input_size`` (int or (H, W)) fixes the image size ``reverse`` rebuilds; without it ``reverse`` assumes
    square images. ``H`` and ``W`` must be divisible by ``2 ** levels``.
    """

    def __init__(
        self,
        in_channels: int,
        levels: int = 3,
        level_depth: int = 4,
        coupling_channels: int = 512,
        scale: str = "sigmoid",
        actnorm: bool = True,
        input_size: int | Sequence[int] | None = None,
        factor_out: bool = True,
        factor_first: bool = False,
    ):
        super().__init__()
        if levels < 1 or level_depth < 1:
            raise ValueError(f"need levels >= 1 and level_depth >= 1, got {levels} and {level_depth}")
        self.in_channels = in_channels
        self.num_levels = levels
        self.factor_out = factor_out
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        self.input_size = tuple(input_size) if input_size is not None else None
        self.levels = nn.ModuleList()
        self.splits = nn.ModuleList()
        channels = in_channels
        for level in range(levels):
            channels *= 4
            steps: list[nn.Module] = [Squeeze()]
            for _ in range(level_depth):
                if actnorm:
                    steps.append(ActNorm(channels))
                steps.append(InvConv1x1LU(channels))
                steps.append(AffineCoupling(channels, coupling_channels, scale=scale, kind="conv"))
            self.levels.append(FlowSequential(*steps))
            if self._splits_after(level):
                self.splits.append(Split(channels, factor_first=factor_first))
                channels -= channels // 2

    def _splits_after(self, level: int) -> bool:
        return self.factor_out and level < self.num_levels - 1

    def latent_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(C, H, W) of each part of z, in the order they are concatenated."""
        self._check_size(height, width)
        shapes = []
        channels = self.in_channels
        for level in range(self.num_levels):
            channels, height, width = channels * 4, height // 2, width // 2
            if self._splits_after(level):
                factored = channels // 2
                shapes.append((factored, height, width))
                channels -= factored
        shapes.append((channels, height, width))
        return shapes

    def _check_size(self, height: int, width: int) -> None:
        factor = 2**self.num_levels
        if height % factor or width % factor:
            raise ValueError(
                f"MultiScaleFlow with {self.num_levels} levels needs H and W divisible by {factor}, "
                f"got {height}x{width}"
            )

    @staticmethod
    def _reject_condition(cond: torch.Tensor | None) -> None:
        if cond is not None:
            raise ValueError("MultiScaleFlow is unconditional; call it without cond")

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        self._reject_condition(cond)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MultiScaleFlow expects images (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"MultiScaleFlow was built for {self.input_size} images, got {tuple(x.shape[2:])}")
        self._check_size(x.shape[2], x.shape[3])
        logdet = _zero_logdet(x)
        parts = []
        for level, flow in enumerate(self.levels):
            x, ld = flow(x)
            logdet = logdet + ld
            if self._splits_after(level):
                x, factored = self.splits[level](x)
                parts.append(factored.flatten(1))
        parts.append(x.flatten(1))
        return torch.cat(parts, dim=1), logdet

    def _image_size(self, dims: int) -> tuple[int, int]:
        if self.input_size is not None:
            return self.input_size
        side = math.isqrt(dims // self.in_channels)
        if side * side * self.in_channels != dims:
            raise ValueError(
                f"cannot infer a square {self.in_channels}-channel image from {dims} latent dims; "
                "build the MultiScaleFlow with input_size=(H, W)"
            )
        return side, side

    def reverse(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        self._reject_condition(cond)
        height, width = self._image_size(z.shape[1])
        shapes = self.latent_shapes(height, width)
        sizes = [c * h * w for c, h, w in shapes]
        if z.dim() != 2 or z.shape[1] != sum(sizes):
            raise ValueError(f"MultiScaleFlow.reverse expects z of shape (B, {sum(sizes)}), got {tuple(z.shape)}")
        parts = [p.reshape(z.shape[0], *s) for p, s in zip(z.split(sizes, dim=1), shapes)]
        x = parts.pop()
        for level in reversed(range(self.num_levels)):
            if self._splits_after(level):
                x = self.splits[level].reverse(x, parts.pop())
            x = self.levels[level].reverse(x)
        return x


def iin_block(
    num_features: int, hidden: int = 512, depth: int = 2, scale: str = "tanh", cond_features: int = 0
) -> FlowSequential:
    """One IIN block: ActNorm, two affine couplings with swapped halves, a fixed random permutation."""
    return FlowSequential(
        ActNorm(num_features),
        AffineCoupling(num_features, hidden, scale, "mlp", cond_features, swap=False, depth=depth),
        AffineCoupling(num_features, hidden, scale, "mlp", cond_features, swap=True, depth=depth),
        Permutation(num_features),
    )


class VectorFlow(FlowSequential):
    """IIN's transformer on vectors ``(B, D)``: ``n_blocks`` x :func:`iin_block` (IIN: 12 blocks, D = 64)."""

    def __init__(
        self,
        num_features: int,
        n_blocks: int = 12,
        hidden: int = 512,
        depth: int = 2,
        scale: str = "tanh",
        cond_features: int = 0,
    ):
        super().__init__(*[iin_block(num_features, hidden, depth, scale, cond_features) for _ in range(n_blocks)])
        self.num_features = num_features

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None):
        if x.dim() != 2:
            raise ValueError(
                f"VectorFlow expects vectors (B, {self.num_features}), got {tuple(x.shape)}; "
                "flatten (B, D, 1, 1) codes with x.flatten(1)"
            )
        return super().forward(x, cond)
