"""The adversary: gradient reversal and an ensemble of MLP discriminators predicting s, with random resets."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from fairkit.nets import MLP


class GradReverse(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``x`` unchanged, but what lies before it receives the negated (scaled) gradient: the discriminators
    descend on their loss while the encoder ascends on it, with one backward pass."""
    return GradReverse.apply(x, scale)


class DiscriminatorEnsemble(nn.Module):
    """``num_discs`` MLPs (Linear, BatchNorm, ReLU per hidden layer) that each predict s from the same input."""

    def __init__(self, in_features: int, num_classes: int, num_discs: int = 3, hidden: Sequence[int] = (512,)):
        super().__init__()
        if num_discs < 1:
            raise ValueError(f"Adversary/num_discs={num_discs} must be at least 1")
        if num_classes < 2:
            raise ValueError(f"Adversary/num_s={num_classes}: s needs at least 2 classes")
        self.num_classes = num_classes
        self.members = nn.ModuleList(MLP(in_features, num_classes, hidden=tuple(hidden), batch_norm=True)
                                     for _ in range(num_discs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of every member, (num_discs, B, num_classes)."""
        return torch.stack([member(features) for member in self.members])

    def frozen(self, features: torch.Tensor) -> torch.Tensor:
        """Logits as ``forward``, but no gradient reaches the members' parameters and BatchNorm's running
        statistics stay untouched: the encoder's view of the adversary."""
        params = {name: p.detach() for name, p in self.named_parameters()}
        buffers = {name: b.clone() for name, b in self.named_buffers()}
        return functional_call(self, {**params, **buffers}, (features,))

    def loss(self, logits: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Cross-entropy averaged over the members."""
        if s.min() < 0 or s.max() >= self.num_classes:
            raise ValueError(f"s holds values {int(s.min())}..{int(s.max())}, but the adversary predicts "
                             f"{self.num_classes} classes; set Adversary/num_s to the number of values of s")
        return F.cross_entropy(logits.flatten(0, 1), s.repeat(logits.shape[0]))

    def reset_randomly(self, probability: float, optimizer: torch.optim.Optimizer | None = None) -> list[int]:
        """Re-initialise each member with ``probability`` (drawn from torch's RNG, so resumed runs agree) and drop
        its optimiser state; returns the indices of the members that were reset."""
        draws = torch.rand(len(self.members))
        reset = [i for i, draw in enumerate(draws.tolist()) if draw < probability]
        for i in reset:
            reset_member(self.members[i], optimizer)
        return reset


def cross_entropy_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the predicted distributions to the uniform one, -mean_k log p_k (>= ln K, equal at
    p = uniform). Its gradient w.r.t. the logits is (p - 1/K) / N: it pulls predictions toward chance and, unlike an
    ascended cross-entropy, gives nothing to gain from making the adversary confidently wrong."""
    return -F.log_softmax(logits, dim=-1).mean()


def batch_probe_fit(features: torch.Tensor, s: torch.Tensor, num_classes: int, ridge: float = 0.1) -> torch.Tensor:
    """How well a linear probe fitted on one half of the batch predicts one-hot s on the other half: R^2 of a ridge
    regression (features standardised over the batch, penalty ``ridge`` times the dimension), cross-fitted both ways
    and averaged, clamped at 0. Refitted in closed form on every batch, it cannot be dodged the way trained
    discriminators can; differentiable with respect to ``features``."""
    if len(features) < 4:
        raise ValueError(f"a batch of {len(features)} is too small for a cross-fitted probe; use at least 4")
    z = features.flatten(1)
    z = (z - z.mean(0)) / (z.std(0) + 1e-3)  # per dim, so that shrinking a dim does not hide it
    y = F.one_hot(s, num_classes).to(z.dtype)
    y = y - y.mean(0)
    half = len(z) // 2
    halves = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
    fits = []
    for fit_on, test_on in halves:
        gram = z[fit_on] @ z[fit_on].T + ridge * z.shape[1] * torch.eye(len(z[fit_on]), dtype=z.dtype)
        prediction = z[test_on] @ z[fit_on].T @ torch.linalg.solve(gram, y[fit_on])
        residual = (y[test_on] - prediction).pow(2).sum() / y[test_on].pow(2).sum().clamp_min(1e-12)
        fits.append(1.0 - residual)
    return torch.stack(fits).mean().clamp_min(0.0)


def reset_member(member: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    for module in member.modules():
        if module is not member and hasattr(module, "reset_parameters"):
            module.reset_parameters()  # BatchNorm's also resets its running statistics
    if optimizer is not None:
        for parameter in member.parameters():
            optimizer.state.pop(parameter, None)
