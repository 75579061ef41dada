"""The "linear_probe" encoder objective: the R^2 on the current batch of a ridge probe refitted on every step to a
bank of recent inputs, checked against scikit-learn's Ridge; the bank is checkpointed state."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from nullsample.iterators import CVAETrainer
from nullsample.models import CVAE
from nullsample.models.adversary import ProbeBank, ridge_probe_r2


def reference_r2(train_z, train_s, test_z, test_s, num_classes, ridge):
    mean, std = train_z.mean(0), train_z.std(0, ddof=1) + 1e-3
    train_y = np.eye(num_classes)[train_s]
    label_mean = train_y.mean(0)
    probe = Ridge(alpha=ridge * train_z.shape[1], fit_intercept=False)
    probe.fit((train_z - mean) / std, train_y - label_mean)
    test_y = np.eye(num_classes)[test_s] - label_mean
    residual = ((test_y - probe.predict((test_z - mean) / std)) ** 2).sum() / (test_y ** 2).sum()
    return max(1.0 - residual, 0.0)


def encoded(n, dims, num_classes, signal, rng):
    s = rng.integers(0, num_classes, size=n)
    return rng.normal(size=(n, dims)) + signal * np.eye(num_classes)[s] @ rng.normal(size=(num_classes, dims)), s


@pytest.mark.parametrize("ridge", [0.1, 1.0])
@pytest.mark.parametrize("signal", [0.0, 0.5, 3.0])
def test_ridge_probe_r2_equals_sklearn_ridge(signal, ridge):
    rng = np.random.default_rng(0)
    z, s = encoded(120, 40, 4, signal, rng)
    got = ridge_probe_r2(*(torch.tensor(a) for a in (z[:80], s[:80], z[80:], s[80:])), 4, ridge=ridge).item()
    assert got == pytest.approx(reference_r2(z[:80], s[:80], z[80:], s[80:], 4, ridge), abs=1e-8)


def test_ridge_probe_reads_s_when_it_is_linear_in_the_features_and_not_when_it_is_absent():
    rng = np.random.default_rng(1)
    z, s = encoded(600, 100, 5, 3.0, rng)
    noise = rng.normal(size=z.shape)
    as_tensors = lambda *arrays: [torch.tensor(a) for a in arrays]  # noqa: E731
    assert ridge_probe_r2(*as_tensors(z[:500], s[:500], z[500:], s[500:]), 5).item() > 0.8
    assert ridge_probe_r2(*as_tensors(noise[:500], s[:500], noise[500:], s[500:]), 5).item() < 0.05


def test_the_probe_gradient_reaches_the_batch_and_lowers_the_fit():
    rng = np.random.default_rng(2)
    z, s = encoded(300, 20, 3, 2.0, rng)
    train_z, train_s, test_s = torch.tensor(z[:256]), torch.tensor(s[:256]), torch.tensor(s[256:])
    test_z = torch.tensor(z[256:], requires_grad=True)
    fit = ridge_probe_r2(train_z, train_s, test_z, test_s, 3)
    (grad,) = torch.autograd.grad(fit, test_z)
    assert grad.abs().sum() > 0
    assert ridge_probe_r2(train_z, train_s, test_z.detach() - 0.5 * grad, test_s, 3) < fit.detach()


def test_the_bank_keeps_the_latest_inputs_and_scores_only_when_full():
    bank = ProbeBank(3, size=5).train()
    batches = [(torch.full((2, 3), float(i)), torch.tensor([i % 2, 1 - i % 2])) for i in range(4)]
    fits = [bank.r2(x, s, 2) for x, s in batches]
    assert all(f.item() == 0 for f in fits[:3])
    assert bank.count.item() == 8
    # a ring of 5: the 8 inputs 0,0,1,1,2,2,3,3 leave the last five, input k at slot k % 5
    assert bank.features[:, 0].tolist() == [2.0, 3.0, 3.0, 1.0, 2.0]
    bank.eval()
    bank.r2(torch.zeros(2, 3), torch.tensor([0, 1]), 2)
    assert bank.count.item() == 8  # evaluation does not change the bank


def test_linear_probe_objective_scores_the_bank_probe_and_keeps_the_discriminators_on_detached_inputs(tmp_path):
    config = {"batch_size": 16, "Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "weight": 0.5,
                            "encoder_objective": "linear_probe"},
              "Trainer": {"lr": 1e-3, "adversary_input": "mu"}}
    torch.manual_seed(0)
    model = CVAE(config)
    trainer = CVAETrainer(config, str(tmp_path), model, datasets={})
    assert "probe_bank" in trainer.stateful_attributes()  # checkpointed, so a resumed run continues exactly
    trainer.probe_bank = ProbeBank(model.z_dim, size=32)

    def batch():
        s = torch.randint(0, 3, (16,))
        return 0.1 * torch.rand(16, 3, 8, 8) + (s.float() - 1).view(-1, 1, 1, 1), s  # s sets the brightness

    for _ in range(2):
        trainer.losses(model, *batch())
    bank_before = trainer.probe_bank.features.clone(), trainer.probe_bank.labels.clone()
    x, s = batch()
    losses = trainer.losses(model, x, s)
    with torch.no_grad():
        _, mu, _, _ = model(x, s)
    expected = ridge_probe_r2(*bank_before, model.adversary_input(mu), s, 3)
    assert losses["linear_probe_r2"].item() == pytest.approx(expected.item(), abs=1e-5)
    assert losses["linear_probe_r2"].item() > 0
    encoder = list(model.encoder.parameters())
    probe_grads = torch.autograd.grad(losses["linear_probe_r2"], encoder, retain_graph=True, allow_unused=True,
                                      materialize_grads=True)
    assert sum(g.abs().sum() for g in probe_grads) > 0
    ce_grads = torch.autograd.grad(losses["adversary_ce"], encoder, allow_unused=True, materialize_grads=True)
    assert all(g.abs().sum() == 0 for g in ce_grads)


def test_other_objectives_keep_no_bank(tmp_path):
    config = {"Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "encoder_objective": "uniform"}}
    trainer = CVAETrainer(config, str(tmp_path), CVAE(config), datasets={})
    assert "probe_bank" not in trainer.stateful_attributes()
