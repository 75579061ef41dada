"""Input quantisation of the flow: images are cut to ``n_bits`` per channel and dequantised with uniform noise
inside their bin, so that the flow's continuous density turns into a discrete likelihood over bins."""
from __future__ import annotations

import torch


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images to [0, 1]."""
    return (x + 1.0) / 2.0


def to_signed_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images to [-1, 1]."""
    return x * 2.0 - 1.0


def quantize(x: torch.Tensor, n_bits: int) -> torch.Tensor:
    """[0, 1] images to the lower edges k / 2**n_bits of their bins, k = floor(uint8 value / 2**(8 - n_bits))."""
    if not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits={n_bits} must lie between 1 and 8")
    as_uint8 = torch.round(x.clamp(0.0, 1.0) * 255.0)  # the pixel as it would be stored
    return torch.floor(as_uint8 / 2 ** (8 - n_bits)) / 2**n_bits


def dequantize(bins: torch.Tensor, n_bits: int, noise: bool) -> torch.Tensor:
    """Bin edges plus U(0, 1/2**n_bits) noise (training), or plus half a bin (the bin centre: deterministic use)."""
    width = 1.0 / 2**n_bits
    if noise:
        return bins + width * torch.rand_like(bins)
    return bins + width / 2
