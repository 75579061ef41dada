"""Latent de-biasing's training loops.

- :class:`ClassifierTrainer`: binary cross-entropy on one attribute (the baseline classifiers, and the target
  classifier on real + synthetic images). Every evaluation first picks the thresholds on the validation set (stored
  in the model, so chained stages and checkpoints carry them), then scores every other split with AP, DEO, BA and
  KL at the calibrated threshold.
- :class:`SyntheticStage`: one epoch over N latent indices. Each step generates a batch G(z) with the GAN stage and
  scores it with the classifier stages; at the end of the epoch the stage fits the hyperplanes (the model's
  buffers), builds G(z') (and inverted real images, if asked) and writes the synthetic set into its run folder.
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Callable

import numpy as np
import torch

from edflow import TemplateIterator
from edflow import checkpoint as ckpt
from edflow.config import ConfigError, dump_yaml, section
from edflow.runner_keys import runner_value
from fairkit.classifier import BinaryClassifierTrainer
from edflow.data import fetch_batch
from fairkit.metrics.callbacks import write_results
from fairkit.nets.gan import GAN
from fairkit.schedules import cosine_annealing
from latentdebias import callbacks, synthesis
from latentdebias.data import SYNTHETIC_FILE, data_options, real_split
from latentdebias.models import AttributeClassifier, LatentHyperplanes

TRAINER_DEFAULTS = {"lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 0.0,
                    "schedule": "constant"}  # constant (the paper) | cosine: annealed to 0 over the run, per step
SCHEDULES = ("constant", "cosine")
LOGGED_IMAGES = 64


class ClassifierTrainer(BinaryClassifierTrainer):
    """Trains ``latentdebias.models.AttributeClassifier`` with BCE and Adam (the paper: lr 1e-4, 20 epochs, the
    checkpoint of best validation AP, ``model_selection: {metric: validation/ap}``)."""

    use_autocast = True
    logged_images = LOGGED_IMAGES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, AttributeClassifier):
            raise ConfigError("ClassifierTrainer trains latentdebias.models.AttributeClassifier; set model: to it")
        options = section(self.config, "Trainer", TRAINER_DEFAULTS)
        self.metrics = callbacks.metrics_options(self.config)
        self.group_name = data_options(self.config)["protected"][0]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=float(options["lr"]),
                                          betas=tuple(float(b) for b in options["betas"]),
                                          weight_decay=float(options["weight_decay"]))
        if options["schedule"] not in SCHEDULES:
            raise ConfigError(f"Trainer/schedule {options['schedule']!r} is not one of {SCHEDULES}")
        if options["schedule"] == "cosine":
            self.scheduler = cosine_annealing(self, self.optimizer)
        if self.model.pretrained:
            self.model.load_imagenet_weights()  # a resumed run restores its own weights over these

    # --- hooks of fairkit's classifier trainer -----------------------------------------------------------------------
    def label(self, batch) -> torch.Tensor:
        if self.model.attribute not in batch:
            raise KeyError(f"the batch has no label {self.model.attribute!r} (Model/attribute); it holds "
                           f"{sorted(batch)}")
        return batch[self.model.attribute]

    def log_scalars(self, batch) -> dict:
        scalars = {"lr": self.optimizer.param_groups[0]["lr"]}
        if "synthetic" in batch:
            scalars["synthetic_fraction"] = batch["synthetic"].float().mean()
        return scalars

    def eval_outputs(self, model, image, label, batch) -> dict:
        outputs = {"score": model.scores(image), "label": label}
        if model.is_target:
            outputs["group"] = batch[self.group_name]
        return outputs

    def eval_splits(self) -> list[str]:
        """Validation first: the other splits are scored at the thresholds it sets."""
        splits = super().eval_splits()
        if "validation" not in splits:
            raise ConfigError("ClassifierTrainer needs datasets/validation: the thresholds are picked on it")
        return ["validation"] + [s for s in splits if s != "validation"]

    def get_callbacks(self) -> dict[str, Callable]:
        return {**super().get_callbacks(), "classifier": self.classifier_metrics}

    def classifier_metrics(self, root, data_in, data_out, config) -> dict:
        scores, labels = data_out.labels["score"], data_out.labels["label"]
        if data_in is self.datasets["validation"]:
            thresholds = callbacks.validation_thresholds(scores, labels)
            self.model.set_thresholds(**thresholds)
            results = {**thresholds, **callbacks.classification_metrics(scores, labels, thresholds["f1_threshold"])}
        else:
            threshold = float(self.model.calibrated_threshold)
            results = callbacks.classification_metrics(scores, labels, threshold)
            if "group" in data_out.labels:
                results.update(callbacks.fairness_metrics(scores, labels, data_out.labels["group"], threshold,
                                                          self.metrics))
        write_results(root, "classifier", results)
        return results


def best_checkpoint_of(stage) -> str | None:
    """``best.ckpt`` beside the checkpoint a first stage was loaded from, if its run kept one."""
    path = os.path.join(os.path.dirname(stage.stage_checkpoint), "best.ckpt")
    return path if os.path.isfile(path) else None


class SyntheticStage(TemplateIterator):
    """The sampling-and-hyperplane stage; its model is ``latentdebias.models.LatentHyperplanes`` and its training
    set ``latentdebias.data.LatentIndices`` (one epoch; set ``drop_last: false``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, LatentHyperplanes):
            raise ConfigError("SyntheticStage's model is latentdebias.models.LatentHyperplanes")
        self.options = synthesis.synthetic_options(self.config)
        self.data = data_options(self.config)
        self.gan = self.stage(self.options["gan_stage"], GAN)
        self.classifiers = [self.stage(self.options["target_stage"], AttributeClassifier)] + [
            self.stage(name, AttributeClassifier) for name in self.options["protected_stages"]]
        self.check_stages()
        if self.options["classifier_checkpoint"] == "best":
            self.load_best_classifiers()
        seed = self.options["seed"] if self.options["seed"] is not None else runner_value(self.config, "seed")
        self.seed = int(seed)
        count = len(self.datasets["train"]) if "train" in self.datasets else 0
        self.latents = torch.randn(count, self.gan.dim_z, generator=torch.Generator().manual_seed(self.seed))
        self.store = synthesis.ScoreStore(count, len(self.classifiers))
        self.hooks.append(SimpleNamespace(after_epoch=lambda iterator: iterator.build_synthetic_set()))

    # --- first stages ---------------------------------------------------------------------------------------------
    def stage(self, name: str, cls: type):
        found = (self.first_stages or {}).get(name)
        if not isinstance(found, cls):
            raise ConfigError(f"SyntheticStage needs first_stage/{name}: a run of {cls.__module__}.{cls.__name__}; "
                              f"got {type(found).__name__ if found is not None else 'nothing'} (first_stage names: "
                              f"{sorted(self.first_stages or {})})")
        return found

    def check_stages(self) -> None:
        if self.gan.conditional:
            raise ConfigError("the GAN stage must be unconditional (Model/conditional: false)")
        wanted = [self.data["target"], *self.data["protected"]]
        predicted = [c.attribute for c in self.classifiers]
        if predicted != wanted:
            raise ConfigError(f"the classifier stages (Synthetic/target_stage, Synthetic/protected_stages) predict "
                              f"{predicted}, but Data asks for target and protected {wanted}")
        if self.options["mode"] == "domain_dependent" and len(self.data["protected"]) != 1:
            raise ConfigError("Synthetic/mode domain_dependent takes one protected attribute")

    def load_best_classifiers(self) -> None:
        """The paper keeps each classifier at its best validation AP: load that checkpoint where the run kept one
        (unless the first_stage section names a checkpoint)."""
        specs = self.config.get("first_stage") or {}
        names = [self.options["target_stage"], *self.options["protected_stages"]]
        for name, classifier in zip(names, self.classifiers):
            best = best_checkpoint_of(classifier)
            if best and "checkpoint" not in (specs.get(name) or {}):
                classifier.load_state_dict(ckpt.model_state_dict(ckpt.load(best, map_location=self.device)))
                classifier.stage_checkpoint = best

    # --- one epoch: score the generated images ----------------------------------------------------------------------
    def step_op(self, model, latent_index, **batch):
        def generate():
            with torch.no_grad():
                images = self.gan(self.latents[latent_index.cpu()].to(self.device))
                return images, torch.stack([c.scores(images) for c in self.classifiers], 1)

        def train_op():
            images, scores = generate()
            self.store.put(latent_index, scores)
            return {f"mean_score_{c.attribute}": scores[:, k].mean() for k, c in enumerate(self.classifiers)}

        def log_op():
            return {"images": {"samples": generate()[0][:LOGGED_IMAGES]}}

        return {"train_op": train_op, "log_op": log_op}

    # --- end of the epoch: hyperplanes, complementary pairs, the synthetic set --------------------------------------
    def build_synthetic_set(self) -> str:
        if not self.store.complete():
            raise RuntimeError("some latents were not scored; the synthetic stage's epoch must cover all of them "
                               "(set drop_last: false)")
        scores = self.store.scores.numpy()
        thresholds = [float(c.f1_threshold) for c in self.classifiers]
        labels = (scores >= np.asarray(thresholds)[None, :]).astype(np.int64)
        names = [c.attribute for c in self.classifiers]
        z = self.latents.double().numpy()
        target, protected = synthesis.fit_latent_hyperplanes(z, labels, self.options, names)
        self.model.set_hyperplanes(target, protected)
        batch = int(self.options["generate_batch_size"])
        parts = synthesis.pairs_with_complements(self.model, self.gan, self.classifiers, self.latents, labels[:, 0],
                                                 labels[:, 1:], ("sampled", "complement"), batch, self.device)
        extra = {}
        if int(self.options["inversion"]["num_images"]) > 0:
            inverted, extra = self.inverted_pairs(offset=sum(len(p["image"]) for p in parts))
            parts += inverted
        table = synthesis.concatenate_rows(parts)
        path = synthesis.save_synthetic(os.path.join(self.root, SYNTHETIC_FILE), table, names[0], names[1:])
        results = {**synthesis.diagnostics(table, thresholds, self.model, labels), **extra}
        dump_yaml(results, os.path.join(os.path.dirname(path), "diagnostics.yaml"))
        synthesis.save_pair_grid(table, os.path.join(os.path.dirname(path), "pairs.png"),
                                 int(self.options["num_grid_pairs"]))
        self.logger.scalars({f"synthetic/{k}": v for k, v in results.items()}, self.global_step, epoch=self.epoch)
        return path

    def inverted_pairs(self, offset: int) -> tuple[list[dict], dict]:
        """Real training images inverted into the GAN's latent space, with their complements; labelled with the real
        images' labels."""
        options = self.options["inversion"]
        real = real_split(self.data, "train")
        chosen = np.sort(np.random.default_rng(self.seed).permutation(len(real))[:int(options["num_images"])])
        batch = fetch_batch(real, chosen)
        images = torch.as_tensor(batch["image"]).float()
        target = np.asarray(batch[self.data["target"]])
        protected = np.stack([np.asarray(batch[name]) for name in self.data["protected"]], 1)
        z, errors = synthesis.inverted_latents(self.gan, images, self.gan.dim_z, options, self.seed, self.device)
        parts = synthesis.pairs_with_complements(self.model, self.gan, self.classifiers, z, target, protected,
                                                 ("inverted", "inverted_complement"),
                                                 int(self.options["generate_batch_size"]), self.device, offset)
        return parts, {"num_inverted": len(chosen), "inversion_mse": float(errors.mean())}
