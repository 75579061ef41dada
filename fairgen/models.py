"""fairgen's three models, each built as ``Model(config)`` from its run config so that later stages can load it.

- :class:`AttributeClassifier`: a ResNet with one logit per attribute (multi-label), used to label generated
  samples (fairness discrepancy) and as the FID feature extractor at CPU scale (``features(x)``).
- :class:`RatioClassifier`: a ResNet with one logit, trained to tell reference (1) from biased (0) examples;
  its logit estimates log r(x) = log p_ref(x) / p_bias(x).
- :class:`GAN`: :class:`fairkit.gan.Model`, BigGAN-style generator and discriminator plus the EMA of the generator,
  all in the state dict; ``sample(n)`` draws from the EMA generator.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from edflow.config import section
from fairgen.data import attribute_names, classifier_attributes, data_options, group_labels
from fairkit.nets.classifiers import ResNet
from fairkit import gan

RESNET_DEFAULTS = {"width": 64, "depth": 18, "blocks": None, "head_hidden": []}


def build_resnet(options: Mapping, num_outputs: int, image_size: int) -> ResNet:
    return ResNet(num_outputs=num_outputs, in_channels=3, width=int(options["width"]), depth=int(options["depth"]),
                  input_size=int(image_size), blocks=options["blocks"],
                  head_hidden=tuple(options["head_hidden"]))


class AttributeClassifier(nn.Module):
    """``forward(x) -> logits (B, A)`` for the attributes ``Model/attributes``; ``features(x)`` for FID."""

    def __init__(self, config: Mapping):
        super().__init__()
        options = section(config, "Model", {**RESNET_DEFAULTS, "attributes": None})
        data = data_options(config)
        self.attributes = classifier_attributes(config, data)
        known = attribute_names(data.dataset)
        self.columns = [known.index(n) for n in self.attributes]  # columns of the data's ``attributes`` label
        self.net = build_resnet(options, len(self.attributes), data.image_size)

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
        self.net = build_resnet(options, 1, data_options(config).image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def ratio(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self(x))


GAN_DEFAULTS = gan.MODEL_DEFAULTS


class GAN(gan.Model):
    """fairgen's name for :class:`fairkit.gan.Model` (runs whose config says ``model: fairgen.models.GAN`` load)."""
