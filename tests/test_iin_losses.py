"""IIN's losses against direct formulas: FactorLoss and Loss (stage 2), LossPND's likelihood, KL, adaptive weight and
discriminator terms (stage 1), and LPIPS's weight loading."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from edflow.config import ConfigError
from fairkit.nets import DiagonalGaussian
from iin.losses.ae import LossPND, adaptive_weight, discriminator_loss
from iin.losses.iin import FactorLoss, Loss
from iin.losses.lpips import LPIPS
from iin.models.ae import Model


def direct_factor_loss(z1, z2, ld1, ld2, factor, sizes, rho):
    """The paper's formula, one pair and one factor at a time."""
    total = 0.0
    bounds = np.cumsum([0] + sizes)
    for i in range(len(z1)):
        nll1 = 0.5 * np.sum(z1[i] ** 2) - ld1[i]
        nll2 = -ld2[i]
        for k in range(len(sizes)):
            a, b = z1[i, bounds[k]:bounds[k + 1]], z2[i, bounds[k]:bounds[k + 1]]
            m = 1.0 if factor[i] == k else 0.0
            nll2 += 0.5 * np.sum((b - m * rho * a) ** 2) / (1 - m * rho ** 2)
        total += nll1 + nll2
    return total / len(z1)


def test_factor_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    sizes, rho = [3, 2, 4], 0.975
    z1, z2 = rng.normal(size=(2, 7, 9))
    z2[:, :3] = rho * z1[:, :3] + 0.1 * z2[:, :3]
    ld1, ld2 = rng.normal(size=(2, 7))
    factor = np.array([0, 1, 0, 1, 1, 0, 0])
    loss, logs = FactorLoss({"Loss": {"rho": rho}})(*map(torch.tensor, (z1, ld1, z2, ld2)), torch.tensor(factor),
                                                    sizes)
    assert loss.item() == pytest.approx(direct_factor_loss(z1, z2, ld1, ld2, factor, sizes, rho), rel=1e-10)
    assert (logs["nll1"] + logs["nll2"]).item() == pytest.approx(loss.item(), rel=1e-10)


def test_factor_loss_rewards_pairs_that_share_the_named_factor():
    torch.manual_seed(0)
    z1 = torch.randn(500, 4)
    z2 = torch.randn(500, 4)
    z2_shared = z2.clone()
    z2_shared[:, :2] = 0.975 * z1[:, :2] + (1 - 0.975 ** 2) ** 0.5 * z2[:, :2]
    zeros, factor0 = torch.zeros(500), torch.zeros(500, dtype=torch.long)
    loss = FactorLoss({})
    assert loss(z1, zeros, z2_shared, zeros, factor0, [2, 2])[0] < loss(z1, zeros, z2, zeros, factor0, [2, 2])[0] - 1


def test_factor_loss_rejects_the_residual_as_shared_factor():
    z = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="residual"):
        FactorLoss({})(z, torch.zeros(2), z, torch.zeros(2), torch.tensor([0, 1]), [2, 2])
    with pytest.raises(ConfigError, match="rho"):
        FactorLoss({"Loss": {"rho": 1.0}})


def test_unsupervised_loss_is_the_gaussian_nll_minus_logdet():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    logdet = torch.tensor([0.5, -1.5])
    loss, logs = Loss({})(out, logdet)
    assert loss.item() == pytest.approx(((0.5 * 5 - 0.5) + (0.5 * 1 + 1.5)) / 2)
    assert logs["nll_per_dim"].item() == pytest.approx(loss.item() / 2)
    with pytest.raises(ConfigError, match="Loss/rho"):
        Loss({"Loss": {"rho": 0.9}})


AE_CONFIG = {"Model": {"in_channels": 1, "in_size": 16, "n_down": 2, "ch": 4, "max_ch": 8, "z_dim": 3},
             "Loss": {"disc_in_channels": 1, "perceptual_weight": 0.0, "disc_start": 5, "disc_ndf": 4,
                      "disc_layers": 2, "discriminator_weight": 2.0, "logvar_init": 0.7}}


def test_likelihood_with_learnable_log_variance_and_kl():
    torch.manual_seed(0)
    loss_fn = LossPND(AE_CONFIG)
    x, xrec = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    parameters = torch.randn(4, 6, 1, 1)
    posterior = DiagonalGaussian(parameters)
    loss, logs = loss_fn.generator_loss(x, xrec, posterior, torch.zeros(1, requires_grad=True), global_step=0)
    l = 0.7
    nll = np.sum(np.abs((x - xrec).numpy()) * np.exp(-l) + l) / 4
    mean, logvar = parameters[:, :3].numpy(), parameters[:, 3:].numpy()
    kl = np.sum(0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar)) / 4
    assert logs["nll"].item() == pytest.approx(nll, rel=1e-5)
    assert logs["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert loss.item() == pytest.approx(nll + kl, rel=1e-5)
    assert "g_loss" not in logs  # before disc_start


def test_adaptive_weight_is_the_ratio_of_gradient_norms_clamped():
    w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    nll = (w ** 2).sum()  # gradient 2w
    g = 3 * w.sum()  # gradient 3 per entry
    expected = np.linalg.norm([2.0, -4.0, 1.0]) / (3 * np.sqrt(3) + 1e-4)
    assert adaptive_weight(nll, g, w).item() == pytest.approx(expected, rel=1e-6)
    assert adaptive_weight(nll, 0 * w.sum(), w).item() == 1e4  # vanishing adversarial gradient: the clamp


def test_discriminator_loss_is_the_binary_cross_entropy_average():
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    bce = F.binary_cross_entropy_with_logits
    expected = 0.5 * (bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)))
    assert discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_generator_term_after_disc_start_is_weighted_and_leaves_discriminator_gradients_alone():
    torch.manual_seed(1)
    model, loss_fn = Model(AE_CONFIG), LossPND(AE_CONFIG)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    xrec, posterior = model(x)
    loss, logs = loss_fn.generator_loss(x, xrec, posterior, model.get_last_layer(), global_step=5)
    # calibrating, the original ignores discriminator_weight (2.0 here): lambda * g alone
    assert loss.item() == pytest.approx((logs["nll"] + logs["kl"] + logs["d_weight"] * logs["g_loss"]).item(),
                                        rel=1e-5)
    nll_grad = torch.autograd.grad(loss_fn.nll(loss_fn.reconstruction(x, xrec)), model.get_last_layer(),
                                   retain_graph=True)[0]
    g_grad = torch.autograd.grad(-loss_fn.discriminator(xrec).mean(), model.get_last_layer(), retain_graph=True)[0]
    assert logs["d_weight"].item() == pytest.approx((nll_grad.norm() / (g_grad.norm() + 1e-4)).item(), rel=1e-4)
    loss_fn.discriminator.zero_grad(set_to_none=True)
    loss.backward()
    assert all(p.grad is None for p in loss_fn.discriminator.parameters())
    assert model.get_last_layer().grad is not None and loss_fn.logvar.grad is not None
    assert all(p.requires_grad for p in loss_fn.discriminator.parameters())


@pytest.mark.parametrize("calibrate", [True, False])
def test_disc_factor_scales_both_adversarial_terms_and_discriminator_weight_only_uncalibrated(calibrate):
    torch.manual_seed(2)
    model = Model(AE_CONFIG)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    xrec, posterior = model(x)
    config = {**AE_CONFIG, "Loss": {**AE_CONFIG["Loss"], "calibrate": calibrate, "disc_factor": 0.1}}
    torch.manual_seed(3)
    loss_fn = LossPND(config)
    loss, logs = loss_fn.generator_loss(x, xrec, posterior, model.get_last_layer(), global_step=5)
    weight = logs["d_weight"] if calibrate else 2.0
    expected = logs["nll"] + logs["kl"] + 0.1 * weight * logs["g_loss"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    if not calibrate:
        assert logs["d_weight"].item() == 2.0
    d_loss, d_logs = loss_fn.discriminator_loss(x, xrec)
    plain = discriminator_loss(loss_fn.discriminator(x), loss_fn.discriminator(xrec))
    assert d_loss.item() == pytest.approx(0.1 * plain.item(), rel=1e-5)


def test_perceptual_weight_without_lpips_weights_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no VGG-16 downloaded there
    config = {**AE_CONFIG, "Loss": {**AE_CONFIG["Loss"], "perceptual_weight": 1.0}}
    with pytest.raises(ConfigError, match="perceptual_weight=0") as error:
        LossPND(config)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in str(error.value)
    config["Loss"]["lpips_weights"] = {"vgg": "/nonexistent/vgg16.pth", "lin": "/nonexistent/vgg.pth"}
    problems = LossPND.preflight(config)  # what edflow's preflight reports: both files, each with its source
    assert len(problems) == 2 and "/nonexistent/vgg16.pth does not exist" in problems[0]
    assert "/nonexistent/vgg.pth does not exist" in problems[1] and "lpips/weights/v0.1/vgg.pth" in problems[1]
    with pytest.raises(ConfigError, match="perceptual_weight=0"):
        LossPND(config)
    config["Loss"]["perceptual_weight"] = 0.0
    assert LossPND.preflight(config) == []


def test_null_vgg_weights_are_taken_from_torchvisions_download_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"x")
    (tmp_path / "vgg.pth").write_bytes(b"x")
    config = {**AE_CONFIG, "Loss": {**AE_CONFIG["Loss"], "perceptual_weight": 1.0,
                                    "lpips_weights": {"vgg": None, "lin": str(tmp_path / "vgg.pth")}}}
    assert LossPND.preflight(config) == []


def test_lpips_loads_torchvision_and_lpips_weight_files(tmp_path):
    torch.manual_seed(0)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in make_layers(cfgs["D"]).state_dict().items()}
    vgg = {f"features.{k}": 0.05 * torch.randn(shape) for k, shape in shapes.items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file also holds the classifier; it is ignored
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "vgg.pth")
    lpips = LPIPS(str(tmp_path / "vgg16.pth"), str(tmp_path / "vgg.pth"))
    assert torch.equal(lpips.lins[2].weight, lin["lin2.model.1.weight"])
    assert torch.equal(lpips.slices[1][1].weight, vgg["features.5.weight"])
    x, y = torch.rand(2, 1, 16, 16) * 2 - 1, torch.rand(2, 1, 16, 16) * 2 - 1
    d = lpips(torch.cat([x, x]), torch.cat([x, y]))
    assert d.shape == (4, 1, 1, 1)
    assert d[:2].abs().max().item() < 1e-6 and (d[2:] > 0).all()
    del lin["lin4.model.1.weight"]
    torch.save(lin, tmp_path / "broken.pth")
    with pytest.raises(KeyError, match="lin4"):
        LPIPS(str(tmp_path / "vgg16.pth"), str(tmp_path / "broken.pth"))
