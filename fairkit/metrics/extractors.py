"""Feature extractors for FID/KID: the one name -> factory registry, the one cache of built extractors, and the
two built-in extractors (``classifier``, ``inception``).

The registry mirrors torch-fidelity's: ``register_feature_extractor(name, cls)`` and
``create_feature_extractor(name, **kwargs)``. Config files name an entry under ``fid/extractor``.

Every extractor maps images, float (B, C, H, W) in [-1, 1], to features (B, D), and has a ``name`` and a
``fingerprint()`` (a digest of its weights) so that cached reference statistics are tied to the exact network.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Hashable

import torch
from torch import nn

from edflow.config import nearest

_REGISTRY: dict[str, Callable[..., "FeatureExtractor"]] = {}
# Built extractors by key, shared by every method in the process: a network (or the Inception weights) is read once.
_BUILT: dict[Hashable, "FeatureExtractor"] = {}

INCEPTION_WEIGHTS_KEY = "fid/inception_weights"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_SOURCE = (
    "torch-fidelity's Inception-v3 weights (pt_inception-2015-12-05), the file "
    f"{INCEPTION_WEIGHTS_FILE} from "
    f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_WEIGHTS_FILE}"
)


class UnknownFeatureExtractor(KeyError):
    """A name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register_feature_extractor(name: str, cls_or_factory: Callable[..., "FeatureExtractor"] | None = None):
    """Register ``cls_or_factory`` (a FeatureExtractor class, or a function returning one) under ``name``.

    ``register_feature_extractor("mine", Mine)`` registers directly; ``@register_feature_extractor("mine")`` on a
    class or function does the same as a decorator. Registering the same object twice is allowed (a module that is
    imported again); another object under a taken name is an error.
    """
    if not isinstance(name, str) or not name or name.strip() != name or os.sep in name or "/" in name:
        raise ValueError(f"a feature extractor name must be a non-empty string without surrounding spaces or "
                         f"slashes (it becomes part of cache file names), got {name!r}")

    def register(factory):
        if not callable(factory):
            raise TypeError(f"feature extractor {name!r} must be a class or function, got {factory!r}")
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"a feature extractor named {name!r} is already registered ({_REGISTRY[name]!r}); "
                             f"pick another name")
        _REGISTRY[name] = factory
        return factory

    return register if cls_or_factory is None else register(cls_or_factory)


def create_feature_extractor(name: str, **kwargs) -> "FeatureExtractor":
    """A new extractor from the factory registered as ``name``, called with ``kwargs``."""
    if name not in _REGISTRY:
        suggestion = nearest(str(name), _REGISTRY)
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        raise UnknownFeatureExtractor(f"unknown feature extractor {name!r}{hint}; registered: "
                                      f"{available_feature_extractors()}; add one with "
                                      f"register_feature_extractor(name, cls)")
    return _REGISTRY[name](**kwargs)


def available_feature_extractors() -> list[str]:
    return sorted(_REGISTRY)


def cached_feature_extractor(key: Hashable, build: Callable[[], "FeatureExtractor"]) -> "FeatureExtractor":
    """The extractor ``build()`` gave the first time ``key`` was asked for; ``build`` runs only on a miss (a failed
    build caches nothing). The key must name everything the build depends on (name, options, device)."""
    if key not in _BUILT:
        _BUILT[key] = build()
    return _BUILT[key]


def clear_feature_extractor_cache() -> None:
    """Forget every built extractor (their memory is freed once no callback holds them)."""
    _BUILT.clear()


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


@register_feature_extractor("inception")
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
    """The path of a readable, code-free weights file, or an error that says how to get one and where to put it."""
    put_it = (f"download {INCEPTION_WEIGHTS_SOURCE}, put it at weights/{INCEPTION_WEIGHTS_FILE} (relative to where "
              f"edflow runs; any path works) and set the config key {INCEPTION_WEIGHTS_KEY} to that path")
    if not weights_path:
        raise FileNotFoundError(f"the inception feature extractor needs a local weights file, but "
                                f"{INCEPTION_WEIGHTS_KEY} is not set: {put_it}")
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"Inception weights not found at {str(weights_path)!r} (config key "
                                f"{INCEPTION_WEIGHTS_KEY}; {os.path.abspath(weights_path)}): {put_it}; or use "
                                f"`fid: {{extractor: classifier, run: <classifier run>}}`")
    try:
        # torch-fidelity loads the file with weights_only=False; refuse anything that is not plain tensors first.
        torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{str(weights_path)!r} ({INCEPTION_WEIGHTS_KEY}) is not a plain tensor state dict "
                         f"({error}); expected {INCEPTION_WEIGHTS_SOURCE}") from error
    return str(weights_path)


@register_feature_extractor("classifier")
class ClassifierExtractor(FeatureExtractor):
    """Penultimate features of a classifier trained in this project: ``model.features(x)`` on [-1, 1] images.

    ``model`` is a torch module with a ``features`` method, or a callable images -> features (a bound method of a
    module is fingerprinted by that module's weights; a plain function needs an explicit ``fingerprint``).
    """

    name = "classifier"

    def __init__(self, model, fingerprint: str | None = None):
        super().__init__()
        if model is None:
            raise ValueError("the classifier feature extractor needs a model: pass create_feature_extractor("
                             "'classifier', model=<module with a features(x) method>)")
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
