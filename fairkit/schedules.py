"""Learning-rate schedules built in an iterator's ``__init__``, for training and evaluation runs alike."""
from __future__ import annotations

import torch


def cosine_annealing(iterator, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine decay to zero over the run's training steps.

    Evaluation runs (``edflow -p <run>``, ``edeval``) build no training set, so its length is unknown there. The
    schedule is still made, with a placeholder length: the run's checkpoints hold its state, and a checkpoint whose
    state has no home in the iterator is refused; restoring that state replaces the placeholder (T_max included).
    """
    steps = iterator.num_training_steps() if "train" in iterator.datasets else 1
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
