"""IIN beside CompVis/iin (``FAIRKIT_OFFICIAL_IIN``): the autoencoder's loss terms, the transformers and their
losses, from the same weights and inputs.

The official modules import edflow (and perceptual_similarity) at their top, so only their classes are loaded,
with our ``edflow.util.retrieve`` standing in for edflow's (both walk a nested config along "a/b").
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils.spectral_norm import spectral_norm

from _load import load_functions, official_checkout
from edflow.util import retrieve
from iin.losses.ae import LossPND
from iin.losses.iin import FactorLoss, Loss
from iin.models.ae import Model
from iin.models.iin import FactorTransformer, VectorTransformer

CHECKOUT = official_checkout("iin")
NAMESPACE = {"torch": torch, "nn": nn, "np": np, "retrieve": retrieve, "functools": functools,
             "spectral_norm": spectral_norm}
OFFICIAL_FLOW = load_functions(
    CHECKOUT / "iin/models/iin.py",
    ["Shuffle", "BasicFullyConnectedNet", "DoubleVectorCouplingBlock", "VectorActNorm", "Flow", "EfficientVRNVP",
     "VectorTransformer", "FactorTransformer"], NAMESPACE)
OFFICIAL_LOSSES = load_functions(CHECKOUT / "iin/losses/iin.py", ["nll", "Loss", "FactorLoss"], NAMESPACE)


def _no_lpips(*args, **kwargs):
    raise AssertionError("the comparison runs with perceptual_weight 0; LPIPS is not loaded")


OFFICIAL_AE = load_functions(
    CHECKOUT / "iin/losses/ae.py",
    ["do_spectral_norm", "weights_init", "adopt_weight", "l1", "l2", "NLayerDiscriminator", "LossPND"],
    {**NAMESPACE, "PerceptualLoss": _no_lpips})

D, FLOWS = 8, 2
TRANSFORMER = {"in_channel": D, "n_flow": FLOWS, "hidden_depth": 1, "hidden_dim": 16}


def copy_flow_to_official(ours: VectorTransformer, official: nn.Module) -> None:
    """Our weights into the official transformer. Ours keeps the channel order after its second coupling, the
    original swaps the halves there (``[x_b', x_a]``), so the official shuffle is ours shifted by half the width."""
    half = ours.in_channel // 2
    for block, flow in zip(ours.flow, official.realnvp.flow):
        actnorm, coupling, shuffle = flow.flow
        actnorm.loc.data.copy_(block[0].loc.view(1, -1, 1, 1))
        actnorm.scale.data.copy_(block[0].scale.view(1, -1, 1, 1))
        actnorm.initialized.fill_(1)
        for i, ours_coupling in enumerate(block[1:3]):
            coupling.s[i].main.load_state_dict(ours_coupling.net.s_net.state_dict())
            coupling.t[i].main.load_state_dict(ours_coupling.net.t_net.state_dict())
        forward = (block[3].perm - half) % ours.in_channel
        shuffle.forward_shuffle_idx.copy_(forward)
        shuffle.backward_shuffle_idx.copy_(torch.argsort(forward))


def transformer_pair(cls_name: str, ours_cls, **extra):
    torch.manual_seed(0)
    config = {"Transformer": {**TRANSFORMER, **extra}}
    ours = ours_cls(config)
    ours(torch.randn(64, D) * 2 + 1)  # the data-dependent ActNorm init, so that every weight is non-trivial
    official = OFFICIAL_FLOW[cls_name](config)
    copy_flow_to_official(ours, official)
    return ours.eval(), official.eval()


def test_vector_transformer_output_logdet_and_inverse(compare):
    ours, official = transformer_pair("VectorTransformer", VectorTransformer)
    z = torch.randn(16, D, 1, 1)
    with torch.no_grad():
        out, logdet = ours(z)
        official_out, official_logdet = official(z)
        compare("VectorTransformer output", out, official_out)
        compare("VectorTransformer logdet", logdet, official_logdet)
        compare("VectorTransformer reverse", ours.reverse(out), official.reverse(official_out))
        loss, _ = Loss({})(out, logdet)
        official_loss, _, _ = OFFICIAL_LOSSES["Loss"]({})(official_out, official_logdet, global_step=0)
        compare("IIN loss", loss, official_loss)


@pytest.mark.filterwarnings("ignore:To copy construct")  # the official FactorLoss calls torch.tensor(tensor)
def test_factor_transformer_split_and_factor_loss(compare):
    ours, official = transformer_pair("FactorTransformer", FactorTransformer, n_factors=3)
    z1, z2 = torch.randn(12, D, 1, 1), torch.randn(12, D, 1, 1)
    factor = torch.arange(12) % 2  # two semantic factors, the third is the residual
    with torch.no_grad():
        out1, logdet1 = ours(z1)
        out2, logdet2 = ours(z2)
        chunks1, official_logdet1 = official(z1)
        chunks2, official_logdet2 = official(z2)
        assert ours.factor_sizes == [c.shape[1] for c in chunks1] == [3, 3, 2]  # torch.chunk's split of 8 in 3
        for part, chunk in zip(ours.split(out1), chunks1):
            compare("FactorTransformer factors", part, chunk.flatten(1))
        compare("VectorTransformer logdet", logdet2, official_logdet2)
        config = {"Loss": {"rho": 0.975}}
        loss, _ = FactorLoss(config)(out1, logdet1, out2, logdet2, factor, ours.factor_sizes)
        official_loss, _, _ = OFFICIAL_LOSSES["FactorLoss"](config)(
            {"example1": chunks1, "example2": chunks2}, {"example1": official_logdet1, "example2": official_logdet2},
            factor, global_step=0)
        compare("factor loss", loss, official_loss)


@pytest.mark.parametrize("calibrate, discriminator_weight, disc_factor",
                         [(True, 150.0, 1.0), (True, 150.0, 0.3), (False, 2.0, 0.3)])
def test_autoencoder_loss_terms(compare, calibrate, discriminator_weight, disc_factor):
    model_config = {"Model": {"in_channels": 3, "in_size": 32, "n_down": 4, "ch": 8, "max_ch": 16, "z_dim": 16}}
    loss_config = {"calibrate": calibrate, "disc_in_channels": 3, "disc_start": 2, "perceptual_weight": 0.0,
                   "discriminator_weight": discriminator_weight, "disc_factor": disc_factor, "logvar_init": 0.3,
                   "disc_ndf": 16}
    torch.manual_seed(0)
    model = Model(model_config)
    ours = LossPND({**model_config, "Loss": loss_config})
    official_config = {"Loss": {**loss_config, "disc_num_layers": 3}, "learning_rate": 1e-4, "num_steps": 10}
    del official_config["Loss"]["disc_ndf"]
    official = OFFICIAL_AE["LossPND"](official_config)
    official.discriminator = OFFICIAL_AE["NLayerDiscriminator"](input_nc=3, ndf=16, n_layers=3)  # our width
    official.discriminator.load_state_dict({k.replace("net.", "main.", 1): v
                                            for k, v in ours.discriminator.state_dict().items()})
    official.set_last_layer(model.get_last_layer())

    x = torch.rand(6, 3, 32, 32) * 2 - 1
    xrec, posterior = model(x)
    loss, logs = ours.generator_loss(x, xrec, posterior, model.get_last_layer(), global_step=3)
    d_loss, _ = ours.discriminator_loss(x, xrec)
    official_loss, official_log, _ = official(x, xrec, posterior, global_step=3)
    scalars = official_log["scalars"]
    compare("AE nll", logs["nll"], scalars["nll_loss"])
    compare("AE kl", logs["kl"], scalars["kl_loss"])
    compare("AE generator term g", logs["g_loss"], scalars["g_loss"])
    weight = scalars["d_weight"] if calibrate else discriminator_weight
    compare("AE generator weight (calibrated lambda)", logs["d_weight"], weight)
    compare("AE loss", loss, official_loss)
    compare("AE discriminator loss", d_loss, scalars["d_loss"])
