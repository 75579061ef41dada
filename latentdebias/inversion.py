"""GAN inversion by optimisation: the latent z whose image G(z) is closest to a real image.

Each image's latent is optimised on its own loss, mean squared pixel error plus a small pull towards the prior,
``mse(G(z), x) + prior_weight * mean(z^2)``, with Adam from a random start; the best of ``restarts`` starts is kept.
The generator must be in eval mode (BatchNorm on running statistics), so that the latents of one batch do not
interact.
"""
from __future__ import annotations

from typing import Callable

import torch

INVERSION_DEFAULTS = {"steps": 200, "lr": 0.05, "prior_weight": 1e-3, "restarts": 1, "batch_size": 100}


def inversion_losses(generator: Callable, z: torch.Tensor, images: torch.Tensor, prior_weight: float) -> tuple:
    """Per-image objective and per-image reconstruction error (mean squared pixel error)."""
    reconstruction = ((generator(z) - images) ** 2).flatten(1).mean(1)
    return reconstruction + prior_weight * (z ** 2).mean(1), reconstruction


def invert(generator: Callable, images: torch.Tensor, dim_z: int, steps: int = 200, lr: float = 0.05,
           prior_weight: float = 1e-3, restarts: int = 1,
           rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents (B, dim_z) for ``images`` (B, C, H, W) in [-1, 1], and their reconstruction errors (B,)."""
    if steps < 1 or restarts < 1:
        raise ValueError(f"inversion needs steps >= 1 and restarts >= 1, got {steps} and {restarts}")
    images = images.detach()
    best_z = best_error = None
    with torch.enable_grad():
        for _ in range(restarts):
            z = torch.randn(len(images), dim_z, generator=rng).to(images.device).requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=lr)
            for _ in range(steps):
                objective, _ = inversion_losses(generator, z, images, prior_weight)
                optimizer.zero_grad(set_to_none=True)
                objective.sum().backward()  # a sum, so every latent follows its own image's gradient
                optimizer.step()
            with torch.no_grad():
                _, error = inversion_losses(generator, z, images, prior_weight)
            if best_z is None:
                best_z, best_error = z.detach().clone(), error
            else:
                better = error < best_error
                best_z[better], best_error[better] = z.detach()[better], error[better]
    return best_z, best_error
