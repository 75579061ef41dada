"""The cFlow's adversary on null-sampled images (``Adversary/input: image``): the discriminators see the flow's
inverse of [z_-s, 0], which clamped is the null-sample, and their gradient reaches the flow through the inverse."""
import pytest
import torch

from nullsample.iterators import CFlowTrainer, CVAETrainer
from nullsample.models import CVAE, CFlow


def flow_trainer(tmp_path, adversary_input):
    config = {"batch_size": 4,
              "Model": {"in_channels": 3, "image_size": 8, "levels": 2, "level_depth": 1, "coupling_channels": 8,
                        "zs_frac": 0.05, "n_bits": 5},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "weight": 0.5, "input": adversary_input}}
    torch.manual_seed(0)
    model = CFlow(config)
    model(model.flow_input(torch.rand(16, 3, 8, 8) * 2 - 1, noise=True))  # ActNorm init
    return CFlowTrainer(config, str(tmp_path), model, datasets={}), model


def test_image_adversary_sees_the_unclamped_null_sample_of_the_training_input(tmp_path):
    trainer, model = flow_trainer(tmp_path, "image")
    model.eval()
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    torch.manual_seed(1)
    _, _, features = trainer.model_losses(model, x, None)
    torch.manual_seed(1)  # the same dequantisation noise
    with torch.no_grad():
        z, _ = model(model.flow_input(x, noise=True))
        null_image = model.reverse(model.adversary_input(z))
    assert features.shape == (6, 3 * 8 * 8)
    assert torch.allclose(features.detach(), null_image.flatten(1), atol=1e-5)
    assert torch.allclose(model.decode(model.adversary_input(z)), (null_image + 0.5).clamp(0, 1) * 2 - 1, atol=1e-5)


def test_image_adversary_gradient_reaches_the_flow_and_differs_from_the_code_adversary(tmp_path):
    x, s = torch.rand(6, 3, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    gradients = {}
    for adversary_input in ("code", "image"):
        trainer, model = flow_trainer(tmp_path, adversary_input)
        torch.manual_seed(1)
        adversary_ce = trainer.losses(model, x, s)["adversary_ce"]
        gradients[adversary_input] = torch.cat([g.flatten() for g in torch.autograd.grad(
            adversary_ce, list(model.parameters()), allow_unused=True, materialize_grads=True)])
    assert gradients["image"].abs().sum() > 0
    assert not torch.allclose(gradients["image"], gradients["code"])


def test_unknown_adversary_input_is_an_error_and_the_cvae_has_no_image_adversary(tmp_path):
    with pytest.raises(ValueError, match="Adversary/input"):
        flow_trainer(tmp_path, "pixels")
    config = {"Model": {"z_dim": 4, "channels": [4, 4], "num_s": 3, "image_size": 8},
              "Adversary": {"num_s": 3, "num_discs": 2, "hidden": [8], "input": "image"}}
    with pytest.raises(ValueError, match="CVAETrainer"):
        CVAETrainer(config, str(tmp_path), CVAE(config), datasets={})
