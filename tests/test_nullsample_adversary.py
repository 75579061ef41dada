"""Gradient reversal, the discriminator ensemble and its random resets."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss

from nullsample.models import DiscriminatorEnsemble, grad_reverse


def test_grad_reverse_is_the_identity_forward_and_negates_the_gradient():
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)
    reference = torch.autograd.grad((weights * x.tanh()).sum(), x)[0]
    reversed_x = grad_reverse(x, scale=0.3)
    assert torch.equal(reversed_x, x)
    reversed_grad = torch.autograd.grad((weights * reversed_x.tanh()).sum(), x)[0]
    assert torch.allclose(reversed_grad, -0.3 * reference)


def test_one_backward_descends_for_the_discriminator_and_ascends_for_the_encoder():
    torch.manual_seed(0)
    encoder, discriminator = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)
    x, s = torch.randn(8, 4), torch.randint(0, 2, (8,))
    weight = 0.01

    def objective():  # a stand-in for the NLL, depending on the encoder only
        return encoder(x).pow(2).mean()

    def adversary_loss(features):
        return F.cross_entropy(discriminator(features), s)

    encoder_params, disc_params = list(encoder.parameters()), list(discriminator.parameters())
    total = objective() + weight * adversary_loss(grad_reverse(encoder(x)))
    got = torch.autograd.grad(total, encoder_params + disc_params)

    objective_grads = torch.autograd.grad(objective(), encoder_params)
    adversary_grads = torch.autograd.grad(adversary_loss(encoder(x)), encoder_params + disc_params)
    expected_encoder = [g - weight * a for g, a in zip(objective_grads, adversary_grads[:2])]
    expected_disc = [weight * a for a in adversary_grads[2:]]
    for g, e in zip(got, expected_encoder + expected_disc):
        assert torch.allclose(g, e, atol=1e-7)


def test_ensemble_loss_is_the_mean_cross_entropy_of_its_members():
    torch.manual_seed(1)
    ensemble = DiscriminatorEnsemble(6, num_classes=4, num_discs=3, hidden=[8]).eval()
    features, s = torch.randn(10, 6), torch.randint(0, 4, (10,))
    logits = ensemble(features)
    assert logits.shape == (3, 10, 4)
    members = [log_loss(s.numpy(), m.softmax(-1).detach().numpy(), labels=range(4)) for m in logits]
    assert ensemble.loss(logits, s).item() == pytest.approx(np.mean(members), rel=1e-5)
    with pytest.raises(ValueError, match="num_s"):
        ensemble.loss(logits, torch.full((10,), 4))


def trained_ensemble():
    torch.manual_seed(2)
    ensemble = DiscriminatorEnsemble(6, num_classes=3, num_discs=3, hidden=[8])
    optimizer = torch.optim.RAdam(ensemble.parameters(), lr=0.1)
    for _ in range(3):
        features, s = torch.randn(16, 6), torch.randint(0, 3, (16,))
        optimizer.zero_grad()
        ensemble.loss(ensemble(features), s).backward()
        optimizer.step()
    return ensemble, optimizer


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_reset_with_probability_one_reinitialises_every_member_and_its_optimiser_state():
    ensemble, optimizer = trained_ensemble()
    before = snapshot(ensemble)
    assert ensemble.reset_randomly(1.0, optimizer) == [0, 1, 2]
    after = ensemble.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    weights = [k for k in before if k.endswith("weight") and "body.1" not in k]  # Linear weights
    assert set(weights) <= set(changed)
    for key, value in after.items():  # BatchNorm back to its initial state
        if key.endswith("running_mean"):
            assert torch.count_nonzero(value) == 0
        if key.endswith("running_var"):
            assert torch.equal(value, torch.ones_like(value))
    assert not any(p in optimizer.state for p in ensemble.parameters())


def test_reset_with_probability_zero_changes_nothing_and_draws_are_reproducible():
    ensemble, optimizer = trained_ensemble()
    before = snapshot(ensemble)
    assert ensemble.reset_randomly(0.0, optimizer) == []
    assert all(torch.equal(before[k], v) for k, v in ensemble.state_dict().items())
    assert all(p in optimizer.state for p in ensemble.parameters())
    torch.manual_seed(5)
    first = ensemble.reset_randomly(0.5)
    torch.manual_seed(5)
    assert ensemble.reset_randomly(0.5) == first


def test_reset_of_one_member_leaves_the_others():
    ensemble, optimizer = trained_ensemble()
    before = snapshot(ensemble)
    torch.manual_seed(0)
    draws = torch.rand(3)
    probability = float(draws.sort().values[1])  # exactly one draw lies below it
    torch.manual_seed(0)
    reset = ensemble.reset_randomly(probability, optimizer)
    assert reset == [int(draws.argmin())]
    for i, member in enumerate(ensemble.members):
        unchanged = all(torch.equal(before[f"members.{i}.{k}"], v) for k, v in member.state_dict().items())
        assert unchanged == (i not in reset)
        assert all((p in optimizer.state) == (i not in reset) for p in member.parameters())


def test_residual_discriminator_is_nifrs_layout_and_starts_near_a_linear_read_out():
    torch.manual_seed(3)
    ensemble = DiscriminatorEnsemble(20, num_classes=10, num_discs=2, hidden=[16], arch="residual")
    member = ensemble.members[0]
    assert [tuple(m.weight.shape) for m in member.modules() if isinstance(m, torch.nn.Linear)] == [
        (16, 20), (16, 16), (16, 16), (10, 16)]
    assert all(m.eps == 1e-3 for m in member.modules() if isinstance(m, torch.nn.BatchNorm1d))
    x = torch.randn(32, 20)
    linear = member.final(member.initial(x))
    assert (ensemble(x)[0] - linear).abs().max() < 0.05 * linear.abs().max()
    with pytest.raises(ValueError, match="Adversary/arch"):
        DiscriminatorEnsemble(20, num_classes=10, arch="resnet")
    with pytest.raises(ValueError, match="Adversary/hidden"):
        DiscriminatorEnsemble(20, num_classes=10, hidden=[16, 16], arch="residual")


def test_reset_of_a_residual_member_restores_its_near_zero_last_layers():
    torch.manual_seed(4)
    ensemble = DiscriminatorEnsemble(8, num_classes=3, num_discs=1, hidden=[16], arch="residual")
    block = ensemble.members[0].blocks[0]
    initial = ensemble.members[0].initial.weight.detach().clone()
    with torch.no_grad():
        for parameter in ensemble.parameters():
            parameter.add_(torch.randn_like(parameter))
    assert block.linear_out.weight.abs().max() > 0.1
    ensemble.reset_randomly(1.0)
    assert block.linear_out.weight.abs().max() <= 1e-3 and block.linear_out.bias.abs().max() <= 1e-3
    assert not torch.allclose(ensemble.members[0].initial.weight, initial)  # freshly drawn, not restored
    assert block.linear_in.weight.abs().max() > 1e-2
