"""Complementary latents, SVM hyperplanes and GAN inversion of latent de-biasing, against independent references
(the defining equations, numpy's least-squares minimum-norm solution, scikit-learn's LinearSVC, torch's model
state)."""
import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC

from latentdebias.hyperplanes import (complement_latent, complement_latents, fit_hyperplane, flip_patterns,
                                      min_norm_edit, normalise, scores)
from latentdebias.inversion import invert
from latentdebias.models import LatentHyperplanes


def random_hyperplane(rng, dim):
    w = rng.normal(size=dim)
    return w / np.linalg.norm(w), float(rng.normal())


@pytest.mark.parametrize("dim, seed", [(2, 0), (8, 1), (128, 2), (512, 3)])
def test_complement_keeps_the_target_score_and_negates_the_protected_score(dim, seed):
    rng = np.random.default_rng(seed)
    (w_t, b_t), (w_g, b_g) = random_hyperplane(rng, dim), random_hyperplane(rng, dim)
    z = rng.normal(size=(200, dim))
    z_prime = complement_latent(z, w_t, w_g, b_g)
    np.testing.assert_allclose(z_prime @ w_t, z @ w_t, atol=1e-5, rtol=0)
    np.testing.assert_allclose(z_prime @ w_g + b_g, -(z @ w_g + b_g), atol=1e-5, rtol=0)


def test_complement_is_the_smallest_change_that_does_it():
    """Against numpy's minimum-norm least-squares solution of the two constraints."""
    rng = np.random.default_rng(4)
    (w_t, _), (w_g, b_g) = random_hyperplane(rng, 16), random_hyperplane(rng, 16)
    z = rng.normal(size=(5, 16))
    normals = np.stack([w_g, w_t])
    for row, z_prime in zip(z, complement_latent(z, w_t, w_g, b_g)):
        delta = np.linalg.lstsq(normals, np.array([-2 * (w_g @ row + b_g), 0.0]), rcond=None)[0]
        np.testing.assert_allclose(z_prime, row + delta, atol=1e-10)


def test_one_latent_and_a_batch_agree():
    rng = np.random.default_rng(5)
    (w_t, _), (w_g, b_g) = random_hyperplane(rng, 6), random_hyperplane(rng, 6)
    z = rng.normal(size=(3, 6))
    np.testing.assert_allclose(complement_latent(z[1], w_t, w_g, b_g), complement_latent(z, w_t, w_g, b_g)[1])


def test_parallel_hyperplanes_are_refused():
    w = np.array([1.0, 0.0])
    with pytest.raises(ValueError, match="parallel"):
        complement_latent(np.zeros((1, 2)), w, -w, 0.3)


def test_domain_dependent_complement_scores_under_the_other_groups_target_hyperplane():
    rng = np.random.default_rng(6)
    dim = 10
    (w0, b0), (w1, b1), (w_g, b_g) = (random_hyperplane(rng, dim) for _ in range(3))
    z = rng.normal(size=(300, dim))
    z_prime = complement_latents(z, np.stack([w0, w1]), np.array([b0, b1]), w_g[None], np.array([b_g]))
    d = z @ w_g + b_g
    np.testing.assert_allclose(z_prime @ w_g + b_g, -d, atol=1e-5)
    own = np.where(d > 0, z @ w1 + b1, z @ w0 + b0)
    other = np.where(d > 0, z_prime @ w0 + b0, z_prime @ w1 + b1)
    np.testing.assert_allclose(other, own, atol=1e-5)


def test_two_protected_attributes_every_flip_pattern():
    rng = np.random.default_rng(7)
    dim = 12
    (w_t, b_t), (w_a, b_a), (w_b, b_b) = (random_hyperplane(rng, dim) for _ in range(3))
    protected_w, protected_b = np.stack([w_a, w_b]), np.array([b_a, b_b])
    z = rng.normal(size=(50, dim))
    patterns = flip_patterns(2)
    assert sorted(patterns) == [(False, True), (True, False), (True, True)]
    for flips in patterns:
        z_prime = complement_latents(z, w_t[None], np.array([b_t]), protected_w, protected_b, flips)
        np.testing.assert_allclose(z_prime @ w_t, z @ w_t, atol=1e-5)
        sign = np.where(flips, -1.0, 1.0)
        expected = scores(z, protected_w, protected_b) * sign
        np.testing.assert_allclose(scores(z_prime, protected_w, protected_b), expected, atol=1e-5)


def test_the_general_solver_reduces_to_the_closed_form():
    rng = np.random.default_rng(8)
    (w_t, b_t), (w_g, b_g) = random_hyperplane(rng, 9), random_hyperplane(rng, 9)
    z = rng.normal(size=(20, 9))
    change = np.stack([-2 * (z @ w_g + b_g), np.zeros(len(z))], 1)
    np.testing.assert_allclose(min_norm_edit(z, np.stack([w_g, w_t]), change), complement_latent(z, w_t, w_g, b_g),
                               atol=1e-10)


def test_fitted_hyperplane_is_the_normalised_linear_svm():
    rng = np.random.default_rng(9)
    z = rng.normal(size=(400, 5))
    labels = (z @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) + 0.3 + 0.5 * rng.normal(size=400) > 0).astype(int)
    w, b = fit_hyperplane(z, labels, C=0.5)
    svm = LinearSVC(C=0.5, max_iter=10000, random_state=0).fit(z, labels)
    norm = np.linalg.norm(svm.coef_[0])
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(scores(z, w, b), svm.decision_function(z) / norm, atol=1e-9)
    np.testing.assert_array_equal(scores(z, w, b) > 0, svm.predict(z) == 1)


def test_fit_needs_both_labels_and_normalise_needs_a_normal():
    with pytest.raises(ValueError, match="both labels"):
        fit_hyperplane(np.zeros((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="non-zero"):
        normalise(np.zeros(3), 1.0)


def test_hyperplane_model_round_trips_through_its_state_dict():
    rng = np.random.default_rng(10)
    model = LatentHyperplanes({})
    with pytest.raises(RuntimeError, match="not fitted"):
        model.complement(torch.zeros(1, 4))
    (w_t, b_t), (w_g, b_g) = random_hyperplane(rng, 4), random_hyperplane(rng, 4)
    model.set_hyperplanes([(w_t, b_t)], [(w_g, b_g)])
    loaded = LatentHyperplanes({})  # built without knowing the latent size, as a chained stage is
    loaded.load_state_dict(model.state_dict())
    z = torch.as_tensor(rng.normal(size=(7, 4)), dtype=torch.float32)
    expected = complement_latent(z.double().numpy(), w_t, w_g, b_g)
    np.testing.assert_allclose(loaded.complement(z).numpy(), expected, atol=1e-6)
    assert loaded.complement(z).dtype == torch.float32
    np.testing.assert_allclose(loaded.protected_scores(z)[:, 0].numpy(), z.double().numpy() @ w_g + b_g, atol=1e-12)


def test_inversion_recovers_the_latent_of_a_linear_generator():
    """G(z) = A z + c has a unique least-squares latent; without the prior, inversion must find it."""
    torch.manual_seed(0)
    weight = torch.randn(48, 6)
    offset = torch.randn(48)

    def generator(z):
        return (z @ weight.T + offset).view(-1, 3, 4, 4)

    truth = torch.randn(5, 6)
    images = generator(truth)
    z, error = invert(generator, images, dim_z=6, steps=300, lr=0.1, prior_weight=0.0,
                      rng=torch.Generator().manual_seed(1))
    reference = torch.linalg.lstsq(weight, (images.flatten(1) - offset).T).solution.T
    torch.testing.assert_close(z, reference, atol=1e-4, rtol=0)
    assert error.max() < 1e-5


def test_inversion_keeps_the_best_restart_per_image():
    def generator(z):  # two minima per coordinate: z = +-1 reproduce the image equally, z = 0 does not
        return (z ** 2).view(-1, 1, 1, 2)

    images = torch.ones(3, 1, 1, 2)
    z, error = invert(generator, images, dim_z=2, steps=300, lr=0.05, prior_weight=0.0, restarts=3,
                      rng=torch.Generator().manual_seed(2))
    torch.testing.assert_close(z.abs(), torch.ones(3, 2), atol=1e-3, rtol=0)
    assert error.max() < 1e-6
