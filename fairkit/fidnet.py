"""The feature-extractor stage for data without Inception weights: a small classifier whose penultimate
features serve FID (``fid: {extractor: classifier, run: mnist_fidnet}``, built by
:func:`fairkit.metrics.configured_extractor`) and whose test accuracy is reported."""
from __future__ import annotations

import numpy as np
import torch

from edflow.config import section
from fairkit.classifier import ClassifierTrainer
from fairkit.nets.classifiers import ConvNet
from fairkit.schedules import cosine_annealing

MODEL_DEFAULTS = {"in_channels": 1, "num_classes": 10, "channels": [32, 64, 128]}
TRAINER_DEFAULTS = {"lr": 1e-3, "weight_decay": 0.0, "label_key": "class"}


class Model(ConvNet):
    """ConvNet built from ``Model:``; ``features(x)`` gives the FID features."""

    def __init__(self, config: dict):
        options = section(config, "Model", MODEL_DEFAULTS)
        super().__init__(options["in_channels"], options["num_classes"], tuple(options["channels"]))


class Trainer(ClassifierTrainer):
    """Cross-entropy on ``Trainer/label_key``, Adam, the learning rate annealed to zero (cosine) over the run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = section(self.config, "Trainer", TRAINER_DEFAULTS)
        self.label_key = options["label_key"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options["lr"],
                                          weight_decay=options["weight_decay"])
        # Annealing to zero settles the weights (and BatchNorm's running statistics) for a sharp test accuracy.
        self.scheduler = cosine_annealing(self, self.optimizer)

    def get_callbacks(self):
        return {**super().get_callbacks(), "accuracy": accuracy}


def accuracy(root, data_in, data_out, config) -> dict:
    return {"accuracy": float(np.mean(data_out.labels["pred"] == data_out.labels["label"]))}

