"""IIN's evaluations: the factor dimension estimate, the swap shares, FID through fairkit, and the learning-rate
schedule."""
import logging

import numpy as np
import pytest
import torch

from edflow.data.dataset import ArrayDataset, ExampleDataset
from fairkit.metrics import fid_from_features
from iin import callbacks
from iin.iterators.base import decay_factor, learning_rate


def direct_scores(za, zb, factor, n_factors, residual):
    """score_f = sum_d mean_pairs[(za_d - m_d)(zb_d - m_d)] / sum_d Var(z_d), one dimension at a time."""
    both = np.concatenate([za, zb])
    total = sum(np.mean((both[:, d] - both[:, d].mean()) ** 2) for d in range(za.shape[1]))
    scores = []
    for f in range(n_factors):
        if f == residual:
            scores.append(1.0)
            continue
        a, b = za[factor == f], zb[factor == f]
        covariance = 0.0
        for d in range(za.shape[1]):
            m = 0.5 * (a[:, d].mean() + b[:, d].mean())
            covariance += np.mean((a[:, d] - m) * (b[:, d] - m))
        scores.append(covariance / total)
    return np.array(scores)


def test_factor_scores_match_the_formula():
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(2, 40, 5))
    factor = rng.integers(0, 2, size=40)
    zb[factor == 0, :2] = za[factor == 0, :2] + 0.1 * zb[factor == 0, :2]
    scores = callbacks.factor_scores(za, zb, factor, 3, 2)
    assert np.allclose(scores, direct_scores(za, zb, factor, 3, 2), rtol=1e-12)


def test_dimension_estimate_finds_how_many_dimensions_each_factor_shares():
    rng = np.random.default_rng(1)
    n, dim = 20000, 8
    za, zb = rng.normal(size=(2, n, dim))
    factor = rng.integers(0, 2, size=n)
    zb[factor == 0, :4] = za[factor == 0, :4]  # factor 0 shares 4 of 8 unit-variance dims: score 1/2
    zb[factor == 1, 4:5] = za[factor == 1, 4:5]  # factor 1 shares 1 dim: score 1/8
    scores = callbacks.factor_scores(za, zb, factor, 3, 2)
    assert np.allclose(scores, [0.5, 0.125, 1.0], atol=0.02)
    softmax = np.exp([0.5, 0.125, 1.0]) / np.exp([0.5, 0.125, 1.0]).sum()
    expected = [int(softmax[0] * dim), int(softmax[1] * dim)]
    dims = callbacks.estimate_factor_dims(za, zb, factor, 3, 2)
    assert dims[:2] == expected and sum(dims) == dim


class PairOutputs:
    n_factors, residual_index, factor_names = 3, 2, ("digit", "color", "residual")


def test_factor_dims_callback_reads_eval_outputs_and_skips_missing_factors(tmp_path, caplog):
    rng = np.random.default_rng(2)
    z1, z2 = rng.normal(size=(2, 50, 6)).astype(np.float32)
    outputs = ExampleDataset({"z1": z1, "z2": z2, "factor": np.arange(50) % 2})
    results = callbacks.factor_dims_callback(str(tmp_path), PairOutputs(), outputs, {})
    assert set(results) == {"dim_digit", "dim_color", "dim_residual"} and sum(results.values()) == 6
    assert (tmp_path / "factor_dims.yaml").is_file()
    with caplog.at_level(logging.WARNING, logger="iin"):
        only_digit = ExampleDataset({"z1": z1, "z2": z2, "factor": np.zeros(50, dtype=np.int64)})
        assert callbacks.factor_dims_callback(str(tmp_path), PairOutputs(), only_digit, {}) == {}
    assert "factor(s) [1]" in caplog.text


def test_swap_share_counts_changed_and_kept_answers_among_eligible_pairs():
    colour_a = [0, 1, 2, 3, 4]
    colour_b = [1, 1, 3, 0, 5]  # pair 1 is not eligible: a and b already agree
    colour_swap = [1, 0, 2, 0, 5]  # changed for pairs 0, 1, 3, 4
    digit_a = [7, 7, 7, 7, 7]
    digit_swap = [7, 7, 7, 1, 7]  # pair 3 loses its digit
    share = callbacks.changed_and_kept_share(colour_a, colour_b, colour_swap, digit_a, digit_swap)
    assert share == pytest.approx(2 / 4)  # eligible 0, 2, 3, 4; successes 0 and 4
    assert np.isnan(callbacks.changed_and_kept_share([1], [1], [2], [0], [0]))


def test_colour_bins():
    colours = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.2, 0.7], [0.6, 0.6, 0.6]])
    assert callbacks.colour_bins(colours).tolist() == [0, 5, 7]


class Features(torch.nn.Module):
    """A fixed 'classifier' for FID: two pooled statistics per image."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def features(self, x):
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1) * self.scale


def test_fid_callback_skips_without_an_extractor_and_matches_fairkit_with_one(tmp_path, monkeypatch, caplog):
    torch.manual_seed(0)
    reference = torch.rand(40, 1, 8, 8) * 2 - 1
    data_in = ArrayDataset({"image": reference, "class": torch.arange(40)})
    samples = (torch.rand(40, 1, 8, 8) * 1.5 - 1).numpy()
    reconstructions = (reference + 0.1 * torch.randn_like(reference)).clamp(-1, 1).numpy()
    data_out = ExampleDataset({"samples": samples, "reconstructions": reconstructions})
    with caplog.at_level(logging.WARNING, logger="iin"):
        assert callbacks.fid_callback(str(tmp_path), data_in, data_out, {"fid": {"batch_size": 50}}) == {}
    assert "FID skipped" in caplog.text and "fid/extractor" in caplog.text

    net = Features()
    monkeypatch.setattr(callbacks, "load_stage", lambda spec, device: net if spec == {"run": "tiny_fidnet"} else None)
    config = {"fid": {"extractor": "classifier", "run": "tiny_fidnet", "cache_dir": str(tmp_path / "cache")}}
    results = callbacks.fid_callback(str(tmp_path), data_in, data_out, config)
    with torch.no_grad():
        expected = {key: fid_from_features(net.features(torch.as_tensor(images)), net.features(reference))
                    for key, images in (("samples", samples), ("reconstructions", reconstructions))}
    assert results["fid_samples"] == pytest.approx(expected["samples"], rel=1e-6)
    assert results["fid_reconstructions"] == pytest.approx(expected["reconstructions"], rel=1e-6)
    assert results["fid_reconstructions"] < results["fid_samples"]


def test_fid_reference_of_pair_data_is_the_first_image_of_each_pair():
    class Pairs:
        labels = {}

        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"factor": 0, "example1": {"image": np.full((1, 2, 2), i, np.float32)},
                    "example2": {"image": np.zeros((1, 2, 2), np.float32)}}

    batch = callbacks.FirstImages(Pairs()).get_batch([2, 0])
    assert batch["image"][:, 0, 0, 0].tolist() == [2.0, 0.0]


def test_learning_rate_scales_with_batch_size_and_decays_linearly_to_zero():
    assert learning_rate({"base_learning_rate": 4.5e-6, "batch_size": 25}) == pytest.approx(1.125e-4)
    assert learning_rate({"learning_rate": 1e-3, "base_learning_rate": 1.0, "batch_size": 25}) == 1e-3
    assert [decay_factor(s, 100, 200) for s in (0, 100, 150, 200, 250)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    assert decay_factor(500, 1000, 800) == 1.0  # decay_start after the last step: no decay


def test_a_missing_fid_classifier_run_fails_before_training(log_root):
    from edflow.first_stage import FirstStageError

    with pytest.raises(FirstStageError, match="no_such_fidnet"):
        callbacks.check_fid_classifier({"fid": {"extractor": "classifier", "run": "no_such_fidnet"}})
    callbacks.check_fid_classifier({"fid": {"extractor": None}})  # FID off: nothing to check
