"""Stage-2 losses: negative log-likelihoods of T(z) (up to constants).

``Loss`` (unsupervised): mean over the batch of 0.5 ||T(z)||^2 - log|det J|.

``FactorLoss`` (pairs x1, x2 sharing factor F; ``Loss/rho``, 0.975): with m_k = 1[F = k],

    L = E[0.5 ||z1||^2 - log|J1|] + E[sum_k 0.5 ||z2_k - m_k rho z1_k||^2 / (1 - m_k rho^2) - log|J2|],

i.e. z1 ~ N(0, I) and, given z1, the shared factor of z2 is N(rho z1_F, (1 - rho^2) I) and the others N(0, I).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from edflow.config import ConfigError, section


def gaussian_nll(out: torch.Tensor, logdet: torch.Tensor) -> torch.Tensor:
    """Per example 0.5 ||out||^2 - logdet."""
    return 0.5 * out.flatten(1).pow(2).sum(1) - logdet


class Loss(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        section(config or {}, "Loss", {})  # the unsupervised loss has no options; a misspelt key is an error

    def forward(self, out: torch.Tensor, logdet: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss = gaussian_nll(out, logdet).mean()
        dims = out[0].numel()
        return loss, {"loss": loss.detach(), "logdet": logdet.detach().mean(),
                      "nll_per_dim": loss.detach() / dims}


class FactorLoss(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        self.rho = float(section(config or {}, "Loss", {"rho": 0.975})["rho"])
        if not 0 <= self.rho < 1:
            raise ConfigError(f"Loss/rho must lie in [0, 1), got {self.rho}")

    def forward(self, out1: torch.Tensor, logdet1: torch.Tensor, out2: torch.Tensor, logdet2: torch.Tensor,
                factor: torch.Tensor, factor_sizes: list[int]) -> tuple[torch.Tensor, dict]:
        out1, out2 = out1.flatten(1), out2.flatten(1)
        n_semantic = len(factor_sizes) - 1
        if factor.min() < 0 or factor.max() >= n_semantic:
            raise ValueError(f"pair factors must be semantic factors 0..{n_semantic - 1} (the last of the "
                             f"{len(factor_sizes)} factors is the residual), got {factor.unique().tolist()}")
        # m per dimension: 1 on the dimensions of each pair's shared factor
        owner = torch.repeat_interleave(torch.arange(len(factor_sizes), device=out1.device),
                                        torch.as_tensor(factor_sizes, device=out1.device))
        shared = (owner[None, :] == factor.to(out1.device)[:, None]).to(out1.dtype)
        mean2 = shared * self.rho * out1
        var2 = 1.0 - shared * self.rho ** 2
        nll1 = gaussian_nll(out1, logdet1)
        nll2 = (0.5 * (out2 - mean2).pow(2) / var2).sum(1) - logdet2
        loss = (nll1 + nll2).mean()
        return loss, {"loss": loss.detach(), "nll1": nll1.detach().mean(), "nll2": nll2.detach().mean(),
                      "logdet": 0.5 * (logdet1 + logdet2).detach().mean()}
