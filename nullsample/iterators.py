"""Training loops of null-sampling.

- :class:`CFlowTrainer`: the cFlow on the pretrain split; loss = NLL per dim (``Trainer/nll_units``: bits, or
  nifr's nats, which weighs the adversary ln 2 more) + weight * mean CE of the discriminator ensemble, which sees
  [z_-s, 0] through gradient reversal.
- :class:`CVAETrainer`: the cVAE; loss = reconstruction + kl_weight * KL (per dim) + weight * mean CE, the
  ensemble seeing z through gradient reversal.
- :class:`ClassifierTrainer`: the downstream classifier; with a first stage (a cFlow or cVAE run) every dataset is
  replaced by its null-samples when the stage starts, without one (the baseline) it trains on the raw images.
"""
from __future__ import annotations

import contextlib

import torch

from edflow import TemplateIterator
from edflow.config import section
from edflow.runner_keys import runner_value
from fairkit import classifier
from nullsample.callbacks import fairness_callback, null_sample_grid
from nullsample.losses import nll_per_dim, vae_terms
from nullsample.models.adversary import (DiscriminatorEnsemble, ProbeBank, cross_entropy_to_uniform,
                                         grad_reverse)
from nullsample.null_sampling import check_same_data, null_sample_dataset

# encoder_objective: "reverse_ce" (the paper: the encoder ascends the discriminators' cross-entropy through gradient
# reversal) or "uniform" (a CPU-scale deviation: the discriminators learn on detached features, the encoder pulls
# their predictions toward uniform, so making them confidently wrong no longer pays) or "linear_probe" (a deviation
# too: the discriminators still learn on detached features, but the encoder minimises the R^2 on its batch of a
# linear probe refitted on every step to the last 512 inputs, which it cannot outrun).
# lr_factor: the discriminators' learning rate relative to Trainer/lr (1 in the paper: one optimiser for all).
# disc_steps: discriminator updates per model update (1 in the paper); the extra ones learn on the batch's detached
# adversary input before the joint step, so the discriminators catch up with the encoder without a larger lr.
# input (cFlow): "code", the paper's [z_-s, 0], or "image", the null-sample INN^-1([z_-s, 0]) itself (a deviation:
# the downstream classifier reads the image, and a flow can hide s from code-space discriminators; README).
# arch: "mlp" (Linear-BN-ReLU per width in hidden, then Linear) or "residual" (nifr's: Linear(in, hidden[0]),
# `blocks` residual blocks starting near the identity, Linear(hidden[0], num_s)).
ADVERSARY_DEFAULTS = {"num_s": 10, "num_discs": 3, "hidden": [512], "weight": 0.01, "reset_prob": 1 / 5000,
                      "encoder_objective": "reverse_ce", "lr_factor": 1.0, "input": "code", "probe_ridge": 1.0,
                      "disc_steps": 1, "arch": "mlp", "blocks": 1}
ENCODER_OBJECTIVES = ("reverse_ce", "uniform", "linear_probe")
NUM_LOGGED_IMAGES = 8


@contextlib.contextmanager
def evaluation_mode(module: torch.nn.Module):
    """``module`` in eval mode inside the block (BatchNorm statistics stay untouched), as it was after it."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class AdversarialTrainer(TemplateIterator):
    """What both representation learners share: the discriminator ensemble behind gradient reversal, one RAdam
    optimiser for the model and the ensemble, random resets, and grids of x / null-sample / reconstruction."""

    trainer_defaults: dict = {"lr": 3e-4}
    adversary_inputs: tuple = ("code",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", self.trainer_defaults)
        self.adversary = section(self.config, "Adversary", ADVERSARY_DEFAULTS)
        if self.adversary["encoder_objective"] not in ENCODER_OBJECTIVES:
            raise ValueError(f"Adversary/encoder_objective={self.adversary['encoder_objective']!r} must be one of "
                             f"{ENCODER_OBJECTIVES}")
        if self.adversary["input"] not in self.adversary_inputs:
            raise ValueError(f"Adversary/input={self.adversary['input']!r} must be one of {self.adversary_inputs} "
                             f"for {type(self).__name__}")
        self.discriminators = DiscriminatorEnsemble(self.adversary_features(), int(self.adversary["num_s"]),
                                                    int(self.adversary["num_discs"]), self.adversary["hidden"],
                                                    arch=self.adversary["arch"],
                                                    blocks=int(self.adversary["blocks"])).to(self.device)
        self.probe_bank = (ProbeBank(self.adversary_features()).to(self.device)
                           if self.adversary["encoder_objective"] == "linear_probe" else None)
        lr = float(self.options["lr"])
        groups = [{"params": list(self.model.parameters())},
                  {"params": list(self.discriminators.parameters()), "lr": lr * float(self.adversary["lr_factor"])}]
        self.optimizer = torch.optim.RAdam(groups, lr=lr)
        self._last_losses: dict = {}

    def adversary_features(self) -> int:
        raise NotImplementedError

    def model_losses(self, model, image, s) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """The model's own objective, its terms (for the logs) and the adversary's input."""
        raise NotImplementedError

    def losses(self, model, image, s) -> dict:
        self.discriminators.train(model.training)  # the runner switches only the model to eval mode
        objective, terms, features = self.model_losses(model, image, s)
        if model.training:
            self.catch_up_discriminators(features.detach(), s)
        weight = float(self.adversary["weight"])
        objective_name = self.adversary["encoder_objective"]
        if objective_name in ("uniform", "linear_probe"):
            logits = self.discriminators(features.detach())
            adversary_ce = self.discriminators.loss(logits, s)
            if objective_name == "uniform":
                encoder_term = cross_entropy_to_uniform(self.discriminators.frozen(features))
                terms = {**terms, "encoder_uniform_ce": encoder_term}
            else:
                self.probe_bank.train(model.training)
                encoder_term = self.probe_bank.r2(features, s, self.discriminators.num_classes,
                                                  ridge=float(self.adversary["probe_ridge"]))
                terms = {**terms, "linear_probe_r2": encoder_term}
            total = objective + weight * (adversary_ce + encoder_term)
        else:
            logits = self.discriminators(grad_reverse(features))
            adversary_ce = self.discriminators.loss(logits, s)
            total = objective + weight * adversary_ce
        accuracy = (logits.argmax(-1) == s).float().mean()
        return {**terms, "adversary_ce": adversary_ce, "adversary_accuracy": accuracy, "total": total}

    def catch_up_discriminators(self, features: torch.Tensor, s: torch.Tensor):
        """``disc_steps - 1`` updates of the discriminators alone; the model's gradients are None, so the shared
        optimiser leaves the model's parameters and moments untouched."""
        for _ in range(int(self.adversary["disc_steps"]) - 1):
            self.optimize(self.discriminators.loss(self.discriminators(features), s), self.optimizer)

    def step_op(self, model, image, s, **batch):
        def train_op():
            losses = self.losses(model, image, s)
            self.optimize(losses["total"], self.optimizer)
            self.discriminators.reset_randomly(float(self.adversary["reset_prob"]), self.optimizer)
            self._last_losses = {k: v.detach() for k, v in losses.items()}
            return self._last_losses

        def log_op():
            x = image[:NUM_LOGGED_IMAGES]
            with torch.no_grad(), evaluation_mode(model):
                images = {"inputs": x, "null_samples": model.null_sample(x),
                          "reconstructions": model.reconstruct(x, s[:NUM_LOGGED_IMAGES])}
            return {"scalars": self._last_losses, "images": images}

        def eval_op():
            return self.losses(model, image, s)

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    def get_callbacks(self):
        def image_grid(root, data_in, data_out, config):
            return null_sample_grid(self.model, data_in, root, device=self.device)

        return {**super().get_callbacks(), "null_sample_grid": image_grid}


class CFlowTrainer(AdversarialTrainer):
    trainer_defaults = {"lr": 3e-4, "nll_units": "bits"}
    adversary_inputs = ("code", "image")

    def adversary_features(self) -> int:
        return self.model.num_dims

    def model_losses(self, model, image, s):
        z, logdet = model(model.flow_input(image, noise=True))
        units = self.options["nll_units"]
        nll = nll_per_dim(z, logdet, n_bits=model.discrete_bits, units=units).mean()
        terms = {f"nll_{units}_per_dim": nll}
        code = model.adversary_input(z)
        if self.adversary["input"] == "image":
            # the null-sample before decode's clamp, so that the adversary's gradient reaches every pixel
            return nll, terms, model.reverse(code).flatten(1)
        return nll, terms, code


class CVAETrainer(AdversarialTrainer):
    """``adversary_input``: "z" (a posterior sample) or "mu", the posterior mean that null-sampling decodes."""

    trainer_defaults = {"lr": 3e-4, "kl_weight": 1.0, "adversary_input": "z"}

    def adversary_features(self) -> int:
        return self.model.z_dim

    def model_losses(self, model, image, s):
        logits, mu, logvar, z = model(image, s)
        reconstruction, kl = (term.mean() for term in vae_terms(logits, image, mu, logvar))
        objective = reconstruction + float(self.options["kl_weight"]) * kl
        features = {"z": z, "mu": mu}.get(self.options["adversary_input"])
        if features is None:
            raise ValueError(f"Trainer/adversary_input={self.options['adversary_input']!r} must be 'z' or 'mu'")
        return objective, {"reconstruction": reconstruction, "kl": kl}, model.adversary_input(features)


class ClassifierTrainer(classifier.ClassifierTrainer):
    """Cross-entropy training of y; evaluated with accuracy, per-group rates, DP, TPR/TNR differences and HGR."""

    label_key = "y"
    logged_images = NUM_LOGGED_IMAGES

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = section(self.config, "Trainer", {"lr": 1e-3, "null_sample_batch_size": 256})
        if self.first_stage is not None:
            self.datasets = {name: self.null_sampled(name, data) for name, data in self.datasets.items()}
        self.optimizer = torch.optim.RAdam(self.model.parameters(), lr=float(self.options["lr"]))

    def null_sampled(self, name: str, dataset):
        stage = self.first_stage
        if hasattr(dataset, "options") and hasattr(stage, "stage_config"):
            check_same_data(section(stage.stage_config, "Data", type(dataset).defaults), dataset.options)
        return null_sample_dataset(stage, dataset, int(self.options["null_sample_batch_size"]), self.device,
                                   desc=f"null-sampling {name}",
                                   num_workers=int(runner_value(self.config, "num_workers")))

    def eval_outputs(self, model, image, label, batch) -> dict:
        logits = model(image)
        outputs = {"pred": logits.argmax(1), "label": label, "group": batch["s"]}
        if logits.shape[1] == 2:
            outputs["score"] = logits.softmax(1)[:, 1]
        return outputs

    def get_callbacks(self):
        return {**super().get_callbacks(), "fairness": fairness_callback}
