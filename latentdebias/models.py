"""Latent de-biasing's models, each built as ``Model(config)`` from its run config so that later stages load it.

- :class:`AttributeClassifier`: one attribute's logit from a ResNet with an MLP head (the paper: ResNet-50 with a
  2048-2048-1 head; at CPU scale a small fairkit ResNet). It keeps the thresholds picked on the validation set as
  buffers: ``f1_threshold`` (labels generated images) and ``calibrated_threshold`` (the evaluation's threshold).
- :class:`LatentHyperplanes`: the normalised SVM hyperplanes of the synthetic stage as buffers, and
  ``complement(z)``, the complementary latents.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from edflow.config import ConfigError, section
from fairkit.nets.classifiers import MLP, ResNet
from latentdebias.data import data_options, role_names
from latentdebias.hyperplanes import complement_latents

BACKBONES = ("resnet", "resnet50")
CLASSIFIER_DEFAULTS = {
    "attribute": None,     # the attribute predicted (default: Data/target)
    "backbone": "resnet",  # resnet: fairkit's basic-block ResNet (width/depth/blocks); resnet50: torchvision's
    "width": 64,
    "depth": 18,
    "blocks": None,
    "head_hidden": [2048],  # hidden widths of the MLP head on the pooled features
    "pretrained": False,    # resnet50: start from torchvision's ImageNet weights (downloaded by torchvision)
}


def build_backbone(options: Mapping, image_size: int) -> nn.Module:
    """A network mapping images (B, 3, H, W) to one logit (B, 1)."""
    if options["backbone"] not in BACKBONES:
        raise ConfigError(f"Model/backbone {options['backbone']!r} is not one of {BACKBONES}")
    head_hidden = tuple(int(h) for h in options["head_hidden"] or ())
    if options["backbone"] == "resnet":
        return ResNet(num_outputs=1, in_channels=3, width=int(options["width"]), depth=int(options["depth"]),
                      input_size=image_size, blocks=options["blocks"], head_hidden=head_hidden)
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    net.fc = MLP(net.fc.in_features, 1, hidden=head_hidden)
    return net


class AttributeClassifier(nn.Module):
    """``forward(x) -> logits (B,)``; ``scores(x)`` = sigmoid; ``predict(x)`` thresholds at ``f1_threshold``."""

    def __init__(self, config: Mapping):
        super().__init__()
        options = section(config, "Model", CLASSIFIER_DEFAULTS)
        data = data_options(config)
        self.attribute = options["attribute"] or data["target"]
        if self.attribute not in role_names(data):
            raise ConfigError(f"Model/attribute {self.attribute!r} is neither Data/target nor in Data/protected "
                              f"{list(role_names(data))}")
        self.is_target = self.attribute == data["target"]
        self.backbone, self.pretrained = options["backbone"], bool(options["pretrained"])
        self.net = build_backbone(options, int(data["image_size"]))
        self.register_buffer("f1_threshold", torch.tensor(0.5, dtype=torch.float64))
        self.register_buffer("calibrated_threshold", torch.tensor(0.5, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """P(attribute = 1 | x)."""
        return torch.sigmoid(self(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Labels int64 (B,) at the validation-F1-optimal threshold (the hallucinated labels of generated images)."""
        return (self.scores(x).double() >= self.f1_threshold).long()

    def set_thresholds(self, f1_threshold: float, calibrated_threshold: float) -> None:
        self.f1_threshold.fill_(float(f1_threshold))
        self.calibrated_threshold.fill_(float(calibrated_threshold))

    def load_imagenet_weights(self) -> None:
        """torchvision's ImageNet weights for the ResNet-50 trunk (the head stays freshly initialised)."""
        if self.backbone != "resnet50":
            raise ConfigError("Model/pretrained needs Model/backbone: resnet50 (ImageNet weights exist only for it)")
        from torchvision.models import ResNet50_Weights

        state = ResNet50_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = self.net.load_state_dict(trunk, strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise RuntimeError(f"ImageNet weights do not fit the ResNet-50 trunk: missing {missing}, "
                               f"unexpected {unexpected}")


HYPERPLANE_BUFFERS = ("target_w", "target_b", "protected_w", "protected_b")


class LatentHyperplanes(nn.Module):
    """Unit-normal hyperplanes on the GAN's latents: ``target_w`` (K, D) and ``target_b`` (K,) with K = 1, or 2 for
    domain-dependent hyperplanes (protected group 0, group 1); ``protected_w`` (P, D), ``protected_b`` (P,).

    The buffers start empty and take their shapes from :meth:`set_hyperplanes` or from a loaded state dict, so the
    model is built from its config alone, whatever the GAN's latent size."""

    def __init__(self, config: Mapping | None = None):
        super().__init__()
        for name in HYPERPLANE_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in HYPERPLANE_BUFFERS:
            if prefix + name in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[prefix + name], dtype=torch.float64)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_hyperplanes(self, target: Sequence[tuple[np.ndarray, float]],
                        protected: Sequence[tuple[np.ndarray, float]]) -> None:
        """(w, b) pairs with unit w: one target hyperplane (or one per protected group), one per protected
        attribute."""
        for prefix, planes in (("target", target), ("protected", protected)):
            self._buffers[f"{prefix}_w"] = torch.as_tensor(np.stack([w for w, _ in planes]), dtype=torch.float64)
            self._buffers[f"{prefix}_b"] = torch.as_tensor([b for _, b in planes], dtype=torch.float64)

    @property
    def is_set(self) -> bool:
        return self.target_w.numel() > 0 and self.protected_w.numel() > 0

    @property
    def domain_dependent(self) -> bool:
        return len(self.target_w) == 2

    def check_set(self) -> None:
        if not self.is_set:
            raise RuntimeError("the hyperplanes are not fitted yet: the synthetic stage fits them at the end of "
                               "its epoch")

    def target_scores(self, z: torch.Tensor) -> torch.Tensor:
        """(N, K) scores w_t.z + b_t."""
        self.check_set()
        return z.double() @ self.target_w.T + self.target_b

    def protected_scores(self, z: torch.Tensor) -> torch.Tensor:
        """(N, P) scores w_g.z + b_g; positive means protected attribute 1."""
        self.check_set()
        return z.double() @ self.protected_w.T + self.protected_b

    def complement(self, z: torch.Tensor, flips: Sequence[bool] | None = None) -> torch.Tensor:
        """The complementary latents of z (N, D): target score kept, the flipped protected scores negated (default:
        all), in z's dtype and device."""
        self.check_set()
        z_prime = complement_latents(z.detach().double().cpu().numpy(), *(getattr(self, name).cpu().numpy()
                                                                         for name in HYPERPLANE_BUFFERS), flips)
        return torch.as_tensor(z_prime, dtype=z.dtype, device=z.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.complement(z)
