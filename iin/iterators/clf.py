"""Trainer of the classifier first stage (``iin.models.clf.Model``): cross-entropy on the batch's ``class``."""
from __future__ import annotations

import torch.nn.functional as F

from fairkit.metrics.callbacks import accuracy_callback
from iin.iterators.base import Iterator


class Trainer(Iterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = self.adam(self.model.parameters())

    def get_callbacks(self) -> dict:
        return {**super().get_callbacks(), "accuracy": accuracy_callback}

    def step_op(self, model, image, **batch):
        label = batch["class"]

        def train_op():
            with self.autocast():
                logits = model(image)
                loss = F.cross_entropy(logits, label)
            lr = self.update_lr(self.optimizer)
            self.optimize(loss, self.optimizer)
            return {"loss": loss.detach(), "accuracy": (logits.argmax(1) == label).float().mean(), "lr": lr}

        def log_op():
            logits = model(image)
            return {"scalars": {"loss": F.cross_entropy(logits, label),
                                "accuracy": (logits.argmax(1) == label).float().mean()},
                    "images": {"inputs": image}}

        def eval_op():
            logits = model(image)
            return {"pred": logits.argmax(1), "label": label, "loss": F.cross_entropy(logits, label)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
