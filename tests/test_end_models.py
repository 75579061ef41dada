"""EnD's two networks: EnD's SimpleConvNet (Tanh, normalised features) and ReBias's (ReLU, no normalisation)."""
import pytest
import torch
import torch.nn as nn

from edflow.config import ConfigError
from end.models import Model


def test_end_arch_ends_in_tanh_and_unit_features():
    model = Model({"Model": {"width": 0.25}})
    assert isinstance(model.extracter[-1], nn.Tanh)
    features = model.features(torch.randn(4, 3, 28, 28))
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))


def test_rebias_arch_has_relu_after_every_conv_and_raw_features():
    model = Model({"Model": {"width": 0.25, "arch": "rebias"}})
    activations = [m for m in model.extracter if isinstance(m, (nn.ReLU, nn.Tanh))]
    assert len(activations) == 4 and all(isinstance(m, nn.ReLU) for m in activations)
    assert isinstance(model.features_norm, nn.Identity)
    features = model.features(torch.randn(4, 3, 28, 28))
    assert (features >= 0).all() and not torch.allclose(features.norm(dim=1), torch.ones(4))


def test_unknown_arch_is_refused():
    with pytest.raises((ValueError, ConfigError), match="rebias"):
        Model({"Model": {"arch": "resnet"}})
