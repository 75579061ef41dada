"""The GAN stage that fairgen and latent de-biasing share: :class:`Model` builds :class:`fairkit.nets.gan.GAN` from
the ``Model:`` section of a run config, :class:`Trainer` trains it (``model: fairkit.gan.Model``,
``iterator: fairkit.gan.Trainer``).

The trainer is BigGAN's loop with the hinge loss: ``d_steps`` discriminator steps per generator step, each on its
own 1/d_steps of the loader's batch, and the EMA of G updated after every G step. Subclasses add importance weights
on D's real term (:meth:`Trainer.training_weights`), first stages (:meth:`Trainer.setup_stages`) and evaluation
outputs (:meth:`Trainer.sample_outputs`); fairgen's ``GANTrainer`` is one.
"""
from __future__ import annotations

import os
from typing import Callable, Mapping

import numpy as np
import torch

from edflow import TemplateIterator
from edflow.config import section
from edflow.logger import save_image_grid
from edflow.runner_keys import runner_value
from fairkit.metrics import configured_extractor, make_fid_callback
from fairkit.metrics.callbacks import fid_preflight
from fairkit.nets.gan import GAN, d_hinge_loss, g_hinge_loss

__all__ = ["MODEL_DEFAULTS", "TRAINER_DEFAULTS", "Model", "Trainer", "sample_grid"]

MODEL_DEFAULTS = {
    "dim_z": 128,
    "ch": 64,
    "resolution": 32,       # 32, 64 or 128 (BigGAN's architectures)
    "conditional": False,   # condition G and D on dataset membership (fairgen's conditional baseline)
    "ema_decay": 0.9999,
    "ema_start": 1000,
}

TRAINER_DEFAULTS = {
    "lr_g": 2e-4,
    "lr_d": 2e-4,
    "betas": [0.0, 0.999],
    "d_steps": 4,              # D steps per G step; each takes its own 1/d_steps of the loader's batch
    "condition_key": "reference",  # label a conditional GAN is conditioned on (dataset membership)
    "num_log_samples": 64,
}

GRID_SIZE = 64


class Model(GAN):
    """:class:`fairkit.nets.gan.GAN` on RGB images, built from ``Model:`` (see :data:`MODEL_DEFAULTS`)."""

    def __init__(self, config: Mapping):
        options = section(config, "Model", MODEL_DEFAULTS)
        super().__init__(dim_z=int(options["dim_z"]), ch=int(options["ch"]), resolution=int(options["resolution"]),
                         channels=3, conditional=bool(options["conditional"]), ema_decay=float(options["ema_decay"]),
                         ema_start=int(options["ema_start"]))


def sample_grid(root, data_in, data_out, config) -> dict:
    """The first generated samples as ``samples.png`` (no scalar results)."""
    samples = np.asarray(data_out.labels["samples"][:GRID_SIZE])
    save_image_grid(samples, os.path.join(root, "samples.png"))
    return {}


class Trainer(TemplateIterator):
    """BigGAN-style hinge GAN, several D steps per G step, EMA of G; optional per-example weights on D's real term.

    ``batch_size`` is the loader's batch per iteration: ``d_steps`` discriminator batches (as BigGAN's loop splits
    it); every G step uses as many latents as one D batch.
    """

    DEFAULTS = TRAINER_DEFAULTS
    # edflow's preflight: the FID classifier run, or the Inception weights and torch-fidelity, before a run starts
    preflight = staticmethod(fid_preflight)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, GAN):
            raise ValueError(f"{type(self).__name__} trains a fairkit.nets.gan.GAN (model: fairkit.gan.Model); got "
                             f"{type(self.model).__name__}")
        self.options = section(self.config, "Trainer", self.DEFAULTS)
        betas = tuple(float(b) for b in self.options["betas"])
        self.optimizer_g = torch.optim.Adam(self.model.generator.parameters(), lr=float(self.options["lr_g"]),
                                            betas=betas)
        self.optimizer_d = torch.optim.Adam(self.model.discriminator.parameters(), lr=float(self.options["lr_d"]),
                                            betas=betas)
        self.setup_stages()
        self.weights = self.training_weights() if "train" in self.datasets else None
        if "train" in self.datasets:
            self.logger.scalars(self.target_shares(), self.global_step)
        self.fixed_z = torch.randn(int(self.options["num_log_samples"]), self.model.dim_z,
                                   generator=torch.Generator().manual_seed(int(runner_value(self.config, "seed"))))

    # --- hooks ------------------------------------------------------------------------------------------------------
    def setup_stages(self) -> None:
        """Load and check first stages (none here)."""

    def training_weights(self) -> torch.Tensor | None:
        """A weight on D's real term for every training example (index = the dataset's index); None: unit weights."""
        return None

    def sample_outputs(self, samples: torch.Tensor) -> dict:
        """Evaluation outputs beside ``samples`` (e.g. their predicted groups)."""
        return {}

    def sample_callbacks(self) -> dict[str, Callable]:
        """Evaluation callbacks beside the sample grid and FID (e.g. the fairness of the samples)."""
        return {}

    def fid_extractor(self):
        """The FID feature network of ``fid:``: for ``extractor: classifier`` (the default) the classifier run
        ``fid/run``, else :meth:`fid_classifier`; None lets fairkit build the named extractor (e.g. inception)."""
        settings = self.config.get("fid") or {}
        if settings.get("extractor", "classifier") != "classifier":
            return None
        if settings.get("run"):
            return configured_extractor(settings, device=self.device)
        return self.fid_classifier()

    def fid_classifier(self):
        """The FID classifier when ``fid/run`` names none."""
        raise ValueError("fid/extractor is classifier but fid/run does not name the classifier run; set "
                         "fid/run: <classifier run>")

    # --- the training distribution ----------------------------------------------------------------------------------
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

    # --- training ---------------------------------------------------------------------------------------------------
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
            loss = d_hinge_loss(real_logits, fake_logits, weights)
        self.optimize(loss, self.optimizer_d)
        return {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

    def generator_step(self, model, n: int) -> torch.Tensor:
        model.discriminator.requires_grad_(False)  # G's step needs no D gradients
        try:
            z = torch.randn(n, model.dim_z, device=self.device)
            labels = self.random_labels(n)
            with self.autocast():
                loss = g_hinge_loss(model.discriminator(model.generator(z, labels), labels))
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
            return {"samples": samples, **self.sample_outputs(samples)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    # --- evaluation -------------------------------------------------------------------------------------------------
    def get_callbacks(self) -> dict[str, Callable]:
        found = {**super().get_callbacks(), "sample_grid": sample_grid, **self.sample_callbacks()}
        if self.config.get("fid"):
            if not hasattr(self, "_fid_callback"):
                self._fid_callback = make_fid_callback(self.fid_extractor(), keys=["samples"])
            found["fid"] = self._fid_callback
        return found
