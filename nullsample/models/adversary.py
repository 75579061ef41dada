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


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(BN(Linear(ReLU(BN(x)))))), the last Linear initialised within +-1e-3, so that the block
    starts as (almost) the identity; BatchNorm's eps 1e-3 (nifr's ``ResidualBlock``)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm_in, self.norm_mid = nn.BatchNorm1d(width, eps=1e-3), nn.BatchNorm1d(width, eps=1e-3)
        self.linear_in, self.linear_out = nn.Linear(width, width), nn.Linear(width, width)
        self.near_zero_init()

    def near_zero_init(self) -> None:
        nn.init.uniform_(self.linear_out.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.linear_out.bias, -1e-3, 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(F.relu(self.norm_in(x)))
        return x + self.linear_out(F.relu(self.norm_mid(h)))


class ResidualDiscriminator(nn.Module):
    """nifr's discriminator: Linear(in, width), ``blocks`` :class:`ResidualBlock` s, Linear(width, classes); with
    its blocks near the identity it starts as a linear read-out of its input."""

    def __init__(self, in_features: int, num_classes: int, width: int = 512, blocks: int = 1):
        super().__init__()
        self.initial = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.final = nn.Linear(width, num_classes)

    def reset_parameters(self) -> None:
        """Every layer re-initialised as when built (the blocks' last layers near zero again)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for block in self.blocks:
            block.near_zero_init()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.blocks(self.initial(x.flatten(1))))


DISCRIMINATOR_ARCHS = ("mlp", "residual")


class DiscriminatorEnsemble(nn.Module):
    """``num_discs`` discriminators that each predict s from the same input: ``arch="mlp"``, MLPs (Linear,
    BatchNorm, ReLU per width in ``hidden``), or ``"residual"``, nifr's :class:`ResidualDiscriminator` of width
    ``hidden[0]`` with ``blocks`` residual blocks."""

    def __init__(self, in_features: int, num_classes: int, num_discs: int = 3, hidden: Sequence[int] = (512,),
                 arch: str = "mlp", blocks: int = 1):
        super().__init__()
        if num_discs < 1:
            raise ValueError(f"Adversary/num_discs={num_discs} must be at least 1")
        if num_classes < 2:
            raise ValueError(f"Adversary/num_s={num_classes}: s needs at least 2 classes")
        if arch not in DISCRIMINATOR_ARCHS:
            raise ValueError(f"Adversary/arch={arch!r} must be one of {DISCRIMINATOR_ARCHS}")
        if arch == "residual" and len(hidden) != 1:
            raise ValueError(f"Adversary/hidden={list(hidden)}: a residual discriminator has one width, e.g. [512]")
        self.num_classes = num_classes
        if arch == "mlp":
            self.members = nn.ModuleList(MLP(in_features, num_classes, hidden=tuple(hidden), batch_norm=True)
                                         for _ in range(num_discs))
        else:
            self.members = nn.ModuleList(ResidualDiscriminator(in_features, num_classes, int(hidden[0]), int(blocks))
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


def ridge_probe_r2(train_z: torch.Tensor, train_s: torch.Tensor, test_z: torch.Tensor, test_s: torch.Tensor,
                   num_classes: int, ridge: float = 1.0) -> torch.Tensor:
    """R^2 on (test_z, test_s) of a ridge regression of one-hot s on the features, fitted on (train_z, train_s):
    features standardised with the training statistics, penalty ``ridge`` times the dimension, solved in the dual
    (cheap when there are fewer examples than dimensions). Differentiable in ``test_z``; clamped at 0, so that
    making the probe wrong earns nothing."""
    train_z, test_z = train_z.flatten(1), test_z.flatten(1)
    mean, std = train_z.mean(0), train_z.std(0) + 1e-3  # per dim, so that shrinking a dim does not hide it
    train_z, test_z = (train_z - mean) / std, (test_z - mean) / std
    train_y = F.one_hot(train_s, num_classes).to(train_z.dtype)
    label_mean = train_y.mean(0)
    eye = torch.eye(len(train_z), dtype=train_z.dtype, device=train_z.device)
    gram = train_z @ train_z.T + ridge * train_z.shape[1] * eye
    weights = train_z.T @ torch.linalg.solve(gram, train_y - label_mean)
    test_y = F.one_hot(test_s, num_classes).to(test_z.dtype) - label_mean
    residual = (test_y - test_z @ weights).pow(2).sum() / test_y.pow(2).sum().clamp_min(1e-12)
    return (1.0 - residual).clamp_min(0.0)


class ProbeBank(nn.Module):
    """The most recent ``size`` detached adversary inputs and their s (buffers, so checkpoints keep them and a
    resumed run continues exactly). ``r2`` fits a fresh linear probe on the bank and scores it on the current batch:
    refitted in closed form on every step, it cannot be outrun the way trained discriminators can (an encoder may
    still move s where no linear read-out sees it)."""

    def __init__(self, in_features: int, size: int = 512):
        super().__init__()
        self.register_buffer("features", torch.zeros(size, in_features))
        self.register_buffer("labels", torch.zeros(size, dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def push(self, features: torch.Tensor, s: torch.Tensor) -> None:
        size, n = len(self.features), min(len(features), len(self.features))
        index = (self.count + torch.arange(n, device=self.count.device)) % size
        self.features[index] = features[-n:].detach().flatten(1).to(self.features.dtype)
        self.labels[index] = s[-n:]
        self.count += n

    def r2(self, features: torch.Tensor, s: torch.Tensor, num_classes: int, ridge: float = 1.0) -> torch.Tensor:
        """The held-out R^2 of the bank's probe on this batch (0 until the bank is full), then the batch joins
        the bank."""
        if self.count >= len(self.features):
            fit = ridge_probe_r2(self.features, self.labels, features, s, num_classes, ridge)
        else:
            fit = features.sum() * 0.0
        if self.training:
            self.push(features, s)
        return fit


def reset_member(member: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    if hasattr(member, "reset_parameters"):  # a member with its own initialisation (ResidualDiscriminator)
        member.reset_parameters()
    else:
        for module in member.modules():
            if module is not member and hasattr(module, "reset_parameters"):
                module.reset_parameters()  # BatchNorm's also resets its running statistics
    if optimizer is not None:
        for parameter in member.parameters():
            optimizer.state.pop(parameter, None)
