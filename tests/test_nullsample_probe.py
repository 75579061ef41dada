"""The post-hoc probe of s: the codes it reads are those null-samples are decoded from (and, for the cFlow, those the
discriminators saw), and its accuracy separates codes that hold s from codes that do not."""
import numpy as np
import torch

from nullsample.models import CVAE, CFlow
from nullsample.scripts.probe import null_codes, probe_accuracy


def tiny_flow():
    torch.manual_seed(0)
    model = CFlow({"Model": {"in_channels": 3, "image_size": 8, "levels": 2, "level_depth": 1,
                             "coupling_channels": 8, "zs_frac": 0.05, "n_bits": 5}})
    model.train()
    model(model.flow_input(torch.rand(16, 3, 8, 8) * 2 - 1, noise=True))  # ActNorm init
    return model.eval()


def test_flow_null_code_is_the_adversary_input_and_decodes_to_the_null_sample():
    model = tiny_flow()
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    code = model.null_code(x)
    with torch.no_grad():
        z = model.encode(x)
    assert torch.equal(code, model.adversary_input(z))
    assert torch.equal(code[:, -model.zs_dims:], torch.zeros(5, model.zs_dims))
    assert torch.equal(code[:, :-model.zs_dims], z[:, :-model.zs_dims])
    assert torch.allclose(model.decode(code), model.null_sample(x))


def test_cvae_null_code_is_the_posterior_mean():
    torch.manual_seed(0)
    model = CVAE({"Model": {"in_channels": 3, "image_size": 8, "z_dim": 4, "channels": [4, 8], "num_s": 3}}).eval()
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        mu, _ = model.encoder(x)
    assert np.array_equal(null_codes(model, x, batch_size=4), mu.numpy())


def test_probe_reads_s_from_codes_that_hold_it_and_not_from_codes_that_do_not():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 10, 1500)
    noise = rng.standard_normal((1500, 20))
    holding = noise + 5.0 * np.eye(10, 20)[s]  # s shifts one coordinate per class (Bayes accuracy ~0.99)
    assert probe_accuracy(holding[:1000], s[:1000], holding[1000:], s[1000:]) > 0.9
    assert probe_accuracy(noise[:1000], s[:1000], noise[1000:], s[1000:]) < 0.2
