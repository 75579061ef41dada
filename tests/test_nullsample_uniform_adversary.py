"""The encoder's "uniform" adversarial objective: cross-entropy of the discriminators' predictions to uniform,
through a frozen view of the ensemble."""
import math

import pytest
import torch
import torch.nn.functional as F

from nullsample.iterators import CVAETrainer
from nullsample.models import CVAE, DiscriminatorEnsemble
from nullsample.models.adversary import cross_entropy_to_uniform


def test_cross_entropy_to_uniform_matches_the_hand_computed_value():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    expected = -(math.log(0.5) + 2 * math.log(0.25) + 2 * math.log(0.1) + math.log(0.8)) / 6
    assert cross_entropy_to_uniform(logits).item() == pytest.approx(expected, rel=1e-6)
    uniform_targets = torch.full((2, 3), 1 / 3)
    assert cross_entropy_to_uniform(logits).item() == pytest.approx(
        F.cross_entropy(logits, uniform_targets).item(), rel=1e-6)


def test_its_gradient_vanishes_at_uniform_predictions_and_is_p_minus_one_over_k_elsewhere():
    features = torch.randn(4, 5, requires_grad=True)
    constant_logits = features.sum(1, keepdim=True).expand(4, 3) * 0.7  # equal across classes: p uniform
    grad = torch.autograd.grad(cross_entropy_to_uniform(constant_logits), features)[0]
    assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-7)

    logits = torch.randn(4, 3, requires_grad=True)
    grad = torch.autograd.grad(cross_entropy_to_uniform(logits), logits)[0]
    assert torch.allclose(grad, (logits.softmax(-1) - 1 / 3) / 4, atol=1e-7)


def test_confidently_wrong_predictions_cost_more_than_chance():
    k = 10
    confident_wrong = torch.full((1, k), -10.0)
    confident_wrong[0, 3] = 10.0
    assert cross_entropy_to_uniform(confident_wrong).item() > cross_entropy_to_uniform(torch.zeros(1, k)).item()
    assert cross_entropy_to_uniform(torch.zeros(1, k)).item() == pytest.approx(math.log(k))


def test_frozen_view_gives_the_same_logits_but_no_parameter_gradient_and_no_statistics_update():
    torch.manual_seed(0)
    ensemble = DiscriminatorEnsemble(6, num_classes=4, num_discs=2, hidden=[8]).train()
    features = torch.randn(10, 6, requires_grad=True)
    buffers = {k: v.clone() for k, v in ensemble.state_dict().items() if "running" in k}
    frozen = ensemble.frozen(features)
    assert all(torch.equal(v, ensemble.state_dict()[k]) for k, v in buffers.items())
    assert torch.allclose(frozen, ensemble(features))
    cross_entropy_to_uniform(frozen).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert all(p.grad is None for p in ensemble.parameters())


def cvae_trainer(tmp_path, objective, **trainer_options):
    config = {"batch_size": 4, "Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "weight": 0.5, "encoder_objective": objective,
                            "lr_factor": 10.0},
              "Trainer": {"lr": 1e-3, **trainer_options}}
    torch.manual_seed(0)
    model = CVAE(config)
    return CVAETrainer(config, str(tmp_path), model, datasets={}), model


def gradients(loss, parameters):
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(parameters, torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True))]


def test_uniform_objective_trains_discriminators_on_their_ce_and_the_encoder_on_the_uniform_term(tmp_path):
    trainer, model = cvae_trainer(tmp_path, "uniform")
    x, s = torch.rand(6, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    losses = trainer.losses(model, x, s)
    encoder, discs = list(model.encoder.parameters()), list(trainer.discriminators.parameters())
    weight = 0.5
    # the discriminators see only their own cross-entropy, the encoder only its objective and the uniform term
    for got, expected in zip(gradients(losses["total"], discs), gradients(weight * losses["adversary_ce"], discs)):
        assert torch.allclose(got, expected, atol=1e-6)
    assert all(g.abs().sum() == 0 for g in gradients(losses["encoder_uniform_ce"], discs))
    assert all(g.abs().sum() == 0 for g in gradients(losses["adversary_ce"], encoder))
    own = losses["reconstruction"] + losses["kl"] + weight * losses["encoder_uniform_ce"]
    for got, expected in zip(gradients(losses["total"], encoder), gradients(own, encoder)):
        assert torch.allclose(got, expected, atol=1e-6)


def test_unknown_encoder_objective_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="encoder_objective"):
        cvae_trainer(tmp_path, "maximise")


def test_discriminators_learn_at_lr_factor_times_the_model_lr(tmp_path):
    trainer, model = cvae_trainer(tmp_path, "reverse_ce")
    model_group, discriminator_group = trainer.optimizer.param_groups
    assert model_group["lr"] == pytest.approx(1e-3) and discriminator_group["lr"] == pytest.approx(1e-2)
    assert {id(p) for p in discriminator_group["params"]} == {id(p) for p in trainer.discriminators.parameters()}


@pytest.mark.parametrize("adversary_input, deterministic", [("mu", True), ("z", False)])
def test_adversary_sees_the_posterior_mean_or_a_sample(tmp_path, adversary_input, deterministic):
    trainer, model = cvae_trainer(tmp_path, "uniform", adversary_input=adversary_input)
    model.eval()
    x, s = torch.rand(6, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        first, second = (trainer.losses(model, x, s)["adversary_ce"] for _ in range(2))
    assert torch.equal(first, second) == deterministic
    with torch.no_grad():
        mu, _ = model.encoder(x)
        expected = trainer.discriminators.loss(trainer.discriminators(mu), s)
    assert torch.allclose(first, expected) == deterministic


@pytest.mark.parametrize("objective", ["reverse_ce", "uniform"])
@pytest.mark.parametrize("disc_steps", [1, 3])
def test_disc_steps_update_the_discriminators_that_often_and_the_model_once(tmp_path, objective, disc_steps):
    trainer, model = cvae_trainer(tmp_path, objective)
    trainer.adversary["disc_steps"] = disc_steps
    model.train()
    x, s = torch.rand(6, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    model_before = [p.detach().clone() for p in model.parameters()]
    trainer.step_op(model, x, s)["train_op"]()
    model_group, discriminator_group = trainer.optimizer.param_groups
    steps = {float(trainer.optimizer.state[p]["step"]) for p in discriminator_group["params"]}
    assert steps == {float(disc_steps)}
    assert {float(trainer.optimizer.state[p]["step"]) for p in model_group["params"]
            if p in trainer.optimizer.state} == {1.0}
    assert any(not torch.equal(a, p) for a, p in zip(model_before, model.parameters()))


def test_eval_never_takes_extra_discriminator_steps(tmp_path):
    trainer, model = cvae_trainer(tmp_path, "uniform")
    trainer.adversary["disc_steps"] = 3
    model.eval()
    before = [p.detach().clone() for p in trainer.discriminators.parameters()]
    with torch.no_grad():
        trainer.step_op(model, torch.rand(6, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2]))["eval_op"]()
    assert all(torch.equal(a, p) for a, p in zip(before, trainer.discriminators.parameters()))
