"""IIN's transformers: invertibility, log-determinants against autograd's Jacobian, ActNorm's data-dependent init,
and the split into factors."""
import pytest
import torch

from edflow.config import ConfigError
from fairkit.nets import ActNorm
from iin.models.iin import FactorTransformer, VectorTransformer, factor_sizes


def small_config(**extra):
    return {"Transformer": {"in_channel": 6, "n_flow": 3, "hidden_depth": 1, "hidden_dim": 16, **extra}}


def initialised(model, dim, seed=0):
    """A transformer whose ActNorms are initialised and whose couplings are far from the identity."""
    generator = torch.Generator().manual_seed(seed)
    model.train()
    model(torch.randn(64, dim, generator=generator) * 3 + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return model.double().eval()


@pytest.mark.parametrize("cls, extra", [(VectorTransformer, {}), (FactorTransformer, {"n_factors": 3})])
@pytest.mark.parametrize("layout", [(6,), (6, 1, 1)])
def test_reverse_of_forward_is_the_identity(cls, extra, layout):
    torch.manual_seed(0)
    model = initialised(cls(small_config(**extra)), 6)
    z = torch.randn(10, *layout, dtype=torch.float64) * 2
    out, _ = model(z)
    assert out.shape == z.shape
    assert not torch.allclose(out, z, atol=1e-2)
    assert torch.allclose(model.reverse(out), z, atol=1e-5)
    assert torch.allclose(model(model.reverse(z))[0], z, atol=1e-5)


@pytest.mark.parametrize("cls, extra", [(VectorTransformer, {}), (FactorTransformer, {"factor_config": [2, 1, 3]})])
def test_logdet_equals_autograd_jacobian(cls, extra):
    torch.manual_seed(1)
    model = initialised(cls(small_config(**extra)), 6, seed=1)
    z = torch.randn(4, 6, dtype=torch.float64)
    _, logdet = model(z)
    for i in range(len(z)):
        jacobian = torch.autograd.functional.jacobian(lambda v: model(v[None])[0][0], z[i])
        assert torch.allclose(logdet[i], torch.linalg.slogdet(jacobian).logabsdet, atol=1e-8)


def test_actnorm_initialises_from_the_first_batch_to_zero_mean_unit_variance():
    torch.manual_seed(2)
    model = VectorTransformer(small_config())
    z = torch.randn(256, 6) * torch.tensor([0.1, 1.0, 5.0, 2.0, 0.5, 3.0]) + torch.arange(6.0) * 4
    first_actnorm = model.flow[0][0]
    assert isinstance(first_actnorm, ActNorm)
    normalised, _ = first_actnorm(z)  # the first forward in training mode initialises
    assert torch.allclose(normalised.mean(0), torch.zeros(6), atol=1e-5)
    assert torch.allclose(normalised.var(0, unbiased=False), torch.ones(6), atol=1e-4)
    moved = first_actnorm(z + 10)[0]  # initialised once: later batches do not re-initialise
    assert torch.allclose(moved.mean(0), 10 * first_actnorm.scale.detach(), atol=1e-4)


def test_every_block_actnorm_is_initialised_by_the_transformers_first_batch():
    model = VectorTransformer(small_config())
    model(torch.randn(32, 6) * 7)
    assert all(bool(block[0].initialized) for block in model.flow)


def test_factor_sizes_from_n_factors_and_from_factor_config():
    assert factor_sizes(64, 3, None) == [22, 22, 20]  # torch.chunk's split, as in the original
    assert factor_sizes(64, 5, None) == [13, 13, 13, 13, 12]
    assert factor_sizes(6, 3, None) == [2, 2, 2]
    with pytest.raises(ConfigError, match="factor_config"):
        factor_sizes(6, 4, None)  # torch.chunk gives 3 chunks of 2
    assert factor_sizes(64, 3, [22, 11, 31]) == [22, 11, 31]
    assert factor_sizes(64, None, [22, 11, 31]) == [22, 11, 31]
    with pytest.raises(ConfigError, match="summing to"):
        factor_sizes(64, 3, [22, 11, 30])
    with pytest.raises(ConfigError, match="n_factors"):
        factor_sizes(64, 2, [22, 11, 31])
    with pytest.raises(ConfigError, match="n_factors"):
        factor_sizes(64, None, None)


def test_factor_sizes_are_torch_chunks_or_an_error():
    for dims in range(2, 40):
        for n in range(2, dims + 1):
            chunks = [len(c) for c in torch.arange(dims).chunk(n)]
            if len(chunks) == n:
                assert factor_sizes(dims, n, None) == chunks
            else:
                with pytest.raises(ConfigError, match="torch.chunk"):
                    factor_sizes(dims, n, None)


def test_factor_split_join_and_swap():
    model = FactorTransformer(small_config(factor_config=[2, 1, 3]))
    a = torch.arange(12.0).view(2, 6)
    b = -torch.arange(12.0).view(2, 6)
    parts = model.split(a)
    assert [p.shape[1] for p in parts] == [2, 1, 3]
    assert torch.equal(model.join(parts), a)
    swapped = model.swap(a, b, 1)
    assert torch.equal(swapped[:, 2], b[:, 2])
    assert torch.equal(swapped[:, [0, 1, 3, 4, 5]], a[:, [0, 1, 3, 4, 5]])


def test_wrong_code_size_is_a_clear_error():
    model = VectorTransformer(small_config())
    with pytest.raises(ValueError, match="in_channel"):
        model(torch.randn(3, 5))
