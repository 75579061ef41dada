"""fairgen's objectives.

- Density-ratio classifier: binary cross-entropy of p(reference | x) on class-balanced batches. With equal class
  priors the Bayes-optimal logit is log p_ref(x) - log p_bias(x), so r(x) = exp(logit) = p(1|x) / p(0|x).
- Importance-weighted discriminator (hinge): L_D = mean_i[w_i relu(1 - D(x_i))] + mean_j[relu(1 + D(G(z_j)))]
  with w_i = r(x_i)^alpha (``alpha`` flattens the weights; reference examples have r = 1); L_G = -mean D(G(z)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fairkit.nets.gan import d_hinge_loss, g_hinge_loss

__all__ = ["ratio_classifier_loss", "density_ratio", "importance_weights", "discriminator_loss", "generator_loss"]


def ratio_classifier_loss(logits: torch.Tensor, is_reference: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the logit of p(reference | x) against 1 (reference) / 0 (biased)."""
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), is_reference.reshape(-1).float())


def density_ratio(logits: torch.Tensor, is_reference: torch.Tensor | None = None) -> torch.Tensor:
    """r(x) = p(1|x) / p(0|x) = exp(logit); 1 for reference examples, whose weight the method fixes to 1."""
    ratio = torch.exp(logits.float())
    if is_reference is not None:
        ratio = torch.where(is_reference.bool(), torch.ones_like(ratio), ratio)
    return ratio


def importance_weights(ratio: torch.Tensor | None, alpha: float = 1.0, reweight: bool = True) -> torch.Tensor | None:
    """r^alpha, or None (unit weights) for the equal-weight baseline (``reweight`` false or no ratios)."""
    if not reweight or ratio is None:
        return None
    if alpha < 0:
        raise ValueError(f"the flattening exponent alpha must be >= 0 (0: unit weights, 1: full ratio), got {alpha}")
    if torch.any(ratio < 0):
        raise ValueError("density ratios must be non-negative")
    return ratio ** alpha


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    """The hinge loss with per-example weights on the real term only (see the module's docstring)."""
    return d_hinge_loss(real_logits, fake_logits, weights)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return g_hinge_loss(fake_logits)
