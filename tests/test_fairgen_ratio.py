"""The density-ratio classifier on a toy case whose true ratio is known, and the calibration helpers.

Biased data x ~ N(0, 1), reference data x ~ N(1, 1): the true log ratio is log N(x; 1, 1) - log N(x; 0, 1) =
x - 1/2. A logistic classifier trained with fairgen's loss on fairgen's class-balanced batches recovers it, although
the reference set is four times smaller; trained on the plain union it is off by log(1/4), the class prior.
"""
import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from edflow.data.dataset import ArrayDataset, ConcatenatedDataset
from fairgen.callbacks import reliability_curve
from fairgen.data import ClassBalancedPairs
from fairgen.losses import density_ratio, ratio_classifier_loss

N_BIASED, N_REFERENCE = 4000, 1000


def gaussian_parts():
    generator = torch.Generator().manual_seed(0)
    biased = ArrayDataset({"image": torch.randn(N_BIASED, 1, generator=generator),
                           "reference": torch.zeros(N_BIASED, dtype=torch.long)})
    reference = ArrayDataset({"image": torch.randn(N_REFERENCE, 1, generator=generator) + 1.0,
                              "reference": torch.ones(N_REFERENCE, dtype=torch.long)})
    return biased, reference


def fit_logistic(dataset, steps: int = 150, batch_size: int = 1000) -> torch.nn.Linear:
    """A linear logit trained with fairgen's ratio loss on shuffled batches of ``dataset``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    order = np.random.default_rng(0)
    for _ in range(steps):
        batch = dataset.get_batch(order.choice(len(dataset), batch_size, replace=False))
        loss = ratio_classifier_loss(model(batch["image"]).squeeze(1), batch["reference"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_class_balanced_training_recovers_the_true_density_ratio():
    model = fit_logistic(ClassBalancedPairs(*gaussian_parts()))
    x = torch.linspace(-1.5, 2.5, 9).unsqueeze(1)
    with torch.no_grad():
        estimated = density_ratio(model(x).squeeze(1))
    true = torch.exp(x.squeeze(1) - 0.5)
    assert model.weight.item() == pytest.approx(1.0, abs=0.12)
    assert model.bias.item() == pytest.approx(-0.5, abs=0.12)
    np.testing.assert_allclose(estimated.numpy(), true.numpy(), rtol=0.3)


def test_training_on_the_unbalanced_union_is_off_by_the_class_prior():
    model = fit_logistic(ConcatenatedDataset(*gaussian_parts()))
    assert model.bias.item() == pytest.approx(-0.5 + np.log(N_REFERENCE / N_BIASED), abs=0.15)


def test_balanced_batches_hold_as_many_examples_of_each_part():
    biased, reference = gaussian_parts()
    pairs = ClassBalancedPairs(biased, reference)
    assert len(pairs) == N_BIASED
    indices = np.array([3, 1500, 3999])
    batch = pairs.get_batch(indices)
    assert batch["reference"].tolist() == [0, 0, 0, 1, 1, 1]
    torch.testing.assert_close(batch["image"][:3], biased.arrays["image"][indices])
    torch.testing.assert_close(batch["image"][3:], reference.arrays["image"][indices % N_REFERENCE])


def test_reliability_curve_matches_scikit_learn():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(size=2000)
    labels = (rng.uniform(size=2000) < probabilities ** 1.5).astype(int)
    curve = reliability_curve(probabilities, labels, bins=10)
    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(curve["observed"], observed)
    np.testing.assert_allclose(curve["mean_predicted"], predicted)
    counts = np.histogram(probabilities, bins=np.linspace(0, 1, 11))[0]
    expected_ece = np.sum(counts / 2000 * np.abs(observed - predicted))
    assert curve["ece"] == pytest.approx(expected_ece)


def test_a_calibrated_predictor_has_a_small_ece():
    rng = np.random.default_rng(1)
    probabilities = rng.uniform(size=20000)
    labels = (rng.uniform(size=20000) < probabilities).astype(int)
    assert reliability_curve(probabilities, labels)["ece"] < 0.02
    assert reliability_curve(probabilities ** 3, labels)["ece"] > 0.1
