"""Encoders/decoders, classifiers, GAN parts: shapes, documented formulas, hinge losses, EMA."""
import pytest
import torch
import torch.nn as nn
from torch.distributions import Normal, kl_divergence
from torch.nn.utils import parametrize

from fairkit.nets import (
    EMA,
    MLP,
    ActNormLayer,
    ConvNet,
    Decoder,
    DiagonalGaussian,
    Discriminator,
    Encoder,
    Generator,
    PatchDiscriminator,
    ResNet,
    SimpleConvNet,
    d_hinge_loss,
    g_hinge_loss,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---- autoencoder ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,size", [(1, 32), (3, 64)])
@pytest.mark.parametrize("norm", ["an", "bn", "none"])
def test_encoder_decoder_shapes(channels, size, norm):
    enc = Encoder(channels, size, z_dim=8, ch=4, max_ch=16, norm=norm)
    dec = Decoder(channels, size, z_dim=8, ch=4, max_ch=16, norm=norm)
    x = torch.rand(3, channels, size, size) * 2 - 1
    params = enc(x)
    assert params.shape == (3, 16, 1, 1)
    z = DiagonalGaussian(params).sample()
    x_rec = dec(z)
    assert x_rec.shape == x.shape
    assert x_rec.abs().max() <= 1.0
    assert dec(z.flatten(1)).shape == x.shape


def test_encoder_widths_follow_iin_at_paper_scale():
    enc = Encoder(3, 64, z_dim=64)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 128]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.bias is None for c in convs[:4])
    assert convs[-1].kernel_size == (4, 4)  # bottleneck 64 / 16
    dec = Decoder(3, 64, z_dim=64)
    convts = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convts] == [512, 256, 128, 64, 3]
    assert dec.last_layer is convts[-1]
    assert abs(convts[2].weight.std().item() - 0.02) < 0.002  # N(0, 0.02) init


def test_encoder_actnorm_standardises_the_first_batch():
    enc = Encoder(1, 32, z_dim=4, ch=4, max_ch=8, norm="an").train()
    outputs = []
    norm = next(m for m in enc.modules() if isinstance(m, ActNormLayer))
    norm.register_forward_hook(lambda m, i, o: outputs.append(o))
    enc(torch.randn(16, 1, 32, 32))
    out = outputs[0]
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), correction=0), torch.ones(4), atol=1e-4)


def test_encoder_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="divisible"):
        Encoder(1, 30)
    with pytest.raises(ValueError, match="expects images"):
        Encoder(1, 32, ch=4, max_ch=8)(torch.randn(2, 1, 64, 64))


def test_diagonal_gaussian_matches_torch_distributions():
    mean = torch.randn(4, 6, 1, 1, dtype=torch.float64)
    logvar = torch.randn(4, 6, 1, 1, dtype=torch.float64)
    dist = DiagonalGaussian(torch.cat([mean, logvar], 1))
    reference = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(dist.kl(), reference)
    assert torch.equal(dist.mode(), mean)
    samples = torch.stack([dist.sample() for _ in range(4000)])
    assert torch.allclose(samples.mean(0), mean, atol=0.15)
    assert torch.allclose(samples.var(0).log(), logvar, atol=0.15)


def test_diagonal_gaussian_clamps_logvar_and_deterministic_has_no_kl():
    params = torch.cat([torch.zeros(2, 3), torch.tensor([[50.0, -50.0, 0.0]] * 2)], 1)
    dist = DiagonalGaussian(params)
    assert dist.logvar.tolist() == [[10.0, -30.0, 0.0]] * 2
    point = DiagonalGaussian(params, deterministic=True)
    assert torch.equal(point.sample(), point.mean) and torch.equal(point.kl(), torch.zeros(2))


@pytest.mark.parametrize("size,patches", [(32, 2), (64, 6)])
def test_patch_discriminator_shapes(size, patches):
    d = PatchDiscriminator(3, ndf=8, n_layers=3)
    assert d(torch.randn(2, 3, size, size)).shape == (2, 1, patches, patches)


def _top_singular_value(module: nn.Module) -> float:
    return torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2).item()


def test_patch_discriminator_spectral_norm_bounds_every_conv():
    d = PatchDiscriminator(3, ndf=8, n_layers=3, norm="none", use_spectral_norm=True).train()
    for _ in range(30):  # one power iteration per forward
        d(torch.randn(2, 3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert all(parametrize.is_parametrized(c, "weight") for c in convs)
    assert all(abs(_top_singular_value(c) - 1.0) < 1e-2 for c in convs)


# ---- classifiers ------------------------------------------------------------------------------------------
def test_simple_conv_net_architecture_at_width_1():
    net = SimpleConvNet(num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 16), (16, 32), (32, 64), (64, 128)]
    assert all(c.kernel_size == (7, 7) and c.padding == (3, 3) and c.stride == (1, 1) for c in convs)
    activations = [m for m in net.extracter if isinstance(m, (nn.ReLU, nn.Tanh))]
    assert [type(a) for a in activations] == [nn.ReLU, nn.ReLU, nn.ReLU, nn.Tanh]
    assert (net.fc.in_features, net.fc.out_features) == (128, 10)
    fan_out_std = (2.0 / (128 * 49)) ** 0.5  # Kaiming normal, fan_out, ReLU gain
    assert abs(convs[-1].weight.std().item() / fan_out_std - 1.0) < 0.02


def test_simple_conv_net_features_have_unit_norm_and_are_readable_by_hook():
    net = SimpleConvNet(num_classes=10, in_channels=3, width=0.25).eval()
    x = torch.randn(5, 3, 28, 28)
    captured = []
    getattr(net, SimpleConvNet.feature_layer).register_forward_hook(lambda m, i, o: captured.append(o))
    logits = net(x)
    features = captured[0]
    assert logits.shape == (5, 10) and features.shape == (5, 32)
    assert torch.allclose(features.norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(net.features(x), features)
    assert torch.allclose(net.fc(features), logits)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_resnet_shapes(size):
    net = ResNet(num_outputs=3, in_channels=3, width=4, depth=10, input_size=size)
    x = torch.randn(2, 3, size, size)
    assert net(x).shape == (2, 3)
    assert net.features(x).shape == (2, 32)


def test_resnet18_block_counts_and_mlp_head():
    net = ResNet(num_outputs=1, width=4, depth=18, head_hidden=(16,))
    assert [len(stage) for stage in net.stages] == [2, 2, 2, 2]
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    with pytest.raises(ValueError, match="depth"):
        ResNet(depth=7)


def test_conv_net_and_mlp_shapes():
    net = ConvNet(in_channels=3, num_classes=10, channels=(4, 8, 16))
    x = torch.randn(2, 3, 32, 32)
    assert net(x).shape == (2, 10) and net.features(x).shape == (2, 16)
    mlp = MLP(12, 2, hidden=(8, 8), batch_norm=True)
    assert mlp(torch.randn(4, 3, 2, 2)).shape == (4, 2)
    assert any(isinstance(m, nn.BatchNorm1d) for m in mlp.modules())


# ---- GAN ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution,ch", [(32, 4), (64, 2)])
def test_generator_and_discriminator_shapes(resolution, ch):
    g = Generator(dim_z=16, ch=ch, resolution=resolution, out_channels=3)
    d = Discriminator(ch=ch, resolution=resolution, in_channels=3)
    images = g(torch.randn(3, 16))
    assert images.shape == (3, 3, resolution, resolution)
    assert images.abs().max() <= 1.0
    assert d(images).shape == (3,)


def test_conditional_gan_uses_labels_and_projection():
    g = Generator(dim_z=8, ch=2, resolution=32, out_channels=1, n_classes=3).eval()
    d = Discriminator(ch=2, resolution=32, in_channels=1, n_classes=3).eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        for bn in (m for m in g.modules() if isinstance(m, nn.Embedding)):
            bn.weight.normal_()  # make the class-conditional BN depend on y
    y0, y1 = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    assert not torch.allclose(g(z, y0), g(z, y1))
    x = g(z, y0)
    h = torch.relu(d.blocks(x)).sum((2, 3))
    projection_gap = ((d.embed(y0) - d.embed(y1)) * h).sum(1)
    assert torch.allclose(d(x, y0) - d(x, y1), projection_gap, atol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        g(z)


def test_gan_layers_are_spectrally_normalised():
    g = Generator(dim_z=8, ch=2, resolution=32).train()
    for _ in range(30):
        g(torch.randn(4, 8))
    layers = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert all(abs(_top_singular_value(m) - 1.0) < 1e-2 for m in layers)


def test_ema_copies_before_start_and_averages_after():
    model = nn.Linear(3, 2)
    ema = EMA(model, decay=0.9, start_step=5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(step=0)
    assert torch.equal(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(step=5)
    assert torch.allclose(ema.module.weight, torch.full((2, 3), 0.9 * 1.0 + 0.1 * 3.0))
    assert not ema.module.weight.requires_grad

    restored = EMA(nn.Linear(3, 2), decay=0.5, start_step=0)
    restored.load_state_dict(ema.state_dict())
    assert restored.decay == 0.9 and restored.start_step == 5
    assert torch.equal(restored.module.weight, ema.module.weight)


def test_ema_of_a_spectrally_normalised_generator():
    g = Generator(dim_z=8, ch=2, resolution=32)
    ema = EMA(g, decay=0.5, start_step=0)
    g(torch.randn(4, 8))  # changes BN statistics and spectral-norm vectors
    ema.update(step=1)
    z = torch.randn(2, 8)
    assert ema.module(z).shape == (2, 3, 32, 32)
    assert torch.equal(ema.module.output_bn.running_mean, g.output_bn.running_mean)


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = [0, .5, 2]; relu(1 + fake) = [0, 1, 1.5]
    assert torch.isclose(d_hinge_loss(real, fake), torch.tensor(2.5 / 3 + 2.5 / 3))
    assert torch.isclose(d_hinge_loss(real, fake, torch.tensor([1.0, 2.0, 0.0])), torch.tensor(1.0 / 3 + 2.5 / 3))
    assert torch.isclose(g_hinge_loss(fake), torch.tensor(0.5))  # -mean([-2, 0, .5])


def test_hinge_weights_only_touch_the_real_term():
    real, fake = torch.randn(6), torch.randn(6)
    assert torch.allclose(d_hinge_loss(real, fake, torch.ones(6)), d_hinge_loss(real, fake))
    weights = torch.rand(6) * 3
    plain_real = torch.relu(1 - real).mean()
    plain_fake = torch.relu(1 + fake).mean()
    assert torch.allclose(d_hinge_loss(real, fake, weights), (weights * torch.relu(1 - real)).mean() + plain_fake)
    assert torch.allclose(d_hinge_loss(real, fake), plain_real + plain_fake)

    fake_a = fake.clone().requires_grad_()
    fake_b = fake.clone().requires_grad_()
    d_hinge_loss(real, fake_a).backward()
    d_hinge_loss(real, fake_b, weights).backward()
    assert torch.equal(fake_a.grad, fake_b.grad)
    with pytest.raises(ValueError, match="one weight per real example"):
        d_hinge_loss(real, fake, torch.ones(5))
