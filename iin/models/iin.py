"""Stage 2: invertible networks T on the frozen codes z of a first stage (``Transformer`` section).

``VectorTransformer``: ``n_flow`` IIN blocks (fairkit's :class:`~fairkit.nets.VectorFlow`: ActNorm, two affine
couplings with swapped halves and MLP nets, a fixed permutation). ``FactorTransformer`` adds the split of T(z) into
factors: ``factor_config`` sizes, else ``n_factors`` chunks as ``torch.chunk`` cuts them, as the original does (each
ceil(D / n_factors) wide, the last one (the residual) what is left: 64 in 3 -> 22, 22, 20).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edflow.config import ConfigError, section
from fairkit.nets import VectorFlow

TRANSFORMER_DEFAULTS = {"in_channel": 64, "n_flow": 12, "hidden_depth": 2, "hidden_dim": 512}
FACTOR_DEFAULTS = {**TRANSFORMER_DEFAULTS, "n_factors": None, "factor_config": None}


class VectorTransformer(nn.Module):
    """``forward(z) -> (T(z), logdet)`` and ``reverse(T(z)) -> z``; z of shape (B, D) or (B, D, 1, 1), the output
    in the same layout."""

    defaults = TRANSFORMER_DEFAULTS

    def __init__(self, config: dict):
        super().__init__()
        self.options = section(config, "Transformer", self.defaults)
        self.in_channel = int(self.options["in_channel"])
        self.flow = VectorFlow(self.in_channel, n_blocks=int(self.options["n_flow"]),
                               hidden=int(self.options["hidden_dim"]), depth=int(self.options["hidden_depth"]),
                               scale="tanh")

    def _flat(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() not in (2, 4) or z[0].numel() != self.in_channel:
            raise ValueError(f"the transformer works on codes (B, {self.in_channel}) or (B, {self.in_channel}, 1, 1), "
                             f"got {tuple(z.shape)}; set Transformer/in_channel to the first stage's code size")
        return z.reshape(z.shape[0], self.in_channel)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, logdet = self.flow(self._flat(z))
        return out.reshape(z.shape), logdet

    def reverse(self, out: torch.Tensor) -> torch.Tensor:
        return self.flow.reverse(self._flat(out)).reshape(out.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes T^-1(eps), eps ~ N(0, I): shape (n, D)."""
        device = next(self.parameters()).device
        return self.reverse(torch.randn(n, self.in_channel, generator=generator, device=device))


def factor_sizes(in_channel: int, n_factors: int | None, factor_config) -> list[int]:
    """Sizes of the factors T(z) is split into; the last is the residual."""
    if factor_config:
        sizes = [int(s) for s in factor_config]
        if sum(sizes) != in_channel or min(sizes) < 1:
            raise ConfigError(f"Transformer/factor_config {sizes} must be positive sizes summing to "
                              f"Transformer/in_channel = {in_channel}")
        if n_factors and int(n_factors) != len(sizes):
            raise ConfigError(f"Transformer/n_factors = {n_factors} but factor_config lists {len(sizes)} sizes; "
                              f"make them agree (or drop n_factors)")
        return sizes
    n = int(n_factors or 0)
    if not 2 <= n <= in_channel:
        raise ConfigError(f"Transformer/n_factors must be between 2 (one factor and the residual) and "
                          f"in_channel = {in_channel}, got {n_factors}")
    # torch.chunk's sizes (the original splits with it): ceil(D / n) each, the remainder last
    width = -(-in_channel // n)
    sizes = [min(width, in_channel - start) for start in range(0, in_channel, width)]
    if len(sizes) != n:
        raise ConfigError(f"torch.chunk cuts in_channel = {in_channel} into {len(sizes)} chunks of at most {width}, "
                          f"not Transformer/n_factors = {n}; list the sizes in Transformer/factor_config instead")
    return sizes


class FactorTransformer(VectorTransformer):
    """A VectorTransformer whose output splits into semantic factors and a residual (the last factor)."""

    defaults = FACTOR_DEFAULTS

    def __init__(self, config: dict):
        super().__init__(config)
        self.factor_sizes = factor_sizes(self.in_channel, self.options["n_factors"], self.options["factor_config"])
        self.n_factors = len(self.factor_sizes)

    def split(self, out: torch.Tensor) -> list[torch.Tensor]:
        """T(z) as a list of factors, each (B, size)."""
        return list(self._flat(out).split(self.factor_sizes, dim=1))

    def join(self, factors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(factors, dim=1)

    def swap(self, out_a: torch.Tensor, out_b: torch.Tensor, factor: int) -> torch.Tensor:
        """T-codes of ``a`` with factor ``factor`` taken from ``b`` (both (B, D); rows pair up)."""
        parts = self.split(out_a)
        parts[factor] = self.split(out_b)[factor]
        return self.join(parts).reshape(out_a.shape)
