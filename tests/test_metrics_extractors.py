"""The feature-extractor registry (names, misspellings, duplicates), the names configs use, and the one cache of
built extractors."""
import glob
import os

import pytest
import torch
import yaml
from torch import nn

from edflow.config import load_configs
from fairkit.metrics import (ClassifierExtractor, FeatureExtractor, UnknownFeatureExtractor,
                             available_feature_extractors, configured_extractor, create_feature_extractor,
                             register_feature_extractor)
from fairkit.metrics import extractors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry and an empty cache, so a test's entries do not outlive it."""
    monkeypatch.setattr(extractors, "_REGISTRY", dict(extractors._REGISTRY))
    monkeypatch.setattr(extractors, "_BUILT", {})
    return extractors._REGISTRY


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)

    def features(self, x):
        return self.conv(x).mean((2, 3))


class Scaled(FeatureExtractor):
    name = "scaled-for-test"

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = scale

    def forward(self, images):
        return images.flatten(1) * self.scale


def test_registry_lookup_builds_the_registered_extractors(registry):
    assert {"classifier", "inception"} <= set(available_feature_extractors())
    net = Net()
    extractor = create_feature_extractor("classifier", model=net)
    assert isinstance(extractor, ClassifierExtractor)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(extractor(images), net.features(images))

    assert register_feature_extractor("scaled-for-test", Scaled) is Scaled  # torch-fidelity's direct form
    built = create_feature_extractor("scaled-for-test", scale=3.0)
    assert isinstance(built, Scaled) and built.scale == 3.0
    assert "scaled-for-test" in available_feature_extractors()


@pytest.mark.parametrize("given, nearest", [("inceptoin", "inception"), ("Classifier", "classifier"),
                                            ("clasifier", "classifier")])
def test_a_misspelt_name_names_the_nearest_registered_one(given, nearest):
    with pytest.raises(UnknownFeatureExtractor, match=f"unknown feature extractor '{given}' "
                                                      f"\\(did you mean '{nearest}'\\?\\)") as error:
        create_feature_extractor(given)
    assert isinstance(error.value, KeyError) and "register_feature_extractor" in str(error.value)
    with pytest.raises(KeyError, match=f"^fid/extractor: unknown feature extractor '{given}'"):
        configured_extractor({"extractor": given})
    with pytest.raises(KeyError) as error:
        create_feature_extractor("zzzz")
    assert "did you mean" not in str(error.value)  # nothing near: no guess


def test_a_taken_name_cannot_be_registered_again(registry):
    register_feature_extractor("scaled-for-test", Scaled)
    register_feature_extractor("scaled-for-test", Scaled)  # the same class again (a module imported twice) is fine
    with pytest.raises(ValueError, match="'scaled-for-test' is already registered"):
        register_feature_extractor("scaled-for-test", ClassifierExtractor)
    with pytest.raises(ValueError, match="'classifier' is already registered"):

        @register_feature_extractor("classifier")
        def other(model):
            return ClassifierExtractor(model)

    assert registry["classifier"] is ClassifierExtractor
    for bad in ("a/b", " padded", ""):
        with pytest.raises(ValueError, match="feature extractor name"):
            register_feature_extractor(bad, Scaled)
    with pytest.raises(TypeError, match="class or function"):
        register_feature_extractor("not-callable", 3)


def fid_sections(config):
    """Every ``fid`` section of a config (top level and nested, e.g. under a test-split override)."""
    found = []
    for key, value in (config or {}).items():
        if key == "fid" and isinstance(value, dict):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(fid_sections(value))
    return found


def config_variants():
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))):
        overlay = os.path.join(ROOT, "configs", "cpu", os.path.basename(path))
        yield [path]
        if os.path.isfile(overlay):
            yield [path, overlay]


def test_every_extractor_a_config_names_is_registered():
    names = {}
    for paths in config_variants():
        for settings in fid_sections(load_configs(paths)):
            # fairkit reads a missing fid/extractor as classifier; null switches FID off
            name = settings.get("extractor", "classifier")
            if name is not None:
                names.setdefault(name, []).append(os.path.relpath(paths[-1], ROOT))
    assert {"classifier", "inception"} <= set(names)  # the walk found the configs' sections
    unknown = {name: where for name, where in names.items() if name not in available_feature_extractors()}
    assert not unknown, f"configs name unregistered feature extractors: {unknown}"


def test_a_missing_inception_weights_file_says_where_to_put_it(tmp_path):
    for settings in ({"extractor": "inception"}, {"extractor": "inception",
                                                  "inception_weights": str(tmp_path / "missing.pth")}):
        with pytest.raises(FileNotFoundError) as error:
            configured_extractor(settings)
        message = str(error.value)
        assert "weights/weights-inception-2015-12-05-6726825d.pth" in message and "fid/inception_weights" in message
        assert "torch-fidelity/releases" in message


def test_the_cache_returns_the_same_extractor_for_the_same_arguments(registry, monkeypatch, tmp_path):
    loads = []

    def load(spec, device):
        loads.append((spec["run"], device))
        return Net()

    settings = {"extractor": "classifier", "run": "tiny_fidnet"}
    first = configured_extractor(settings, device="cpu", load=load)
    assert configured_extractor(dict(settings), device="cpu", load=load) is first and len(loads) == 1
    assert configured_extractor({**settings, "run": "other_fidnet"}, device="cpu", load=load) is not first
    assert configured_extractor(settings, device="cuda:1", load=load) is not first
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(tmp_path))  # the same run name under another log root is another run
    assert configured_extractor(settings, device="cpu", load=load) is not first
    assert loads == [("tiny_fidnet", "cpu"), ("other_fidnet", "cpu"), ("tiny_fidnet", "cuda:1"),
                     ("tiny_fidnet", "cpu")]

    register_feature_extractor("scaled-for-test", Scaled)
    options = {"extractor": "scaled-for-test", "extractor_kwargs": {"scale": 2.0}}
    scaled = configured_extractor(options)
    assert configured_extractor(dict(options)) is scaled and scaled.scale == 2.0
    assert configured_extractor({**options, "extractor_kwargs": {"scale": 3.0}}) is not scaled


def test_a_failed_build_is_not_cached(registry):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return Scaled()

    with pytest.raises(OSError):
        extractors.cached_feature_extractor(("flaky",), flaky)
    built = extractors.cached_feature_extractor(("flaky",), flaky)
    assert extractors.cached_feature_extractor(("flaky",), flaky) is built and len(attempts) == 2


def test_configs_keep_their_extractor_keys():
    """The keys the FID section is read by: extractor, run, inception_weights, extractor_kwargs."""
    with open(os.path.join(ROOT, "configs", "celeba_fairgen_gan_baseline.yaml")) as f:
        settings = yaml.safe_load(f)["fid"]
    assert extractors.INCEPTION_WEIGHTS_FILE in settings["inception_weights"]
    assert extractors._REGISTRY["inception"] is extractors.InceptionExtractor
    from fairkit.metrics.callbacks import extractor_options

    assert extractor_options(settings) == {"weights_path": settings["inception_weights"]}
    assert extractor_options({"extractor": "scaled", "extractor_kwargs": {"scale": 2}}) == {"scale": 2}
    assert extractor_options({"run": "mnist_fidnet"}) == {}
