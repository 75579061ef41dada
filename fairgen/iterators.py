"""fairgen's training loops: the attribute classifier, the density-ratio classifier (stage 1) and the
importance-weighted GAN (stage 2).

The GAN trainer takes its first stages from ``first_stage: {ratio: {run: ...}, attr_clf: {run: ...}}``: with
``Trainer/reweight: 1`` it computes r(x) for every training example when it starts (r = 1 for reference examples)
and weights the discriminator's real term by r^alpha; with ``reweight: 0`` and no ratio stage it is fairkit's plain
BigGAN-style trainer (:class:`fairkit.gan.Trainer`).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from edflow.config import section
from edflow.data import fetch_batch
from fairgen import callbacks
from fairgen.data import bias_attributes, data_options
from fairgen.losses import density_ratio, importance_weights, ratio_classifier_loss
from fairgen.models import AttributeClassifier, RatioClassifier
from fairkit import gan
from fairkit.classifier import BinaryClassifierTrainer

CLASSIFIER_DEFAULTS = {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}


def adam(parameters, options) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=float(options["lr"]), betas=tuple(float(b) for b in options["betas"]),
                            weight_decay=float(options.get("weight_decay", 0.0)))


class _ClassifierTrainer(BinaryClassifierTrainer):
    """fairgen's classifier stages: Adam with ``Trainer:`` (:data:`CLASSIFIER_DEFAULTS`), mixed precision if asked."""

    use_autocast = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", CLASSIFIER_DEFAULTS)
        self.optimizer = adam(self.model.parameters(), self.options)


class AttributeClassifierTrainer(_ClassifierTrainer):
    """Binary cross-entropy on each attribute of ``Model/attributes``; evaluation: accuracy per attribute."""

    def label(self, batch) -> torch.Tensor:
        return batch["attributes"][:, self.model.columns].float()

    def eval_outputs(self, model, image, label, batch) -> dict:
        return {"predicted": model.predict_attributes(image), "target": label.long()}

    def get_callbacks(self) -> dict[str, Callable]:
        return {**super().get_callbacks(), "attribute_accuracy": callbacks.attribute_accuracy}


class RatioTrainer(_ClassifierTrainer):
    """Stage 1: cross-entropy of reference (1) vs biased (0) on class-balanced batches; evaluation: calibration."""

    label_key = "reference"
    logged_images = 0

    def loss(self, logits, label) -> torch.Tensor:
        return ratio_classifier_loss(logits, label)

    def eval_outputs(self, model, image, label, batch) -> dict:
        return {"logit": model(image), "reference": label, "group": batch["group"]}

    def get_callbacks(self) -> dict[str, Callable]:
        return {**super().get_callbacks(), "calibration": callbacks.calibration}


GAN_TRAINER_DEFAULTS = {
    **gan.TRAINER_DEFAULTS,
    "reweight": 1,             # 1: importance weights r^alpha on D's real term; 0: the equal-weight baseline
    "alpha": 1.0,              # flattening exponent of the importance weights
    "ratio_batch_size": 256,   # batch size when computing r(x) for the training set
}


class GANTrainer(gan.Trainer):
    """Stage 2: fairkit's GAN trainer (:class:`fairkit.gan.Trainer`) with the importance-weighted D loss and the
    fairness of the samples, judged by the attribute classifier stage."""

    DEFAULTS = GAN_TRAINER_DEFAULTS

    # --- first stages ---------------------------------------------------------------------------------------------
    def setup_stages(self) -> None:
        self.bias_names = bias_attributes(data_options(self.config))  # what the attribute classifier must predict
        self.ratio_model = self.stage("ratio", RatioClassifier)
        self.attribute_model = self.stage("attr_clf", AttributeClassifier)
        self.reweight = bool(self.options["reweight"])
        self.check_stages()

    def stage(self, name: str, cls: type):
        """The first stage called ``name`` (or the single first stage, if it is a ``cls``)."""
        if self.first_stages is not None:
            return self.first_stages.get(name)
        return self.first_stage if isinstance(self.first_stage, cls) else None

    def check_stages(self) -> None:
        if self.reweight and self.ratio_model is None:
            raise ValueError("Trainer/reweight: 1 needs the density-ratio classifier as a first stage: "
                             "first_stage: {ratio: {run: <ratio run>}, attr_clf: {run: <classifier run>}}; "
                             "or set Trainer/reweight: 0 for the equal-weight baseline")
        if not self.reweight and self.ratio_model is not None:
            warnings.warn("Trainer/reweight is 0: the ratio first stage is loaded but not used")
        if self.attribute_model is not None:
            missing = set(self.bias_names) - set(self.attribute_model.attributes)
            if missing:
                raise ValueError(f"the attribute classifier predicts {self.attribute_model.attributes}, not the bias "
                                 f"attributes {sorted(missing)} of this run's Data section")

    @torch.no_grad()
    def training_weights(self) -> torch.Tensor | None:
        """r(x)^alpha for every training example (index = the dataset's index), or None without reweighting."""
        if not self.reweight:
            return None
        data = self.datasets["train"]
        if "reference" not in data.labels:
            raise ValueError("importance weighting needs a training set with a `reference` label (1 reference, 0 "
                             "biased), such as fairgen.data.GANTrain")
        batch_size = int(self.options["ratio_batch_size"])
        ratios = []
        self.ratio_model.eval()
        for start in tqdm(range(0, len(data), batch_size), desc="density ratios", leave=False):
            batch = fetch_batch(data, np.arange(start, min(start + batch_size, len(data))))
            logits = self.ratio_model(torch.as_tensor(batch["image"]).to(self.device))
            ratios.append(density_ratio(logits, torch.as_tensor(batch["reference"]).to(self.device)).cpu())
        self.ratios = torch.cat(ratios)
        return importance_weights(self.ratios, float(self.options["alpha"]))

    # --- evaluation -----------------------------------------------------------------------------------------------
    def sample_outputs(self, samples: torch.Tensor) -> dict:
        if self.attribute_model is None:
            return {}
        return {"sample_group": self.attribute_model.predict_groups(samples, self.bias_names)}

    def sample_callbacks(self) -> dict[str, Callable]:
        return {"sample_fairness": callbacks.sample_fairness} if self.attribute_model is not None else {}

    def fid_classifier(self):
        """Without ``fid/run`` the attribute classifier stage is the FID classifier."""
        if self.attribute_model is None:
            raise ValueError("fid/extractor is classifier but neither fid/run nor an attr_clf first stage names "
                             "the classifier; set fid/run: <classifier run>")
        return self.attribute_model
