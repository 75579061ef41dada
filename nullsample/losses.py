"""Training objectives: the flow's NLL per dimension (bits or nats) and the cVAE's ELBO terms."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per example, (B,)."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)


NLL_UNITS = ("bits", "nats")


def nll_per_dim(z: torch.Tensor, logdet: torch.Tensor, *, n_bits: int | None, units: str) -> torch.Tensor:
    """-log P(x) / D per example, in ``units`` ("bits": log base 2; "nats": natural log, nifr's).

    With ``n_bits`` the inputs were quantised to ``n_bits`` and dequantised with uniform noise: the density of the
    dequantised input is p(x) = N(z) |det dz/dx|, and a bin of width 2**-n_bits per dimension has probability about
    p(x) 2**(-n_bits D), hence the added ``n_bits`` bits per dimension. With ``n_bits=None`` it is the density of
    exact inputs, -log p(x) / D, unbounded below on discrete data.
    """
    if units not in NLL_UNITS:
        raise ValueError(f"Trainer/nll_units={units!r} must be one of {NLL_UNITS}")
    dims = z[0].numel()
    nats = -(standard_normal_log_prob(z) + logdet) / dims
    if n_bits is not None:
        nats = nats + n_bits * math.log(2)
    return nats / math.log(2) if units == "bits" else nats


def vae_terms(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor):
    """(reconstruction, KL) per example and per pixel dimension: Bernoulli cross-entropy of the pixel intensities
    (x in [-1, 1], targets (x + 1) / 2) and KL(N(mu, exp(logvar)) || N(0, I))."""
    dims = x[0].numel()
    target = (x + 1.0) / 2.0
    reconstruction = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return reconstruction / dims, kl / dims
