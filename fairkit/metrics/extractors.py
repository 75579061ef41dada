"""Feature extractors for FID/KID: a name -> factory registry and the two built-in extractors.

Every extractor maps images, float (B, C, H, W) in [-1, 1], to features (B, D), and has a ``name`` and a
``fingerprint()`` (a digest of its weights) so that cached reference statistics are tied to the exact network.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable

import torch
from torch import nn

_EXTRACTORS: dict[str, Callable[..., "FeatureExtractor"]] = {}

INCEPTION_WEIGHTS_KEY = "fid/inception_weights"
INCEPTION_WEIGHTS_SOURCE = (
    "torch-fidelity's Inception-v3 weights (pt_inception-2015-12-05), the file "
    "weights-inception-2015-12-05-6726825d.pth from "
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)


def register_extractor(name: str):
    """Decorator: ``@register_extractor("mine")`` on a class or factory makes ``build_extractor("mine", ...)`` work."""

    def register(factory):
        if name in _EXTRACTORS and _EXTRACTORS[name] is not factory:
            raise ValueError(f"a feature extractor named {name!r} is already registered ({_EXTRACTORS[name]!r})")
        _EXTRACTORS[name] = factory
        return factory

    return register


def build_extractor(name: str, **kwargs) -> "FeatureExtractor":
    if name not in _EXTRACTORS:
        raise KeyError(f"unknown feature extractor {name!r}; registered: {sorted(_EXTRACTORS)}")
    return _EXTRACTORS[name](**kwargs)


def available_extractors() -> list[str]:
    return sorted(_EXTRACTORS)


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and values of a module's parameters and buffers."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def module_device(module) -> torch.device:
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
        for tensor in module.buffers():
            return tensor.device
    return torch.device("cpu")


class FeatureExtractor(nn.Module):
    """Base class: ``forward(images in [-1, 1], (B, C, H, W)) -> features (B, D)``."""

    name = "base"

    def fingerprint(self) -> str:
        return weights_fingerprint(self)

    @property
    def device(self) -> torch.device:
        return module_device(self)


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (B, 1|3, H, W) -> uint8 0..255, 3 channels (gray repeated), as torch-fidelity expects."""
    if images.dtype == torch.uint8:
        raise TypeError("expected float images in [-1, 1], got uint8; convert with images.float() / 127.5 - 1")
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}")
    pixels = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


@register_extractor("inception")
class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's Inception-v3 (the TF-compatible FID network), 2048-d pool features, from a local file."""

    name = "inception"

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        weights_path = check_inception_weights(weights_path)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=str(weights_path))
        self.to(device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        (features,) = self.net(to_uint8_rgb(images))
        return features


def check_inception_weights(weights_path) -> str:
    """The path of a readable, code-free weights file, or an error that says how to get one."""
    if not weights_path:
        raise FileNotFoundError(f"the inception feature extractor needs a local weights file: set the config key "
                                f"{INCEPTION_WEIGHTS_KEY} to a copy of {INCEPTION_WEIGHTS_SOURCE}")
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"Inception weights not found at {str(weights_path)!r} (config key "
                                f"{INCEPTION_WEIGHTS_KEY}); download {INCEPTION_WEIGHTS_SOURCE} and point "
                                f"{INCEPTION_WEIGHTS_KEY} at it, or use `fid: {{extractor: classifier}}`")
    try:
        # torch-fidelity loads the file with weights_only=False; refuse anything that is not plain tensors first.
        torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{str(weights_path)!r} ({INCEPTION_WEIGHTS_KEY}) is not a plain tensor state dict "
                         f"({error}); expected {INCEPTION_WEIGHTS_SOURCE}") from error
    return str(weights_path)


@register_extractor("classifier")
class ClassifierExtractor(FeatureExtractor):
    """Penultimate features of a classifier trained in this project: ``model.features(x)`` on [-1, 1] images.

    ``model`` is a torch module with a ``features`` method, or a callable images -> features (a bound method of a
    module is fingerprinted by that module's weights; a plain function needs an explicit ``fingerprint``).
    """

    name = "classifier"

    def __init__(self, model, fingerprint: str | None = None):
        super().__init__()
        if model is None:
            raise ValueError("the classifier feature extractor needs a model: pass build_extractor('classifier', "
                             "model=<module with a features(x) method>)")
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module  # the wrapper hides features()
        has_features = callable(getattr(model, "features", None))
        if isinstance(model, nn.Module) and not has_features:
            # its forward gives logits, not the penultimate features FID is meant to compare
            raise TypeError(f"{type(model).__name__} has no features(x) method; give it one, or pass the method that "
                            f"returns its penultimate features (e.g. model.embed)")
        if not has_features and not callable(model):
            raise TypeError(f"expected a module with a features(x) method or a callable, got {type(model)!r}")
        owner = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
        self.model = owner if isinstance(owner, nn.Module) else None  # registered, so .to() and state_dict see it
        self._source = [model]  # a list keeps a module from being registered a second time
        self._fingerprint = fingerprint

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        source = self._source[0]
        extract = source.features if callable(getattr(source, "features", None)) else source
        was_training = self.model.training if self.model is not None else False
        if self.model is not None:
            self.model.eval()  # batch-norm statistics must not depend on the evaluated batch
        try:
            features = extract(images)
        finally:
            if self.model is not None:
                self.model.train(was_training)
        return features.reshape(features.shape[0], -1)

    def fingerprint(self) -> str:
        if self._fingerprint is not None:
            return self._fingerprint
        if self.model is None:
            raise ValueError("cannot fingerprint a plain function for caching reference statistics: pass a "
                             "torch.nn.Module (or its bound method) or ClassifierExtractor(..., fingerprint='<id>')")
        return weights_fingerprint(self.model)


def as_extractor(extractor) -> FeatureExtractor:
    """A FeatureExtractor as is; a module or callable becomes a ClassifierExtractor."""
    return extractor if isinstance(extractor, FeatureExtractor) else ClassifierExtractor(extractor)
