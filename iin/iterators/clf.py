"""Trainer of the classifier first stage (``iin.models.clf.Model``): cross-entropy on the batch's ``class``."""
from __future__ import annotations

import torch.nn.functional as F

from fairkit.classifier import ClassifierTrainer
from fairkit.metrics.callbacks import accuracy_callback
from iin.iterators.base import Iterator


class Trainer(ClassifierTrainer, Iterator):
    """fairkit's classifier trainer with IIN's Adam and learning-rate decay; logs every input image."""

    use_autocast = True
    logged_images = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = self.adam(self.model.parameters())

    def get_callbacks(self) -> dict:
        return {**super().get_callbacks(), "accuracy": accuracy_callback}

    def before_optimize(self) -> None:
        self._lr = self.update_lr(self.optimizer)

    def train_result(self, loss, logits, label) -> dict:
        return {"loss": loss.detach(), "accuracy": self.correct(logits, label).float().mean(), "lr": self._lr}

    def eval_outputs(self, model, image, label, batch) -> dict:
        logits = model(image)
        return {"pred": logits.argmax(1), "label": label, "loss": F.cross_entropy(logits, label)}
