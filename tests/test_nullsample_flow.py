"""The cFlow as a whole: invertibility, log-determinant, the discrete NLL, quantisation, the latent partition and
null-sampling."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from fairkit.nets.flows import ActNorm, Split
from nullsample.losses import nll_per_dim
from nullsample.models import CFlow
from nullsample.partition import split_latent, zero_s, zs_size
from nullsample.quantization import dequantize, quantize


def tiny_flow(size=8, zs_frac=0.05, seed=0, dtype=torch.float32, **model):
    torch.manual_seed(seed)
    config = {"Model": {"in_channels": 3, "image_size": size, "levels": 2, "level_depth": 2,
                        "coupling_channels": 8, "zs_frac": zs_frac, "n_bits": 5, **model}}
    model = CFlow(config).to(dtype)
    model.train()
    model(model.flow_input(torch.rand(16, 3, size, size, dtype=dtype) * 2 - 1, noise=True))  # ActNorm init
    with torch.no_grad():  # couplings start as the identity; make them do something
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def test_cflow_reverse_inverts_forward():
    model = tiny_flow()
    x = torch.rand(4, 3, 8, 8) - 0.5
    z, _ = model(x)
    assert z.shape == (4, 3 * 8 * 8)
    assert torch.allclose(model.reverse(z), x, atol=1e-5)
    assert not torch.allclose(z, x.flatten(1), atol=1e-2)


def test_cflow_logdet_equals_autograd_jacobian():
    model = tiny_flow(size=4, zs_frac=0.05, dtype=torch.float64)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64) - 0.5
    _, logdet = model(x)
    for i in range(len(x)):
        jacobian = torch.autograd.functional.jacobian(lambda v: model(v.view(1, 3, 4, 4))[0][0], x[i].flatten())
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jacobian)[1], atol=1e-8)


def test_reconstruction_is_the_image_at_its_5_bit_bin_centres():
    model = tiny_flow()
    levels = torch.randint(0, 256, (4, 3, 8, 8)).float()
    x = levels / 127.5 - 1
    expected = (torch.floor(levels / 8) / 32 + 1 / 64) * 2 - 1
    assert torch.allclose(model.reconstruct(x), expected, atol=1e-5)


def test_quantize_matches_uint8_integer_division_for_every_level():
    levels = np.arange(256)
    bins = quantize(torch.tensor(levels / 255.0), n_bits=5).numpy()
    assert np.allclose(bins, (levels // 8) / 32)
    noisy = dequantize(torch.tensor(bins).repeat(50), 5, noise=True).numpy()
    offsets = noisy - np.tile(bins, 50)
    assert offsets.min() >= 0 and offsets.max() < 1 / 32 and offsets.std() > 0.25 / 32
    assert np.allclose(dequantize(torch.tensor(bins), 5, noise=False).numpy(), bins + 1 / 64)
    with pytest.raises(ValueError, match="n_bits"):
        quantize(torch.zeros(1), n_bits=0)


def test_nll_bits_per_dim_matches_the_bin_probability_of_an_affine_flow():
    # z = a * x + b per dimension: a bin [lo, lo + 1/32) has probability Phi(a hi + b) - Phi(a lo + b).
    a, b, n_bits = 1.7, -0.3, 5
    lo = np.array([0.0, 5.0, 17.0, 31.0]) / 32 - 0.5
    u = np.array([0.3, 0.9, 0.5, 0.1]) / 32
    x = torch.tensor(lo + u)
    z = (a * x + b)[None]
    logdet = torch.tensor([len(lo) * math.log(a)])
    exact = -np.log2(norm.cdf(a * (lo + 1 / 32) + b) - norm.cdf(a * lo + b)).sum() / len(lo)
    assert nll_per_dim(z, logdet, n_bits=n_bits, units="bits").item() == pytest.approx(exact, abs=0.01)
    nats = nll_per_dim(z, logdet, n_bits=n_bits, units="nats").item()
    assert nats == pytest.approx(exact * math.log(2), abs=0.01)


def test_nll_of_exact_inputs_is_the_density_in_nats_per_dim():
    # nifr's NLL: -(log N(z) + log|det|) / D in nats, no bin term; z = a x + b per dimension
    a, b = 0.5, 0.2
    x = torch.tensor([[0.0, 0.25, 1.0]])
    z, logdet = a * x + b, torch.tensor([3 * math.log(a)])
    exact = -(norm.logpdf(a * x.numpy() + b).sum() + 3 * math.log(a)) / 3
    assert nll_per_dim(z, logdet, n_bits=None, units="nats").item() == pytest.approx(exact, rel=1e-6)
    assert nll_per_dim(z, logdet, n_bits=None, units="bits").item() == pytest.approx(exact / math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="Trainer/nll_units"):
        nll_per_dim(z, logdet, n_bits=None, units="bit")


def test_without_dequantize_the_flow_sees_the_exact_image_in_unit_range_and_decodes_it_back():
    model = tiny_flow(dequantize=False)
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    assert torch.equal(model.flow_input(x, noise=True), (x + 1) / 2)
    assert model.discrete_bits is None and tiny_flow().discrete_bits == 5
    assert torch.allclose(model.reconstruct(x), x, atol=1e-5)  # no quantisation: the exact image comes back
    assert (tiny_flow().reconstruct(x) - x).abs().max() > 0.01


def test_nifr_blocks_have_no_actnorm_and_factor_out_the_first_half():
    ours, nifr = tiny_flow(), tiny_flow(actnorm=False, factored_channels="first")
    assert any(isinstance(m, ActNorm) for m in ours.modules())
    assert not any(isinstance(m, ActNorm) for m in nifr.modules())
    x = torch.rand(2, 3, 8, 8) - 0.5
    z, _ = nifr(x)
    assert torch.allclose(nifr.reverse(z), x, atol=1e-5)
    # the factored part of level 0 (first 96 dims of z) is the first 6 of its 12 channels
    level0, _ = nifr.flow.levels[0](x)
    assert torch.allclose(z[:, :96], level0[:, :6].flatten(1))
    level0, _ = ours.flow.levels[0](x)
    assert torch.allclose(ours(x)[0][:, :96], level0[:, 6:].flatten(1))
    h = torch.randn(2, 12, 4, 4)
    kept, factored = Split(12, factor_first=True)(h)
    assert torch.equal(factored, h[:, :6]) and torch.equal(Split(12, factor_first=True).reverse(kept, factored), h)
    with pytest.raises(ValueError, match="Model/factored_channels"):
        tiny_flow(factored_channels="middle")


def test_latent_partition_sizes_of_the_paper():
    assert zs_size(3 * 32 * 32, 0.002) == 6
    assert zs_size(3 * 64 * 64, 0.001) == 12
    with pytest.raises(ValueError, match="zs_frac"):
        zs_size(3072, 0.0001)
    z = torch.randn(5, 20)
    z_not_s, z_s = split_latent(z, 3)
    assert torch.equal(z_not_s, z[:, :17]) and torch.equal(z_s, z[:, 17:])
    nulled = zero_s(z, 3)
    assert torch.equal(nulled[:, :17], z[:, :17]) and torch.count_nonzero(nulled[:, 17:]) == 0


def test_null_sample_inverts_the_latent_with_z_s_zeroed():
    model = tiny_flow()
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    z = model.encode(x)
    expected = torch.clamp(model.reverse(zero_s(z, model.zs_dims)) + 0.5, 0, 1) * 2 - 1
    assert torch.allclose(model.null_sample(x), expected, atol=1e-6)


def test_images_that_differ_only_in_z_s_have_the_same_null_sample():
    model = tiny_flow()
    z = model.encode(torch.rand(3, 3, 8, 8) * 0.6 - 0.3)
    changed = z.clone()
    changed[:, -model.zs_dims:] += torch.randn(3, model.zs_dims)
    originals, variants = model.reverse(z), model.reverse(changed)
    assert (originals - variants).abs().max() > 1e-2  # z_s does change the image
    # Encode the images directly (without re-quantising) and null-sample: identical up to float error.
    null = [model.reverse(zero_s(model(images)[0], model.zs_dims)) for images in (originals, variants)]
    assert torch.allclose(null[0], null[1], atol=1e-5)
