"""fairgen's training loops: the attribute classifier, the density-ratio classifier (stage 1) and the
importance-weighted GAN (stage 2).

The GAN trainer takes its first stages from ``first_stage: {ratio: {run: ...}, attr_clf: {run: ...}}``: with
``Trainer/reweight: 1`` it computes r(x) for every training example when it starts (r = 1 for reference examples)
and weights the discriminator's real term by r^alpha; with ``reweight: 0`` and no ratio stage it is a plain
BigGAN-style trainer that any dataset with an ``image`` key can use.
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from edflow import TemplateIterator
from edflow.config import section
from edflow.first_stage import load_stage
from fairgen import callbacks
from fairgen.data import bias_attributes, data_options, fetch_batch
from fairgen.losses import (density_ratio, discriminator_loss, generator_loss, importance_weights,
                            ratio_classifier_loss)
from fairgen.models import AttributeClassifier, RatioClassifier
from fairkit.metrics import make_fid_callback
from fairkit.metrics.callbacks import fid_preflight

CLASSIFIER_DEFAULTS = {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}


def adam(parameters, options) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=float(options["lr"]), betas=tuple(float(b) for b in options["betas"]),
                            weight_decay=float(options.get("weight_decay", 0.0)))


class AttributeClassifierTrainer(TemplateIterator):
    """Binary cross-entropy on each attribute of ``Model/attributes``; evaluation: accuracy per attribute."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", CLASSIFIER_DEFAULTS)
        self.optimizer = adam(self.model.parameters(), self.options)

    def step_op(self, model, image, attributes, **batch):
        target = attributes[:, model.columns].float()

        def train_op():
            with self.autocast():
                loss = F.binary_cross_entropy_with_logits(model(image), target)
            self.optimize(loss, self.optimizer)
            return loss

        def log_op():
            with torch.no_grad():
                logits = model(image)
            return {"scalars": {"loss": F.binary_cross_entropy_with_logits(logits, target),
                                "accuracy": ((logits > 0).float() == target).float().mean()},
                    "images": {"inputs": image[:16]}}

        def eval_op():
            return {"predicted": model.predict_attributes(image), "target": target.long()}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    def get_callbacks(self) -> dict[str, Callable]:
        return {**super().get_callbacks(), "attribute_accuracy": callbacks.attribute_accuracy}


class RatioTrainer(TemplateIterator):
    """Stage 1: cross-entropy of reference (1) vs biased (0) on class-balanced batches; evaluation: calibration."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", CLASSIFIER_DEFAULTS)
        self.optimizer = adam(self.model.parameters(), self.options)

    def step_op(self, model, image, reference, **batch):
        def train_op():
            with self.autocast():
                loss = ratio_classifier_loss(model(image), reference)
            self.optimize(loss, self.optimizer)
            return loss

        def log_op():
            with torch.no_grad():
                logits = model(image)
            return {"scalars": {"loss": ratio_classifier_loss(logits, reference),
                                "accuracy": ((logits > 0).long() == reference).float().mean()}}

        def eval_op():
            return {"logit": model(image), "reference": reference, "group": batch["group"]}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    def get_callbacks(self) -> dict[str, Callable]:
        return {**super().get_callbacks(), "calibration": callbacks.calibration}


GAN_TRAINER_DEFAULTS = {
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "betas": [0.0, 0.999],
    "d_steps": 4,              # D steps per G step; each takes its own 1/d_steps of the loader's batch
    "reweight": 1,             # 1: importance weights r^alpha on D's real term; 0: the equal-weight baseline
    "alpha": 1.0,              # flattening exponent of the importance weights
    "condition_key": "reference",  # label a conditional GAN is conditioned on (dataset membership)
    "ratio_batch_size": 256,   # batch size when computing r(x) for the training set
    "num_log_samples": 64,
}


class GANTrainer(TemplateIterator):
    """Stage 2: BigGAN-style hinge GAN, several D steps per G step, EMA of G, importance-weighted D loss.

    ``batch_size`` is the loader's batch per iteration: ``d_steps`` discriminator batches (as BigGAN's loop splits
    it); every G step uses as many latents as one D batch.
    """

    # edflow's preflight: the FID classifier run, or the Inception weights and torch-fidelity, before a run starts
    preflight = staticmethod(fid_preflight)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", GAN_TRAINER_DEFAULTS)
        betas = tuple(float(b) for b in self.options["betas"])
        self.optimizer_g = torch.optim.Adam(self.model.generator.parameters(), lr=float(self.options["lr_g"]),
                                            betas=betas)
        self.optimizer_d = torch.optim.Adam(self.model.discriminator.parameters(), lr=float(self.options["lr_d"]),
                                            betas=betas)
        self.ratio_model = self.stage("ratio", RatioClassifier)
        self.attribute_model = self.stage("attr_clf", AttributeClassifier)
        self.reweight = bool(self.options["reweight"])
        self.check_stages()
        self.weights = self.training_weights() if "train" in self.datasets else None
        if "train" in self.datasets:
            self.logger.scalars(self.target_shares(), self.global_step)
        self.fixed_z = torch.randn(int(self.options["num_log_samples"]), self.model.dim_z,
                                   generator=torch.Generator().manual_seed(int(self.config.get("seed", 0))))

    # --- first stages ---------------------------------------------------------------------------------------------
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
            missing = set(bias_attributes(data_options(self.config))) - set(self.attribute_model.attributes)
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

    def target_shares(self) -> dict:
        """The bias-group shares of the distribution D's real term is an expectation over (the weighted training
        set; the reference class for a conditional GAN) and their fairness discrepancy: what a perfectly fitted
        generator would reach. Empty when the training data has no group labels."""
        labels = self.datasets["train"].labels
        if "group" not in labels:
            return {}
        groups = np.asarray(labels["group"])
        weights = np.ones(len(groups)) if self.weights is None else self.weights.double().numpy()
        if self.model.conditional:
            weights = weights * (np.asarray(labels[self.options["condition_key"]]) == 1)
        shares = np.bincount(groups, weights=weights, minlength=int(groups.max()) + 1) / weights.sum()
        uniform = 1.0 / len(shares)
        return {"train/target_fairness_discrepancy": float(np.linalg.norm(shares - uniform)),
                **{f"train/target_share_group{g}": float(s) for g, s in enumerate(shares)}}

    # --- training -------------------------------------------------------------------------------------------------
    def labels_for(self, batch: dict, n: int) -> torch.Tensor | None:
        if not self.model.conditional:
            return None
        key = self.options["condition_key"]
        if key not in batch:
            raise KeyError(f"a conditional GAN needs the label {key!r} (Trainer/condition_key) in its batches; "
                           f"the batch has {sorted(batch)}")
        return batch[key][:n].long()

    def random_labels(self, n: int) -> torch.Tensor | None:
        if not self.model.conditional:
            return None
        return torch.randint(0, 2, (n,), device=self.device)

    def discriminator_step(self, model, real, real_labels, weights) -> dict:
        z = torch.randn(len(real), model.dim_z, device=self.device)
        fake_labels = self.random_labels(len(real))
        with torch.no_grad():
            fake = model.generator(z, fake_labels)
        with self.autocast():
            real_logits = model.discriminator(real, real_labels)
            fake_logits = model.discriminator(fake, fake_labels)
            loss = discriminator_loss(real_logits, fake_logits, weights)
        self.optimize(loss, self.optimizer_d)
        return {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

    def generator_step(self, model, n: int) -> torch.Tensor:
        model.discriminator.requires_grad_(False)  # G's step needs no D gradients
        try:
            z = torch.randn(n, model.dim_z, device=self.device)
            labels = self.random_labels(n)
            with self.autocast():
                loss = generator_loss(model.discriminator(model.generator(z, labels), labels))
            self.optimize(loss, self.optimizer_g)
        finally:
            model.discriminator.requires_grad_(True)
        return loss.detach()

    def split_batch(self, image: torch.Tensor) -> int:
        d_steps = int(self.options["d_steps"])
        if len(image) < d_steps:
            raise ValueError(f"batch_size {len(image)} is smaller than Trainer/d_steps {d_steps}; batch_size is "
                             f"d_steps times the discriminator's batch")
        return len(image) // d_steps

    def step_op(self, model, image, **batch):
        def train_op():
            d_batch = self.split_batch(image)
            index = batch.get("index_")
            for k in range(int(self.options["d_steps"])):
                part = slice(k * d_batch, (k + 1) * d_batch)
                weights = None if self.weights is None else self.weights[index[part].cpu()].to(self.device)
                labels = self.labels_for({key: v[part] for key, v in batch.items() if torch.is_tensor(v)}, d_batch)
                d_stats = self.discriminator_step(model, image[part], labels, weights)
            g_loss = self.generator_step(model, d_batch)
            model.update_ema(self.get_global_step())
            self._last_losses = {**d_stats, "g_loss": g_loss}
            return self._last_losses

        def log_op():
            samples = model(self.fixed_z.to(self.device), model.reference_labels(len(self.fixed_z)))
            scalars = dict(getattr(self, "_last_losses", {}))
            if self.weights is not None:
                scalars["mean_weight"] = self.weights.mean()
            return {"scalars": scalars, "images": {"samples_ema": samples, "real": image[:len(self.fixed_z)]}}

        def eval_op():
            z = torch.randn(len(image), model.dim_z, device=self.device)
            samples = model(z, model.reference_labels(len(image)))
            outputs = {"samples": samples}
            if self.attribute_model is not None:
                names = bias_attributes(data_options(self.config))
                outputs["sample_group"] = self.attribute_model.predict_groups(samples, names)
            return outputs

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    # --- evaluation -----------------------------------------------------------------------------------------------
    def fid_extractor(self):
        """The FID feature network of ``fid:``: a classifier run (``fid/run``, default the attribute classifier
        stage) for ``extractor: classifier``; None lets fairkit build the named extractor (e.g. inception)."""
        settings = self.config.get("fid") or {}
        if settings.get("extractor", "classifier") != "classifier":
            return None
        if settings.get("run"):
            return load_stage({"run": settings["run"]}, str(self.device))
        if self.attribute_model is None:
            raise ValueError("fid/extractor is classifier but neither fid/run nor an attr_clf first stage names "
                             "the classifier; set fid/run: <classifier run>")
        return self.attribute_model

    def get_callbacks(self) -> dict[str, Callable]:
        found = {**super().get_callbacks(), "sample_grid": callbacks.sample_grid}
        if self.attribute_model is not None:
            found["sample_fairness"] = callbacks.sample_fairness
        if self.config.get("fid"):
            if not hasattr(self, "_fid_callback"):
                self._fid_callback = make_fid_callback(self.fid_extractor(), keys=["samples"])
            found["fid"] = self._fid_callback
        return found
