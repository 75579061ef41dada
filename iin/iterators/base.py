"""What IIN's trainers share: Adam with betas (0.5, 0.9), the learning rate ``base_learning_rate * batch_size``
(or ``learning_rate``) decayed linearly to 0 from ``decay_start`` to the last step, batches moved to the device
(pair batches are nested dicts), and seeded noise for evaluation samples."""
from __future__ import annotations

from typing import Mapping

import torch

from edflow import TemplateIterator
from edflow.config import ConfigError
from edflow.runner_keys import runner_value
from fairkit.metrics.callbacks import fid_preflight

ADAM_BETAS = (0.5, 0.9)


def learning_rate(config: Mapping) -> float:
    if config.get("learning_rate") is not None:
        return float(config["learning_rate"])
    if config.get("base_learning_rate") is not None:
        return float(config["base_learning_rate"]) * int(runner_value(config, "batch_size"))
    raise ConfigError("set base_learning_rate (multiplied by batch_size, as IIN does) or learning_rate")


def decay_factor(step: int, decay_start: int, num_steps: int) -> float:
    """1 until ``decay_start``, then linearly down to 0 at ``num_steps``."""
    if num_steps <= decay_start:
        return 1.0
    return 1.0 - min(max((step - decay_start) / (num_steps - decay_start), 0.0), 1.0)


def to_device(value, device: torch.device):
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    return value.to(device, non_blocking=True) if torch.is_tensor(value) else value


class Iterator(TemplateIterator):
    """Base of IIN's trainers: ``self.learning_rate``, ``adam(params)``, ``update_lr()`` and ``eval_generator``."""

    # edflow's preflight: the FID classifier run, or the Inception weights and torch-fidelity, before a run starts
    preflight = staticmethod(fid_preflight)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.learning_rate = learning_rate(self.config)
        self.num_steps = self.planned_steps()
        self.decay_start = int(self.config.get("decay_start") or self.num_steps)
        self.lr_factors: dict[int, float] = {}

    def planned_steps(self) -> int:
        if self.config.get("num_steps"):
            return int(self.config["num_steps"])
        train = self.datasets.get("train")
        if train is None:
            return 0
        per_epoch = len(train) // self.batch_size(train=True)
        return int(runner_value(self.config, "num_epochs")) * max(per_epoch, 1)

    def adam(self, params, lr_factor: float = 1.0) -> torch.optim.Adam:
        optimizer = torch.optim.Adam(params, lr=self.learning_rate * lr_factor, betas=ADAM_BETAS)
        self.lr_factors[id(optimizer)] = lr_factor
        return optimizer

    def update_lr(self, *optimizers: torch.optim.Optimizer) -> float:
        factor = decay_factor(self.get_global_step(), self.decay_start, self.num_steps)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = factor * self.learning_rate * self.lr_factors.get(id(optimizer), 1.0)
        return factor * self.learning_rate

    def to_device(self, batch: Mapping) -> dict:
        return to_device(batch, self.device)

    def eval_generator(self, index: torch.Tensor | None) -> torch.Generator:
        """Noise for evaluation samples that depends only on the seed and the batch's first example, so samples
        are comparable across evaluations and the training RNG stream is left alone."""
        first = int(index.reshape(-1)[0]) if index is not None and torch.is_tensor(index) else 0
        return noise_generator(seed=int(runner_value(self.config, "seed")), first_index=first, device=self.device)


def noise_generator(*, seed: int, first_index: int, device="cpu") -> torch.Generator:
    """The generator of an evaluation batch's sample noise (also what iin.scripts.figures redraws samples.png with)."""
    generator = torch.Generator(device)
    generator.manual_seed(seed * 1_000_003 + first_index)
    return generator
