"""FID/KID against torch-fidelity on the same features, streaming statistics, extractors and the reference cache."""
import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from edflow.data.dataset import ArrayDataset, ExampleDataset
from fairkit.metrics import (ClassifierExtractor, FeatureExtractor, FrechetStats, InceptionExtractor,
                             compute_stats, dataset_cache_key, extract_features, fid,
                             fid_from_features, frechet_distance, kid, make_fid_callback, reference_stats,
                             to_uint8_rgb)
from fairkit.metrics import create_feature_extractor as build_extractor
from fairkit.metrics import register_feature_extractor as register_extractor


def random_features(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) / np.sqrt(d)
    return (rng.standard_normal((n, d)) @ mixing * scale + shift).astype(np.float64)


def torch_fidelity_fid(features_a, features_b):
    stats_a = fid_features_to_statistics(torch.from_numpy(features_a))
    stats_b = fid_features_to_statistics(torch.from_numpy(features_b))
    return fid_statistics_to_metric(stats_a, stats_b, verbose=False)["frechet_inception_distance"]


@pytest.mark.parametrize("n_a, n_b, d", [(400, 300, 64), (90, 120, 128)])  # the second has singular covariances
def test_fid_matches_torch_fidelity(n_a, n_b, d):
    features_a = random_features(n_a, d, seed=0)
    features_b = random_features(n_b, d, seed=1, shift=0.3, scale=1.5)
    expected = torch_fidelity_fid(features_a, features_b)
    assert fid_from_features(features_a, features_b) == pytest.approx(expected, rel=1e-4)


def test_frechet_distance_matches_sqrtm_formula():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((50, 20)), rng.standard_normal((60, 20)) * 2 + 1
    mu1, mu2, cov1, cov2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1 + cov2 - 2 * root)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_with_a_zero_covariance():
    constant = np.ones((10, 6))
    other = random_features(40, 6, seed=10, shift=2.0)
    expected = np.sum((1 - other.mean(0)) ** 2) + np.trace(np.cov(other, rowvar=False))
    assert fid_from_features(constant, other) == pytest.approx(expected, rel=1e-10)
    assert fid_from_features(other, constant) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), np.eye(2))


def test_fid_of_a_set_against_itself_is_zero():
    features = random_features(500, 64, seed=2, shift=5.0)
    total_variance = np.trace(np.cov(features, rowvar=False))
    assert abs(fid_from_features(features, features)) < 1e-8 * total_variance


def test_statistics_equal_numpy_and_do_not_depend_on_batching_or_merge_order():
    features = random_features(257, 16, seed=4, shift=3.0)
    reference = fid_features_to_statistics(torch.from_numpy(features))
    parts = {size: [FrechetStats().update(features[i:i + size]) for i in range(0, len(features), size)]
             for size in (1, 10, 257)}
    forward = parts[10][0]
    for part in parts[10][1:]:
        forward.merge(part)
    backward = sum(reversed(parts[1]), FrechetStats())
    whole = parts[257][0]
    for stats in (forward, backward, whole):
        assert stats.count == 257
        np.testing.assert_allclose(stats.mean, reference["mu"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(stats.cov, reference["sigma"], rtol=1e-10, atol=1e-12)
    other = FrechetStats().update(random_features(100, 16, seed=5))
    assert fid(forward, other) == pytest.approx(fid(whole, other), rel=1e-10)
    assert fid(backward, other) == pytest.approx(fid(whole, other), rel=1e-10)


def test_statistics_reject_mismatched_or_too_few_features():
    stats = FrechetStats().update(np.ones((1, 4)))
    with pytest.raises(ValueError, match="dimension 5"):
        stats.update(np.ones((2, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.cov
    with pytest.raises(ValueError, match="shape"):
        FrechetStats().update(np.ones(4))


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_statistics_round_trip_through_files_and_state_dicts(tmp_path, suffix):
    features = random_features(50, 8, seed=6)
    stats = FrechetStats().update(features)
    path = tmp_path / f"stats{suffix}"
    stats.save(path)
    loaded = FrechetStats.load(path)
    restored = FrechetStats().load_state_dict(stats.state_dict())
    for copy in (loaded, restored):
        assert copy.count == 50
        np.testing.assert_array_equal(copy.mean, stats.mean)
        np.testing.assert_array_equal(copy.cov, stats.cov)
    if suffix == ".npz":  # mu and sigma for other FID tools
        with np.load(path) as data:
            np.testing.assert_allclose(data["sigma"], np.cov(features, rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError, match=".pt or .npz"):
        stats.save(tmp_path / "stats.txt")


def test_all_reduce_is_a_no_op_without_and_exact_with_one_process(tmp_path):
    features = random_features(30, 5, seed=7)
    stats = FrechetStats().update(features)
    mean, cov = stats.mean, stats.cov
    assert stats.all_reduce() is stats and stats.count == 30
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        stats.all_reduce()
    finally:
        torch.distributed.destroy_process_group()
    assert stats.count == 30
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-14)
    np.testing.assert_allclose(stats.cov, cov, rtol=1e-12)


def test_kid_matches_torch_fidelity():
    features_a = random_features(120, 32, seed=8)
    features_b = random_features(100, 32, seed=9, shift=0.2)
    expected = kid_features_to_metric(torch.from_numpy(features_a), torch.from_numpy(features_b), kid_subsets=10,
                                      kid_subset_size=50, rng_seed=11, verbose=False)
    mean, std = kid(features_a, features_b, subsets=10, subset_size=50, seed=11)
    assert mean == pytest.approx(expected["kernel_inception_distance_mean"], rel=1e-10)
    assert std == pytest.approx(expected["kernel_inception_distance_std"], rel=1e-10)
    with pytest.raises(ValueError, match="subset_size"):
        kid(features_a, features_b, subset_size=101)


class TinyClassifier(nn.Module):
    """Conv + batch norm + pooled 4-d features, as a classifier's penultimate layer."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def features(self, x):
        return self.norm(self.conv(x)).relu().mean((2, 3))

    def forward(self, x):
        return self.head(self.features(x))


def random_images(n, seed, channels=1, size=8):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=generator) * 2 - 1


def test_classifier_extractor_uses_eval_mode_and_matches_its_features():
    model = TinyClassifier()
    model.norm.running_mean.fill_(0.1)
    images = random_images(37, seed=0)
    extractor = build_extractor("classifier", model=model)
    model.train()
    stats_small = compute_stats(extractor, images, batch_size=1, progress=False)
    stats_large = compute_stats(extractor, images, batch_size=64, progress=False)
    assert model.training  # restored after extraction
    with torch.no_grad():
        expected = model.eval().features(images).double().numpy()
    np.testing.assert_allclose(stats_small.cov, np.cov(expected, rowvar=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(stats_large.mean, expected.mean(0), rtol=1e-5)
    np.testing.assert_allclose(extract_features(extractor, images, 10, progress=False), expected, rtol=1e-5)


def test_extractor_registry():
    with pytest.raises(KeyError, match="unknown feature extractor 'nope'.*classifier.*inception"):
        build_extractor("nope")

    @register_extractor("flatten-for-test")
    class Flatten(FeatureExtractor):
        name = "flatten-for-test"

        def forward(self, images):
            return images.flatten(1)

    assert isinstance(build_extractor("flatten-for-test"), Flatten)
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("flatten-for-test")(TinyClassifier)
    with pytest.raises(TypeError, match="features"):
        ClassifierExtractor(object())
    with pytest.raises(TypeError, match="Linear has no features"):
        ClassifierExtractor(nn.Linear(2, 2))


def test_fingerprint_follows_weights_and_needs_a_module():
    model = TinyClassifier()
    bound = ClassifierExtractor(model.features)
    assert bound.fingerprint() == ClassifierExtractor(model).fingerprint()
    with torch.no_grad():
        model.conv.weight.add_(1e-3)
    assert bound.fingerprint() != ClassifierExtractor(TinyClassifier()).fingerprint()
    with pytest.raises(ValueError, match="fingerprint"):
        ClassifierExtractor(lambda x: x.flatten(1)).fingerprint()
    assert ClassifierExtractor(lambda x: x.flatten(1), fingerprint="flat").fingerprint() == "flat"


def test_inception_extractor_without_weights_names_the_config_key(tmp_path):
    for path in (None, tmp_path / "missing.pth"):
        with pytest.raises(FileNotFoundError, match="fid/inception_weights") as error:
            InceptionExtractor(weights_path=path)
        assert "pt_inception-2015-12-05" in str(error.value)


def test_images_become_uint8_rgb_as_torch_fidelity_expects():
    gray = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 2, 2)
    pixels = to_uint8_rgb(gray)
    assert pixels.dtype == torch.uint8 and pixels.shape == (1, 3, 2, 2)
    assert pixels[0, :, 0, 0].tolist() == [0, 0, 0] and pixels[0, 2, 1, 1] == 255
    assert pixels[0, 1, 0, 1] == 128  # 127.5 rounds to even
    with pytest.raises(TypeError, match="uint8"):
        to_uint8_rgb(pixels)


class CountingExtractor(ClassifierExtractor):
    calls = 0

    def forward(self, images):
        type(self).calls += 1
        return super().forward(images)


def test_reference_stats_are_cached_by_dataset_extractor_and_weights(tmp_path):
    dataset = ArrayDataset({"image": random_images(40, seed=1), "class": np.arange(40) % 2})
    model = TinyClassifier()
    extractor = CountingExtractor(model)
    CountingExtractor.calls = 0
    first = reference_stats(dataset, extractor, tmp_path, batch_size=16, progress=False)
    calls = CountingExtractor.calls
    again = reference_stats(dataset, extractor, tmp_path, batch_size=16, progress=False)
    assert CountingExtractor.calls == calls == 3  # the second call read the cache
    np.testing.assert_array_equal(again.cov, first.cov)
    (cached,) = tmp_path.glob("*.npz")
    assert cached.name.startswith(dataset_cache_key(dataset)) and "-classifier-" in cached.name
    with torch.no_grad():
        model.conv.bias.add_(1.0)
    reference_stats(dataset, extractor, tmp_path, batch_size=16, progress=False)
    assert CountingExtractor.calls == calls + 3 and len(list(tmp_path.glob("*.npz"))) == 2
    other_split = ArrayDataset({"image": random_images(40, seed=1), "class": np.arange(40) % 3})
    assert dataset_cache_key(other_split) != dataset_cache_key(dataset)


def test_fid_callback_compares_generated_images_with_the_data(tmp_path):
    images = random_images(64, seed=2)
    data_in = ArrayDataset({"image": images})
    data_out = ExampleDataset({"samples": images.numpy(), "reconstructions": (images * 0.5).numpy()})
    config = {"fid": {"cache_dir": str(tmp_path / "cache"), "batch_size": 32}}
    callback = make_fid_callback(extractor=TinyClassifier())
    results = callback(tmp_path / "eval", data_in, data_out, config)
    assert set(results) == {"fid_samples", "fid_reconstructions"}
    assert abs(results["fid_samples"]) < 1e-9 and results["fid_reconstructions"] > 1e-3
    assert (tmp_path / "eval" / "fid.yaml").read_text().count("fid_") == 2
    expected = fid_from_features(extract_features(ClassifierExtractor(TinyClassifier()), images * 0.5, 64, False),
                                 extract_features(ClassifierExtractor(TinyClassifier()), images, 64, False))
    assert results["fid_reconstructions"] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="no classifier was given"):
        make_fid_callback()(tmp_path, data_in, data_out, config)
    with pytest.raises(KeyError, match="fid/keys"):
        callback(tmp_path, data_in, ExampleDataset({"other": images.numpy()}), config)
