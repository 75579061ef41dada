"""EnD's trainer: cross-entropy + alpha R_perp + beta R_par, Adam with weight decay, StepLR over epochs.

With ``Loss: {alpha: 0, beta: 0}`` both terms are skipped and this is the vanilla baseline.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from edflow import TemplateIterator
from edflow.config import section
from end.callbacks import bias_accuracy
from end.losses import EnDRegularizer, end_terms

TRAINER_DEFAULTS = {"lr": 1e-3, "weight_decay": 1e-4, "lr_step_epochs": 20, "lr_gamma": 0.1}
LOSS_DEFAULTS = {"alpha": 0.1, "beta": 0.1, "par_pairs": "official", "feature_layer": "features_norm",
                 "normalize_features": False, "target_key": "class", "bias_key": "color"}
LOGGED_IMAGES = 64


class Trainer(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = section(self.config, "Trainer", TRAINER_DEFAULTS)
        loss = section(self.config, "Loss", LOSS_DEFAULTS)
        self.target_key, self.bias_key = loss["target_key"], loss["bias_key"]
        self.regularizer = EnDRegularizer(self.model, loss["feature_layer"], loss["alpha"], loss["beta"],
                                          loss["par_pairs"], loss["normalize_features"])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(options["lr"]),
                                          weight_decay=float(options["weight_decay"]))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=int(options["lr_step_epochs"]),
                                                         gamma=float(options["lr_gamma"]))
        self.hooks.append(SimpleNamespace(after_epoch=lambda iterator: iterator.scheduler.step()))
        self._last_step: dict = {}

    def get_callbacks(self):
        return {**super().get_callbacks(), "bias_accuracy": bias_accuracy}

    def labels_of(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        missing = [key for key in (self.target_key, self.bias_key) if key not in batch]
        if missing:
            raise KeyError(f"the batch lacks {missing} (Loss/target_key, Loss/bias_key); it holds {sorted(batch)}")
        return batch[self.target_key], batch[self.bias_key]

    def step_op(self, model, image, **batch):
        target, bias = self.labels_of(batch)

        def train_op():
            logits = model(image)
            ce = F.cross_entropy(logits, target)
            terms = self.regularizer(target, bias)
            loss = ce + terms["loss"]
            self.optimize(loss, self.optimizer)
            self._last_step = {"logits": logits.detach(), "features": self.regularizer.features.detach()}
            return {"loss": loss.detach(), "ce": ce.detach()}

        def log_op():
            # Both terms, also those not trained on, so vanilla runs show how entangled with colour they are; on
            # normalised features, so that they stay cosines for a net whose feature layer is not normalised.
            terms = end_terms(self._last_step["features"], target, bias, par_pairs=self.regularizer.par_pairs)
            logits = self._last_step["logits"]
            ce = F.cross_entropy(logits, target)
            scalars = {"ce": ce, "r_perp": terms["perp"], "r_par": terms["par"],
                       "loss": ce + self.regularizer.alpha * terms["perp"] + self.regularizer.beta * terms["par"],
                       "accuracy": (logits.argmax(1) == target).float().mean(),
                       "lr": self.optimizer.param_groups[0]["lr"]}
            return {"scalars": scalars, "images": {"inputs": image[:LOGGED_IMAGES]}}

        def eval_op():
            logits = model(image)
            terms = end_terms(self.regularizer.features, target, bias, par_pairs=self.regularizer.par_pairs)
            return {"pred": logits.argmax(1), "target": target, "bias": bias,
                    "ce": F.cross_entropy(logits, target), "r_perp": terms["perp"], "r_par": terms["par"]}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
