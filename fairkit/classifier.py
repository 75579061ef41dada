"""The supervised classifier trainer that the methods' classifier stages share.

:class:`ClassifierTrainer` runs one optimiser on ``loss(model(image), label)``; a stage sets ``self.optimizer`` (and,
if it anneals, ``self.scheduler``, stepped after every optimiser step) in its ``__init__`` and overrides the hooks it
needs (:class:`BinaryClassifierTrainer` sets the loss and accuracy for one logit per 0/1 label):

- :attr:`label_key` / :meth:`label`: the batch's label (default ``batch["class"]``);
- :meth:`loss` and :meth:`correct`: cross-entropy and argmax accuracy by default;
- :meth:`before_optimize`: e.g. a learning-rate decay set before each step; :meth:`train_result`: what train_op
  returns (default the loss);
- :meth:`log_scalars`, :attr:`logged_images`: extra logged scalars, how many inputs are logged (None: all, 0: none);
- :meth:`eval_outputs`: per-example evaluation outputs (default the argmax prediction and the label).

:attr:`use_autocast` runs the training forward pass under the runner's mixed precision (``amp``).
"""
from __future__ import annotations

import contextlib
from typing import Mapping

import torch
import torch.nn.functional as F

from edflow import TemplateIterator

__all__ = ["ClassifierTrainer", "BinaryClassifierTrainer", "binary_cross_entropy", "binary_correct"]


def binary_cross_entropy(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against 0/1 labels of the same shape, computed in float32."""
    return F.binary_cross_entropy_with_logits(logits.float(), label.float())


def binary_correct(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Whether a logit's sign (positive: 1) matches its 0/1 label."""
    return (logits > 0).to(label.dtype) == label


class ClassifierTrainer(TemplateIterator):
    """Supervised classifier training with small hooks (see the module's docstring)."""

    label_key = "class"
    use_autocast = False
    logged_images: int | None = 16

    # --- hooks ------------------------------------------------------------------------------------------------------
    def label(self, batch: Mapping) -> torch.Tensor:
        if self.label_key not in batch:
            raise KeyError(f"the batch has no label {self.label_key!r}; it holds {sorted(batch)}")
        return batch[self.label_key]

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, label)

    def correct(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return logits.argmax(1) == label

    def before_optimize(self) -> None:
        """Called after the forward pass, before the optimiser's step."""

    def train_result(self, loss: torch.Tensor, logits: torch.Tensor, label: torch.Tensor):
        return loss

    def log_scalars(self, batch: Mapping) -> dict:
        return {}

    def eval_outputs(self, model, image: torch.Tensor, label: torch.Tensor, batch: Mapping) -> dict:
        return {"pred": model(image).argmax(1), "label": label}

    # --- the step ---------------------------------------------------------------------------------------------------
    def step_op(self, model, image, **batch):
        label = self.label(batch)

        def train_op():
            with self.autocast() if self.use_autocast else contextlib.nullcontext():
                logits = model(image)
                loss = self.loss(logits, label)
            self.before_optimize()
            self.optimize(loss, self.optimizer)
            scheduler = getattr(self, "scheduler", None)
            if scheduler is not None:
                scheduler.step()
            return self.train_result(loss, logits, label)

        def log_op():
            with torch.no_grad():
                logits = model(image)
            scalars = {"loss": self.loss(logits, label), "accuracy": self.correct(logits, label).float().mean(),
                       **self.log_scalars(batch)}
            if self.logged_images == 0:
                return {"scalars": scalars}
            return {"scalars": scalars, "images": {"inputs": image[:self.logged_images]}}

        def eval_op():
            return self.eval_outputs(model, image, label, batch)

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}


class BinaryClassifierTrainer(ClassifierTrainer):
    """One logit per 0/1 label: binary cross-entropy, and a logit's sign as the prediction."""

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return binary_cross_entropy(logits, label)

    def correct(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return binary_correct(logits, label)
