"""The "batch_probe" encoder objective: the held-out R^2 of a ridge probe refitted on every batch, checked against
scikit-learn's Ridge on the same standardised features."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from nullsample.iterators import CVAETrainer
from nullsample.models import CVAE
from nullsample.models.adversary import batch_probe_fit


def reference_fit(features: np.ndarray, s: np.ndarray, num_classes: int, ridge: float) -> float:
    z = (features - features.mean(0)) / (features.std(0, ddof=1) + 1e-3)
    y = np.eye(num_classes)[s]
    y = y - y.mean(0)
    half = len(z) // 2
    fits = []
    for fit_on, test_on in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        probe = Ridge(alpha=ridge * z.shape[1], fit_intercept=False).fit(z[fit_on], y[fit_on])
        residual = ((y[test_on] - probe.predict(z[test_on])) ** 2).sum() / (y[test_on] ** 2).sum()
        fits.append(1.0 - residual)
    return max(float(np.mean(fits)), 0.0)


@pytest.mark.parametrize("signal", [0.0, 0.5, 3.0])
def test_batch_probe_fit_equals_sklearn_ridge_cross_fitted(signal):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, size=40)
    features = rng.normal(size=(40, 30)) + signal * np.eye(4)[s] @ rng.normal(size=(4, 30))
    got = batch_probe_fit(torch.tensor(features), torch.tensor(s), 4, ridge=0.1).item()
    assert got == pytest.approx(reference_fit(features, s, 4, 0.1), abs=1e-8)


def test_batch_probe_reads_s_when_it_is_linear_in_the_features_and_not_when_it_is_absent():
    torch.manual_seed(0)
    s = torch.randint(0, 5, (64,))
    noise = torch.randn(64, 100)
    encoded = noise + 4.0 * torch.nn.functional.one_hot(s, 5).float() @ torch.randn(5, 100)
    assert batch_probe_fit(encoded, s, 5).item() > 0.8
    assert batch_probe_fit(noise, s, 5).item() < 0.1


def test_batch_probe_gradient_reaches_the_features_and_lowers_the_fit():
    torch.manual_seed(0)
    s = torch.randint(0, 3, (32,))
    features = (torch.randn(32, 20) + 2.0 * torch.nn.functional.one_hot(s, 3).float() @ torch.randn(3, 20))
    features.requires_grad_(True)
    fit = batch_probe_fit(features, s, 3)
    (grad,) = torch.autograd.grad(fit, features)
    assert grad.abs().sum() > 0
    assert batch_probe_fit(features.detach() - 0.5 * grad, s, 3) < fit.detach()


def test_batch_probe_rejects_a_batch_too_small_to_split():
    with pytest.raises(ValueError, match="at least 4"):
        batch_probe_fit(torch.randn(3, 5), torch.tensor([0, 1, 0]), 2)


def test_batch_probe_objective_trains_discriminators_on_detached_features_and_the_encoder_on_the_probe(tmp_path):
    config = {"batch_size": 16, "Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "weight": 0.5,
                            "encoder_objective": "batch_probe"},
              "Trainer": {"lr": 1e-3, "adversary_input": "mu"}}
    torch.manual_seed(0)
    model = CVAE(config)
    trainer = CVAETrainer(config, str(tmp_path), model, datasets={})
    s = torch.arange(16) % 3
    x = 0.1 * torch.rand(16, 3, 8, 8) + (s.float() - 1).view(-1, 1, 1, 1)  # s sets the brightness: readable
    losses = trainer.losses(model, x, s)
    with torch.no_grad():
        _, mu, _, _ = model(x, s)
    assert losses["batch_probe_r2"].item() == pytest.approx(
        batch_probe_fit(model.adversary_input(mu), s, 3).item(), abs=1e-6)
    encoder, discs = list(model.encoder.parameters()), list(trainer.discriminators.parameters())
    probe_grads = torch.autograd.grad(losses["batch_probe_r2"], encoder, retain_graph=True, allow_unused=True,
                                      materialize_grads=True)
    assert losses["batch_probe_r2"].item() > 0 and sum(g.abs().sum() for g in probe_grads) > 0
    ce_grads = torch.autograd.grad(losses["adversary_ce"], encoder, allow_unused=True, materialize_grads=True)
    assert all(g.abs().sum() == 0 for g in ce_grads)
