"""fairgen's three models, each built as ``Model(config)`` from its run config so that later stages can load it.

- :class:`AttributeClassifier`: a ResNet with one logit per attribute (multi-label), used to label generated
  samples (fairness discrepancy) and as the FID feature extractor at CPU scale (``features(x)``).
- :class:`RatioClassifier`: a ResNet with one logit, trained to tell reference (1) from biased (0) examples;
  its logit estimates log r(x) = log p_ref(x) / p_bias(x).
- :class:`GAN`: BigGAN-style generator and discriminator (fairkit.nets.gan) plus the EMA of the generator, all in
  the state dict; ``sample(n)`` draws from the EMA generator.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from edflow.config import section
from fairgen.data import attribute_names, classifier_attributes, data_options, group_labels
from fairkit.nets.classifiers import ResNet
from fairkit.nets.gan import EMA, Discriminator, Generator

RESNET_DEFAULTS = {"width": 64, "depth": 18, "blocks": None, "head_hidden": []}


def build_resnet(options: Mapping, num_outputs: int, config: Mapping) -> ResNet:
    data = data_options(config)
    return ResNet(num_outputs=num_outputs, in_channels=3, width=int(options["width"]), depth=int(options["depth"]),
                  input_size=int(data["image_size"]), blocks=options["blocks"],
                  head_hidden=tuple(options["head_hidden"]))


class AttributeClassifier(nn.Module):
    """``forward(x) -> logits (B, A)`` for the attributes ``Model/attributes``; ``features(x)`` for FID."""

    def __init__(self, config: Mapping):
        super().__init__()
        options = section(config, "Model", {**RESNET_DEFAULTS, "attributes": None})
        self.attributes = classifier_attributes(config)
        known = attribute_names(data_options(config)["dataset"])
        self.columns = [known.index(n) for n in self.attributes]  # columns of the data's ``attributes`` label
        self.net = build_resnet(options, len(self.attributes), config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def predict_attributes(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted attribute values, int64 (B, A) in {0, 1}."""
        return (self(x) > 0).long()

    def predict_groups(self, x: torch.Tensor, names) -> torch.Tensor:
        """Predicted group index over the attributes ``names`` (first highest), as the data numbers groups."""
        missing = [n for n in names if n not in self.attributes]
        if missing:
            raise ValueError(f"this attribute classifier predicts {self.attributes}, not {missing}; train one with "
                             f"Model/attributes including them")
        predicted = self.predict_attributes(x).cpu().numpy()
        return torch.as_tensor(group_labels(predicted, names, self.attributes))


class RatioClassifier(nn.Module):
    """``forward(x) -> logit (B,)`` of p(reference | x); with class-balanced training the logit is log r(x)."""

    def __init__(self, config: Mapping):
        super().__init__()
        options = section(config, "Model", dict(RESNET_DEFAULTS))
        self.net = build_resnet(options, 1, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def ratio(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self(x))


GAN_DEFAULTS = {
    "dim_z": 128,
    "ch": 64,
    "resolution": 32,       # 32, 64 or 128 (BigGAN's architectures)
    "conditional": False,   # condition G and D on dataset membership (the conditional baseline)
    "ema_decay": 0.9999,
    "ema_start": 1000,
}


class GAN(nn.Module):
    """Generator, discriminator and the generator's EMA. ``forward(z, y=None)`` runs the EMA generator."""

    def __init__(self, config: Mapping):
        super().__init__()
        options = section(config, "Model", GAN_DEFAULTS)
        self.dim_z, self.conditional = int(options["dim_z"]), bool(options["conditional"])
        n_classes = 2 if self.conditional else 0
        resolution = int(options["resolution"])
        self.generator = Generator(self.dim_z, int(options["ch"]), resolution, 3, n_classes)
        self.discriminator = Discriminator(int(options["ch"]), resolution, 3, n_classes)
        self._ema = EMA(self.generator, float(options["ema_decay"]), int(options["ema_start"]))
        self.generator_ema = self._ema.module  # registered, so checkpoints and later stages hold it

    def train(self, mode: bool = True) -> "GAN":
        super().train(mode)
        self.generator_ema.eval()  # sampling always uses the running BatchNorm statistics
        return self

    def update_ema(self, step: int) -> None:
        self._ema.update(step)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator_ema(z, y)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.dim_z, generator=generator).to(device)

    def reference_labels(self, n: int) -> torch.Tensor | None:
        """The class to sample from: the reference set for the conditional baseline, none otherwise."""
        if not self.conditional:
            return None
        return torch.ones(n, dtype=torch.long, device=next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int, batch_size: int = 500, ema: bool = True, generator: torch.Generator | None = None,
               y: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images (B, 3, H, W) in [-1, 1] and their latents; ``y`` picks the class of a conditional GAN
        (default: the reference class)."""
        net = self.generator_ema if ema else self.generator
        was_training = net.training
        net.eval()
        images, latents = [], []
        try:
            for start in range(0, n, batch_size):
                z = self.sample_z(min(batch_size, n - start), generator)
                labels = self.reference_labels(len(z))
                if labels is not None and y is not None:
                    labels = torch.full_like(labels, int(y))
                images.append(net(z, labels).cpu())
                latents.append(z.cpu())
        finally:
            net.train(was_training)
        return torch.cat(images), torch.cat(latents)
