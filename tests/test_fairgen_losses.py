"""fairgen's losses against hand-computed values and autograd: the importance-weighted hinge loss, the importance
weights and the density ratio."""
import numpy as np
import pytest
import torch

from fairgen.losses import (density_ratio, discriminator_loss, generator_loss, importance_weights,
                            ratio_classifier_loss)


def plain_hinge(real: np.ndarray, fake: np.ndarray) -> float:
    return float(np.mean(np.maximum(0.0, 1.0 - real)) + np.mean(np.maximum(0.0, 1.0 + fake)))


@pytest.fixture
def logits():
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(64, generator=generator, dtype=torch.float64) * 2
    fake = torch.randn(64, generator=generator, dtype=torch.float64) * 2
    return real, fake


def test_unit_weights_give_the_plain_hinge_loss(logits):
    real, fake = logits
    expected = plain_hinge(real.numpy(), fake.numpy())
    assert discriminator_loss(real, fake, torch.ones(64, dtype=torch.float64)).item() == pytest.approx(expected)
    assert discriminator_loss(real, fake, None).item() == pytest.approx(expected)


def test_weights_scale_the_real_term_only(logits):
    real, fake = logits
    weights = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5
    expected = float(np.mean(weights.numpy() * np.maximum(0.0, 1.0 - real.numpy()))
                     + np.mean(np.maximum(0.0, 1.0 + fake.numpy())))
    assert discriminator_loss(real, fake, weights).item() == pytest.approx(expected)


def test_weights_leave_the_fake_gradient_alone_and_scale_the_real_one(logits):
    real, fake = (t.clone().requires_grad_(True) for t in logits)
    weights = torch.rand(64, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 5
    grad_real, grad_fake = torch.autograd.grad(discriminator_loss(real, fake, weights), (real, fake))
    plain_real, plain_fake = torch.autograd.grad(discriminator_loss(real, fake, None), (real, fake))
    torch.testing.assert_close(grad_fake, plain_fake)
    # d/dD(x_i) of mean_i w_i relu(1 - D(x_i)) = -w_i / n where D(x_i) < 1, else 0
    active = (real.detach() < 1).double()
    torch.testing.assert_close(grad_real, -weights * active / 64)
    torch.testing.assert_close(plain_real, -active / 64)


def test_generator_loss_is_minus_the_mean_fake_logit(logits):
    _, fake = logits
    assert generator_loss(fake).item() == pytest.approx(-fake.mean().item())


def test_importance_weights_flatten_the_ratio_with_alpha():
    ratio = torch.tensor([0.25, 1.0, 4.0])
    torch.testing.assert_close(importance_weights(ratio, 1.0), ratio)
    torch.testing.assert_close(importance_weights(ratio, 0.5), torch.tensor([0.5, 1.0, 2.0]))
    torch.testing.assert_close(importance_weights(ratio, 0.0), torch.ones(3))
    assert importance_weights(ratio, 1.0, reweight=False) is None  # the equal-weight baseline
    assert importance_weights(None, 1.0) is None
    with pytest.raises(ValueError, match="alpha"):
        importance_weights(ratio, -1.0)


def test_density_ratio_is_the_odds_of_the_reference_class_and_one_on_the_reference_set():
    logits = torch.tensor([-2.0, 0.0, 1.5, 3.0])
    p = torch.sigmoid(logits)
    torch.testing.assert_close(density_ratio(logits), p / (1 - p))
    ratio = density_ratio(logits, is_reference=torch.tensor([0, 1, 0, 1]))
    torch.testing.assert_close(ratio, torch.tensor([float(np.exp(-2.0)), 1.0, float(np.exp(1.5)), 1.0]))


def test_ratio_classifier_loss_is_binary_cross_entropy():
    logits = torch.tensor([-1.0, 0.5, 2.0])
    labels = torch.tensor([0, 1, 1])
    p = 1 / (1 + np.exp(-logits.numpy()))
    expected = -np.mean(labels.numpy() * np.log(p) + (1 - labels.numpy()) * np.log(1 - p))
    assert ratio_classifier_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
