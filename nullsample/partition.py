"""The latent partition z = [z_-s, z_s]: z_s are the last ``round(zs_frac * D)`` dimensions of the flat latent
(the deepest level of a multi-scale flow comes last), z_-s the rest."""
from __future__ import annotations

import torch


def zs_size(num_dims: int, zs_frac: float) -> int:
    """How many dims z_s has: round(zs_frac * D); it must leave at least one dim on either side."""
    size = int(round(zs_frac * num_dims))
    if not 0 < size < num_dims:
        raise ValueError(f"zs_frac={zs_frac} gives {size} of {num_dims} latent dims to z_s; choose zs_frac so that "
                         f"between 1 and {num_dims - 1} dims are z_s (e.g. {1.5 / num_dims:.2g})")
    return size


def split_latent(z: torch.Tensor, zs_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_-s, z_s) of flat latents (B, D)."""
    return z[:, : z.shape[1] - zs_dims], z[:, z.shape[1] - zs_dims:]


def zero_s(z: torch.Tensor, zs_dims: int) -> torch.Tensor:
    """[z_-s, 0]: the latent with its s-part set to zero (what the adversary sees, and what null-sampling inverts)."""
    z_not_s, z_s = split_latent(z, zs_dims)
    return torch.cat([z_not_s, torch.zeros_like(z_s)], dim=1)
