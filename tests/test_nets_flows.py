"""Invertible layers: exact inverses, log-determinants against autograd's Jacobian, data-dependent init."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.functional import jacobian

from fairkit.nets.flows import (
    ActNorm,
    AffineCoupling,
    FlowSequential,
    InvConv1x1LU,
    MultiScaleFlow,
    Permutation,
    Split,
    Squeeze,
    VectorFlow,
)

B = 2  # batch size of the Jacobian checks


def _image(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _actnorm_img():
    return ActNorm(2), _image(B, 2, 4, 4), None


def _actnorm_vec():
    return ActNorm(8), _image(B, 8), None


def _lu_img():
    return InvConv1x1LU(3), _image(B, 3, 4, 4), None


def _lu_vec():
    return InvConv1x1LU(8), _image(B, 8), None


def _coupling_conv_sigmoid():
    return AffineCoupling(2, hidden=8, scale="sigmoid", kind="conv"), _image(B, 2, 4, 4), None


def _coupling_conv_tanh_swap_odd():
    return AffineCoupling(3, hidden=8, scale="tanh", kind="conv", swap=True), _image(B, 3, 4, 4), None


def _coupling_conv_cond():
    layer = AffineCoupling(4, hidden=8, scale="sigmoid", kind="conv", cond_features=3)
    return layer, _image(B, 4, 4, 4), _image(B, 3, seed=1)


def _coupling_mlp_tanh():
    return AffineCoupling(8, hidden=16, scale="tanh", kind="mlp", depth=1), _image(B, 8), None


def _coupling_mlp_swap_cond():
    layer = AffineCoupling(8, hidden=16, scale="tanh", kind="mlp", swap=True, cond_features=2)
    return layer, _image(B, 8), _image(B, 2, seed=1)


def _squeeze():
    return Squeeze(), _image(B, 2, 4, 4), None


def _perm_img():
    return Permutation(3), _image(B, 3, 4, 4), None


def _perm_vec():
    return Permutation(8), _image(B, 8), None


def _sequential():
    layers = FlowSequential(
        Squeeze(), ActNorm(8), InvConv1x1LU(8), AffineCoupling(8, hidden=8), Permutation(8)
    )
    return layers, _image(B, 2, 4, 4), None


def _multiscale():
    return MultiScaleFlow(2, levels=3, level_depth=2, coupling_channels=8), _image(B, 2, 8, 8), None


def _single_scale():
    return MultiScaleFlow(2, levels=2, level_depth=2, coupling_channels=8, factor_out=False), _image(B, 2, 4, 4), None


def _multiscale_tanh_no_actnorm():
    flow = MultiScaleFlow(1, levels=2, level_depth=1, coupling_channels=8, scale="tanh", actnorm=False)
    return flow, _image(B, 1, 4, 4), None


def _vector_flow():
    return VectorFlow(8, n_blocks=2, hidden=16, depth=1), _image(B, 8), None


def _vector_flow_cond():
    return VectorFlow(8, n_blocks=2, hidden=16, depth=1, cond_features=3), _image(B, 8), _image(B, 3, seed=1)


CASES = {
    "actnorm_img": _actnorm_img,
    "actnorm_vec": _actnorm_vec,
    "lu_img": _lu_img,
    "lu_vec": _lu_vec,
    "coupling_conv_sigmoid": _coupling_conv_sigmoid,
    "coupling_conv_tanh_swap_odd": _coupling_conv_tanh_swap_odd,
    "coupling_conv_cond": _coupling_conv_cond,
    "coupling_mlp_tanh": _coupling_mlp_tanh,
    "coupling_mlp_swap_cond": _coupling_mlp_swap_cond,
    "squeeze": _squeeze,
    "perm_img": _perm_img,
    "perm_vec": _perm_vec,
    "sequential": _sequential,
    "multiscale": _multiscale,
    "multiscale_tanh_no_actnorm": _multiscale_tanh_no_actnorm,
    "single_scale": _single_scale,
    "vector_flow": _vector_flow,
    "vector_flow_cond": _vector_flow_cond,
}


def _prepared(name, noise=0.1):
    """Build a case in float64, run the ActNorm init, then perturb every parameter away from its
    (often trivial: zero-init couplings, identity ActNorm) initial value."""
    torch.manual_seed(0)
    layer, x, cond = CASES[name]()
    layer = layer.double().train()
    # ActNorm statistics from a batch larger than B, so that its scales stay moderate
    init_x = _image(32, *x.shape[1:], seed=5)
    init_cond = None if cond is None else _image(32, *cond.shape[1:], seed=6)
    layer(init_x, init_cond)
    layer.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(noise * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer, x, cond


@pytest.mark.parametrize("name", list(CASES))
def test_reverse_inverts_forward(name):
    layer, x, cond = _prepared(name)
    y, logdet = layer(x, cond)
    assert logdet.shape == (B,)
    assert torch.allclose(layer.reverse(y, cond), x, atol=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_logdet_equals_log_abs_det_of_autograd_jacobian(name):
    layer, x, cond = _prepared(name)
    _, logdet = layer(x, cond)

    def flat_forward(x_flat):
        return layer(x_flat.view_as(x), cond)[0].reshape(-1)

    dims = x[0].numel()
    jac = jacobian(flat_forward, x.reshape(-1), vectorize=True).view(B, dims, B, dims)
    for i in range(B):
        _, expected = torch.linalg.slogdet(jac[i, :, i, :])
        assert torch.allclose(logdet[i], expected, atol=1e-8), (logdet[i].item(), expected.item())
        for j in range(B):
            if j != i:  # examples must not influence each other
                assert torch.count_nonzero(jac[i, :, j, :]) == 0


@pytest.mark.parametrize("name", ["coupling_conv_sigmoid", "lu_img", "multiscale", "vector_flow"])
def test_float32_roundtrip_within_1e5(name):
    layer, x, cond = _prepared(name, noise=0.02)
    layer, x = layer.float(), x.float()
    cond = None if cond is None else cond.float()
    assert torch.allclose(layer.reverse(layer(x, cond)[0], cond), x, atol=1e-5)


# ---- ActNorm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(64, 3, 4, 4), (128, 5)])
def test_actnorm_data_dependent_init_standardises_first_batch(shape):
    x = 3.0 + 5.0 * torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x * torch.arange(1, shape[1] + 1, dtype=torch.float64).view(1, -1, *[1] * (len(shape) - 2))
    layer = ActNorm(shape[1]).double().train()
    y, _ = layer(x)
    dims = [0, 2, 3] if len(shape) == 4 else [0]
    assert torch.allclose(y.mean(dims), torch.zeros(shape[1], dtype=torch.float64), atol=1e-10)
    assert torch.allclose(y.std(dims, correction=0), torch.ones(shape[1], dtype=torch.float64), atol=1e-5)
    assert torch.allclose(layer.loc, -x.mean(dims))


def test_actnorm_initialises_once_and_the_flag_survives_state_dict():
    layer = ActNorm(3).train()
    layer(torch.randn(16, 3, 2, 2))
    loc, scale = layer.loc.detach().clone(), layer.scale.detach().clone()
    layer(100 + torch.randn(16, 3, 2, 2))  # a second batch must not re-initialise
    assert torch.equal(layer.loc, loc) and torch.equal(layer.scale, scale)

    restored = ActNorm(3).train()
    restored.load_state_dict(layer.state_dict())
    restored(100 + torch.randn(16, 3, 2, 2))
    assert bool(restored.initialized)
    assert torch.equal(restored.loc, loc) and torch.equal(restored.scale, scale)


def test_actnorm_does_not_initialise_in_eval_mode():
    layer = ActNorm(3).eval()
    x = 5 + torch.randn(4, 3)
    assert torch.equal(layer(x)[0], x)
    assert not bool(layer.initialized)


def test_actnorm_rejects_a_single_value_per_channel_at_init():
    with pytest.raises(ValueError, match="batch size > 1"):
        ActNorm(4).train()(torch.randn(1, 4))


# ---- LU 1x1 conv -----------------------------------------------------------------------------------
def test_lu_conv_equals_dense_conv_with_its_weight():
    layer, x, _ = _prepared("lu_img")
    w = layer.weight()
    assert torch.allclose(layer(x)[0], F.conv2d(x, w[:, :, None, None]), atol=1e-12)
    assert torch.allclose(layer(x)[0], torch.einsum("oc,bchw->bohw", w, x), atol=1e-12)


def test_lu_conv_starts_as_a_rotation_and_logdet_matches_slogdet():
    layer = InvConv1x1LU(6, generator=torch.Generator().manual_seed(3)).double()
    w = layer.weight()
    assert torch.allclose(w @ w.T, torch.eye(6, dtype=torch.float64), atol=1e-6)
    layer, x, _ = _prepared("lu_img")
    _, logabsdet = torch.linalg.slogdet(layer.weight())
    assert torch.allclose(layer(x)[1], torch.full((B,), 16 * logabsdet.item(), dtype=torch.float64))


# ---- coupling --------------------------------------------------------------------------------------
class _FixedNet(nn.Module):
    """s_raw = sin(h), t = cos(h): a known coupling net to check the formulas by hand."""

    def forward(self, h):
        return torch.sin(h), torch.cos(h)


@pytest.mark.parametrize("scale", ["sigmoid", "tanh"])
@pytest.mark.parametrize("swap", [False, True])
def test_coupling_applies_the_documented_formula(scale, swap):
    layer = AffineCoupling(4, scale=scale, kind="mlp", swap=swap, net=_FixedNet())
    x = torch.randn(5, 4, dtype=torch.float64)
    first, second = x[:, :2], x[:, 2:]
    x_a, x_b = (second, first) if swap else (first, second)
    factor = torch.sigmoid(torch.sin(x_a)) + 0.5 if scale == "sigmoid" else torch.exp(torch.tanh(torch.sin(x_a)))
    y_b = x_b * factor + torch.cos(x_a)
    expected = torch.cat([y_b, x_a] if swap else [x_a, y_b], dim=1)
    y, logdet = layer(x)
    assert torch.allclose(y, expected)
    assert torch.allclose(logdet, torch.log(factor).sum(1))


def test_fresh_conv_coupling_is_the_identity():
    layer = AffineCoupling(4, hidden=8, scale="sigmoid")
    x = torch.randn(3, 4, 4, 4)
    y, logdet = layer(x)
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(3))


def test_coupling_rejects_missing_condition_and_wrong_layout():
    with pytest.raises(ValueError, match="condition"):
        AffineCoupling(4, kind="mlp", hidden=4, cond_features=2)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="vectors"):
        AffineCoupling(4, kind="mlp", hidden=4)(torch.randn(2, 4, 2, 2))
    with pytest.raises(ValueError, match="at least 2"):
        AffineCoupling(1)


# ---- squeeze, permutation, split ---------------------------------------------------------------------
def test_squeeze_matches_pixel_unshuffle():
    x = torch.randn(2, 3, 6, 4)
    y, logdet = Squeeze()(x)
    assert torch.equal(y, F.pixel_unshuffle(x, 2)) and torch.equal(logdet, torch.zeros(2))
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.randn(1, 1, 3, 4))


def test_permutation_is_a_fixed_permutation():
    layer = Permutation(6)
    x = torch.arange(6.0).repeat(2, 1)
    y, _ = layer(x)
    assert sorted(y[0].tolist()) == list(range(6))
    assert torch.equal(layer(x)[0], y)  # fixed, not redrawn per call
    assert torch.equal(y[:, 0], x[:, layer.perm[0]])


def test_split_factors_out_half_and_merges_back():
    x = torch.randn(2, 6, 3, 3)
    kept, factored = Split(6)(x)
    assert kept.shape[1] == 3 and factored.shape[1] == 3
    assert torch.equal(Split(6).reverse(kept, factored), x)


# ---- multi-scale flow ----------------------------------------------------------------------------------
def test_multiscale_flow_latent_has_the_input_dimension_and_level_layout():
    torch.manual_seed(0)
    flow = MultiScaleFlow(3, levels=3, level_depth=1, coupling_channels=4)
    x = torch.randn(2, 3, 32, 32)
    z, logdet = flow(x)
    assert z.shape == (2, 3072) and logdet.shape == (2,)
    assert flow.latent_shapes(32, 32) == [(6, 16, 16), (12, 8, 8), (48, 4, 4)]
    assert torch.allclose(flow.reverse(z), x, atol=1e-5)


def test_single_scale_flow_keeps_every_dim_to_the_last_level():
    torch.manual_seed(0)
    flow = MultiScaleFlow(3, levels=3, level_depth=1, coupling_channels=4, factor_out=False)
    x = torch.randn(2, 3, 32, 32)
    z, _ = flow(x)
    assert flow.latent_shapes(32, 32) == [(192, 4, 4)] and len(flow.splits) == 0
    assert z.shape == (2, 3072)
    assert torch.allclose(flow.reverse(z), x, atol=1e-5)


def test_multiscale_flow_last_latent_dims_come_from_the_deepest_level():
    layer, x, _ = _prepared("multiscale")
    z, _ = layer(x)
    deepest = layer.latent_shapes(8, 8)[-1]
    n_deep = deepest[0] * deepest[1] * deepest[2]
    z_changed = z.clone()
    z_changed[:, -n_deep:] += 1.0
    # Reversing must route the changed dims through all three levels, the others through fewer
    x_changed = layer.reverse(z_changed)
    assert not torch.allclose(x_changed, x)
    z_again, _ = layer(x_changed)
    assert torch.allclose(z_again, z_changed, atol=1e-8)


def test_multiscale_flow_non_square_needs_input_size():
    torch.manual_seed(0)
    flow = MultiScaleFlow(1, levels=2, level_depth=1, coupling_channels=4, input_size=(8, 16))
    x = torch.randn(2, 1, 8, 16)
    z, _ = flow(x)
    assert torch.allclose(flow.reverse(z), x, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleFlow(1, levels=3, level_depth=1, coupling_channels=4)(torch.randn(1, 1, 4, 4))
    with pytest.raises(ValueError, match="unconditional"):
        flow(x, cond=torch.zeros(2, 1))


def test_vector_flow_rejects_images():
    with pytest.raises(ValueError, match="flatten"):
        VectorFlow(4, n_blocks=1, hidden=4)(torch.randn(2, 4, 1, 1))
