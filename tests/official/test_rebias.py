"""ReBias's SimpleConvNet (clovaai/rebias), whose trained numbers are the EnD paper's vanilla row, against ours with
``Model/arch: rebias``. Runs when FAIRKIT_OFFICIAL_REBIAS names a checkout of clovaai/rebias, else skips."""
from __future__ import annotations

import pytest
import torch

from _load import official_checkout

CHECKOUT = official_checkout("rebias")


@pytest.fixture(scope="module")
def rebias_models():
    path = CHECKOUT / "models" / "mnist_models.py"
    if not path.is_file():
        raise FileNotFoundError(f"{CHECKOUT} holds no models/mnist_models.py: not a checkout of clovaai/rebias")
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # torch alone; its package __init__ pulls in more
    return namespace


@pytest.mark.parametrize("train", [True, False])
def test_vanilla_net_is_rebias_simple_conv_net(rebias_models, train, compare):
    from end.models import Model

    torch.manual_seed(0)
    theirs = rebias_models["SimpleConvNet"](num_classes=10)
    ours = Model({"Model": {"arch": "rebias", "width": 1.0}})
    ours.load_state_dict(theirs.state_dict())
    theirs.train(train), ours.train(train)
    x = torch.randn(8, 3, 28, 28)
    logits, features = theirs(x)
    compare("SimpleConvNet logits", ours(x), logits, tol=1e-6)
    compare("SimpleConvNet pooled features", ours.features(x), features, tol=1e-6)
